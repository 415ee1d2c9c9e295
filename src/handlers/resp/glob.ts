// Redis glob patterns (KEYS, SCAN MATCH, PSUBSCRIBE): `*`, `?`, `[abc]`, `[^a]`, `[a-z]`, `\x`.
// Compiled to a RegExp over latin1 strings, cached since clients repeat their patterns.

const cache = new Map<string, RegExp>();
const CACHE_MAX = 1000;

export function globToRegExp(pattern: string): RegExp {
  let re = cache.get(pattern);
  if (re) return re;
  let src = '^';
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i];
    if (c === '*') src += '[\\s\\S]*';
    else if (c === '?') src += '[\\s\\S]';
    else if (c === '\\' && i + 1 < pattern.length) src += escape(pattern[++i]);
    else if (c === '[') {
      const close = pattern.indexOf(']', i + 2);
      if (close < 0) {
        src += '\\[';
        continue;
      }
      let body = pattern.slice(i + 1, close);
      let neg = false;
      if (body.startsWith('^')) {
        neg = true;
        body = body.slice(1);
      }
      let cls = '';
      for (let j = 0; j < body.length; j++) {
        if (body[j] === '\\' && j + 1 < body.length) cls += escape(body[++j]);
        else if (body[j + 1] === '-' && j + 2 < body.length) {
          const [a, b] = [body[j], body[j + 2]].sort();
          cls += `${escape(a)}-${escape(b)}`;
          j += 2;
        } else cls += escape(body[j]);
      }
      src += neg ? `[^${cls}]` : cls === '' ? '(?!)' : `[${cls}]`;
      i = close;
    } else src += escape(c);
  }
  re = new RegExp(src + '$');
  if (cache.size >= CACHE_MAX) cache.clear();
  cache.set(pattern, re);
  return re;
}

function escape(c: string): string {
  return /[\\^$.*+?()[\]{}|\-/]/.test(c) ? `\\${c}` : c;
}

/** Whether `subject` matches `pattern` (both latin1 strings). */
export function globMatch(pattern: string, subject: string): boolean {
  if (pattern === '*') return true;
  return globToRegExp(pattern).test(subject);
}

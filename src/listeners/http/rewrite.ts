import { z } from 'zod';
import type { CheckedTarget, TargetRefusal } from './request-target.ts';
import { lenientPath, normalisePath, pathPatternProblem, patternSource } from './router.ts';

// Rewrites before routing (a listener's `rewrites:`), as nginx's `rewrite ... last` and Caddy's
// `rewrite`: the first rule whose `from` matches the checked, normalised path replaces it, and
// the new path is what routes match, what handlers see in req.url and what a proxy forwards. The
// result goes through the check phase's path rules again (dot segments and anything that is not
// an origin-form path: 400), and, like routing, a path whose lenient reading (%2F, `\`, `;`)
// would take another rule is refused rather than rewritten one way and read another upstream.

/** Most rules a listener may have: each one is tried in turn on every request until one matches. */
export const MAX_REWRITES = 1000;

/** One rule of `rewrites:` (docs/routing.md, "Rewrites"). */
export const rewriteSchema = z
  .strictObject({
    /**
     * What to rewrite. A regular expression (JavaScript syntax) when it starts with `^`: matched
     * against the path (never the query), its groups referred to in `to` as `$1` or `$<name>`.
     * Otherwise a path pattern as in `match.path` (`/old/:id`, `/v1/*rest`, `/legacy/*`), whose
     * parameters `to` refers to as `:id` or `*rest`.
     */
    from: z.string().min(1),
    /**
     * The new path, starting with `/`, with references to what `from` captured (still
     * percent-encoded, as sent), and optionally its own query (`/search?q=$1`).
     */
    to: z.string().min(1),
    /**
     * The request's query: `keep` it (after the query of `to`, when it has one), or `replace` it
     * with the query of `to` (none when `to` has none). Default: `keep`, or `replace` when `to`
     * has a query of its own.
     */
    query: z.enum(['keep', 'replace']).optional(),
  })
  .superRefine((rule, ctx) => {
    for (const problem of compileRule(rule).problems) ctx.addIssue({ code: 'custom', path: [problem.field], message: problem.message });
  });

export type RewriteConfig = z.output<typeof rewriteSchema>;

/** A listener's `rewrites:` list. */
export const rewritesSchema = z.array(rewriteSchema).max(MAX_REWRITES, `at most ${MAX_REWRITES} rewrites`);

/** A piece of a rule's result: text from `to`, or a group of `from`'s match (by number or name). */
type Piece = string | { group: number | string };

interface CompiledRule {
  readonly re: RegExp;
  readonly pieces: readonly Piece[];
  readonly query: 'keep' | 'replace';
}

interface RuleProblem {
  readonly field: 'from' | 'to';
  readonly message: string;
}

// What a request target may hold (RFC 9112 §3.2: visible ASCII), less `#`, which starts a fragment.
const TARGET_CHARS = /^[\x21-\x22\x24-\x7e]*$/;

/** A rule compiled, or the problems of its config (both sides checked, so one run names them all). */
function compileRule(rule: RewriteConfig): { rule: CompiledRule; problems: [] } | { rule: undefined; problems: RuleProblem[] } {
  const problems: RuleProblem[] = [];
  let re: RegExp | undefined;
  let groupNames: ReadonlySet<string> = new Set();
  let groupCount = 0;
  const regex = rule.from.startsWith('^');
  if (regex) {
    try {
      re = new RegExp(rule.from);
      // A match of the empty alternative shows every group the expression has.
      const probe = new RegExp(`${rule.from}|`).exec('');
      groupCount = probe ? probe.length - 1 : 0;
      groupNames = new Set(Object.keys(probe?.groups ?? {}));
    } catch (err) {
      problems.push({ field: 'from', message: `not a valid regular expression: ${(err as Error).message}` });
    }
  } else if (!rule.from.startsWith('/')) {
    problems.push({ field: 'from', message: 'expected a path pattern (starting with "/") or a regular expression (starting with "^")' });
  } else {
    const problem = pathPatternProblem(rule.from);
    if (problem !== undefined) problems.push({ field: 'from', message: problem });
    else {
      const { source, names } = patternSource(rule.from);
      re = new RegExp(`^${source}$`);
      groupNames = new Set(names);
    }
  }

  if (!rule.to.startsWith('/')) problems.push({ field: 'to', message: 'the new path starts with "/"' });
  else if (!TARGET_CHARS.test(rule.to)) problems.push({ field: 'to', message: 'only visible ASCII characters, without "#" (percent-encode others)' });
  const pieces = regex ? regexPieces(rule.to, groupCount, groupNames, problems) : patternPieces(rule.to, groupNames, problems);
  if (problems.length > 0 || re === undefined) return { rule: undefined, problems };
  return { rule: { re, pieces, query: rule.query ?? (rule.to.includes('?') ? 'replace' : 'keep') }, problems: [] };
}

/** `to` of a regex rule: `$1`..`$99`, `$<name>`, `$$` for a `$`. */
function regexPieces(to: string, groupCount: number, names: ReadonlySet<string>, problems: RuleProblem[]): Piece[] {
  const pieces: Piece[] = [];
  let text = '';
  for (let i = 0; i < to.length; i++) {
    if (to[i] !== '$') {
      text += to[i];
      continue;
    }
    const rest = to.slice(i + 1);
    const number = /^\d{1,2}/.exec(rest);
    const named = /^<([A-Za-z_$][A-Za-z0-9_$]*)>/.exec(rest);
    if (rest.startsWith('$')) {
      text += '$';
      i += 1;
    } else if (number) {
      const n = Number(number[0]);
      if (n < 1 || n > groupCount) problems.push({ field: 'to', message: `"$${number[0]}": "from" has ${groupCount === 0 ? 'no groups' : `groups $1 to $${groupCount}`}` });
      pieces.push(text, { group: n });
      text = '';
      i += number[0].length;
    } else if (named) {
      if (!names.has(named[1])) problems.push({ field: 'to', message: `"$<${named[1]}>": "from" has no group of that name` });
      pieces.push(text, { group: named[1] });
      text = '';
      i += named[0].length;
    } else {
      problems.push({ field: 'to', message: 'a "$" starts a reference ($1, $<name>); write $$ for a "$" itself' });
      break;
    }
  }
  pieces.push(text);
  return pieces.filter((p) => p !== '');
}

/** `to` of a pattern rule: `:name` and `*name` stand for the parameter `name` of `from`. */
function patternPieces(to: string, names: ReadonlySet<string>, problems: RuleProblem[]): Piece[] {
  const pieces: Piece[] = [];
  let last = 0;
  for (const m of to.matchAll(/[:*]([A-Za-z_][A-Za-z0-9_]*)/g)) {
    if (!names.has(m[1])) {
      problems.push({ field: 'to', message: `"${m[0]}": "from" has no parameter "${m[1]}"${names.size ? ` (it has: ${[...names].join(', ')})` : ''}` });
      continue;
    }
    pieces.push(to.slice(last, m.index), { group: m[1] });
    last = m.index + m[0].length;
  }
  pieces.push(to.slice(last));
  return pieces.filter((p) => p !== '');
}

/** A request's target after the rewrites: the new req.url and the path to route on. */
export interface Rewritten {
  readonly url: string;
  readonly target: CheckedTarget;
}

/**
 * The rewrite step of a listener: the checked target and req.url in, the rewritten ones out
 * (undefined when no rule matches), or a refusal. Undefined for a listener without rewrites.
 */
export type RewriteStep = (target: CheckedTarget, url: string) => Rewritten | TargetRefusal | undefined;

/** Compiles `rewrites:` (validated by rewritesSchema) once per config. */
export function compileRewrites(rules: readonly RewriteConfig[] | undefined, mergeSlashes: boolean): RewriteStep | undefined {
  if (!rules || rules.length === 0) return undefined;
  const compiled = rules.map((r, i) => {
    const c = compileRule(r);
    if (c.rule === undefined) throw new Error(`rewrites[${i}].${c.problems[0].field}: ${c.problems[0].message}`);
    return c.rule;
  });
  const firstMatch = (path: string): { index: number; m: RegExpExecArray | null } => {
    for (let index = 0; index < compiled.length; index++) {
      const m = compiled[index].re.exec(path);
      if (m !== null) return { index, m };
    }
    return { index: -1, m: null };
  };
  return (target, url) => {
    const { index, m } = firstMatch(target.path);
    if (target.lenient !== undefined && firstMatch(target.lenient).index !== index) {
      return { status: 400, reason: 'an encoded slash, backslash or ";" in the path changes which rewrite it takes' };
    }
    if (m === null) return undefined;
    const rule = compiled[index];
    let result = '';
    for (const piece of rule.pieces) {
      result += typeof piece === 'string' ? piece : ((typeof piece.group === 'number' ? m[piece.group] : m.groups?.[piece.group]) ?? '');
    }
    const q = result.indexOf('?');
    let path = q === -1 ? result : result.slice(0, q);
    const ownQuery = q === -1 ? '' : result.slice(q + 1);
    const uq = url.indexOf('?');
    const sentQuery = uq === -1 ? '' : url.slice(uq + 1);
    const query = rule.query === 'replace' ? ownQuery : ownQuery && sentQuery ? `${ownQuery}&${sentQuery}` : ownQuery || sentQuery;
    if (mergeSlashes && path.includes('//')) path = path.replace(/\/{2,}/g, '/');
    // Captures come from a checked path and `to` was checked with the config; this is the
    // check phase's own rule for the result as a whole.
    if (path.charCodeAt(0) !== 47 /* / */ || !TARGET_CHARS.test(path)) return { status: 400, reason: 'the rewritten path is not a valid request path' };
    const normalised = normalisePath(path);
    if (normalised === undefined) return { status: 400, reason: 'the rewritten path holds "." or ".." segments' };
    const lenient = lenientPath(normalised, mergeSlashes);
    if (lenient === '') return { status: 400, reason: 'the rewritten path holds "." or ".." segments' };
    return {
      url: query === '' ? path : `${path}?${query}`,
      target: { path: normalised, lenient, close: target.close },
    };
  };
}

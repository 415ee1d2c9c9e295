// The decoded forms of a request's fields that rules are matched against, besides the raw form.
// Attacks hide behind encoding (`%2e%2e%2f` is `../`, `%252e` is `%2e` once more), so the path
// and query are matched as sent, percent-decoded once and percent-decoded twice. Only what the
// docs (docs/inspect.md, "What is normalised") list is done here: nothing else is rewritten.

const HEX = new Int8Array(128).fill(-1);
for (let i = 0; i < 10; i++) HEX[48 + i] = i;
for (let i = 0; i < 6; i++) {
  HEX[65 + i] = 10 + i;
  HEX[97 + i] = 10 + i;
}

function hexAt(s: string, i: number): number {
  const c = s.charCodeAt(i);
  return c < 128 ? HEX[c] : -1;
}

/**
 * `s` with each `%XX` (two hex digits) replaced by that byte (as one latin1 code unit, the form
 * the matcher reads); malformed escapes stay as they are. `plusIsSpace`: `+` becomes a space
 * too (query strings and form bodies). Backslashes become `/` when `backslashIsSlash` (paths:
 * Windows back ends take `..\` as `../`). Returns `s` itself when nothing changes.
 */
export function percentDecode(s: string, plusIsSpace: boolean, backslashIsSlash = false): string {
  let i = 0;
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 /* % */ || (plusIsSpace && c === 43) || (backslashIsSlash && c === 92)) break;
  }
  if (i === s.length) return s;
  let out = s.slice(0, i);
  for (; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c === 37 && i + 2 < s.length && hexAt(s, i + 1) >= 0 && hexAt(s, i + 2) >= 0) {
      const b = hexAt(s, i + 1) * 16 + hexAt(s, i + 2);
      out += String.fromCharCode(backslashIsSlash && b === 92 ? 47 : b);
      i += 2;
    } else if (plusIsSpace && c === 43) {
      out += ' ';
    } else if (backslashIsSlash && c === 92) {
      out += '/';
    } else {
      out += s[i];
    }
  }
  return out;
}

/** Whether `s` has a `%` left to decode (a second decoding could change it). */
export function hasPercent(s: string): boolean {
  return s.indexOf('%') !== -1;
}

/**
 * Percent-decoding (with `+` as space) of a body that arrives in chunks: an escape split across
 * two chunks is decoded as if it had come in one. Holds at most two bytes between chunks.
 */
export class StreamingFormDecoder {
  /** Bytes of an escape begun at the end of the last chunk: `%` and maybe one hex digit. */
  private held: number[] = [];

  /** The decoded bytes of `chunk`, given what earlier chunks left begun. */
  decode(chunk: Uint8Array): Uint8Array {
    const out = new Uint8Array(chunk.length + this.held.length);
    let n = 0;
    const input = this.held.length > 0 ? concat(this.held, chunk) : chunk;
    this.held = [];
    for (let i = 0; i < input.length; i++) {
      const c = input[i];
      if (c === 37) {
        if (i + 2 >= input.length) {
          // Too close to the end of what came: decided with the next chunk.
          const rest = Array.from(input.subarray(i));
          if (rest.every((b, k) => k === 0 || hexByte(b) >= 0)) {
            this.held = rest;
            break;
          }
        }
        const h1 = i + 1 < input.length ? hexByte(input[i + 1]) : -1;
        const h2 = i + 2 < input.length ? hexByte(input[i + 2]) : -1;
        if (h1 >= 0 && h2 >= 0) {
          out[n++] = h1 * 16 + h2;
          i += 2;
          continue;
        }
        out[n++] = c;
      } else {
        out[n++] = c === 43 ? 32 : c;
      }
    }
    return out.subarray(0, n);
  }
}

function hexByte(b: number): number {
  return b < 128 ? HEX[b] : -1;
}

function concat(held: number[], chunk: Uint8Array): Uint8Array {
  const out = new Uint8Array(held.length + chunk.length);
  out.set(held, 0);
  out.set(chunk, held.length);
  return out;
}

// Whatever a remote service sends is shown to a terminal, so it is made harmless first: no
// escape sequences, no carriage returns that rewrite the line, no bytes that are not text.

/** Printable text from remote bytes: control characters escaped (\n, \r, \t, \xHH), at most `max` characters. */
export function sanitizeRemoteText(input: string, max = 256): string {
  let out = '';
  for (const ch of input) {
    const code = ch.codePointAt(0) ?? 0;
    let shown: string;
    if (ch === '\n') shown = '\\n';
    else if (ch === '\r') shown = '\\r';
    else if (ch === '\t') shown = '\\t';
    else if (ch === '\\') shown = '\\\\';
    else if (code < 0x20 || (code >= 0x7f && code < 0xa0) || ch === '\ufffd' || (code >= 0x200b && code <= 0x200f) || (code >= 0x202a && code <= 0x202e) || (code >= 0x2066 && code <= 0x2069)) {
      shown = code <= 0xff ? `\\x${code.toString(16).padStart(2, '0')}` : `\\u${code.toString(16).padStart(4, '0')}`;
    } else shown = ch;
    if (out.length + shown.length > max) return `${out}…`;
    out += shown;
  }
  return out;
}

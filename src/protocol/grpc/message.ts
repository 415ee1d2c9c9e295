// `grpc-message`, the status's human text, is percent-encoded on the wire (PROTOCOL-HTTP2.md):
// its UTF-8 bytes outside 0x20..0x7E, and `%` itself, are written `%XX`. A receiver must never
// fail on a bad encoding: an invalid escape is kept as it is.

const HEX = '0123456789ABCDEF';

/** Percent-encodes a status message for the `grpc-message` header or trailer. */
export function encodeGrpcMessage(message: string): string {
  // The common case (plain ASCII, no `%`) goes out as it is.
  if (/^[\x20-\x24\x26-\x7e]*$/.test(message)) return message;
  let out = '';
  for (const byte of Buffer.from(message, 'utf8')) {
    out += byte >= 0x20 && byte <= 0x7e && byte !== 0x25 ? String.fromCharCode(byte) : `%${HEX[byte >> 4]}${HEX[byte & 15]}`;
  }
  return out;
}

/** Decodes a `grpc-message` value; bad escapes are left as written, bad UTF-8 becomes U+FFFD. */
export function decodeGrpcMessage(value: string | string[] | undefined): string {
  const v = Array.isArray(value) ? value.join(', ') : value;
  if (!v) return '';
  if (!v.includes('%')) return v;
  const bytes: number[] = [];
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c === 0x25 && i + 2 < v.length && /^[0-9A-Fa-f]{2}$/.test(v.slice(i + 1, i + 3))) {
      bytes.push(parseInt(v.slice(i + 1, i + 3), 16));
      i += 2;
    } else if (c < 0x80) {
      bytes.push(c);
    } else {
      // Not valid on the wire, but a peer may send it: kept as its UTF-8.
      for (const b of Buffer.from(v[i], 'utf8')) bytes.push(b);
    }
  }
  return Buffer.from(bytes).toString('utf8');
}

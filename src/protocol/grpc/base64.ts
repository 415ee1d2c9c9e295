// Base64 as gRPC-Web text mode uses it (application/grpc-web-text). A body is base64 of the
// binary frames, but not necessarily one base64 string: a sender may encode each piece as it
// goes, padding included, so `=` can appear in the middle of the stream ("QQ==QkM=" is A, B, C).
// Node's decoder stops at the first `=`; this one decodes each padded group where it ends and
// carries an incomplete group over to the next chunk.

export class Base64Error extends Error {
  readonly code = 'SWITCHYARD_GRPC_BAD_BASE64';
  constructor(message: string) {
    super(message);
    this.name = 'Base64Error';
  }
}

/** Incremental base64 decoder over a stream of chunks (standard alphabet; whitespace ignored). */
export class Base64StreamDecoder {
  /** At most 3 characters of a group not yet complete. */
  private rest = '';

  /** Decodes what the chunk completes; throws Base64Error for characters outside base64 or a misplaced `=`. */
  push(chunk: Uint8Array | string): Buffer {
    let text = typeof chunk === 'string' ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength).toString('latin1');
    if (/\s/.test(text)) text = text.replace(/\s+/g, '');
    if (!/^[A-Za-z0-9+/=]*$/.test(text)) throw new Base64Error('not base64: a character outside A-Z a-z 0-9 + / =');
    const s = this.rest + text;
    const whole = s.length - (s.length % 4);
    const parts: Buffer[] = [];
    let start = 0;
    let eq = s.indexOf('=');
    while (eq !== -1 && eq < whole) {
      const groupEnd = eq - (eq % 4) + 4;
      // Padding is the last one or two characters of a group, and nothing but `=` follows it there.
      if (eq % 4 < 2 || !/^=+$/.test(s.slice(eq, groupEnd))) throw new Base64Error('not base64: "=" where no padding can be');
      parts.push(Buffer.from(s.slice(start, groupEnd), 'base64'));
      start = groupEnd;
      eq = s.indexOf('=', start);
    }
    if (start < whole) parts.push(Buffer.from(s.slice(start, whole), 'base64'));
    this.rest = s.slice(whole);
    return parts.length === 1 ? parts[0] : Buffer.concat(parts);
  }

  /**
   * The stream ended: decodes a last group left without its padding (2 or 3 characters), and
   * throws Base64Error for a lone character (no byte can be made of 6 bits).
   */
  end(): Buffer {
    const rest = this.rest;
    this.rest = '';
    if (rest === '') return Buffer.alloc(0);
    if (rest.length === 1 || /=/.test(rest.replace(/=+$/, '')) || rest.replace(/=+$/, '').length < 2) throw new Base64Error('base64 ended inside a group');
    return Buffer.from(rest, 'base64');
  }
}

/**
 * One chunk of a text-mode stream: `bytes` as padded base64 (ASCII bytes, ready to write).
 * Each chunk stands alone, so a message is never held back waiting for the next one.
 */
export function encodeBase64Chunk(bytes: Uint8Array): Buffer {
  return Buffer.from(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('base64'), 'latin1');
}

// The Huffman code of HPACK (RFC 7541 Appendix B), which QPACK uses for string literals
// (RFC 9204 §4.1.2). The code is canonical: codes of one length are consecutive and follow the
// symbol order, and each length's first code follows from the ones before it. So the table
// below is only each symbol's code length (symbols 0-255, then EOS, 256), and the codes are
// derived from it at load; the tests check the derived codes against the RFC's examples.

const LENGTHS = [
  // 0-31: control characters
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  // 32-63: ' ' to '?'
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  // 64-95: '@' to '_'
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  // 96-127: '`' to DEL
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  // 128-255
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  // 256: EOS
  30,
] as const;

const EOS = 256;
const MAX_LENGTH = 30;

/** Each symbol's code (as a number: at most 30 bits). */
export const CODES: readonly number[] = (() => {
  const order = LENGTHS.map((_, sym) => sym).sort((a, b) => LENGTHS[a] - LENGTHS[b] || a - b);
  const codes = new Array<number>(LENGTHS.length);
  let code = 0;
  let len = LENGTHS[order[0]];
  for (const sym of order) {
    code *= 2 ** (LENGTHS[sym] - len);
    len = LENGTHS[sym];
    codes[sym] = code;
    code++;
  }
  return codes;
})();

/** Per code length: the first code of that length, and where its symbols start in SORTED. */
const FIRST_CODE = new Array<number>(MAX_LENGTH + 1).fill(0);
const FIRST_INDEX = new Array<number>(MAX_LENGTH + 1).fill(0);
const COUNT = new Array<number>(MAX_LENGTH + 1).fill(0);
const SORTED: number[] = LENGTHS.map((_, sym) => sym).sort((a, b) => LENGTHS[a] - LENGTHS[b] || a - b);
for (let i = SORTED.length - 1; i >= 0; i--) {
  const l = LENGTHS[SORTED[i]];
  COUNT[l]++;
  FIRST_INDEX[l] = i;
  FIRST_CODE[l] = CODES[SORTED[i]];
}

/** Thrown for a Huffman string that does not decode (RFC 7541 §5.2: a decoding error). */
export class HuffmanError extends Error {}

/**
 * Decodes a Huffman-coded string. Padding must be the most significant bits of EOS (all ones)
 * and shorter than 8 bits; EOS itself must not appear. `maxOut` bounds the result.
 */
export function huffmanDecode(input: Uint8Array, maxOut: number): Buffer {
  // At most 8/5 symbols per byte (the shortest code is 5 bits).
  const out = Buffer.allocUnsafe(Math.min(maxOut, Math.ceil((input.length * 8) / 5)));
  let n = 0;
  let code = 0;
  let len = 0;
  for (let i = 0; i < input.length; i++) {
    const byte = input[i];
    for (let bit = 7; bit >= 0; bit--) {
      code = code * 2 + ((byte >> bit) & 1);
      len++;
      const offset = code - FIRST_CODE[len];
      if (COUNT[len] > 0 && offset >= 0 && offset < COUNT[len]) {
        const sym = SORTED[FIRST_INDEX[len] + offset];
        if (sym === EOS) throw new HuffmanError('EOS in a Huffman string');
        if (n >= out.length) throw new HuffmanError(`Huffman string longer than ${maxOut} bytes`);
        out[n++] = sym;
        code = 0;
        len = 0;
      } else if (len >= MAX_LENGTH) throw new HuffmanError('bad Huffman code');
    }
  }
  // Padding: fewer than 8 bits, all ones.
  if (len > 7 || code !== 2 ** len - 1) throw new HuffmanError('bad Huffman padding');
  return out.subarray(0, n);
}

/** Bytes `input` takes Huffman-coded. */
export function huffmanLength(input: Uint8Array): number {
  let bits = 0;
  for (let i = 0; i < input.length; i++) bits += LENGTHS[input[i]];
  return Math.ceil(bits / 8);
}

/** Huffman-codes `input` into `out` at `offset` (room: huffmanLength); returns the offset after it. */
export function huffmanEncode(input: Uint8Array, out: Uint8Array, offset: number): number {
  let acc = 0;
  let bits = 0;
  for (let i = 0; i < input.length; i++) {
    const sym = input[i];
    const l = LENGTHS[sym];
    acc = acc * 2 ** l + CODES[sym];
    bits += l;
    while (bits >= 8) {
      const shift = 2 ** (bits - 8);
      out[offset++] = Math.floor(acc / shift) & 0xff;
      acc %= shift;
      bits -= 8;
    }
  }
  if (bits > 0) out[offset++] = ((acc << (8 - bits)) | (0xff >> bits)) & 0xff;
  return offset;
}

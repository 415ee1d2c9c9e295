// QUIC variable-length integers (RFC 9000 §16), which HTTP/3 uses for frame types and lengths,
// stream types, settings and IDs: the top two bits of the first byte give the length (1, 2, 4
// or 8 bytes), the rest is the value, big-endian. Values are JavaScript numbers: exact up to
// 2^53, which covers every length and ID this side accepts; larger ones (reserved frame and
// stream types can be up to 2^62 - 1) come out approximate, which is enough to skip them.

/** The largest value a varint can carry (2^62 - 1), as the nearest number. */
export const VARINT_MAX = 2 ** 62 - 1;

/** Bytes a varint of `value` takes. */
export function varintLength(value: number): 1 | 2 | 4 | 8 {
  if (value < 0x40) return 1;
  if (value < 0x4000) return 2;
  if (value < 0x40000000) return 4;
  return 8;
}

/** Writes `value` at `offset`; returns the offset after it. The caller has made room (varintLength). */
export function writeVarint(buf: Uint8Array, offset: number, value: number): number {
  if (!Number.isInteger(value) || value < 0 || value > Number.MAX_SAFE_INTEGER) throw new RangeError(`varint out of range: ${value}`);
  const n = varintLength(value);
  if (n === 1) {
    buf[offset] = value;
  } else if (n === 2) {
    buf[offset] = 0x40 | (value >>> 8);
    buf[offset + 1] = value & 0xff;
  } else if (n === 4) {
    buf[offset] = 0x80 | (value >>> 24);
    buf[offset + 1] = (value >>> 16) & 0xff;
    buf[offset + 2] = (value >>> 8) & 0xff;
    buf[offset + 3] = value & 0xff;
  } else {
    const hi = Math.floor(value / 2 ** 32);
    const lo = value >>> 0;
    buf[offset] = 0xc0 | (hi >>> 24);
    buf[offset + 1] = (hi >>> 16) & 0xff;
    buf[offset + 2] = (hi >>> 8) & 0xff;
    buf[offset + 3] = hi & 0xff;
    buf[offset + 4] = lo >>> 24;
    buf[offset + 5] = (lo >>> 16) & 0xff;
    buf[offset + 6] = (lo >>> 8) & 0xff;
    buf[offset + 7] = lo & 0xff;
  }
  return offset + n;
}

/** A varint on its own. */
export function encodeVarint(value: number): Buffer {
  const out = Buffer.allocUnsafe(varintLength(value));
  writeVarint(out, 0, value);
  return out;
}

/** A varint read: its value and how many bytes it took. */
export interface VarintRead {
  readonly value: number;
  readonly length: number;
}

/** The varint at `offset`, or undefined when `buf` ends before it does. */
export function readVarint(buf: Uint8Array, offset: number): VarintRead | undefined {
  if (offset >= buf.length) return undefined;
  const first = buf[offset];
  const length = 1 << (first >> 6);
  if (offset + length > buf.length) return undefined;
  let value = first & 0x3f;
  for (let i = 1; i < length; i++) value = value * 256 + buf[offset + i];
  return { value, length };
}

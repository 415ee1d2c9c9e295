// The prefix integer of HPACK and QPACK (RFC 7541 §5.1, which RFC 9204 reuses): a value that fits
// the N low bits of the first byte is written there; a larger one fills them and continues in
// 7-bit groups, low group first. One writer for both header codecs.

/** Writes `value` as an N-bit prefix integer with `flags` in the bits above the prefix; returns the offset after it. */
export function writePrefixInt(out: Uint8Array, at: number, prefixBits: number, flags: number, value: number): number {
  const max = (1 << prefixBits) - 1;
  if (value < max) {
    out[at++] = flags | value;
    return at;
  }
  out[at++] = flags | max;
  value -= max;
  while (value >= 0x80) {
    out[at++] = (value % 0x80) | 0x80;
    value = Math.floor(value / 0x80);
  }
  out[at++] = value;
  return at;
}

// Hashing for the hash-based balancers: a seeded 32-bit MurmurHash3 over a string's UTF-16 code
// units (two units per 32-bit block), read in place so hashing a key allocates nothing.

/** MurmurHash3's finaliser: full avalanche of a 32-bit value. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** 32-bit MurmurHash3 of `s` from code unit `start` on, with `seed`. Unsigned result. */
export function hash32(s: string, seed = 0, start = 0): number {
  let h = seed | 0;
  const end = s.length;
  let i = start;
  for (; i + 1 < end; i += 2) {
    let k = s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  if (i < end) {
    let k = s.charCodeAt(i);
    k = Math.imul(k, 0xcc9e2d51);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, 0x1b873593);
    h ^= k;
  }
  h ^= (end - start) * 2;
  return fmix32(h);
}

/** A further independent-looking hash derived from `h` for probe number `k` (0, 1, ...). */
export function rehash(h: number, k: number): number {
  return fmix32((h ^ Math.imul(k + 1, 0x9e3779b9)) >>> 0);
}

/**
 * Where the address proper starts in a client IP: dual-stack sockets report IPv4 clients as
 * `::ffff:1.2.3.4`, which must hash like `1.2.3.4`.
 */
export function ipStart(ip: string): number {
  return ip.length > 7 && ip.charCodeAt(0) === 58 /* : */ && ip.startsWith('::ffff:') && ip.indexOf('.', 7) !== -1 ? 7 : 0;
}

/** Hash of a client IP, IPv4-mapped IPv6 folded onto IPv4. */
export function hashIp(ip: string): number {
  return hash32(ip, 0, ipStart(ip));
}

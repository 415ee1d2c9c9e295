// `switchyard ipc bench --size`: the bulk transfer size, read apart from the benchmark so that the
// command line checks it without loading the benchmark. Binary units for k, m, g as in most
// tools' sizes; kb, mb, gb are decimal.

/** `1GiB`, `256MiB`, `64k`, `1000000`: a size in bytes above 0, or undefined when malformed. */
export function parseSize(raw: string): number | undefined {
  const m = /^(\d+(?:\.\d+)?)\s*(b|k|kb|kib|m|mb|mib|g|gb|gib)?$/i.exec(raw.trim());
  if (!m) return undefined;
  const mult: Record<string, number> = { b: 1, k: 1024, kb: 1000, kib: 1024, m: 1024 ** 2, mb: 1e6, mib: 1024 ** 2, g: 1024 ** 3, gb: 1e9, gib: 1024 ** 3 };
  const n = Math.round(Number(m[1]) * mult[(m[2] ?? 'b').toLowerCase()]);
  return n > 0 ? n : undefined;
}

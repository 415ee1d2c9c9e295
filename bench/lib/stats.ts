/** Median of a non-empty list (mean of the two middle values for even lengths); NaN if empty. */
export function median(values: readonly number[]): number {
  const xs = values.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (xs.length === 0) return Number.NaN;
  const mid = xs.length >> 1;
  return xs.length % 2 === 1 ? xs[mid] : (xs[mid - 1] + xs[mid]) / 2;
}

/** 48400 -> "48.4k", 690 -> "690". */
export function formatRate(x: number): string {
  if (!Number.isFinite(x)) return '—';
  if (x >= 10_000) return `${(x / 1000).toFixed(1)}k`;
  if (x >= 1_000) return `${(x / 1000).toFixed(2)}k`;
  return x.toFixed(0);
}

export function formatBytes(n: number): string {
  if (n >= 1 << 20 && n % (1 << 20) === 0) return `${n / (1 << 20)} MiB`;
  if (n >= 1 << 10 && n % (1 << 10) === 0) return `${n / (1 << 10)} KiB`;
  return `${n} B`;
}

export function formatMicros(x: number): string {
  if (!Number.isFinite(x)) return '—';
  return x >= 100 ? x.toFixed(0) : x.toFixed(1);
}

export function formatPercent(fraction: number): string {
  if (!Number.isFinite(fraction)) return '—';
  return `${Math.round(fraction * 100)}%`;
}

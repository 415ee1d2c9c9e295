import * as hdr from 'hdr-histogram-js';

// Latency histograms in nanoseconds (HdrHistogram, 3 significant digits), summarised as the
// figures the runner prints: count, p50, p99, p99.9 and max, in microseconds.

/** Longest latency tracked exactly: a minute. */
const MAX_NS = 60_000_000_000;

export interface LatencySummary {
  count: number;
  p50us: number;
  p99us: number;
  p999us: number;
  maxUs: number;
}

export function latencyHistogram(): hdr.Histogram {
  return hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_NS, numberOfSignificantValueDigits: 3, autoResize: false, useWebAssembly: false });
}

/** Records `ns`, clamped into the tracked range (a clock step backwards counts as 1 ns). */
export function record(h: hdr.Histogram, ns: number): void {
  h.recordValue(ns < 1 ? 1 : ns > MAX_NS ? MAX_NS : ns);
}

export function summarize(h: hdr.Histogram): LatencySummary {
  const us = (ns: number) => Math.round(ns / 10) / 100;
  return {
    count: h.totalCount,
    p50us: us(h.getValueAtPercentile(50)),
    p99us: us(h.getValueAtPercentile(99)),
    p999us: us(h.getValueAtPercentile(99.9)),
    maxUs: us(h.maxValue),
  };
}

export function formatLatency(s: LatencySummary): string {
  if (s.count === 0) return 'no orders';
  const f = (us: number) => (us >= 1000 ? `${(us / 1000).toFixed(2)} ms` : `${us.toFixed(us < 10 ? 2 : 1)} µs`);
  return `p50 ${f(s.p50us)}  p99 ${f(s.p99us)}  p99.9 ${f(s.p999us)}  max ${f(s.maxUs)}`;
}

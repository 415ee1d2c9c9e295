import { ERROR_KINDS, type ErrorKind } from './errors.ts';
import type { LoadOptions } from './options.ts';
import type { RunOutcome, SocketsKind } from './run.ts';

// What a run found, as one plain object (the --json output) and as wrk-style text.

/** The latency percentiles reported, and their names in the JSON output. */
export const PERCENTILES = [
  ['p50', 50],
  ['p90', 90],
  ['p99', 99],
  ['p99.9', 99.9],
] as const;

export interface LatencySummary {
  readonly p50: number;
  readonly p90: number;
  readonly p99: number;
  readonly 'p99.9': number;
  readonly max: number;
  readonly min: number;
  readonly mean: number;
  readonly stdev: number;
}

export interface LoadReport {
  readonly target: string;
  readonly protocol: string;
  /**
   * Whose sockets carried the load: "io_uring" (the load generator's own, driven through one
   * io_uring; plain http:// over IPv4), "native" (its own, one recv and one send per request
   * through one epoll set) or "node" (Node's net, tls, http2 and dgram).
   */
  readonly sockets: SocketsKind;
  /** Why a preferred engine could not be used here (null when none was passed over). */
  readonly socketsFallback: string | null;
  readonly connections: number;
  /** Requests in flight per connection (HTTP/2: streams). */
  readonly depth: number;
  /** "closed" (send when ready) or "open" (--rate; latency from the scheduled time). */
  readonly model: 'closed' | 'open';
  readonly rate: number | null;
  readonly durationSec: number;
  /** Requests sent (a failed connect uses up one). */
  readonly sent: number;
  /** Requests answered (any status). */
  readonly responses: number;
  /** Answered without error (2xx for HTTP). */
  readonly successes: number;
  readonly requestsPerSec: number;
  readonly bytesRead: number;
  readonly bytesWritten: number;
  readonly readBytesPerSec: number;
  /** Milliseconds. */
  readonly latencyMs: LatencySummary;
  /**
   * CPU the load generator itself used during the run, in cores (1 = one core fully busy).
   * Near 1, it is the bottleneck and requests/s understates the server.
   */
  readonly clientCpuCores: number;
  /** The load generator's CPU time per answered request, µs. */
  readonly clientCpuUsPerResponse: number | null;
  readonly errors: Readonly<Record<ErrorKind, number>> & { readonly total: number };
  /** The first message of each error kind seen. */
  readonly errorMessages: Readonly<Partial<Record<ErrorKind, string>>>;
  /** HTTP responses by status code. */
  readonly statusCodes: Readonly<Record<string, number>>;
}

/** The load generator's own CPU share above which the report warns that it may be the limit. */
const SATURATED = 0.9;

const round3 = (x: number) => Math.round(x * 1000) / 1000;

export function buildReport(options: LoadOptions, outcome: RunOutcome): LoadReport {
  const { stats } = outcome;
  const h = stats.histogram;
  const empty = h.totalCount === 0;
  // HdrHistogram answers a percentile with the top of its bucket, which can lie above the
  // largest value recorded; a percentile is never above the max.
  const at = (p: number) => (empty ? 0 : round3(Math.min(h.getValueAtPercentile(p), h.maxValue) / 1000));
  const statusCodes: Record<string, number> = {};
  stats.statusCodes.forEach((n, code) => {
    if (n > 0) statusCodes[String(code)] = n;
  });
  const seconds = outcome.elapsedMs / 1000;
  return {
    target: options.target.url,
    protocol: options.target.protocol === 'http' ? (options.http2 ? 'h2' : 'http/1.1') : options.target.protocol,
    sockets: outcome.sockets,
    socketsFallback: outcome.socketsFallback ?? null,
    connections: options.connections,
    depth: options.target.protocol === 'http' && options.http2 ? options.streams : options.pipeline,
    model: options.rate === undefined ? 'closed' : 'open',
    rate: options.rate ?? null,
    durationSec: round3(seconds),
    sent: stats.sent,
    responses: stats.responses,
    successes: stats.successes(),
    requestsPerSec: seconds > 0 ? Math.round((stats.responses / seconds) * 100) / 100 : 0,
    bytesRead: stats.bytesRead,
    bytesWritten: stats.bytesWritten,
    readBytesPerSec: seconds > 0 ? Math.round(stats.bytesRead / seconds) : 0,
    latencyMs: {
      p50: at(50),
      p90: at(90),
      p99: at(99),
      'p99.9': at(99.9),
      max: empty ? 0 : round3(h.maxValue / 1000),
      min: empty ? 0 : round3(h.minNonZeroValue / 1000),
      mean: empty ? 0 : round3(h.mean / 1000),
      stdev: empty ? 0 : round3(h.stdDeviation / 1000),
    },
    clientCpuCores: outcome.elapsedMs > 0 ? round3(outcome.cpuMs / outcome.elapsedMs) : 0,
    clientCpuUsPerResponse: stats.responses > 0 ? round3((outcome.cpuMs * 1000) / stats.responses) : null,
    errors: { ...stats.errors, total: stats.errorTotal() },
    errorMessages: { ...stats.errorMessages },
    statusCodes,
  };
}

export function formatDuration(ms: number): string {
  if (ms < 1) return `${(ms * 1000).toFixed(0)}us`;
  if (ms < 1000) return `${ms.toFixed(ms < 10 ? 2 : 1)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

export function formatBytes(n: number): string {
  const units = ['B', 'KB', 'MB', 'GB', 'TB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024;
    i++;
  }
  return `${n.toFixed(i === 0 ? 0 : 2)}${units[i]}`;
}

/** The report as text, laid out like wrk's. */
export function formatReport(r: LoadReport): string {
  const lines: string[] = [];
  const what = r.model === 'open' ? `open model at ${r.rate} req/s (latency from each request's scheduled time)` : 'closed model';
  lines.push(`Running ${r.durationSec.toFixed(2)}s test @ ${r.target} (${r.protocol})`);
  lines.push(`  ${r.connections} connection${r.connections === 1 ? '' : 's'}, ${r.depth} in flight each, ${what}`);
  lines.push('  Latency distribution');
  const l = r.latencyMs;
  for (const [name] of PERCENTILES) lines.push(`    ${name.slice(1).padStart(5)}%  ${formatDuration(l[name]).padStart(9)}`);
  lines.push(`      max  ${formatDuration(l.max).padStart(9)}`);
  lines.push(`  mean ${formatDuration(l.mean)}, stdev ${formatDuration(l.stdev)}, min ${formatDuration(l.min)}`);
  lines.push(`  ${r.responses} responses in ${r.durationSec.toFixed(2)}s, ${formatBytes(r.bytesRead)} read (${r.sent} sent)`);
  const codes = Object.entries(r.statusCodes);
  if (codes.length > 0) lines.push(`  Status codes: ${codes.map(([c, n]) => `${c}: ${n}`).join(', ')}`);
  if (r.errors.total > 0) {
    lines.push(`  Errors: ${ERROR_KINDS.map((k) => `${k} ${r.errors[k]}`).join(', ')}`);
    for (const k of ERROR_KINDS) {
      const m = r.errorMessages[k];
      if (m !== undefined) lines.push(`    ${k}: ${m}`);
    }
  }
  lines.push(`Requests/sec: ${r.requestsPerSec.toFixed(2)}`);
  lines.push(`Transfer/sec: ${formatBytes(r.readBytesPerSec)}`);
  if (r.clientCpuCores >= SATURATED) {
    lines.push(`Note: switchyard bench itself kept ${Math.round(r.clientCpuCores * 100)}% of a CPU core busy; it may be the bottleneck, and the figures above its limit rather than the server's.`);
  }
  return lines.join('\n') + '\n';
}

import { clockTicksPerSecond, parsePidStat } from './cpu.ts';
import { runCaptured } from './proc.ts';

// Runs h2load (nghttp2's HTTP/2 load generator, pinned with taskset) and parses its report: the
// HTTP/2 counterpart of wrk.ts. Duration-bounded (-D), with a hard kill on top.

export interface H2loadOptions {
  /** https:// (h2 through ALPN) or http:// (h2c by prior knowledge). */
  readonly url: string;
  readonly durationSec: number;
  /** Connections (-c). */
  readonly connections: number;
  /** Concurrent streams per connection (-m). */
  readonly streams: number;
  /** taskset core list, e.g. "1"; undefined = not pinned. */
  readonly core?: string;
  /** A file posted as every request's body (-d; h2load then sends POST). */
  readonly dataFile?: string;
  /** Extra request header lines, "name: value" (-H). */
  readonly headers?: readonly string[];
}

export interface H2loadResult {
  /** Requests finished in the measured duration ("requests: N total"). */
  readonly requests: number;
  readonly succeeded: number;
  readonly failed: number;
  readonly errored: number;
  readonly timeout: number;
  readonly status: { readonly s2xx: number; readonly s3xx: number; readonly s4xx: number; readonly s5xx: number };
  /** Wall time h2load reports ("finished in"), seconds. */
  readonly seconds: number;
  readonly requestsPerSec: number;
  /** Response DATA frame payload bytes ("traffic: ... data"). */
  readonly dataBytes: number;
  /** Response header block bytes, after HPACK. */
  readonly headerBytes: number;
  /** "time for request" mean and sd, ms (h2load prints no percentiles). */
  readonly meanMs: number;
  readonly sdMs: number;
  readonly maxMs: number;
  /** "Application protocol: h2" (h2c runs print none). */
  readonly protocol: string | undefined;
  /** "TLS Protocol: TLSv1.3" and "Cipher: ..." of the first connection (TLS runs only). */
  readonly tlsProtocol: string | undefined;
  readonly cipher: string | undefined;
  /** CPU seconds h2load itself used (user+system), when known. */
  readonly clientCpuSeconds: number | undefined;
  readonly raw: string;
}

const TIME_TO_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function num(s: string | undefined, what: string, raw: string): number {
  const n = Number(s);
  if (s === undefined || !Number.isFinite(n)) throw new Error(`cannot parse h2load output (${what}):\n${raw.slice(-2000)}`);
  return n;
}

/** Parses h2load's (nghttp2 1.4x-1.6x) summary. Throws if the essential lines are missing. */
export function parseH2load(raw: string): H2loadResult {
  const fin = /^finished in ([\d.]+)(us|ms|s|m|h), ([\d.]+) req\/s/m.exec(raw);
  if (!fin) throw new Error(`cannot parse h2load output (no "finished in" line):\n${raw.slice(-2000)}`);
  const req = /^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m.exec(raw);
  if (!req) throw new Error(`cannot parse h2load output (no "requests:" line):\n${raw.slice(-2000)}`);
  const st = /^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m.exec(raw);
  // traffic: 535.63MB (561653584) total, 1.17MB (1227760) headers (space savings 90.71%), 532.13MB (557973504) data
  const traffic = /^traffic: .*?\((\d+)\) total, .*?\((\d+)\) headers.*?, .*?\((\d+)\) data/m.exec(raw);
  const t = /^time for request:\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)\s+([\d.]+)(us|ms|s)/m.exec(raw);
  const ms = (v: string | undefined, unit: string | undefined) => (v === undefined || unit === undefined ? Number.NaN : Number(v) * TIME_TO_MS[unit]);
  return {
    requests: num(req[1], 'requests', raw),
    succeeded: Number(req[4]),
    failed: Number(req[5]),
    errored: Number(req[6]),
    timeout: Number(req[7]),
    status: st ? { s2xx: Number(st[1]), s3xx: Number(st[2]), s4xx: Number(st[3]), s5xx: Number(st[4]) } : { s2xx: 0, s3xx: 0, s4xx: 0, s5xx: 0 },
    seconds: (num(fin[1], 'duration', raw) * TIME_TO_MS[fin[2]]) / 1000,
    requestsPerSec: num(fin[3], 'req/s', raw),
    dataBytes: traffic ? Number(traffic[3]) : Number.NaN,
    headerBytes: traffic ? Number(traffic[2]) : Number.NaN,
    meanMs: ms(t?.[5], t?.[6]),
    sdMs: ms(t?.[7], t?.[8]),
    maxMs: ms(t?.[3], t?.[4]),
    protocol: /^Application protocol: (\S+)/m.exec(raw)?.[1],
    tlsProtocol: /^TLS Protocol: (\S+)/m.exec(raw)?.[1],
    cipher: /^Cipher: (\S+)/m.exec(raw)?.[1],
    clientCpuSeconds: undefined,
    raw,
  };
}

/** What is wrong with a run: failed/errored requests, non-2xx statuses (empty when clean). */
export function h2loadProblems(r: H2loadResult, expectProtocol?: string): string[] {
  const problems: string[] = [];
  if (r.requests === 0) problems.push('no requests completed');
  if (r.failed + r.errored + r.timeout > 0) problems.push(`h2load: ${r.failed} failed, ${r.errored} errored, ${r.timeout} timed out`);
  const bad = r.status.s3xx + r.status.s4xx + r.status.s5xx;
  if (bad > 0) problems.push(`non-2xx responses: ${r.status.s3xx} 3xx, ${r.status.s4xx} 4xx, ${r.status.s5xx} 5xx`);
  if (expectProtocol && r.protocol !== undefined && r.protocol !== expectProtocol) problems.push(`negotiated ${r.protocol}, not ${expectProtocol}`);
  return problems;
}

// h2load runs under a small sh that, once h2load has been reaped, prints its own /proc/self/stat
// line: its cutime+cstime fields are then exactly h2load's CPU time (as for wrk).
const WRAPPER =
  'if [ -n "$LOAD_CORE" ]; then taskset -c "$LOAD_CORE" h2load "$@"; else h2load "$@"; fi; s=$?; echo "load-cpu $(cat /proc/$$/stat)" >&2; exit $s';

/** Runs h2load once, -t1 (one thread: the client core); bounded by -D plus a hard limit. */
export async function runH2load(o: H2loadOptions): Promise<H2loadResult> {
  const args = [
    '-t1',
    `-c${o.connections}`,
    `-m${o.streams}`,
    '-D',
    String(o.durationSec),
    // Give up on a connection that goes silent rather than hang to the hard limit.
    '-N',
    '10',
    ...(o.dataFile ? ['-d', o.dataFile] : []),
    ...(o.headers ?? []).flatMap((h) => ['-H', h]),
    o.url,
  ];
  const limit = o.durationSec + 30;
  const r = await runCaptured('sh', ['-c', WRAPPER, 'sh', ...args], limit * 1000, undefined, { ...process.env, LOAD_CORE: o.core ?? '' });
  if (r.timedOut) throw new Error(`h2load did not finish within ${limit}s (killed)`);
  const cpuLine = /^load-cpu (.*)$/m.exec(r.stderr);
  const stderr = r.stderr.replace(/^load-cpu .*$\n?/m, '').trim();
  if (r.code !== 0) throw new Error(`h2load failed (exit ${r.code ?? r.signal}): ${(stderr || r.stdout.trim()).slice(-1500)}`);
  const st = cpuLine ? parsePidStat(cpuLine[1], true) : undefined;
  return { ...parseH2load(r.stdout), clientCpuSeconds: st ? st.ticks / clockTicksPerSecond() : undefined };
}

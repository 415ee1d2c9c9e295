import { clockTicksPerSecond, parsePidStat } from './cpu.ts';
import { runCaptured } from './proc.ts';

// Runs wrk (pinned with taskset) and parses its report, including the error lines that a bare
// Requests/sec figure hides: socket errors and non-2xx/3xx responses.

export interface WrkOptions {
  readonly url: string;
  readonly durationSec: number;
  readonly connections: number;
  readonly threads: number;
  /** taskset core list for wrk, e.g. "1"; undefined = not pinned. */
  readonly core?: string;
  /** Request header lines wrk adds (`-H`), e.g. "Accept-Encoding: gzip". */
  readonly headers?: readonly string[];
}

export interface WrkResult {
  readonly requests: number;
  /** Wall time wrk reports for the run, seconds. */
  readonly seconds: number;
  readonly bytesRead: number;
  readonly requestsPerSec: number;
  /** Latency percentiles in milliseconds (from --latency). */
  readonly latencyMs: Readonly<Partial<Record<'p50' | 'p75' | 'p90' | 'p99', number>>>;
  readonly socketErrors: { readonly connect: number; readonly read: number; readonly write: number; readonly timeout: number };
  /** "Non-2xx or 3xx responses" (0 when wrk prints no such line). */
  readonly non2xx3xx: number;
  /** CPU seconds wrk itself used (user+system), when known. */
  readonly wrkCpuSeconds: number | undefined;
  readonly raw: string;
}

const BYTE_UNITS: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };
const TIME_TO_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000, h: 3_600_000 };

function num(s: string | undefined, what: string, raw: string): number {
  const n = Number(s);
  if (s === undefined || !Number.isFinite(n)) throw new Error(`cannot parse wrk output (${what}):\n${raw}`);
  return n;
}

/** Parses wrk 4.x text output. Throws if the essential lines are missing. */
export function parseWrk(raw: string): WrkResult {
  const total = /^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h), ([\d.]+)(B|KB|MB|GB|TB) read\s*$/m.exec(raw);
  if (!total) throw new Error(`cannot parse wrk output (no "N requests in" line):\n${raw}`);
  const requests = num(total[1], 'requests', raw);
  const seconds = (num(total[2], 'duration', raw) * TIME_TO_MS[total[3]]) / 1000;
  const bytesRead = num(total[4], 'bytes read', raw) * BYTE_UNITS[total[5]];
  const rps = /^Requests\/sec:\s+([\d.]+)\s*$/m.exec(raw);
  const requestsPerSec = rps ? num(rps[1], 'Requests/sec', raw) : seconds > 0 ? requests / seconds : 0;

  const latencyMs: Partial<Record<'p50' | 'p75' | 'p90' | 'p99', number>> = {};
  for (const m of raw.matchAll(/^\s*(50|75|90|99)%\s+([\d.]+)(us|ms|s|m|h)\s*$/gm)) {
    latencyMs[`p${m[1]}` as 'p50' | 'p75' | 'p90' | 'p99'] = Number(m[2]) * TIME_TO_MS[m[3]];
  }

  const se = /Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/.exec(raw);
  const socketErrors = se
    ? { connect: Number(se[1]), read: Number(se[2]), write: Number(se[3]), timeout: Number(se[4]) }
    : { connect: 0, read: 0, write: 0, timeout: 0 };
  const bad = /Non-2xx or 3xx responses:\s+(\d+)/.exec(raw);
  const non2xx3xx = bad ? Number(bad[1]) : 0;

  return { requests, seconds, bytesRead, requestsPerSec, latencyMs, socketErrors, non2xx3xx, wrkCpuSeconds: undefined, raw };
}

export function socketErrorTotal(r: WrkResult): number {
  const e = r.socketErrors;
  return e.connect + e.read + e.write + e.timeout;
}

// wrk runs under a small sh that, once wrk has been reaped, prints its own /proc/self/stat line:
// its cutime+cstime fields are then exactly wrk's CPU time.
const WRAPPER = 'if [ -n "$WRK_CORE" ]; then taskset -c "$WRK_CORE" wrk "$@"; else wrk "$@"; fi; s=$?; echo "wrk-cpu $(cat /proc/$$/stat)" >&2; exit $s';

/** Runs wrk once; bounded by its own -d plus a hard limit. */
export async function runWrk(o: WrkOptions): Promise<WrkResult> {
  const wrkArgs = [`-t${o.threads}`, `-c${o.connections}`, `-d${o.durationSec}s`, '--latency', ...(o.headers ?? []).flatMap((h) => ['-H', h]), o.url];
  const r = await runCaptured('sh', ['-c', WRAPPER, 'sh', ...wrkArgs], (o.durationSec + 30) * 1000, undefined, {
    ...process.env,
    WRK_CORE: o.core ?? '',
  });
  if (r.timedOut) throw new Error(`wrk did not finish within ${o.durationSec + 30}s (killed)`);
  const cpuLine = /^wrk-cpu (.*)$/m.exec(r.stderr);
  const stderr = r.stderr.replace(/^wrk-cpu .*$\n?/m, '').trim();
  if (r.code !== 0) throw new Error(`wrk failed (exit ${r.code ?? r.signal}): ${stderr || r.stdout.trim()}`);
  const st = cpuLine ? parsePidStat(cpuLine[1], true) : undefined;
  return { ...parseWrk(r.stdout), wrkCpuSeconds: st ? st.ticks / clockTicksPerSecond() : undefined };
}

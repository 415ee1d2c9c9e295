import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { BenchContext } from '../types.ts';
import { coreUsage, processGroupCpuSeconds, sampleCpu, totalBusySeconds } from './cpu.ts';
import { describeExit, type RunningServer, type ServerSpec } from './proc.ts';
import { formatMicros, formatPercent, formatRate, median } from './stats.ts';
import { runWrk, socketErrorTotal, type WrkResult } from './wrk.ts';

// The measurement procedure every benchmark shares: wait for quiet cores, one warm-up and one
// measured load run (wrk, h2load) with /proc/stat and per-process CPU accounting around it, and
// the summary of a row's runs (medians over the undisturbed ones, notes).

/**
 * Above this share of a core used by other processes (idle before a run, or "others" during a
 * measurement), the machine is not quiet enough to trust the figure.
 */
export const NOISY = 0.05;

/** `taskset -c core command args...` as a ServerSpec's command and args. */
export const pinned = (core: string, command: string, args: readonly string[]): Pick<ServerSpec, 'command' | 'args'> => ({
  command: 'taskset',
  args: ['-c', core, command, ...args],
});

/** Busy share of both cores over one second with no server running: other processes' noise. */
export async function backgroundLoad(ctx: BenchContext): Promise<{ readonly worst: number; readonly text: string }> {
  const a = sampleCpu();
  await sleep(1_000);
  const b = sampleCpu();
  const srv = coreUsage(a, b, Number(ctx.serverCore)).busyFraction;
  const cli = coreUsage(a, b, Number(ctx.clientCore)).busyFraction;
  const worst = Math.max(srv, cli);
  return {
    worst,
    text:
      `background load with no server running: core ${ctx.serverCore} ${formatPercent(srv)}, core ${ctx.clientCore} ${formatPercent(cli)}` +
      (worst > NOISY ? ' (HIGH: other processes are running; CPU/request and req/s will be off)' : ''),
  };
}

/**
 * Waits (up to ctx.maxWaitSec) until both cores are quiet with no server running, sampling one
 * second at a time. Returns the last sample's busiest core load.
 */
export async function waitQuiet(ctx: BenchContext): Promise<number> {
  const deadline = Date.now() + ctx.maxWaitSec * 1000;
  let bg = await backgroundLoad(ctx);
  if (bg.worst <= NOISY || ctx.maxWaitSec <= 0) return bg.worst;
  console.log(`  ${bg.text}; waiting up to ${ctx.maxWaitSec}s for it to drop`);
  // Bounded: one sample per second until the deadline.
  for (let i = 0; Date.now() < deadline && i < 3_600; i++) {
    bg = await backgroundLoad(ctx);
    if (bg.worst <= NOISY) {
      console.log(`  quiet after ${i + 2}s`);
      return bg.worst;
    }
  }
  console.log(`  still ${formatPercent(bg.worst)} busy after ${ctx.maxWaitSec}s; measuring anyway`);
  return bg.worst;
}

/** What a load generator's run gives the shared CPU accounting. */
export interface LoadRun {
  readonly requests: number;
  readonly requestsPerSec: number;
  /** CPU seconds the load generator itself used (user+system), when known. */
  readonly clientCpuSeconds: number | undefined;
}

/** One measured load run (wrk, h2load, ...) and the CPU accounting around it. */
export interface LoadMeasurement<R extends LoadRun> {
  readonly rps: number;
  readonly requests: number;
  /** Server core busy time per completed request, µs. */
  readonly cpuUsPerReq: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  /** Busy seconds of the server core and of the client core during the measurement. */
  readonly serverCoreSeconds: number;
  readonly clientCoreSeconds: number;
  /**
   * CPU used during the measurement by anything but the server, the load generator, the harness
   * and the benchmark's own helper processes (all cores' busy time minus theirs), in cores: 0.05 =
   * 5% of one core. Includes some kernel work.
   */
  readonly others: number;
  /** CPU seconds the server's process group used during the measurement. */
  readonly serverCpuSeconds: number;
  /** CPU seconds the helper process groups (e.g. an upstream) used during the measurement. */
  readonly helperCpuSeconds: number;
  /** Reasons this measurement is suspicious (no requests, server died); callers add their own. */
  readonly problems: string[];
  readonly load: R;
}

export interface LoadOptions<R extends LoadRun> {
  readonly ctx: BenchContext;
  readonly server: RunningServer;
  /** Process groups the benchmark started besides the server (counted as ours, not as others). */
  readonly helperGroups?: readonly number[];
  /** One bounded load run of `durationSec` against the server. */
  run(durationSec: number): Promise<R>;
}

/** Warm-up run (ctx.warmupSec), then a measured one (ctx.durationSec) with CPU accounting. */
export async function measureLoad<R extends LoadRun>(o: LoadOptions<R>): Promise<LoadMeasurement<R>> {
  const { ctx, server } = o;
  const helpers = o.helperGroups ?? [];
  const helperCpu = () => helpers.reduce((sum, pgid) => sum + processGroupCpuSeconds(pgid), 0);
  if (ctx.warmupSec > 0) await o.run(ctx.warmupSec);
  await sleep(200); // let the warm-up's connections close before the window opens
  const t0 = performance.now();
  const harness0 = process.cpuUsage();
  const server0 = processGroupCpuSeconds(server.pid);
  const helpers0 = helperCpu();
  const before = sampleCpu();
  const w = await o.run(ctx.durationSec);
  const after = sampleCpu();
  const serverCpuSeconds = processGroupCpuSeconds(server.pid) - server0;
  const helperCpuSeconds = helperCpu() - helpers0;
  const harness = process.cpuUsage(harness0);
  const wall = (performance.now() - t0) / 1000;
  const othersCpu =
    totalBusySeconds(before, after) - serverCpuSeconds - helperCpuSeconds - (w.clientCpuSeconds ?? 0) - (harness.user + harness.system) / 1e6;
  const srv = coreUsage(before, after, Number(ctx.serverCore));
  const cli = coreUsage(before, after, Number(ctx.clientCore));
  const problems: string[] = [];
  if (w.requests === 0) problems.push('no requests completed');
  if (server.exitInfo) problems.push(`server ${describeExit(server.exitInfo)} during the run`);
  return {
    rps: w.requestsPerSec,
    requests: w.requests,
    cpuUsPerReq: w.requests > 0 ? (srv.busySeconds * 1e6) / w.requests : Number.NaN,
    serverCoreBusy: srv.busyFraction,
    clientCoreBusy: cli.busyFraction,
    serverCoreSeconds: srv.busySeconds,
    clientCoreSeconds: cli.busySeconds,
    others: wall > 0 ? Math.max(0, othersCpu) / wall : 0,
    serverCpuSeconds,
    helperCpuSeconds,
    problems,
    load: w,
  };
}

/** One measured wrk run and the CPU accounting around it. */
export interface Measurement {
  readonly rps: number;
  readonly requests: number;
  /** Server core busy time per completed request, µs. */
  readonly cpuUsPerReq: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  readonly p99Ms: number;
  /**
   * CPU used during the measurement by anything but the server, wrk, the harness and the
   * benchmark's own helper processes (all cores' busy time minus theirs), in cores: 0.05 = 5% of
   * one core. Includes some kernel work.
   */
  readonly others: number;
  /** CPU seconds the helper process groups (e.g. an upstream) used during the measurement. */
  readonly helperCpuSeconds: number;
  /** Reasons this measurement is suspicious (errors, server died); callers may add their own. */
  readonly problems: string[];
  readonly wrk: WrkResult;
}

export interface MeasureOptions {
  readonly ctx: BenchContext;
  readonly url: string;
  readonly server: RunningServer;
  /** Process groups the benchmark started besides the server (counted as ours, not as others). */
  readonly helperGroups?: readonly number[];
}

/** Warm-up wrk run (ctx.warmupSec), then a measured one (ctx.durationSec) with CPU accounting. */
export async function measureWrk(o: MeasureOptions): Promise<Measurement> {
  const { ctx } = o;
  const common = { url: o.url, connections: ctx.connections, threads: 1, core: ctx.clientCore };
  const m = await measureLoad({
    ctx,
    server: o.server,
    helperGroups: o.helperGroups,
    run: async (durationSec) => {
      const w = await runWrk({ ...common, durationSec });
      return { ...w, clientCpuSeconds: w.wrkCpuSeconds };
    },
  });
  const w = m.load;
  const problems = [...m.problems];
  if (w.non2xx3xx > 0) problems.push(`${w.non2xx3xx} non-2xx/3xx responses`);
  if (socketErrorTotal(w) > 0) {
    const e = w.socketErrors;
    problems.push(`socket errors: connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}`);
  }
  return {
    rps: m.rps,
    requests: m.requests,
    cpuUsPerReq: m.cpuUsPerReq,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: w.latencyMs.p99 ?? Number.NaN,
    others: m.others,
    helperCpuSeconds: m.helperCpuSeconds,
    problems,
    wrk: w,
  };
}

/** What a row summary needs of one run's sample. */
export interface RunSample {
  readonly run: number;
  readonly rps: number;
  readonly cpuUsPerReq: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  readonly p99Ms: number;
  readonly others: number;
  readonly problems: readonly string[];
}

export const isDisturbed = (s: Pick<RunSample, 'others'>): boolean => s.others > NOISY;

export interface RowSummary<S extends RunSample> {
  /** Every sample of the row. */
  readonly all: readonly S[];
  /** The samples the medians are taken over: the undisturbed ones, or all if none is. */
  readonly used: readonly S[];
  readonly rps: number;
  readonly cpu: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  readonly p99Ms: number;
  /** "41.2k / 40.9k* / 41.0k" (* = disturbed). */
  readonly perRun: string;
  /** Disturbed runs, suspicious samples, missing runs. */
  readonly notes: readonly string[];
}

/** Medians of one row (one server, one variant) over its undisturbed runs, and its notes. */
export function summarizeRow<S extends RunSample>(all: readonly S[], runs: number): RowSummary<S> {
  const clean = all.filter((s) => !isDisturbed(s));
  const used = clean.length > 0 ? clean : all;
  const problems = [...new Set(all.flatMap((s) => s.problems))];
  const missing = runs - all.length;
  const noisy = all.filter(isDisturbed).map((s) => `run ${s.run} (others ${formatPercent(s.others)})`);
  const notes = [
    ...(noisy.length === 0
      ? []
      : noisy.length < all.length
        ? [`disturbed, left out of the medians: ${noisy.join(', ')}`]
        : [`DISTURBED (all runs): ${noisy.join(', ')}`]),
    ...(problems.length ? [`SUSPICIOUS: ${problems.join('; ')}`] : []),
    ...(missing > 0 ? [`${missing} of ${runs} runs missing`] : []),
  ];
  return {
    all,
    used,
    rps: median(used.map((s) => s.rps)),
    cpu: median(used.map((s) => s.cpuUsPerReq)),
    serverCoreBusy: median(used.map((s) => s.serverCoreBusy)),
    clientCoreBusy: median(used.map((s) => s.clientCoreBusy)),
    p99Ms: median(used.map((s) => s.p99Ms)),
    perRun: all.map((s) => `${formatRate(s.rps)}${isDisturbed(s) ? '*' : ''}`).join(' / ') || '—',
    notes,
  };
}

/** The WARNING printed under a table when some measurements were disturbed, or undefined. */
export function disturbedWarning(samples: readonly RunSample[]): string | undefined {
  const n = samples.filter(isDisturbed).length;
  if (n === 0) return undefined;
  return (
    `WARNING: ${n} of ${samples.length} measurements were disturbed by other processes (they used more than ` +
    `${formatPercent(NOISY)} of a core: "others" above); those are marked * and left out of the medians when the ` +
    'same row has undisturbed runs. Run again on a quiet machine for clean figures.'
  );
}

/** "0.52x", or "—" when either side is not a positive finite number. */
export function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '—';
}

/** "1.23 ms" style p99 cell: two decimals, or "—". */
export function formatMs(ms: number): string {
  return Number.isFinite(ms) ? ms.toFixed(2) : '—';
}

/** The installed version of an npm package under repo/node_modules, or "?". */
export function readPackageVersion(repo: string, name: string): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8'));
    if (pkg && typeof pkg === 'object' && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // fall through
  }
  return '?';
}

/**
 * One target line: "<label> 0.52x PASS; CPU per request 1.80x nginx's", or "n/a (... not
 * measured)". `sy` and `ng` are the Switchyard and nginx rows (undefined when not measured).
 */
export function targetVerdict(label: string, target: number, sy: RowSummary<RunSample> | undefined, ng: RowSummary<RunSample> | undefined): string {
  if (!sy || !ng || !Number.isFinite(sy.rps) || !Number.isFinite(ng.rps) || ng.rps <= 0) {
    return `${label} n/a (${!sy || !Number.isFinite(sy.rps) ? 'Switchyard' : 'nginx'} not measured)`;
  }
  const r = sy.rps / ng.rps;
  const suspicious =
    (sy.used.some((s) => s.problems.length > 0) || ng.used.some((s) => s.problems.length > 0) ? ' (SUSPICIOUS row, see notes)' : '') +
    (sy.used.some(isDisturbed) || ng.used.some(isDisturbed) ? ' (DISTURBED by other processes, see notes)' : '');
  const cpu = Number.isFinite(sy.cpu) && Number.isFinite(ng.cpu) && sy.cpu > 0 ? `; CPU per request ${(sy.cpu / ng.cpu).toFixed(2)}x nginx's` : '';
  return `${label} ${r.toFixed(2)}x ${r >= target ? 'met' : 'not met'}${suspicious}${cpu}`;
}

/**
 * One progress line per measurement: `  run 1/3  <what>  41,234 req/s  24.1 µs/req  server core
 * 99%  wrk core 60%  p99 2.10 ms  others 1%`, plus `extra` and any problems; `latency` replaces
 * the p99 part (for load generators that report none).
 */
export function progressLine(
  s: RunSample & { readonly background: number },
  runs: number,
  what: string,
  opts: { readonly clientCoreName?: string; readonly extra?: string; readonly latency?: string } = {},
): string {
  const flag = s.problems.length ? `  SUSPICIOUS: ${s.problems.join('; ')}` : '';
  return (
    `  run ${s.run}/${runs}  ${what}  ` +
    `${Math.round(s.rps).toLocaleString('en-US').padStart(8)} req/s  ` +
    `${formatMicros(s.cpuUsPerReq).padStart(6)} µs/req  server core ${formatPercent(s.serverCoreBusy).padStart(4)}  ` +
    `${opts.clientCoreName ?? 'wrk core'} ${formatPercent(s.clientCoreBusy).padStart(4)}  ${opts.latency ?? `p99 ${formatMs(s.p99Ms)} ms`}` +
    `${opts.extra ?? ''}` +
    `  others ${formatPercent(s.others)}${s.background > NOISY ? `  (background before: ${formatPercent(s.background)})` : ''}${flag}`
  );
}

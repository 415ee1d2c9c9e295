import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { clockTicksPerSecond, parsePidStat } from './lib/cpu.ts';
import { NOISY, measureLoad, pinned, waitQuiet, type LoadRun } from './lib/measure.ts';
import { pickPort, runCaptured, startServer, type RunningServer, type ServerSpec } from './lib/proc.ts';
import { prepareSwitchyard } from './lib/servers.ts';
import { formatPercent, formatRate, median } from './lib/stats.ts';
import { markdownTable } from './lib/table.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- resp`: the `resp` handler against redis-server, both measured by
// redis-benchmark (SET, then GET of the keys SET wrote: 50 clients, 100-byte values, random keys
// out of 100 000), unpipelined and with -P 16. Server on core 0, redis-benchmark on core 1, one
// server at a time, runs interleaved; before each server's run the harness waits for quiet cores,
// and during each measurement it counts the CPU time of everything else ("others"): a
// measurement with others above 5% of a core is disturbed, marked `*` and left out of the
// medians when the row has undisturbed runs. The table shows medians and Switchyard's ratio,
// and the servers' CPU time per request (from /proc, so other processes on the machine change it
// far less than requests/s) with the ratio it gives: redis-server's µs per request over ours.
//
// redis-benchmark counts requests rather than time, so the request count is sized from
// --duration so that a run takes about that long on a fast server.

export const RESP_IDS = ['switchyard', 'redis'] as const;

const CLIENTS = 50;
const VALUE_SIZE = 100;
/** Requests per second of --duration, roughly what one core of redis-server does. */
const REQUESTS_PER_SEC = { plain: 80_000, pipelined: 600_000 } as const;
const GOALS = { plain: 0.5, pipelined: 0.35 } as const;

type Mode = keyof typeof REQUESTS_PER_SEC;
type Op = 'SET' | 'GET';

interface Server {
  readonly id: (typeof RESP_IDS)[number];
  readonly name: string;
  readonly spec: ServerSpec;
}

/** One measured redis-benchmark run: requests/s and the CPU used by other processes meanwhile (cores). */
interface Sample {
  readonly rps: number;
  readonly others: number;
  /** CPU time of the server's processes per request, µs: what a request costs it, whatever else runs. */
  readonly cpuUs: number;
}

/** Samples by server id, mode and op, one per run. */
type Results = Map<string, Sample[]>;
const keyOf = (id: string, mode: Mode, op: Op) => `${id}/${mode}/${op}`;

export async function runResp(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/resp');
  rmSync(work, { recursive: true, force: true });
  mkdirSync(work, { recursive: true });
  const servers: Server[] = [];
  const want = (id: string) => !ctx.servers || ctx.servers.has(id);

  if (want('switchyard')) {
    const port = await pickPort();
    const config = JSON.stringify({ listeners: [{ name: 'cache', protocol: 'tcp', address: `127.0.0.1:${port}`, handler: { type: 'resp' } }] });
    const prepared = await prepareSwitchyard({ repo: ctx.repoRoot, work, configName: 'resp.json', config, core: ctx.serverCore, port });
    if (!prepared.ok) console.error(`Switchyard: ${prepared.reason}`);
    else servers.push({ id: 'switchyard', name: 'Switchyard resp', spec: prepared.spec });
  }
  if (want('redis')) {
    const port = await pickPort(new Set(servers.map((s) => s.spec.port)));
    const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--dir', work, '--protected-mode', 'no'];
    servers.push({
      id: 'redis',
      name: 'redis-server',
      spec: { name: 'redis-server', ...pinned(ctx.serverCore, 'redis-server', args), cwd: work, logFile: join(work, 'redis.log'), port, startTimeoutMs: 10_000 },
    });
  }
  if (servers.length === 0) return 1;

  const results: Results = new Map();
  for (let run = 0; run < ctx.runs; run++) {
    for (const s of servers) {
      await waitQuiet(ctx);
      const server: RunningServer = await startServer(s.spec);
      try {
        for (const mode of ['plain', 'pipelined'] as const) {
          const line: string[] = [];
          for (const op of ['SET', 'GET'] as const) {
            const m = await measureLoad({ ctx, server, run: (sec) => benchmark(ctx, s.spec.port, mode, op, sec) });
            const k = keyOf(s.id, mode, op);
            const cpuUs = m.requests > 0 ? (m.serverCpuSeconds * 1e6) / m.requests : Number.NaN;
            results.set(k, [...(results.get(k) ?? []), { rps: m.rps, others: m.others, cpuUs }]);
            line.push(`${op} ${formatRate(m.rps)}/s${m.others > NOISY ? '*' : ''} ${cpuUs.toFixed(2)} µs/req (others ${formatPercent(m.others)})`);
          }
          console.log(`run ${run + 1}/${ctx.runs} ${s.name.padEnd(16)} ${mode.padEnd(9)} ${line.join('  ')}`);
        }
      } finally {
        await server.stop();
      }
    }
  }

  console.log(`\nredis-benchmark -c ${CLIENTS} -d ${VALUE_SIZE} -r 100000 -t set, then -t get (unpipelined and -P 16), ${ctx.runs} run(s), median requests/s over the undisturbed runs:\n`);
  const rows: string[][] = [];
  let disturbed = false;
  for (const mode of ['plain', 'pipelined'] as const) {
    for (const op of ['SET', 'GET'] as const) {
      const sy = summarize(results.get(keyOf('switchyard', mode, op)));
      const rd = summarize(results.get(keyOf('redis', mode, op)));
      const ratio = sy && rd ? sy.median / rd.median : undefined;
      const cpuRatio = sy && rd ? rd.cpuUs / sy.cpuUs : undefined;
      disturbed ||= Boolean(sy?.disturbed || rd?.disturbed);
      rows.push([
        `${op} ${mode === 'plain' ? 'unpipelined' : '-P 16'}`,
        sy ? formatRate(sy.median) : '-',
        sy ? sy.perRun : '-',
        rd ? formatRate(rd.median) : '-',
        rd ? rd.perRun : '-',
        ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
        ratio === undefined ? '-' : `${ratio >= GOALS[mode] ? 'met' : 'not met'} (>= ${GOALS[mode]}x)`,
        sy ? sy.cpuUs.toFixed(2) : '-',
        rd ? rd.cpuUs.toFixed(2) : '-',
        cpuRatio === undefined ? '-' : `${cpuRatio.toFixed(2)}x`,
        [sy?.note && `Switchyard: ${sy.note}`, rd?.note && `redis-server: ${rd.note}`].filter(Boolean).join('; '),
      ]);
    }
  }
  console.log(
    markdownTable(
      [
        { title: 'test' },
        { title: 'Switchyard', align: 'right' },
        { title: 'per run', align: 'right' },
        { title: 'redis-server', align: 'right' },
        { title: 'per run', align: 'right' },
        { title: 'ratio', align: 'right' },
        { title: 'goal' },
        { title: 'Switchyard µs CPU/req', align: 'right' },
        { title: 'redis-server µs CPU/req', align: 'right' },
        { title: 'ratio by CPU', align: 'right' },
        { title: 'notes' },
      ],
      rows,
    ),
  );
  if (disturbed) console.log(`\nWARNING: other processes used more than ${formatPercent(NOISY)} of a core during the runs marked *; their figures are off.`);
  return 0;
}

/** The median over the undisturbed runs (over all when every run was disturbed), each run with `*` when disturbed. */
function summarize(samples: Sample[] | undefined): { median: number; cpuUs: number; perRun: string; note: string; disturbed: boolean } | undefined {
  if (!samples || samples.length === 0) return undefined;
  const quiet = samples.filter((x) => x.others <= NOISY);
  const used = quiet.length > 0 ? quiet : samples;
  const left = samples.map((x, i) => (x.others > NOISY ? i + 1 : 0)).filter((i) => i > 0);
  return {
    median: median(used.map((x) => x.rps)),
    cpuUs: median(used.map((x) => x.cpuUs)),
    perRun: samples.map((x) => `${formatRate(x.rps)}${x.others > NOISY ? '*' : ''}`).join(' / '),
    note: quiet.length === 0 ? 'DISTURBED (every run)' : left.length > 0 ? `disturbed, left out: run ${left.join(', ')}` : '',
    disturbed: left.length > 0,
  };
}

// redis-benchmark runs under a small sh that, once it has been reaped, prints its own
// /proc/self/stat line: its cutime+cstime fields are then exactly redis-benchmark's CPU time.
const WRAPPER = 'taskset -c "$BENCH_CORE" redis-benchmark "$@"; s=$?; echo "client-cpu $(cat /proc/$$/stat)" >&2; exit $s';

/** One redis-benchmark run of one command (-t set or -t get): requests/s and its CPU time. */
async function benchmark(ctx: BenchContext, port: number, mode: Mode, op: Op, seconds: number): Promise<LoadRun> {
  const requests = Math.max(10_000, Math.round(REQUESTS_PER_SEC[mode] * seconds));
  const args = ['-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(requests),
    '-d', String(VALUE_SIZE), '-t', op.toLowerCase(), '-r', '100000', '--csv'];
  if (mode === 'pipelined') args.push('-P', '16');
  const r = await runCaptured('sh', ['-c', WRAPPER, 'sh', ...args], (seconds * 20 + 60) * 1000, undefined, { ...process.env, BENCH_CORE: ctx.clientCore });
  const cpuLine = /^client-cpu (.*)$/m.exec(r.stderr);
  if (r.code !== 0) throw new Error(`redis-benchmark failed (${r.code ?? r.signal}): ${r.stderr}${r.stdout}`);
  const m = new RegExp(`^"${op}","([\\d.]+)"`, 'm').exec(r.stdout);
  if (!m) throw new Error(`redis-benchmark printed no ${op} figure:\n${r.stdout}\n${r.stderr}`);
  const st = cpuLine ? parsePidStat(cpuLine[1], true) : undefined;
  return { requests, requestsPerSec: Number(m[1]), clientCpuSeconds: st ? st.ticks / clockTicksPerSecond() : undefined };
}

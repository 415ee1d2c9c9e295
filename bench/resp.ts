import { mkdirSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { pinned } from './lib/measure.ts';
import { pickPort, runCaptured, startServer, type RunningServer, type ServerSpec } from './lib/proc.ts';
import { prepareSwitchyard } from './lib/servers.ts';
import { formatRate, median } from './lib/stats.ts';
import { markdownTable } from './lib/table.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- resp`: the `resp` handler against redis-server, both measured by
// redis-benchmark (SET and GET, 50 clients, 100-byte values, random keys out of 100 000),
// unpipelined and with -P 16. Server on core 0, redis-benchmark on core
// 1, one server at a time, runs interleaved; the table shows medians and Switchyard's ratio.
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

/** rps by server id, mode and op, one entry per run. */
type Results = Map<string, number[]>;
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
      const server: RunningServer = await startServer(s.spec);
      try {
        for (const mode of ['plain', 'pipelined'] as const) {
          if (ctx.warmupSec > 0) await benchmark(ctx, s.spec.port, mode, ctx.warmupSec);
          const r = await benchmark(ctx, s.spec.port, mode, ctx.durationSec);
          for (const op of ['SET', 'GET'] as const) {
            const k = keyOf(s.id, mode, op);
            results.set(k, [...(results.get(k) ?? []), r[op]]);
          }
          console.log(`run ${run + 1}/${ctx.runs} ${s.name.padEnd(16)} ${mode.padEnd(9)} SET ${formatRate(r.SET)}/s  GET ${formatRate(r.GET)}/s`);
        }
      } finally {
        await server.stop();
      }
    }
  }

  console.log(`\nredis-benchmark -c ${CLIENTS} -d ${VALUE_SIZE} -t set,get (unpipelined and -P 16), ${ctx.runs} run(s), median requests/s:\n`);
  const rows: string[][] = [];
  for (const mode of ['plain', 'pipelined'] as const) {
    for (const op of ['SET', 'GET'] as const) {
      const sy = results.get(keyOf('switchyard', mode, op));
      const rd = results.get(keyOf('redis', mode, op));
      const ratio = sy && rd ? median(sy) / median(rd) : undefined;
      rows.push([
        `${op} ${mode === 'plain' ? 'unpipelined' : '-P 16'}`,
        sy ? formatRate(median(sy)) : '-',
        rd ? formatRate(median(rd)) : '-',
        ratio === undefined ? '-' : `${ratio.toFixed(2)}x`,
        ratio === undefined ? '-' : `${ratio >= GOALS[mode] ? 'met' : 'not met'} (>= ${GOALS[mode]}x)`,
      ]);
    }
  }
  console.log(markdownTable([{ title: 'test' }, { title: 'Switchyard', align: 'right' }, { title: 'redis-server', align: 'right' }, { title: 'ratio', align: 'right' }, { title: 'goal' }], rows));
  return 0;
}

/** One redis-benchmark run of SET and GET; requests/s of each. */
async function benchmark(ctx: BenchContext, port: number, mode: Mode, seconds: number): Promise<Record<Op, number>> {
  const requests = Math.max(10_000, REQUESTS_PER_SEC[mode] * seconds);
  const args = ['-c', ctx.clientCore, 'redis-benchmark', '-h', '127.0.0.1', '-p', String(port), '-c', String(CLIENTS), '-n', String(requests),
    '-d', String(VALUE_SIZE), '-t', 'set,get', '-r', '100000', '--csv'];
  if (mode === 'pipelined') args.push('-P', '16');
  const r = await runCaptured('taskset', args, (seconds * 20 + 60) * 1000);
  if (r.code !== 0) throw new Error(`redis-benchmark failed (${r.code ?? r.signal}): ${r.stderr}${r.stdout}`);
  const out: Partial<Record<Op, number>> = {};
  for (const line of r.stdout.split('\n')) {
    const m = /^"(SET|GET)","([\d.]+)"/.exec(line);
    if (m) out[m[1] as Op] = Number(m[2]);
  }
  if (out.SET === undefined || out.GET === undefined) throw new Error(`redis-benchmark printed no SET/GET figures:\n${r.stdout}\n${r.stderr}`);
  return out as Record<Op, number>;
}

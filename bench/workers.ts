import { mkdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { buildSwitchyard } from './lib/servers.ts';
import { installCleanupHandlers, pickPort, startServer, type RunningServer } from './lib/proc.ts';
import { processGroupCpuSeconds, sampleCpu, totalBusySeconds } from './lib/cpu.ts';
import { runWrk } from './lib/wrk.ts';

// `node --import tsx bench/workers.ts [--duration 5] [--runs 3] [--connections 64]`:
// Switchyard with `workers: 1` against `workers: 2` on this machine (docs/operations.md,
// "Workers"), static 4 KiB and proxy (100-byte upstream answers from a node:http upstream in
// this harness process). Nothing is pinned: the daemon's processes, wrk and the upstream share
// every core, which is the point of workers. Server CPU is the daemon's whole process group
// (primary + workers) from /proc; µs per request = that CPU / requests wrk completed.
// Efficiency = CPU per request with 1 worker / CPU per request with 2 (1.0 = no cost for the
// second process); req/s ratio = what the second core bought.

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const arg = (name: string, dflt: number) => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? Number(process.argv[i + 1]) : dflt;
};
const DURATION = arg('duration', 5);
const RUNS = arg('runs', 3);
const CONNECTIONS = arg('connections', 64);
const BODY = 'switchyard-bench-upstream-body-0123456789abcdefghijklmnopqrstuvwxyz'.padEnd(100, '.');

interface Row {
  kind: string;
  workers: number;
  rps: number;
  usPerReq: number;
  /** Busy cores of the whole machine during the run. */
  machine: number;
}

async function main(): Promise<number> {
  installCleanupHandlers();
  const build = await buildSwitchyard(repo);
  if (build) {
    console.error(`npm run build fails:\n${build}`);
    return 1;
  }
  const work = join(repo, 'bench/.work/workers');
  mkdirSync(join(work, 'www'), { recursive: true });
  writeFileSync(join(work, 'www/4k.bin'), Buffer.alloc(4096, 'x'));
  const upstream = createServer((_req, res) => {
    res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
    res.end(BODY);
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const upPort = (upstream.address() as { port: number }).port;

  const rows: Row[] = [];
  for (let run = 1; run <= RUNS; run++) {
    for (const kind of ['static', 'proxy'] as const) {
      for (const workers of [1, 2]) {
        const port = await pickPort();
        const cfg = join(work, `${kind}-${workers}.yaml`);
        writeFileSync(
          cfg,
          [
            `workers: ${workers}`,
            'listeners:',
            '  - name: web',
            '    protocol: http',
            `    address: 127.0.0.1:${port}`,
            '    middleware: { accessLog: false, requestId: false }',
            '    routes:',
            '      - match: { path: /* }',
            kind === 'static' ? `        handler: { type: static, root: ${JSON.stringify(join(work, 'www'))} }` : '        handler: { type: proxy, upstream: up }',
            ...(kind === 'proxy' ? ['upstreams:', '  up:', `    targets: ['http://127.0.0.1:${upPort}']`] : []),
            '',
          ].join('\n'),
        );
        const args = [join(repo, 'dist/cli/main.js'), 'serve', cfg, '--log-level', 'warn'];
        const server: RunningServer = await startServer({
          name: `switchyard ${workers}w`,
          command: process.execPath,
          args,
          cwd: repo,
          env: { ...process.env, NODE_ENV: 'production' },
          logFile: cfg.replace(/\.yaml$/, '.log'),
          port,
          startTimeoutMs: 60_000,
        });
        // Workers report ready after the port accepts (worker 1 may be up before worker 2).
        await new Promise((r) => setTimeout(r, 1000));
        const url = `http://127.0.0.1:${port}/${kind === 'static' ? '4k.bin' : ''}`;
        await runWrk({ url, durationSec: 2, connections: CONNECTIONS, threads: 2 });
        await new Promise((r) => setTimeout(r, 200));
        const cpu0 = processGroupCpuSeconds(server.pid);
        const m0 = sampleCpu();
        const w = await runWrk({ url, durationSec: DURATION, connections: CONNECTIONS, threads: 2 });
        const m1 = sampleCpu();
        const cpu = processGroupCpuSeconds(server.pid) - cpu0;
        await server.stop();
        const bad = w.non2xx3xx + w.socketErrors.connect + w.socketErrors.read + w.socketErrors.write + w.socketErrors.timeout;
        if (bad > 0) console.warn(`  (${bad} errors in this run)`);
        const row = { kind, workers, rps: w.requestsPerSec, usPerReq: (cpu * 1e6) / w.requests, machine: totalBusySeconds(m0, m1) / w.seconds };
        rows.push(row);
        console.log(`run ${run} ${kind.padEnd(6)} workers ${workers}: ${row.rps.toFixed(0).padStart(6)} req/s  ${row.usPerReq.toFixed(1).padStart(5)} µs CPU/req  machine ${row.machine.toFixed(2)} cores busy`);
      }
    }
  }
  upstream.close();
  const median = (xs: number[]) => xs.sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;
  console.log(`\nmedians of ${RUNS} run(s), wrk -t2 -c${CONNECTIONS} -d${DURATION}s, nothing pinned:`);
  console.log('| test | 1 worker req/s | 2 workers req/s | req/s ratio | 1 worker µs CPU/req | 2 workers µs CPU/req | efficiency (1w/2w CPU per req) |');
  console.log('| --- | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const kind of ['static', 'proxy']) {
    const of = (n: number, f: (r: Row) => number) => median(rows.filter((r) => r.kind === kind && r.workers === n).map(f));
    const [r1, r2, c1, c2] = [of(1, (r) => r.rps), of(2, (r) => r.rps), of(1, (r) => r.usPerReq), of(2, (r) => r.usPerReq)];
    console.log(`| ${kind === 'static' ? 'static 4 KiB' : 'proxy 100 B'} | ${r1.toFixed(0)} | ${r2.toFixed(0)} | ${(r2 / r1).toFixed(2)}x | ${c1.toFixed(1)} | ${c2.toFixed(1)} | ${(c1 / c2).toFixed(2)} |`);
  }
  return 0;
}

process.exitCode = await main();

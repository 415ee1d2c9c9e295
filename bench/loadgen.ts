import { existsSync, mkdirSync, mkdtempSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { clockTicksPerSecond, parsePidStat } from './lib/cpu.ts';
import { measureLoad, readPackageVersion, waitQuiet, formatMs, ratio, NOISY, type LoadMeasurement, type LoadRun } from './lib/measure.ts';
import { pickPort, runCaptured, startServer, type RunningServer } from './lib/proc.ts';
import { buildSwitchyard, nginxMainContext, nginxTempPaths, prepareNginx, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatPercent, formatRate, median } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import { runWrk } from './lib/wrk.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- loadgen`: how fast `switchyard bench` can load a server, beside wrk and
// autocannon. A small fixed response (nginx `return 200`, and Switchyard's `respond` handler) is
// served on core 0; each load generator runs in turn pinned to core 1 with the same connections
// and duration. A load generator that saturates its own core before the server does reports the
// server slower than it is, so the figure to watch is req/s relative to wrk (a C program on epoll)
// with the client core's busy share beside it. Latency percentiles come from each tool's own
// report: wrk's --latency (no 99.9%), autocannon's (whole milliseconds), switchyard's HdrHistogram.

export const LOADGEN_IDS = ['nginx', 'switchyard'] as const;
type TargetId = (typeof LOADGEN_IDS)[number];

const BODY = 'hello, load\n';

type SocketsKind = 'io_uring' | 'native' | 'node';
type GeneratorId = 'wrk' | 'autocannon' | 'switchyard bench, io_uring' | 'switchyard bench, epoll' | 'switchyard bench, Node sockets';

const SWITCHYARD_IDS: Record<SocketsKind, GeneratorId> = { io_uring: 'switchyard bench, io_uring', native: 'switchyard bench, epoll', node: 'switchyard bench, Node sockets' };

interface Latencies {
  readonly p50?: number;
  readonly p90?: number;
  readonly p99?: number;
  readonly p999?: number;
  readonly max?: number;
}

interface GeneratorRun extends LoadRun {
  readonly latencyMs: Latencies;
  readonly errors: number;
  /** The generator's own CPU time per completed request, µs: its cost, which other processes' load hardly changes. */
  readonly clientUsPerReq: number | undefined;
}

const usPerReq = (cpuSeconds: number | undefined, requests: number) => (cpuSeconds !== undefined && requests > 0 ? (cpuSeconds * 1e6) / requests : undefined);

interface Generator {
  readonly id: GeneratorId;
  /** What runs, for the header. */
  readonly info: string;
  run(url: string, durationSec: number): Promise<GeneratorRun>;
}

interface Sample {
  readonly target: TargetId;
  readonly generator: GeneratorId;
  readonly m: LoadMeasurement<GeneratorRun>;
}

// The shell wrapper wrk.ts uses, for any command: once it has been reaped, the shell's own
// /proc/self/stat line carries the child's CPU time (cutime + cstime).
const WRAPPER = 'taskset -c "$LOAD_CORE" "$@"; s=$?; echo "loadgen-cpu $(cat /proc/$$/stat)" >&2; exit $s';

async function runPinned(core: string, command: string, args: readonly string[], timeoutMs: number, cwd: string, env: Readonly<Record<string, string>> = {}): Promise<{ stdout: string; stderr: string; cpuSeconds: number | undefined }> {
  const r = await runCaptured('sh', ['-c', WRAPPER, 'sh', command, ...args], timeoutMs, cwd, { ...process.env, ...env, LOAD_CORE: core });
  if (r.timedOut) throw new Error(`${command} did not finish within ${timeoutMs / 1000}s (killed)`);
  const cpuLine = /^loadgen-cpu (.*)$/m.exec(r.stderr);
  const stderr = r.stderr.replace(/^loadgen-cpu .*$\n?/m, '').trim();
  if (r.code !== 0 && r.code !== 1) throw new Error(`${command} failed (exit ${r.code ?? r.signal}): ${stderr.slice(-1500) || r.stdout.slice(-1500)}`);
  const st = cpuLine ? parsePidStat(cpuLine[1], true) : undefined;
  return { stdout: r.stdout, stderr, cpuSeconds: st ? st.ticks / clockTicksPerSecond() : undefined };
}

/** wrk's Thread Stats "Latency avg stdev max" line: the max, ms. */
function wrkMaxMs(raw: string): number | undefined {
  const m = /^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)\b/m.exec(raw);
  if (!m) return undefined;
  return Number(m[1]) * (m[2] === 'us' ? 0.001 : m[2] === 's' ? 1000 : 1);
}

function wrkGenerator(ctx: BenchContext): Generator {
  return {
    id: 'wrk',
    info: `wrk -t1 -c${ctx.connections} --latency`,
    async run(url, durationSec) {
      const w = await runWrk({ url, durationSec, connections: ctx.connections, threads: 1, core: ctx.clientCore });
      const e = w.socketErrors;
      return {
        requests: w.requests,
        requestsPerSec: w.requestsPerSec,
        clientCpuSeconds: w.wrkCpuSeconds,
        latencyMs: { p50: w.latencyMs.p50, p90: w.latencyMs.p90, p99: w.latencyMs.p99, max: wrkMaxMs(w.raw) },
        errors: e.connect + e.read + e.write + e.timeout + w.non2xx3xx,
        clientUsPerReq: usPerReq(w.wrkCpuSeconds, w.requests),
      };
    },
  };
}

interface AutocannonJson {
  readonly duration: number;
  readonly errors: number;
  readonly timeouts: number;
  readonly non2xx: number;
  readonly requests: { readonly total: number };
  readonly latency: { readonly p50: number; readonly p90: number; readonly p99: number; readonly p99_9: number; readonly max: number };
}

function autocannonGenerator(ctx: BenchContext, bin: string): Generator {
  return {
    id: 'autocannon',
    info: `autocannon ${readPackageVersion(ctx.repoRoot, 'autocannon')} -c ${ctx.connections} (${bin})`,
    async run(url, durationSec) {
      const r = await runPinned(ctx.clientCore, process.execPath, [bin, '-c', String(ctx.connections), '-d', String(durationSec), '-j', '-n', url], (durationSec + 30) * 1000, ctx.repoRoot);
      const j = JSON.parse(r.stdout) as AutocannonJson;
      const seconds = j.duration > 0 ? j.duration : durationSec;
      return {
        requests: j.requests.total,
        requestsPerSec: j.requests.total / seconds,
        clientCpuSeconds: r.cpuSeconds,
        latencyMs: { p50: j.latency.p50, p90: j.latency.p90, p99: j.latency.p99, p999: j.latency.p99_9, max: j.latency.max },
        errors: j.errors + j.timeouts + j.non2xx,
        // Includes node's start-up (a few hundred ms of CPU at most): autocannon reports no CPU of its own.
        clientUsPerReq: usPerReq(r.cpuSeconds, j.requests.total),
      };
    },
  };
}

interface SwitchyardJson {
  readonly sockets: SocketsKind;
  readonly socketsFallback: string | null;
  readonly responses: number;
  readonly requestsPerSec: number;
  readonly latencyMs: { readonly p50: number; readonly p90: number; readonly p99: number; readonly 'p99.9': number; readonly max: number };
  readonly errors: { readonly total: number };
  readonly clientCpuUsPerResponse: number | null;
}

/**
 * `switchyard bench` as users run it, with its engine for plain http:// forced through
 * SWITCHYARD_BENCH_SOCKETS: `io_uring` (one ring, no native call per request), `native` (one recv
 * and one send per request through koffi and one epoll set) or `node` (Node's net sockets, the
 * transport it falls back to without koffi).
 */
function switchyardGenerator(ctx: BenchContext, cli: readonly string[], sockets: SocketsKind): Generator {
  return {
    id: SWITCHYARD_IDS[sockets],
    info: `SWITCHYARD_BENCH_SOCKETS=${sockets} node ${cli.join(' ')} bench -c ${ctx.connections} --json`,
    async run(url, durationSec) {
      const args = [...cli, 'bench', url, '-c', String(ctx.connections), '-d', `${durationSec}s`, '--json', '--no-progress'];
      const r = await runPinned(ctx.clientCore, process.execPath, args, (durationSec + 30) * 1000, ctx.repoRoot, { SWITCHYARD_BENCH_SOCKETS: sockets });
      const j = JSON.parse(r.stdout) as SwitchyardJson;
      if (j.sockets !== sockets) throw new Error(`ran on ${j.sockets} sockets, not ${sockets}${j.socketsFallback ? ` (${j.socketsFallback})` : ''}`);
      return {
        requests: j.responses,
        requestsPerSec: j.requestsPerSec,
        clientCpuSeconds: r.cpuSeconds,
        latencyMs: { p50: j.latencyMs.p50, p90: j.latencyMs.p90, p99: j.latencyMs.p99, p999: j.latencyMs['p99.9'], max: j.latencyMs.max },
        errors: j.errors.total,
        // Its own measure over the run alone (process.cpuUsage), without node's start-up.
        clientUsPerReq: j.clientCpuUsPerResponse ?? undefined,
      };
    },
  };
}

function prepareTarget(ctx: BenchContext, work: string, id: TargetId, port: number): Promise<Prepared> {
  if (id === 'nginx') {
    return prepareNginx({
      name: 'nginx',
      dir: join(work, 'nginx-loadgen'),
      port,
      core: ctx.serverCore,
      conf: (dir, temps) => `# Written by bench/loadgen.ts: one worker, a fixed answer, no access log.
${nginxMainContext(dir)}
http {
    access_log off;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${nginxTempPaths(dir, temps)}
    server {
        listen 127.0.0.1:${port};
        location / {
            default_type text/plain;
            return 200 ${JSON.stringify(BODY)};
        }
    }
}
`,
    });
  }
  return prepareSwitchyard({
    repo: ctx.repoRoot,
    work,
    configName: 'switchyard-loadgen.yaml',
    port,
    core: ctx.serverCore,
    config: [
      'listeners:',
      '  - name: web',
      '    protocol: http',
      `    address: 127.0.0.1:${port}`,
      '    middleware:',
      '      accessLog: false',
      '      requestId: false',
      '    routes:',
      '      - match: { path: /* }',
      `        handler: { type: respond, body: ${JSON.stringify(BODY)}, contentType: text/plain }`,
      '',
    ].join('\n'),
  });
}

/** One GET: the server answers 200 with the body, before anything is measured. */
function verify(port: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/', timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (body += c));
      res.on('end', () => resolve(res.statusCode === 200 && body === BODY ? undefined : `expected 200 "${BODY.trim()}", got ${res.statusCode} "${body.slice(0, 80)}"`));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 5s')));
    req.on('error', (e) => resolve(e.message));
    req.end();
  });
}

const usCell = (x: number | undefined) => (x === undefined ? '–' : x.toFixed(2));
const fmtMs = (x: number | undefined) => (x === undefined || Number.isNaN(x) ? '–' : formatMs(x));

export async function runLoadgen(ctx: BenchContext): Promise<number> {
  const work = mkdtempSync(join(tmpdir(), 'sy-bench-loadgen-'));
  mkdirSync(work, { recursive: true });
  console.log(`Load generators compared: each pinned to core ${ctx.clientCore}, ${ctx.connections} connections, ${ctx.durationSec}s measured after ${ctx.warmupSec}s warm-up, ${ctx.runs} interleaved run(s); the server on core ${ctx.serverCore} answers "${BODY.trim()}" (${BODY.length} bytes).\n`);

  const generators: Generator[] = [wrkGenerator(ctx)];
  const autocannonBin = join(ctx.repoRoot, 'node_modules/autocannon/autocannon.js');
  if (existsSync(autocannonBin)) generators.push(autocannonGenerator(ctx, autocannonBin));
  else console.log('  autocannon SKIPPED: not installed (`npm install`; it is a devDependency)');
  // The compiled CLI, as users run it; through tsx when the build fails (slower, said so).
  const build = await buildSwitchyard(ctx.repoRoot);
  const cli = build === undefined ? [join(ctx.repoRoot, 'dist/cli/main.js')] : ['--import', 'tsx', join(ctx.repoRoot, 'src/cli/main.ts')];
  if (build !== undefined) console.log(`  switchyard bench: \`npm run build\` fails, running the sources through tsx (slower than the build):\n    ${build.split('\n').slice(0, 5).join('\n    ')}`);
  generators.push(switchyardGenerator(ctx, cli, 'io_uring'), switchyardGenerator(ctx, cli, 'native'), switchyardGenerator(ctx, cli, 'node'));
  for (const g of generators) console.log(`  ${g.id.padEnd(30)} ${g.info}`);

  const targets = LOADGEN_IDS.filter((id) => !ctx.servers || ctx.servers.has(id));
  const used = new Set<number>();
  const ready: { id: TargetId; prepared: Extract<Prepared, { ok: true }> }[] = [];
  for (const id of targets) {
    const port = await pickPort(used);
    used.add(port);
    const p = await prepareTarget(ctx, work, id, port);
    if (p.ok) {
      ready.push({ id, prepared: p });
      console.log(`  server ${id.padEnd(10)} ${p.info}`);
    } else {
      console.log(`  server ${id.padEnd(10)} SKIPPED: ${p.reason.split('\n').join('\n    ')}`);
    }
  }
  console.log('');
  if (ready.length === 0) return 1;

  const samples: Sample[] = [];
  const failures: string[] = [];
  for (let run = 1; run <= ctx.runs; run++) {
    for (const { id, prepared } of ready) {
      let server: RunningServer;
      try {
        server = await startServer(prepared.spec);
      } catch (e) {
        failures.push(`${id} run ${run}: did not start: ${(e as Error).message}`);
        continue;
      }
      try {
        const bad = await verify(prepared.spec.port);
        if (bad) {
          failures.push(`${id} run ${run}: not measured: ${bad}`);
          continue;
        }
        const url = `http://127.0.0.1:${prepared.spec.port}/`;
        for (const g of generators) {
          await waitQuiet(ctx);
          try {
            const m = await measureLoad({ ctx, server, run: (sec) => g.run(url, sec) });
            samples.push({ target: id, generator: g.id, m });
            console.log(`  run ${run} ${id} / ${g.id}: ${formatRate(m.rps)} req/s, client core ${formatPercent(m.clientCoreBusy)}, server core ${formatPercent(m.serverCoreBusy)}, others ${m.others.toFixed(2)} cores${m.problems.length ? ` (${m.problems.join('; ')})` : ''}`);
          } catch (e) {
            failures.push(`${id} run ${run} / ${g.id}: ${(e as Error).message}`);
          }
        }
      } finally {
        await server.stop();
      }
    }
  }
  console.log('');

  const columns: Column[] = [
    { title: 'server' },
    { title: 'load generator' },
    { title: 'req/s', align: 'right' },
    { title: 'vs wrk', align: 'right' },
    { title: 'p50 ms', align: 'right' },
    { title: 'p90 ms', align: 'right' },
    { title: 'p99 ms', align: 'right' },
    { title: 'p99.9 ms', align: 'right' },
    { title: 'max ms', align: 'right' },
    { title: 'errors', align: 'right' },
    { title: 'client µs/req', align: 'right' },
    { title: 'vs wrk', align: 'right' },
    { title: 'client core', align: 'right' },
    { title: 'server core', align: 'right' },
    { title: 'others', align: 'right' },
    { title: 'runs', align: 'right' },
  ];
  const rows: string[][] = [];
  let noisy = false;
  for (const { id } of ready) {
    // A row's medians come from its undisturbed runs when it has any (others at most NOISY),
    // else from all of them: on a shared machine one quiet run says more than three busy ones.
    const used = (g: GeneratorId): Sample[] => {
      const all = samples.filter((s) => s.target === id && s.generator === g);
      const quiet = all.filter((s) => s.m.others <= NOISY);
      return quiet.length > 0 ? quiet : all;
    };
    const med = (g: GeneratorId, f: (m: LoadMeasurement<GeneratorRun>) => number | undefined): number | undefined => {
      const xs = used(g).map((s) => f(s.m)).filter((x): x is number => x !== undefined && Number.isFinite(x));
      return xs.length ? median(xs) : undefined;
    };
    const wrkRps = med('wrk', (m) => m.rps);
    const wrkUs = med('wrk', (m) => m.load.clientUsPerReq);
    for (const g of generators) {
      const rps = med(g.id, (m) => m.rps);
      if (rps === undefined) continue;
      const others = med(g.id, (m) => m.others) ?? 0;
      if (others > NOISY) noisy = true;
      rows.push([
        id,
        g.id,
        formatRate(rps),
        wrkRps === undefined ? '–' : ratio(rps, wrkRps),
        fmtMs(med(g.id, (m) => m.load.latencyMs.p50)),
        fmtMs(med(g.id, (m) => m.load.latencyMs.p90)),
        fmtMs(med(g.id, (m) => m.load.latencyMs.p99)),
        fmtMs(med(g.id, (m) => m.load.latencyMs.p999)),
        fmtMs(med(g.id, (m) => m.load.latencyMs.max)),
        String(med(g.id, (m) => m.load.errors) ?? '–'),
        usCell(med(g.id, (m) => m.load.clientUsPerReq)),
        (() => {
          const us = med(g.id, (m) => m.load.clientUsPerReq);
          return us === undefined || wrkUs === undefined ? '–' : ratio(us, wrkUs);
        })(),
        formatPercent(med(g.id, (m) => m.clientCoreBusy) ?? Number.NaN),
        formatPercent(med(g.id, (m) => m.serverCoreBusy) ?? Number.NaN),
        `${others.toFixed(2)}`,
        (() => {
          const u = used(g.id);
          const quiet = u.filter((s) => s.m.others <= NOISY).length;
          return quiet > 0 ? `${quiet} quiet` : `${u.length} busy`;
        })(),
      ]);
    }
  }
  console.log(markdownTable(columns, rows));
  console.log(`\nMedians over each row's undisturbed runs ("runs": how many were quiet, others at most ${NOISY} cores), or over all ${ctx.runs} when none was ("busy"). "vs wrk": req/s relative to wrk against the same server. "client core"/"server core": busy share of cores ${ctx.clientCore} and ${ctx.serverCore}; a load generator at 100% of its core while the server core has room is the bottleneck, and its req/s understates the server. "others": cores' worth of CPU used by other processes during the measurement (above ${NOISY}: the figures are disturbed).`);
  console.log('"client µs/req": the load generator\'s own CPU time per request (its cost; other processes on the machine change it little, unlike req/s), and that relative to wrk (below 1.00x: cheaper than wrk). autocannon\'s includes node\'s start-up.');
  console.log('autocannon reports latency in whole milliseconds; wrk --latency prints no 99.9th percentile.');
  if (noisy) console.log('\nWARNING: other processes used the cores during some measurements; rerun on a quiet machine for figures to quote.');
  if (failures.length) {
    console.log('\nNot measured:');
    for (const f of failures) console.log(`  ${f.split('\n').join('\n    ')}`);
  }
  return rows.length > 0 ? 0 : 1;
}

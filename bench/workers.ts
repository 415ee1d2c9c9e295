import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { join, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';
import { buildSwitchyard, prepareNginx } from './lib/servers.ts';
import { upstreamConf } from './proxy.ts';
import { installCleanupHandlers, pickPort, startServer, type RunningServer } from './lib/proc.ts';
import { clockTicksPerSecond, parsePidStat, sampleCpu, totalBusySeconds } from './lib/cpu.ts';
import { runWrk } from './lib/wrk.ts';

// `node --import tsx bench/workers.ts [--duration 5] [--warmup 2] [--runs 3] [--connections 64]
//   [--upstream nginx|node|both] [--sched shared|rr|both] [--kinds static,proxy] [--cpu-prof DIR] [--pin-workers] [--close] [--no-build] [--max-wait 60]`:
// Switchyard with `workers: 1` against `workers: 2` on this machine (docs/operations.md,
// "Workers"), static 4 KiB and proxy (100-byte upstream answers). Nothing is pinned: the daemon's
// processes, wrk and the upstream share every core, which is the point of workers. Server CPU is
// the daemon's whole process group (primary + workers) from /proc; µs per request = that CPU /
// requests wrk completed. Efficiency = CPU per request with 1 worker / CPU per request with 2
// (1.0 = no cost for the second process); req/s ratio = what the second core bought.
//
// The proxy's upstream is nginx by default (`return 200` with the 100-byte body: the upstream of
// `npm run bench -- proxy`, started the same way), one C process at ~10 µs per request. The
// node:http upstream this harness had first (`--upstream node`) spends ~25-30 µs per request in
// the harness's own event loop, which also samples /proc and runs `ss`: on two cores it takes a
// good part of the CPU the workers compete for, and its cost moves with the harness's. Both can
// be run side by side (`--upstream both`).
//
// Per run the harness also records how wrk's connections landed on the workers (`ss`, at the
// middle of the measured run) and the daemon's connections to the upstream, the primary's CPU
// apart from the workers', the kernel's share (stime), context switches of every thread of the
// daemon, TCP connections opened, and the upstream's and wrk's CPU per request. Runs interleave
// 1 and 2 workers (the order flips every run). The machine is shared: before each measurement
// the harness waits (up to --max-wait s) for the other processes to go quiet, a run in which
// they kept more than DISTURBED_CORES busy is measured again (twice at most) and left out of the
// medians. --sched rr|both measures Node's round-robin (NODE_CLUSTER_SCHED_POLICY=rr) next to
// the shared socket; --close sends `Connection: close` (a connection per request: what each way
// of sharing costs per connection); --pin-workers pins worker k to core k-1 (an experiment: it
// did not help here); --cpu-prof DIR writes V8 CPU profiles of every process of the daemon.

const repo = join(dirname(fileURLToPath(import.meta.url)), '..');
const argOf = (name: string): string | undefined => {
  const i = process.argv.indexOf(`--${name}`);
  return i > 0 ? process.argv[i + 1] : undefined;
};
const num = (name: string, dflt: number) => Number(argOf(name) ?? dflt);
const DURATION = num('duration', 5);
/** Unmeasured wrk run before each measurement, s: the JIT and the heaps settle (2 workers see half the requests each). */
const WARMUP = num('warmup', 2);
const RUNS = num('runs', 3);
const CONNECTIONS = num('connections', 64);
/** `--name a|b|both`: the values to run, or exits naming the allowed ones. */
function choice<T extends string>(name: string, allowed: readonly T[], dflt: string): T[] {
  const v = argOf(name) ?? dflt;
  const picked = v === 'both' ? [...allowed] : v.split(',');
  const bad = picked.filter((x) => !allowed.includes(x as T));
  if (bad.length > 0 || picked.length === 0) {
    console.error(`--${name} ${v}: expected ${allowed.join(', ')} (comma-separated) or both`);
    process.exit(2);
  }
  return picked as T[];
}
const UPSTREAMS = choice('upstream', ['nginx', 'node'] as const, 'nginx');
const SCHEDS = choice('sched', ['shared', 'rr'] as const, 'shared');
const KINDS = choice('kinds', ['static', 'proxy'] as const, 'static,proxy');
const CPU_PROF = argOf('cpu-prof');
/** --close: a new connection per request (what sharing the listening socket costs per connection). */
const WRK_HEADERS = process.argv.includes('--close') ? ['Connection: close'] : [];
const PIN_WORKERS = process.argv.includes('--pin-workers');
/** A run where processes other than ours kept more than this many cores busy is left out. */
const DISTURBED_CORES = 0.15;
const BODY = 'switchyard-bench-upstream-body-0123456789abcdefghijklmnopqrstuvwxyz'.padEnd(100, '.');

interface Row {
  kind: 'static' | 'proxy';
  upstream: string;
  sched: string;
  workers: number;
  rps: number;
  usPerReq: number;
  /** The primary's share of usPerReq (workers: 1 is one process that serves: 0 there). */
  primaryUsPerReq: number;
  /** The kernel's part of usPerReq (stime). */
  sysUsPerReq: number;
  /** Context switches of the daemon's processes per request. */
  switchesPerReq: number;
  upstreamUsPerReq: number;
  wrkUsPerReq: number;
  /** Busy cores of the whole machine during the run. */
  machine: number;
  /** wrk's connections per worker, as `ss` saw them mid-run. */
  spread: number[];
  /** The daemon's connections to the upstream per worker, mid-run. */
  upstreamSpread: number[];
  /** TCP connections opened on the host per 1000 requests (0 when every connection is kept alive). */
  opensPerKReq: number;
  /** Busy cores that were none of ours during the run. */
  others: number;
  /** others above DISTURBED_CORES: left out of the medians. */
  disturbed: boolean;
}

interface ProcSample {
  ticks: number;
  /** stime alone: the kernel's share (system calls, and on loopback the receiving side's TCP work). */
  sysTicks: number;
  switches: number;
}

/** CPU ticks and context switches (all threads) of every live process of group `pgid`, by pid. */
function groupSample(pgid: number): Map<number, ProcSample> {
  const out = new Map<number, ProcSample>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const line = readFileSync(`/proc/${name}/stat`, 'utf8');
      const st = parsePidStat(line);
      if (!st || st.pgrp !== pgid) continue;
      out.set(Number(name), { ticks: st.ticks, sysTicks: stime(line), switches: threadSwitches(Number(name)) });
    } catch {
      // exited meanwhile
    }
  }
  return out;
}

/** stime (field 15) of a /proc/<pid>/stat line, in jiffies. */
function stime(line: string): number {
  const f = line.slice(line.lastIndexOf(')') + 2).trim().split(/\s+/);
  return Number(f[15 - 3]) || 0;
}

function threadSwitches(pid: number): number {
  let n = 0;
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    const s = readFileSync(`/proc/${pid}/task/${tid}/status`, 'utf8');
    for (const m of s.matchAll(/^(?:non)?voluntary_ctxt_switches:\s+(\d+)$/gm)) n += Number(m[1]);
  }
  return n;
}

/** Established connections from (`sport`) or to (`dport`) 127.0.0.1:`port`, per owning pid. */
function connectionsByPid(port: number, side: 'sport' | 'dport' = 'sport'): Map<number, number> {
  const r = spawnSync('ss', ['-Htnp', 'state', 'established', `( ${side} = :${port} )`], { encoding: 'utf8', timeout: 5_000 });
  const by = new Map<number, number>();
  for (const line of (r.stdout ?? '').split('\n')) {
    const m = /pid=(\d+)/.exec(line);
    if (m) by.set(Number(m[1]), (by.get(Number(m[1])) ?? 0) + 1);
  }
  return by;
}

function selfCpuSeconds(): number {
  const c = process.cpuUsage();
  return (c.user + c.system) / 1e6;
}

/** Experiment (--pin-workers): worker k on core k-1, the way nginx's worker_cpu_affinity auto does. */
function pinWorkers(primary: number): void {
  const pids = [...groupSample(primary).keys()].filter((p) => p !== primary).sort((a, b) => a - b);
  pids.forEach((pid, i) => spawnSync('taskset', ['-a', '-p', '-c', String(i % 2), String(pid)], { timeout: 5_000 }));
}

/** Waits (at most --max-wait seconds, default 60) until the machine is quiet: other processes busy under DISTURBED_CORES for a second. */
async function waitForQuiet(): Promise<void> {
  const deadline = Date.now() + num('max-wait', 60) * 1000;
  for (let i = 0; i < 600 && Date.now() < deadline; i++) {
    const a = sampleCpu();
    const s0 = selfCpuSeconds();
    await new Promise((r) => setTimeout(r, 1000));
    if (totalBusySeconds(a, sampleCpu()) - (selfCpuSeconds() - s0) < DISTURBED_CORES) return;
  }
  console.log(`  (the machine was still busy after ${num('max-wait', 60)} s; measuring anyway)`);
}

/** TCP connections opened on this host so far (active opens, /proc/net/snmp). */
function tcpActiveOpens(): number {
  const lines = readFileSync('/proc/net/snmp', 'utf8').split('\n').filter((l) => l.startsWith('Tcp:'));
  const [head, vals] = [lines[0]!.split(/\s+/), lines[1]!.split(/\s+/)];
  return Number(vals[head.indexOf('ActiveOpens')]);
}

async function main(): Promise<number> {
  installCleanupHandlers();
  // --no-build: measure dist/ as it is (in a shared tree another change may fail the type check).
  const build = process.argv.includes('--no-build') ? undefined : await buildSwitchyard(repo);
  if (build) {
    console.error(`npm run build fails:\n${build}`);
    return 1;
  }
  const hz = clockTicksPerSecond();
  const work = join(repo, 'bench/.work/workers');
  mkdirSync(join(work, 'www'), { recursive: true });
  writeFileSync(join(work, 'www/4k.bin'), Buffer.alloc(4096, 'x'));

  // The upstreams, up for the whole benchmark.
  const upstreamPorts = new Map<string, number>();
  const upstreamCpu = new Map<string, () => number>();
  let nodeUpstream: Server | undefined;
  const nginxUp: RunningServer[] = [];
  if (KINDS.includes('proxy')) {
    for (const u of UPSTREAMS) {
      if (u === 'node') {
        const s = createServer((_req, res) => {
          res.writeHead(200, { 'content-type': 'text/plain', 'content-length': BODY.length });
          res.end(BODY);
        });
        nodeUpstream = s;
        await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
        upstreamPorts.set('node', (s.address() as { port: number }).port);
        // The harness's own CPU: the upstream plus a little bookkeeping between runs.
        upstreamCpu.set('node', selfCpuSeconds);
      } else {
        const port = await pickPort();
        const up = await prepareNginx({ name: 'upstream (nginx)', dir: join(work, 'upstream'), port, core: '0-1023', conf: (dir, temps) => upstreamConf(dir, port, temps) });
        if (!up.ok) {
          console.error(`the nginx upstream cannot run: ${up.reason}`);
          return 1;
        }
        // Not pinned: `taskset -c 0-1023` is every core, so it runs where the scheduler puts it.
        const srv = await startServer(up.spec);
        nginxUp.push(srv);
        upstreamPorts.set('nginx', port);
        upstreamCpu.set('nginx', () => [...groupSample(srv.pid).values()].reduce((a, s) => a + s.ticks, 0) / hz);
      }
    }
  }

  const rows: Row[] = [];
  const cases: { kind: 'static' | 'proxy'; upstream: string }[] = [];
  for (const kind of KINDS) {
    if (kind === 'static') cases.push({ kind, upstream: '-' });
    else for (const u of UPSTREAMS) cases.push({ kind, upstream: u });
  }
  // workers: 1 is one process (no primary, nothing shared): measured once per case and run, and
  // set against each way of sharing the sockets among 2 workers. The order flips every run.
  const setups: { workers: number; sched: string }[] = [{ workers: 1, sched: '-' }, ...SCHEDS.map((sched) => ({ workers: 2, sched }))];
  for (let run = 1; run <= RUNS; run++) {
    for (const c of cases) {
      for (const { workers, sched } of run % 2 === 1 ? setups : [...setups].reverse()) {
        // A run that other processes disturbed is measured again (at most twice), once the cores are quiet.
        for (let attempt = 0; attempt <= 2; attempt++) {
          await waitForQuiet();
          const row = await measure(run, c.kind, c.upstream, sched, workers);
          rows.push(row);
          if (!row.disturbed) break;
        }
      }
    }
  }
  nodeUpstream?.close();
  for (const s of nginxUp) await s.stop();

  const median = (xs: number[]) => {
    const v = [...xs].sort((a, b) => a - b);
    const m = Math.floor(v.length / 2);
    return v.length % 2 === 1 ? v[m]! : (v[m - 1]! + v[m]!) / 2;
  };
  console.log(`\nmedians of ${RUNS} run(s) (disturbed runs left out), wrk -t2 -c${CONNECTIONS} -d${DURATION}s after ${WARMUP}s of warm-up${WRK_HEADERS.length ? ' (Connection: close)' : ''}, ${PIN_WORKERS ? 'worker k pinned to core k-1' : 'nothing pinned'}:`);
  console.log('| test | upstream | sharing | 1 worker req/s | 2 workers req/s | req/s ratio | 1 worker µs CPU/req | 2 workers µs CPU/req | efficiency (1w/2w CPU per req) | kernel µs/req 1w / 2w | primary µs/req (2w) | switches/req 1w / 2w | upstream µs/req 1w / 2w | connections on the busiest of 2 workers |');
  console.log('| --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |');
  for (const c of cases) {
    for (const sched of SCHEDS) {
      const clean = (n: number) => rows.filter((r) => !r.disturbed && r.kind === c.kind && r.upstream === c.upstream && r.workers === n && (n === 1 || r.sched === sched));
      if (clean(1).length === 0 || clean(2).length === 0) {
        console.log(`| ${c.kind} | ${c.upstream} | ${sched} | every run disturbed: no figures |`);
        continue;
      }
      const of = (n: number, f: (r: Row) => number) => median(clean(n).map(f));
      const [r1, r2, c1, c2] = [of(1, (r) => r.rps), of(2, (r) => r.rps), of(1, (r) => r.usPerReq), of(2, (r) => r.usPerReq)];
      const name = `${c.kind === 'static' ? 'static 4 KiB' : 'proxy 100 B'} (${clean(1).length}+${clean(2).length} runs)`;
      console.log(
        `| ${name} | ${c.upstream} | ${sched} | ${r1.toFixed(0)} | ${r2.toFixed(0)} | ${(r2 / r1).toFixed(2)}x | ${c1.toFixed(1)} | ${c2.toFixed(1)} | ${(c1 / c2).toFixed(2)} | ` +
          `${of(1, (r) => r.sysUsPerReq).toFixed(1)} / ${of(2, (r) => r.sysUsPerReq).toFixed(1)} | ${of(2, (r) => r.primaryUsPerReq).toFixed(2)} | ${of(1, (r) => r.switchesPerReq).toFixed(2)} / ${of(2, (r) => r.switchesPerReq).toFixed(2)} | ` +
          `${c.kind === 'proxy' ? `${of(1, (r) => r.upstreamUsPerReq).toFixed(1)} / ${of(2, (r) => r.upstreamUsPerReq).toFixed(1)}` : '-'} | ` +
          `${clean(2).map((r) => `${r.spread[0]}`).join(', ')} of ${CONNECTIONS} |`,
      );
    }
  }
  return 0;

  async function measure(run: number, kind: 'static' | 'proxy', upstream: string, sched: string, workers: number): Promise<Row> {
    const port = await pickPort();
    const cfg = join(work, `${kind}-${upstream}-${sched}-${workers}.yaml`);
    const upPort = upstreamPorts.get(upstream);
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
    const env: NodeJS.ProcessEnv = { ...process.env, NODE_ENV: 'production' };
    if (sched === 'rr') env.NODE_CLUSTER_SCHED_POLICY = 'rr';
    else delete env.NODE_CLUSTER_SCHED_POLICY;
    if (CPU_PROF) {
      const dir = join(CPU_PROF, `${kind}-${upstream}-${sched}-${workers}w-run${run}`);
      mkdirSync(dir, { recursive: true });
      // Node options, not NODE_OPTIONS (which refuses --cpu-prof); cluster.fork gives workers the primary's execArgv.
      args.unshift('--cpu-prof', `--cpu-prof-dir=${dir}`);
    }
    const server: RunningServer = await startServer({
      name: `switchyard ${workers}w`,
      command: process.execPath,
      args,
      cwd: repo,
      env,
      logFile: cfg.replace(/\.yaml$/, '.log'),
      port,
      startTimeoutMs: 60_000,
    });
    // Workers report ready after the port accepts (worker 1 may be up before worker 2).
    await new Promise((r) => setTimeout(r, 1000));
    const url = `http://127.0.0.1:${port}/${kind === 'static' ? '4k.bin' : ''}`;
    await runWrk({ url, durationSec: WARMUP, connections: CONNECTIONS, threads: 2, headers: WRK_HEADERS });
    await new Promise((r) => setTimeout(r, 200));
    if (PIN_WORKERS && workers > 1) pinWorkers(server.pid);
    const upCpu = upstreamCpu.get(upstream);
    const g0 = groupSample(server.pid);
    const up0 = upCpu?.() ?? 0;
    const self0 = selfCpuSeconds();
    const m0 = sampleCpu();
    let spreadByPid = new Map<number, number>();
    let upByPid = new Map<number, number>();
    const opens0 = tcpActiveOpens();
    const spreadAt = setTimeout(() => {
      spreadByPid = connectionsByPid(port);
      if (upPort !== undefined) upByPid = connectionsByPid(upPort, 'dport');
    }, (DURATION * 1000) / 2);
    const w = await runWrk({ url, durationSec: DURATION, connections: CONNECTIONS, threads: 2, headers: WRK_HEADERS });
    clearTimeout(spreadAt);
    const opens = tcpActiveOpens() - opens0;
    const m1 = sampleCpu();
    const up1 = upCpu?.() ?? 0;
    const self1 = selfCpuSeconds();
    const g1 = groupSample(server.pid);
    await server.stop();
    const bad = w.non2xx3xx + w.socketErrors.connect + w.socketErrors.read + w.socketErrors.write + w.socketErrors.timeout;
    if (bad > 0) console.warn(`  (${bad} errors in this run)`);
    let ticks = 0;
    let sysTicks = 0;
    let switches = 0;
    for (const [pid, b] of g1) {
      const a = g0.get(pid) ?? { ticks: 0, sysTicks: 0, switches: 0 };
      ticks += b.ticks - a.ticks;
      sysTicks += b.sysTicks - a.sysTicks;
      switches += b.switches - a.switches;
    }
    const primaryTicks = (g1.get(server.pid)?.ticks ?? 0) - (g0.get(server.pid)?.ticks ?? 0);
    const workerPids = [...g1.keys()].filter((p) => p !== server.pid);
    // workers: 1 is a primary with one worker too; with no workers the process itself serves.
    const servingPids = workerPids.length ? workerPids : [server.pid];
    const spread = servingPids.map((p) => spreadByPid.get(p) ?? 0).sort((a, b) => b - a);
    const upstreamSpread = servingPids.map((p) => upByPid.get(p) ?? 0).sort((a, b) => b - a);
    const us = (seconds: number) => (seconds * 1e6) / w.requests;
    // Whatever else ran meanwhile (other people's tests on this shared machine), in cores: the
    // machine's busy time less the daemon's, the upstream's, wrk's and this harness's.
    const harness = upstream === 'node' ? 0 : self1 - self0;
    const others = (totalBusySeconds(m0, m1) - ticks / hz - (up1 - up0) - (w.wrkCpuSeconds ?? 0) - harness) / w.seconds;
    const row: Row = {
      kind,
      upstream,
      sched,
      workers,
      rps: w.requestsPerSec,
      usPerReq: us(ticks / hz),
      sysUsPerReq: us(sysTicks / hz),
      primaryUsPerReq: workerPids.length ? us(primaryTicks / hz) : 0,
      switchesPerReq: switches / w.requests,
      upstreamUsPerReq: us(up1 - up0),
      wrkUsPerReq: us(w.wrkCpuSeconds ?? 0),
      machine: totalBusySeconds(m0, m1) / w.seconds,
      spread,
      upstreamSpread,
      opensPerKReq: (opens * 1000) / w.requests,
      others,
      disturbed: others > DISTURBED_CORES,
    };
    console.log(
      `run ${run} ${kind.padEnd(6)} ${upstream.padEnd(5)} ${sched.padEnd(6)} workers ${workers}: ${row.rps.toFixed(0).padStart(6)} req/s  ${row.usPerReq.toFixed(1).padStart(5)} µs CPU/req ` +
        `(kernel ${row.sysUsPerReq.toFixed(1)}, primary ${row.primaryUsPerReq.toFixed(2)})  ${row.switchesPerReq.toFixed(2)} switches/req  upstream ${row.upstreamUsPerReq.toFixed(1)} µs/req  wrk ${row.wrkUsPerReq.toFixed(1)} µs/req  ` +
        ` machine ${row.machine.toFixed(2)} cores (others ${row.others.toFixed(2)}${row.disturbed ? ', DISTURBED: left out' : ''})  connections per worker ${spread.join('/')}${kind === 'proxy' ? ` (upstream ${upstreamSpread.join('/')})` : ''}  ${row.opensPerKReq.toFixed(1)} TCP opens/1000 req`,
    );
    return row;
  }
}

process.exitCode = await main();

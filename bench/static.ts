import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { clockTicksPerSecond, coreUsage, processGroupCpuSeconds, sampleCpu, totalBusySeconds } from './lib/cpu.ts';
import { httpGet } from './lib/http.ts';
import {
  commandExists,
  describeExit,
  pickPort,
  runCaptured,
  startServer,
  type RunningServer,
  type ServerSpec,
} from './lib/proc.ts';
import { median, formatBytes, formatMicros, formatPercent, formatRate } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import { runWrk, socketErrorTotal } from './lib/wrk.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- static`: Switchyard's static handler, nginx and sirv, side by side in one run.
// Server on core 0, wrk on core 1; interleaved runs (run -> server -> file); median req/s, ratio
// to nginx and the server core's CPU time per request from /proc/stat.

type PeerId = 'switchyard' | 'nginx' | 'sirv';

interface BenchFile {
  readonly name: string;
  readonly size: number;
}

const FILES: readonly BenchFile[] = [
  { name: '4k.bin', size: 4 << 10 },
  { name: '1m.bin', size: 1 << 20 },
];

/** Issue 2's targets: Switchyard req/s over nginx req/s, per file size. */
const TARGETS: ReadonlyMap<number, number> = new Map([
  [4 << 10, 0.6],
  [1 << 20, 1.0],
]);

interface Env {
  readonly ctx: BenchContext;
  readonly work: string;
  readonly www: string;
}

type Prepared = { readonly ok: true; readonly spec: ServerSpec; readonly info: string } | { readonly ok: false; readonly reason: string };

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample {
  readonly peer: PeerId;
  readonly file: BenchFile;
  readonly run: number;
  readonly rps: number;
  readonly requests: number;
  /** Server core busy time per completed request, µs. */
  readonly cpuUsPerReq: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  readonly p99Ms: number;
  /** Busiest core's load from other processes, sampled just before this server's run started. */
  readonly background: number;
  /**
   * CPU used during the measurement by anything but the server, wrk and the harness (all cores
   * busy time minus theirs), in cores: 0.05 = 5% of one core. Includes some kernel work.
   */
  readonly others: number;
  /** Reasons this measurement is suspicious (errors, short bodies, server died). */
  readonly problems: readonly string[];
}

const pinned = (core: string, command: string, args: readonly string[]): Pick<ServerSpec, 'command' | 'args'> => ({
  command: 'taskset',
  args: ['-c', core, command, ...args],
});

// ---------------------------------------------------------------------------------------------
// Peers

const switchyard: Peer = {
  id: 'switchyard',
  label: 'Switchyard',
  async prepare(env, port) {
    const repo = env.ctx.repoRoot;
    // The compiled build, as `npm start` and the bin run it (tsx adds a wrapper call to every
    // closure created per request, which would be measured too).
    const build = await runCaptured('npx', ['tsc', '-p', 'tsconfig.build.json'], 120_000, repo).catch((e: Error) => e);
    if (build instanceof Error || build.code !== 0) {
      const why = build instanceof Error ? build.message : `${build.stderr}${build.stdout}`.trim().slice(-1500);
      return { ok: false, reason: `\`npm run build\` fails, so there is no compiled daemon to measure:\n${why}` };
    }
    const cli = [join(repo, 'dist/cli/main.js')];
    // warn, not silent: nothing is logged per request, but a startup failure still says why.
    const logLevel = ['--log-level', 'warn'];

    const cfg = join(env.work, 'switchyard.yaml');
    writeFileSync(
      cfg,
      [
        'listeners:',
        '  - name: web',
        '    protocol: http',
        `    address: 127.0.0.1:${port}`,
        '    middleware: { accessLog: false, requestId: false }',
        '    routes:',
        '      - match: { path: /* }',
        `        handler: { type: static, root: ${JSON.stringify(env.www)} }`,
        '',
      ].join('\n'),
    );
    const check = await runCaptured(process.execPath, [...cli, 'check', cfg], 60_000, repo).catch((e: Error) => e);
    if (check instanceof Error || check.code !== 0) {
      const why = check instanceof Error ? check.message : `${check.stderr}${check.stdout}`.trim().slice(-1500);
      return { ok: false, reason: `\`switchyard check\` rejects the benchmark config ${cfg}:\n${why}` };
    }
    const args = [...cli, 'serve', cfg, ...logLevel];
    return {
      ok: true,
      info: `node ${args.join(' ')}`,
      spec: {
        name: 'Switchyard',
        ...pinned(env.ctx.serverCore, process.execPath, args),
        cwd: repo,
        env: { ...process.env, NODE_ENV: 'production' },
        logFile: join(env.work, 'switchyard.log'),
        port,
        startTimeoutMs: 60_000,
      },
    };
  },
};

/** nginx's temp-path directives; an nginx built without a module rejects that module's directive. */
const NGINX_TEMP_DIRECTIVES = ['client_body', 'proxy', 'fastcgi', 'uwsgi', 'scgi'] as const;

function nginxConf(dir: string, www: string, port: number, temps: readonly string[]): string {
  return `# Written by bench/static.ts; one worker process, sendfile, no access log.
daemon off;
master_process off;
worker_processes 1;
pid ${dir}/nginx.pid;
lock_file ${dir}/nginx.lock;
error_log ${dir}/error.log warn;

events {
    worker_connections 4096;
}

http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${temps.map((t) => `    ${t}_temp_path ${dir}/tmp/${t};`).join('\n')}
    types {
        text/html html;
        application/octet-stream bin;
    }
    default_type application/octet-stream;

    server {
        listen 127.0.0.1:${port};
        server_name localhost;
        root ${www};
        location / {
        }
    }
}
`;
}

const nginx: Peer = {
  id: 'nginx',
  label: 'nginx',
  async prepare(env, port) {
    const bin = ['nginx', '/usr/sbin/nginx', '/usr/local/sbin/nginx'].find((b) => commandExists(b));
    if (!bin) return { ok: false, reason: 'nginx is not installed (install it with `bash bench/install.sh`)' };
    const dir = join(env.work, 'nginx');
    mkdirSync(join(dir, 'tmp'), { recursive: true });
    const conf = join(dir, 'nginx.conf');
    let temps: string[] = [...NGINX_TEMP_DIRECTIVES];
    let lastError = '';
    // Bounded: at most one retry per temp directive this nginx might not know.
    for (let i = 0; i <= NGINX_TEMP_DIRECTIVES.length; i++) {
      writeFileSync(conf, nginxConf(dir, env.www, port, temps));
      const t = await runCaptured(bin, ['-t', '-q', '-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')], 30_000);
      if (t.code === 0) {
        const version = await runCaptured(bin, ['-v'], 10_000).catch(() => undefined);
        return {
          ok: true,
          info: `${(version?.stderr ?? '').trim() || bin}; ${conf}`,
          spec: {
            name: 'nginx',
            ...pinned(env.ctx.serverCore, bin, ['-p', `${dir}/`, '-c', conf, '-e', join(dir, 'error.log')]),
            cwd: dir,
            logFile: join(dir, 'stdout.log'),
            port,
            startTimeoutMs: 15_000,
          },
        };
      }
      lastError = `${t.stderr}${t.stdout}`.trim();
      const unknown = /unknown directive "(\w+)_temp_path"/.exec(lastError);
      if (!unknown || !temps.includes(unknown[1])) break;
      temps = temps.filter((x) => x !== unknown[1]);
    }
    return { ok: false, reason: `\`nginx -t\` rejects the generated ${conf}:\n${lastError}` };
  },
};

const sirvPeer: Peer = {
  id: 'sirv',
  label: 'sirv',
  async prepare(env, port) {
    try {
      createRequire(import.meta.url).resolve('sirv');
    } catch {
      return { ok: false, reason: 'the npm package `sirv` is not installed (run `npm install`; it is a devDependency)' };
    }
    const script = join(env.ctx.repoRoot, 'bench/peers/sirv-server.ts');
    const args = ['--import', 'tsx', script, env.www, String(port)];
    return {
      ok: true,
      info: `sirv ${readPackageVersion(env.ctx.repoRoot, 'sirv')} on node:http (${script})`,
      spec: {
        name: 'sirv',
        ...pinned(env.ctx.serverCore, process.execPath, args),
        cwd: env.ctx.repoRoot,
        env: { ...process.env, NODE_ENV: 'production' },
        logFile: join(env.work, 'sirv.log'),
        port,
        startTimeoutMs: 30_000,
      },
    };
  },
};

const PEERS: readonly Peer[] = [switchyard, nginx, sirvPeer];

function readPackageVersion(repo: string, name: string): string {
  try {
    const pkg: unknown = JSON.parse(readFileSync(join(repo, 'node_modules', name, 'package.json'), 'utf8'));
    if (pkg && typeof pkg === 'object' && 'version' in pkg && typeof pkg.version === 'string') return pkg.version;
  } catch {
    // fall through
  }
  return '?';
}

// ---------------------------------------------------------------------------------------------
// Measurement

function ensureFiles(www: string): void {
  mkdirSync(www, { recursive: true });
  for (const f of FILES) {
    const p = join(www, f.name);
    let ok = false;
    try {
      ok = statSync(p).size === f.size;
    } catch {
      ok = false;
    }
    if (!ok) writeFileSync(p, randomBytes(f.size));
  }
}

/** GETs every file once and compares it byte for byte with the file on disk. */
async function verify(port: number, www: string): Promise<string | undefined> {
  for (const f of FILES) {
    const url = `http://127.0.0.1:${port}/${f.name}`;
    try {
      const r = await httpGet(url);
      if (r.status !== 200) return `GET /${f.name} answered ${r.status}`;
      if (!r.body.equals(readFileSync(join(www, f.name)))) {
        return `GET /${f.name} returned ${r.body.length} bytes that differ from the file (${f.size} bytes)`;
      }
    } catch (e) {
      return `GET /${f.name} failed: ${(e as Error).message}`;
    }
  }
  return undefined;
}

async function measure(env: Env, server: RunningServer, peer: Peer, file: BenchFile, run: number, background: number): Promise<Sample> {
  const { ctx } = env;
  const url = `http://127.0.0.1:${server.spec.port}/${file.name}`;
  const common = { url, connections: ctx.connections, threads: 1, core: ctx.clientCore };
  if (ctx.warmupSec > 0) await runWrk({ ...common, durationSec: ctx.warmupSec });
  await sleep(200); // let the warm-up's connections close before the window opens
  const t0 = performance.now();
  const harness0 = process.cpuUsage();
  const server0 = processGroupCpuSeconds(server.pid);
  const before = sampleCpu();
  const w = await runWrk({ ...common, durationSec: ctx.durationSec });
  const after = sampleCpu();
  const serverCpu = processGroupCpuSeconds(server.pid) - server0;
  const harness = process.cpuUsage(harness0);
  const wall = (performance.now() - t0) / 1000;
  const othersCpu =
    totalBusySeconds(before, after) - serverCpu - (w.wrkCpuSeconds ?? 0) - (harness.user + harness.system) / 1e6;
  const srv = coreUsage(before, after, Number(ctx.serverCore));
  const cli = coreUsage(before, after, Number(ctx.clientCore));

  const problems: string[] = [];
  if (w.requests === 0) problems.push('no requests completed');
  if (w.non2xx3xx > 0) problems.push(`${w.non2xx3xx} non-2xx/3xx responses`);
  const sock = socketErrorTotal(w);
  if (sock > 0) {
    const e = w.socketErrors;
    problems.push(`socket errors: connect ${e.connect}, read ${e.read}, write ${e.write}, timeout ${e.timeout}`);
  }
  // wrk prints "read" rounded to 2 decimals of its unit; allow 2% for that.
  if (w.requests > 0 && w.bytesRead / w.requests < file.size * 0.98) {
    problems.push(`only ${Math.round(w.bytesRead / w.requests)} bytes read per request (file is ${file.size})`);
  }
  if (server.exitInfo) problems.push(`server ${describeExit(server.exitInfo)} during the run`);
  return {
    peer: peer.id,
    file,
    run,
    rps: w.requestsPerSec,
    requests: w.requests,
    cpuUsPerReq: w.requests > 0 ? (srv.busySeconds * 1e6) / w.requests : Number.NaN,
    serverCoreBusy: srv.busyFraction,
    clientCoreBusy: cli.busyFraction,
    p99Ms: w.latencyMs.p99 ?? Number.NaN,
    background,
    others: wall > 0 ? Math.max(0, othersCpu) / wall : 0,
    problems,
  };
}

function progressLine(s: Sample, runs: number, label: string): string {
  const flag = s.problems.length ? `  SUSPICIOUS: ${s.problems.join('; ')}` : '';
  return (
    `  run ${s.run}/${runs}  ${label.padEnd(10)} ${formatBytes(s.file.size).padStart(6)}  ` +
    `${Math.round(s.rps).toLocaleString('en-US').padStart(8)} req/s  ` +
    `${formatMicros(s.cpuUsPerReq).padStart(6)} µs/req  server core ${formatPercent(s.serverCoreBusy).padStart(4)}  ` +
    `wrk core ${formatPercent(s.clientCoreBusy).padStart(4)}  p99 ${Number.isFinite(s.p99Ms) ? s.p99Ms.toFixed(2) : '—'} ms` +
    `  others ${formatPercent(s.others)}${s.background > NOISY ? `  (background before: ${formatPercent(s.background)})` : ''}${flag}`
  );
}

/**
 * Waits (up to ctx.maxWaitSec) until both cores are quiet with no server running, sampling one
 * second at a time. Returns the last sample's busiest core load.
 */
async function waitQuiet(ctx: BenchContext): Promise<number> {
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

/**
 * Above this share of a core used by other processes (idle before a run, or "others" during a
 * measurement), the machine is not quiet enough to trust the figure.
 */
const NOISY = 0.05;

/** Busy share of both cores over one second with no server running: other processes' noise. */
async function backgroundLoad(ctx: BenchContext): Promise<{ readonly worst: number; readonly text: string }> {
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

function ratio(a: number, b: number): string {
  return Number.isFinite(a) && Number.isFinite(b) && b > 0 ? `${(a / b).toFixed(2)}x` : '—';
}

// ---------------------------------------------------------------------------------------------

export async function runStatic(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work');
  const env: Env = { ctx, work, www: join(work, 'www') };
  mkdirSync(work, { recursive: true });
  ensureFiles(env.www);

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const ready: { peer: Peer; spec: ServerSpec }[] = [];
  const skipped: { peer: Peer; reason: string }[] = [];
  const used = new Set<number>();
  for (const peer of wanted) {
    const port = await pickPort(used);
    used.add(port);
    const p = await peer.prepare(env, port);
    if (p.ok) {
      ready.push({ peer, spec: p.spec });
      console.log(`  ${peer.label.padEnd(10)} ${p.info}`);
    } else {
      skipped.push({ peer, reason: p.reason });
      console.log(`  ${peer.label.padEnd(10)} SKIPPED: ${p.reason}`);
    }
  }
  if (ready.length === 0) {
    console.error('\nNo server can run; nothing to measure.');
    return 1;
  }

  console.log(
    `\nServer core ${ctx.serverCore}, wrk core ${ctx.clientCore} (wrk -t1 -c${ctx.connections} -d${ctx.durationSec}s, ` +
      `warm-up ${ctx.warmupSec}s), ${ctx.runs} interleaved run(s), USER_HZ ${clockTicksPerSecond()}`,
  );
  console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

  const samples: Sample[] = [];
  const failures = new Map<PeerId, string[]>();
  const fail = (id: PeerId, msg: string) => {
    failures.set(id, [...(failures.get(id) ?? []), msg]);
    console.log(`  ${id}: ${msg.split('\n').join('\n    ')}`);
  };

  for (let run = 1; run <= ctx.runs; run++) {
    for (const { peer, spec } of ready) {
      const background = await waitQuiet(ctx);
      let server: RunningServer;
      try {
        server = await startServer(spec);
      } catch (e) {
        fail(peer.id, `run ${run}: did not start: ${(e as Error).message}`);
        continue;
      }
      try {
        const bad = await verify(spec.port, env.www);
        if (bad) {
          fail(peer.id, `run ${run}: not measured, content check failed: ${bad}`);
          continue;
        }
        for (const file of FILES) {
          if (server.exitInfo) break;
          const s = await measure(env, server, peer, file, run, background);
          samples.push(s);
          console.log(progressLine(s, ctx.runs, peer.label));
        }
        if (server.exitInfo) fail(peer.id, `run ${run}: server ${describeExit(server.exitInfo)}:\n${server.logTail()}`);
      } catch (e) {
        fail(peer.id, `run ${run}: ${(e as Error).message}`);
      } finally {
        await server.stop();
      }
    }
  }

  console.log(`after: ${(await backgroundLoad(ctx)).text}`);

  // -------------------------------------------------------------------------------------------
  // Summary

  interface Row {
    readonly peer: Peer;
    readonly file: BenchFile;
    readonly rps: number;
    readonly cpu: number;
    /** Every sample of this (file, server). */
    readonly ss: readonly Sample[];
    /** The samples the medians are taken over: the undisturbed ones, or all if none is. */
    readonly used: readonly Sample[];
  }
  const disturbed = (s: Sample) => s.others > NOISY;
  const rows: Row[] = [];
  for (const file of FILES) {
    for (const { peer } of ready) {
      const ss = samples.filter((s) => s.peer === peer.id && s.file === file);
      const clean = ss.filter((s) => !disturbed(s));
      const used = clean.length > 0 ? clean : ss;
      rows.push({ peer, file, ss, used, rps: median(used.map((s) => s.rps)), cpu: median(used.map((s) => s.cpuUsPerReq)) });
    }
  }
  const nginxRow = (file: BenchFile) => rows.find((r) => r.file === file && r.peer.id === 'nginx');

  const columns: Column[] = [
    { title: 'File' },
    { title: 'Server' },
    { title: 'req/s (median)', align: 'right' },
    { title: 'req/s per run' },
    { title: 'vs nginx', align: 'right' },
    { title: 'CPU µs/req', align: 'right' },
    { title: 'CPU vs nginx', align: 'right' },
    { title: 'server core', align: 'right' },
    { title: 'wrk core', align: 'right' },
    { title: 'p99 ms', align: 'right' },
    { title: 'notes' },
  ];
  const body = rows.map((r) => {
    const ng = nginxRow(r.file);
    const problems = [...new Set(r.ss.flatMap((s) => s.problems))];
    const missing = ctx.runs - r.ss.length;
    const noisy = r.ss.filter(disturbed).map((s) => `run ${s.run} (others ${formatPercent(s.others)})`);
    const notes = [
      ...(noisy.length === 0
        ? []
        : noisy.length < r.ss.length
          ? [`disturbed, left out of the medians: ${noisy.join(', ')}`]
          : [`DISTURBED (all runs): ${noisy.join(', ')}`]),
      ...(problems.length ? [`SUSPICIOUS: ${problems.join('; ')}`] : []),
      ...(missing > 0 ? [`${missing} of ${ctx.runs} runs missing`] : []),
    ];
    return [
      formatBytes(r.file.size),
      r.peer.label,
      formatRate(r.rps),
      r.ss.map((s) => `${formatRate(s.rps)}${disturbed(s) ? '*' : ''}`).join(' / ') || '—',
      r.peer.id === 'nginx' ? (Number.isFinite(r.rps) ? '1.00x' : '—') : ratio(r.rps, ng?.rps ?? Number.NaN),
      formatMicros(r.cpu),
      r.peer.id === 'nginx' ? (Number.isFinite(r.cpu) ? '1.00x' : '—') : ratio(r.cpu, ng?.cpu ?? Number.NaN),
      formatPercent(median(r.used.map((s) => s.serverCoreBusy))),
      formatPercent(median(r.used.map((s) => s.clientCoreBusy))),
      (() => {
        const p = median(r.used.map((s) => s.p99Ms));
        return Number.isFinite(p) ? p.toFixed(2) : '—';
      })(),
      notes.join('; '),
    ];
  });

  console.log(`\n## Static files: ${ready.map((r) => r.peer.label).join(' vs ')}\n`);
  console.log(markdownTable(columns, body));
  console.log(
    `\nwrk -t1 -c${ctx.connections} -d${ctx.durationSec}s on core ${ctx.clientCore}, server on core ${ctx.serverCore}; ` +
      `median of ${ctx.runs} interleaved run(s). "CPU µs/req": busy time of the server core (/proc/stat cpu${ctx.serverCore}: ` +
      `user+nice+system+irq+softirq) per completed request — lower is better; "CPU vs nginx" above 1.00x means more CPU than nginx. ` +
      `When "wrk core" is near 100% the client is the bottleneck and req/s understates the faster server. ` +
      `Medians are over the undisturbed runs (see notes).`,
  );
  const nDisturbed = samples.filter(disturbed).length;
  if (nDisturbed > 0) {
    console.log(
      `\nWARNING: ${nDisturbed} of ${samples.length} measurements were disturbed by other processes (they used more than ` +
        `${formatPercent(NOISY)} of a core: "others" above); those are marked * and left out of the medians when the ` +
        'same row has undisturbed runs. Run again on a quiet machine for clean figures.',
    );
  }
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);

  console.log('\n### Targets (issue 2): Switchyard req/s vs nginx\n');
  for (const file of FILES) {
    const target = TARGETS.get(file.size);
    if (target === undefined) continue;
    const sy = rows.find((r) => r.file === file && r.peer.id === 'switchyard');
    const ng = nginxRow(file);
    const label = `- ${formatBytes(file.size)} >= ${target.toFixed(1)}x nginx:`;
    if (!sy || !ng || !Number.isFinite(sy.rps) || !Number.isFinite(ng.rps) || ng.rps <= 0) {
      console.log(`${label} n/a (${!sy || !Number.isFinite(sy.rps) ? 'Switchyard' : 'nginx'} not measured)`);
      continue;
    }
    const r = sy.rps / ng.rps;
    const suspicious =
      (sy.used.some((s) => s.problems.length > 0) || ng.used.some((s) => s.problems.length > 0) ? ' (SUSPICIOUS row, see notes)' : '') +
      (sy.used.some(disturbed) || ng.used.some(disturbed) ? ' (DISTURBED by other processes, see notes)' : '');
    const cpu = Number.isFinite(sy.cpu) && Number.isFinite(ng.cpu) && sy.cpu > 0 ? `; CPU per request ${(sy.cpu / ng.cpu).toFixed(2)}x nginx's` : '';
    console.log(`${label} ${r.toFixed(2)}x ${r >= target ? 'PASS' : 'MISS'}${suspicious}${cpu}`);
  }

  if (failures.size > 0) {
    console.log('\nFailures:');
    for (const [id, msgs] of failures) for (const m of msgs) console.log(`- ${id}: ${m.split('\n')[0]}`);
  }
  return samples.length > 0 ? 0 : 1;
}

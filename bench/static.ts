import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { clockTicksPerSecond } from './lib/cpu.ts';
import { httpGet } from './lib/http.ts';
import { interleave, prepareAll, printFailures } from './lib/interleave.ts';
import {
  backgroundLoad,
  disturbedWarning,
  formatMs,
  measureWrk,
  pinned,
  progressLine,
  ratio,
  readPackageVersion,
  summarizeRow,
  targetVerdict,
  type RowSummary,
} from './lib/measure.ts';
import type { RunningServer } from './lib/proc.ts';
import { caddyGlobalOptions, caddyPeer, nginxMainContext, nginxPeer, nginxTempPaths, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatBytes, formatMicros, formatPercent, formatRate } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- static`: Switchyard's static handler, nginx, Caddy and sirv, side by side in one run.
// Server on core 0, wrk on core 1; interleaved runs (run -> server -> file); median req/s, ratio
// to nginx and the server core's CPU time per request from /proc/stat.

export const STATIC_IDS = ['switchyard', 'nginx', 'caddy', 'sirv'] as const;
type PeerId = (typeof STATIC_IDS)[number];

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

// ---------------------------------------------------------------------------------------------
// Peers

const switchyard: Peer = {
  id: 'switchyard',
  label: 'Switchyard',
  prepare(env, port) {
    return prepareSwitchyard({
      repo: env.ctx.repoRoot,
      work: env.work,
      configName: 'switchyard.yaml',
      port,
      core: env.ctx.serverCore,
      config: [
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
    });
  },
};

function nginxConf(dir: string, www: string, port: number, temps: readonly string[]): string {
  return `# Written by bench/static.ts; one worker process, sendfile, no access log.
${nginxMainContext(dir)}
http {
    access_log off;
    sendfile on;
    tcp_nopush on;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${nginxTempPaths(dir, temps)}
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

const nginx: Peer = nginxPeer<Env>('nginx', (env, dir, port, temps) => nginxConf(dir, env.www, port, temps));

function caddyfile(dir: string, www: string, port: number): string {
  return `# Written by bench/static.ts: admin API off, logs discarded, plain HTTP/1.1 (what wrk speaks),
# file_server with its defaults (sendfile through Go's io.Copy, ETag and Last-Modified).
${caddyGlobalOptions(dir, 'h1')}
http://127.0.0.1:${port} {
	root * ${www}
	file_server
}
`;
}

const caddy: Peer = caddyPeer<Env>('caddy', (env, dir, port) => caddyfile(dir, env.www, port));

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

const PEERS: readonly Peer[] = [switchyard, nginx, caddy, sirvPeer];

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
  const url = `http://127.0.0.1:${server.spec.port}/${file.name}`;
  const m = await measureWrk({ ctx: env.ctx, url, server });
  const problems = [...m.problems];
  // wrk prints "read" rounded to 2 decimals of its unit; allow 2% for that.
  if (m.requests > 0 && m.wrk.bytesRead / m.requests < file.size * 0.98) {
    problems.push(`only ${Math.round(m.wrk.bytesRead / m.requests)} bytes read per request (file is ${file.size})`);
  }
  return {
    peer: peer.id,
    file,
    run,
    rps: m.rps,
    requests: m.requests,
    cpuUsPerReq: m.cpuUsPerReq,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: m.p99Ms,
    background,
    others: m.others,
    problems,
  };
}

// ---------------------------------------------------------------------------------------------

export async function runStatic(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work');
  const env: Env = { ctx, work, www: join(work, 'www') };
  mkdirSync(work, { recursive: true });
  ensureFiles(env.www);

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const { ready, skipped } = await prepareAll(wanted, env, new Set<number>());
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
  const failures = await interleave({
    ctx,
    ready,
    verify: (server) => verify(server.spec.port, env.www),
    async measure(server, { peer }, run, background) {
      for (const file of FILES) {
        if (server.exitInfo) break;
        const s = await measure(env, server, peer, file, run, background);
        samples.push(s);
        console.log(progressLine(s, ctx.runs, `${peer.label.padEnd(10)} ${formatBytes(s.file.size).padStart(6)}`));
      }
    },
  });

  console.log(`after: ${(await backgroundLoad(ctx)).text}`);

  // -------------------------------------------------------------------------------------------
  // Summary

  interface Row extends RowSummary<Sample> {
    readonly peer: Peer;
    readonly file: BenchFile;
  }
  const rows: Row[] = [];
  for (const file of FILES) {
    for (const { peer } of ready) {
      const ss = samples.filter((s) => s.peer === peer.id && s.file === file);
      rows.push({ peer, file, ...summarizeRow(ss, ctx.runs) });
    }
  }
  const nginxRow = (file: BenchFile) => rows.find((r) => r.file === file && r.peer.id === 'nginx');
  const caddyRow = (file: BenchFile) => rows.find((r) => r.file === file && r.peer.id === 'caddy');

  const columns: Column[] = [
    { title: 'File' },
    { title: 'Server' },
    { title: 'req/s (median)', align: 'right' },
    { title: 'req/s per run' },
    { title: 'vs nginx', align: 'right' },
    { title: 'vs Caddy', align: 'right' },
    { title: 'CPU µs/req', align: 'right' },
    { title: 'CPU vs nginx', align: 'right' },
    { title: 'server core', align: 'right' },
    { title: 'wrk core', align: 'right' },
    { title: 'p99 ms', align: 'right' },
    { title: 'notes' },
  ];
  const body = rows.map((r) => {
    const ng = nginxRow(r.file);
    const cd = caddyRow(r.file);
    return [
      formatBytes(r.file.size),
      r.peer.label,
      formatRate(r.rps),
      r.perRun,
      r.peer.id === 'nginx' ? (Number.isFinite(r.rps) ? '1.00x' : '—') : ratio(r.rps, ng?.rps ?? Number.NaN),
      ratio(r.rps, cd?.rps ?? Number.NaN),
      formatMicros(r.cpu),
      r.peer.id === 'nginx' ? (Number.isFinite(r.cpu) ? '1.00x' : '—') : ratio(r.cpu, ng?.cpu ?? Number.NaN),
      formatPercent(r.serverCoreBusy),
      formatPercent(r.clientCoreBusy),
      formatMs(r.p99Ms),
      r.notes.join('; '),
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
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);

  console.log('\n### Targets: Switchyard req/s vs nginx\n');
  for (const file of FILES) {
    const target = TARGETS.get(file.size);
    if (target === undefined) continue;
    const sy = rows.find((r) => r.file === file && r.peer.id === 'switchyard');
    console.log(targetVerdict(`- ${formatBytes(file.size)} >= ${target.toFixed(1)}x nginx:`, target, sy, nginxRow(file)));
  }

  printFailures(failures);
  return samples.length > 0 ? 0 : 1;
}

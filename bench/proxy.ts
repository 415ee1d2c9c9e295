import { mkdirSync, writeFileSync } from 'node:fs';
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
  summarizeRow,
  targetVerdict,
  type RowSummary,
} from './lib/measure.ts';
import { commandExists, pickPort, runCaptured, startServer, type RunningServer } from './lib/proc.ts';
import { caddyGlobalOptions, caddyPeer, nginxMainContext, nginxPeer, nginxTempPaths, prepareNginx, prepareNodePeer, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatMicros, formatPercent, formatRate } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- proxy`: wrk -> proxy -> an upstream that answers every request with the same
// 100-byte body. Proxies: Switchyard (proxy handler, resilience features on; and the same with
// the inspect middleware's default rules, for what inspection costs per request), nginx (keepalive
// upstream), HAProxy, Caddy, http-proxy, @fastify/http-proxy and a bare node:http + undici Pool proxy
// (the floor for a Node.js proxy). Proxy on core 0; wrk and the upstream (its own nginx) on
// core 1. Interleaved runs; median req/s, p99, ratio to nginx and the proxy core's CPU time per
// request from /proc/stat.

export const PROXY_IDS = ['switchyard', 'switchyard-inspect', 'nginx', 'haproxy', 'caddy', 'http-proxy', 'fastify', 'undici'] as const;
type PeerId = (typeof PROXY_IDS)[number];

/** Issue 3's target: Switchyard req/s over nginx req/s. */
const TARGET = 0.5;

/** At this share busy, the client core (wrk + upstream) is what limits req/s, not the proxy. */
const CLIENT_BOUND = 0.95;

/** The upstream's answer to every request: 100 bytes of text (no quotes, no escapes for nginx). */
const BODY = 'switchyard-bench-upstream-body-0123456789abcdefghijklmnopqrstuvwxyz'.padEnd(100, '.');
/** The same upstream body for bench/h2.ts's h2 -> h1 proxying. */
export const UPSTREAM_BODY = BODY;

interface Env {
  readonly ctx: BenchContext;
  /** bench/.work/proxy */
  readonly work: string;
  readonly upstreamPort: number;
  readonly upstreamUrl: string;
}

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample {
  readonly peer: PeerId;
  readonly run: number;
  readonly rps: number;
  readonly requests: number;
  /** Proxy core busy time per completed request, µs. */
  readonly cpuUsPerReq: number;
  /** The upstream's own CPU time per completed request, µs (it runs on the client core). */
  readonly upstreamUsPerReq: number;
  readonly serverCoreBusy: number;
  readonly clientCoreBusy: number;
  readonly p99Ms: number;
  /** Busiest core's load from other processes, sampled just before this proxy's run started. */
  readonly background: number;
  /** CPU of anything but the proxy, the upstream, wrk and the harness, in cores (see lib/measure.ts). */
  readonly others: number;
  readonly problems: readonly string[];
}

// ---------------------------------------------------------------------------------------------
// The upstream

/** The upstream's nginx.conf (also bench/h2.ts's upstream). */
export function upstreamConf(dir: string, port: number, temps: readonly string[]): string {
  return `# Written by bench/proxy.ts: the upstream every proxy forwards to. One process, no logs,
# every request answered from memory with the same ${BODY.length}-byte body.
${nginxMainContext(dir)}
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 120s;
    keepalive_requests 1000000;
${nginxTempPaths(dir, temps)}
    default_type text/plain;

    server {
        listen 127.0.0.1:${port};
        server_name localhost;
        location / {
            return 200 "${BODY}";
        }
    }
}
`;
}

// ---------------------------------------------------------------------------------------------
// Proxies

/**
 * Switchyard's proxy; `inspect`: with the inspect middleware and its default rules on (the same
 * proxy otherwise), so that the table shows what inspection costs per request.
 */
function switchyardPeer(inspect: boolean): Peer {
  return {
    id: inspect ? 'switchyard-inspect' : 'switchyard',
    label: inspect ? 'Switchyard + inspect (default rules)' : 'Switchyard',
    prepare(env, port) {
      return prepareSwitchyard({
        repo: env.ctx.repoRoot,
        work: env.work,
        configName: inspect ? 'switchyard-inspect.yaml' : 'switchyard.yaml',
        port,
        core: env.ctx.serverCore,
        // All resilience features on: breaker and outlier detection (on by default, spelled out),
        // retries with their budget, and active health checks every 5 s.
        config: [
          '# Written by bench/proxy.ts.',
          'listeners:',
          '  - name: web',
          '    protocol: http',
          `    address: 127.0.0.1:${port}`,
          `    middleware: { accessLog: false, requestId: false${inspect ? ', inspect: { defaultRules: true }' : ''} }`,
          '    routes:',
          '      - match: { path: /* }',
          '        handler: { type: proxy, upstream: up }',
          'upstreams:',
          '  up:',
          `    targets: ['${env.upstreamUrl}']`,
          '    health: { path: /, interval: 5s }',
          '    breaker: {}',
          '    outlier: {}',
          '    retry: {}',
          '',
        ].join('\n'),
      });
    },
  };
}

const switchyard = switchyardPeer(false);

function nginxProxyConf(dir: string, port: number, upstreamPort: number, connections: number, temps: readonly string[]): string {
  return `# Written by bench/proxy.ts: one worker process, no access log, keep-alive to the upstream.
${nginxMainContext(dir)}
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${nginxTempPaths(dir, temps)}

    upstream up {
        server 127.0.0.1:${upstreamPort};
        keepalive ${connections};
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:${port};
        server_name localhost;
        location / {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
    }
}
`;
}

// keepalive = wrk's connection count, so every client connection can have its upstream one.
const nginx: Peer = nginxPeer<Env>('nginx', (env, dir, port, temps) => nginxProxyConf(dir, port, env.upstreamPort, Math.max(64, env.ctx.connections), temps));

function haproxyConf(port: number, upstreamPort: number): string {
  return `# Written by bench/proxy.ts: one thread, http mode, no logging, upstream connections reused.
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 60s
    timeout server 60s
    timeout http-keep-alive 60s

frontend fe
    bind 127.0.0.1:${port}
    default_backend up

backend up
    http-reuse always
    server up1 127.0.0.1:${upstreamPort}
`;
}

const haproxy: Peer = {
  id: 'haproxy',
  label: 'HAProxy',
  async prepare(env, port) {
    const bin = ['haproxy', '/usr/sbin/haproxy'].find((b) => commandExists(b));
    if (!bin) return { ok: false, reason: 'haproxy is not installed (install it with `bash bench/install.sh`)' };
    const dir = join(env.work, 'haproxy');
    mkdirSync(dir, { recursive: true });
    const cfg = join(dir, 'haproxy.cfg');
    writeFileSync(cfg, haproxyConf(port, env.upstreamPort));
    const check = await runCaptured(bin, ['-c', '-q', '-f', cfg], 30_000);
    if (check.code !== 0) return { ok: false, reason: `\`haproxy -c\` rejects the generated ${cfg}:\n${`${check.stderr}${check.stdout}`.trim()}` };
    const version = await runCaptured(bin, ['-v'], 10_000).catch(() => undefined);
    return {
      ok: true,
      info: `${version?.stdout.split('\n')[0]?.trim() || bin}; ${cfg}`,
      spec: {
        name: 'HAProxy',
        // -db: foreground, no daemon (stop() signals it directly).
        ...pinned(env.ctx.serverCore, bin, ['-db', '-f', cfg]),
        cwd: dir,
        logFile: join(dir, 'stdout.log'),
        port,
        startTimeoutMs: 15_000,
      },
    };
  },
};

function caddyProxyfile(dir: string, port: number, upstreamPort: number, connections: number): string {
  return `# Written by bench/proxy.ts: admin API off, logs discarded, plain HTTP/1.1 (what wrk speaks).
# reverse_proxy keeps connections to the upstream alive by default; its idle pool per host (32
# by default) is raised to wrk's connection count, as nginx's keepalive is.
${caddyGlobalOptions(dir, 'h1')}
http://127.0.0.1:${port} {
	reverse_proxy 127.0.0.1:${upstreamPort} {
		transport http {
			keepalive_idle_conns_per_host ${connections}
		}
	}
}
`;
}

const caddy: Peer = caddyPeer<Env>('caddy', (env, dir, port) => caddyProxyfile(dir, port, env.upstreamPort, Math.max(64, env.ctx.connections)));

/** A peer script in bench/peers run with tsx: `<script> <port> <upstream-url>`. */
function nodePeer(id: PeerId, label: string, script: string, packages: readonly string[], describe: (versions: string) => string): Peer {
  return {
    id,
    label,
    async prepare(env, port) {
      const repo = env.ctx.repoRoot;
      return prepareNodePeer({ repo, work: env.work, id, label, script, extraArgs: [env.upstreamUrl], packages, describe, port, core: env.ctx.serverCore });
    },
  };
}

const PEERS: readonly Peer[] = [
  switchyard,
  switchyardPeer(true),
  nginx,
  haproxy,
  caddy,
  nodePeer('http-proxy', 'http-proxy', 'http-proxy-server.ts', ['http-proxy'], (v) => `${v} on node:http, keep-alive http.Agent`),
  nodePeer('fastify', '@fastify/http-proxy', 'fastify-proxy-server.ts', ['@fastify/http-proxy', 'fastify'], (v) => v),
  nodePeer('undici', 'bare undici', 'bare-undici-proxy.ts', ['undici'], (v) => `node:http + ${v} Pool.dispatch with a raw handler, nothing else (the floor)`),
];

// ---------------------------------------------------------------------------------------------
// Measurement

/** One GET through the proxy (fresh connection): must be the upstream's 200 with its exact body. */
async function verify(port: number): Promise<string | undefined> {
  try {
    const r = await httpGet(`http://127.0.0.1:${port}/`);
    if (r.status !== 200) return `GET / answered ${r.status}`;
    if (r.body.toString('latin1') !== BODY) {
      return `GET / returned ${r.body.length} bytes that are not the upstream's ${BODY.length}-byte body: ${JSON.stringify(r.body.subarray(0, 120).toString('latin1'))}`;
    }
  } catch (e) {
    return `GET / failed: ${(e as Error).message}`;
  }
  return undefined;
}

async function measure(env: Env, server: RunningServer, upstream: RunningServer, peer: Peer, run: number, background: number): Promise<Sample> {
  const m = await measureWrk({ ctx: env.ctx, url: `http://127.0.0.1:${server.spec.port}/`, server, helperGroups: [upstream.pid] });
  const problems = [...m.problems];
  // Headers differ from proxy to proxy, the body does not: at least the body per response.
  if (m.requests > 0 && m.wrk.bytesRead / m.requests < BODY.length) {
    problems.push(`only ${Math.round(m.wrk.bytesRead / m.requests)} bytes read per response (the body alone is ${BODY.length})`);
  }
  if (upstream.exitInfo) problems.push('the upstream died during the run');
  return {
    peer: peer.id,
    run,
    rps: m.rps,
    requests: m.requests,
    cpuUsPerReq: m.cpuUsPerReq,
    upstreamUsPerReq: m.requests > 0 ? (m.helperCpuSeconds * 1e6) / m.requests : Number.NaN,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: m.p99Ms,
    background,
    others: m.others,
    problems,
  };
}

// ---------------------------------------------------------------------------------------------

export async function runProxy(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/proxy');
  mkdirSync(work, { recursive: true });
  const used = new Set<number>();
  const upstreamPort = await pickPort(used);
  used.add(upstreamPort);
  const env: Env = { ctx, work, upstreamPort, upstreamUrl: `http://127.0.0.1:${upstreamPort}` };

  // The upstream: its own nginx on the client core (see bench/README.md for why there).
  const up = await prepareNginx({
    name: 'upstream (nginx)',
    dir: join(work, 'upstream'),
    port: upstreamPort,
    core: ctx.clientCore,
    conf: (dir, temps) => upstreamConf(dir, upstreamPort, temps),
  });
  if (!up.ok) {
    console.error(`bench proxy: the upstream cannot run: ${up.reason}`);
    return 1;
  }
  console.log(`  ${'upstream'.padEnd(10)} ${up.info} (core ${ctx.clientCore}, ${BODY.length}-byte body)`);

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const { ready, skipped } = await prepareAll(wanted, env, used);
  if (ready.length === 0) {
    console.error('\nNo proxy can run; nothing to measure.');
    return 1;
  }

  console.log(
    `\nProxy core ${ctx.serverCore}; wrk and the upstream on core ${ctx.clientCore} (wrk -t1 -c${ctx.connections} -d${ctx.durationSec}s, ` +
      `warm-up ${ctx.warmupSec}s), ${ctx.runs} interleaved run(s), USER_HZ ${clockTicksPerSecond()}`,
  );
  console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

  let upstream: RunningServer | undefined;
  let upstreamStarts = 0;
  const samples: Sample[] = [];
  try {
    const failures = await interleave({
      ctx,
      ready,
      // The upstream stays up for the whole benchmark; started again (at most once per proxy
      // run) if it ever died.
      async beforeStart() {
        if (upstream && !upstream.exitInfo) return;
        if (upstream) console.log(`  upstream ${upstream.exitInfo ? 'died' : 'gone'}; starting it again`);
        upstreamStarts++;
        upstream = await startServer(up.spec);
        const body = await httpGet(`${env.upstreamUrl}/`);
        if (body.body.toString('latin1') !== BODY) throw new Error(`the upstream's body is not the ${BODY.length} bytes configured`);
      },
      verify: (server) => verify(server.spec.port),
      async measure(server, { peer }, run, background) {
        if (!upstream) throw new Error('no upstream running');
        const s = await measure(env, server, upstream, peer, run, background);
        samples.push(s);
        console.log(
          progressLine(s, ctx.runs, peer.label.padEnd(19), {
            clientCoreName: 'client core',
            extra: `  upstream ${formatMicros(s.upstreamUsPerReq)} µs/req`,
          }),
        );
      },
    });
    console.log(`after: ${(await backgroundLoad(ctx)).text}`);
    printTable(ctx, ready.map((r) => r.peer), samples, skipped, upstreamStarts);
    printFailures(failures);
  } finally {
    await upstream?.stop();
  }
  return samples.length > 0 ? 0 : 1;
}

function printTable(ctx: BenchContext, peers: readonly Peer[], samples: readonly Sample[], skipped: readonly { peer: Peer; reason: string }[], upstreamStarts: number): void {
  interface Row extends RowSummary<Sample> {
    readonly peer: Peer;
    readonly upstreamUs: number;
  }
  const rows: Row[] = peers.map((peer) => {
    const summary = summarizeRow(
      samples.filter((s) => s.peer === peer.id),
      ctx.runs,
    );
    const upstreamUs = summary.used.map((s) => s.upstreamUsPerReq).sort((a, b) => a - b);
    return { peer, ...summary, upstreamUs: upstreamUs[upstreamUs.length >> 1] ?? Number.NaN };
  });
  const ng = rows.find((r) => r.peer.id === 'nginx');
  const cd = rows.find((r) => r.peer.id === 'caddy');
  const columns: Column[] = [
    { title: 'Proxy' },
    { title: 'req/s (median)', align: 'right' },
    { title: 'req/s per run' },
    { title: 'vs nginx', align: 'right' },
    { title: 'vs Caddy', align: 'right' },
    { title: 'CPU µs/req', align: 'right' },
    { title: 'CPU vs nginx', align: 'right' },
    { title: 'p99 ms', align: 'right' },
    { title: 'proxy core', align: 'right' },
    { title: 'client core', align: 'right' },
    { title: 'upstream µs/req', align: 'right' },
    { title: 'notes' },
  ];
  const isNginx = (r: Row) => r.peer.id === 'nginx';
  const body = rows.map((r) => [
    r.peer.label,
    formatRate(r.rps),
    r.perRun,
    isNginx(r) ? (Number.isFinite(r.rps) ? '1.00x' : '—') : ratio(r.rps, ng?.rps ?? Number.NaN),
    ratio(r.rps, cd?.rps ?? Number.NaN),
    formatMicros(r.cpu),
    isNginx(r) ? (Number.isFinite(r.cpu) ? '1.00x' : '—') : ratio(r.cpu, ng?.cpu ?? Number.NaN),
    formatMs(r.p99Ms),
    formatPercent(r.serverCoreBusy),
    formatPercent(r.clientCoreBusy),
    formatMicros(r.upstreamUs),
    [...(r.clientCoreBusy >= CLIENT_BOUND ? ['client-bound: req/s is a lower bound'] : []), ...r.notes].join('; '),
  ]);

  console.log(`\n## Proxy, ${BODY.length}-byte upstream response: ${peers.map((p) => p.label).join(' vs ')}\n`);
  console.log(markdownTable(columns, body));
  console.log(
    `\nwrk -t1 -c${ctx.connections} -d${ctx.durationSec}s and the upstream (nginx, return 200) on core ${ctx.clientCore}, proxy on core ${ctx.serverCore}; ` +
      `median of ${ctx.runs} interleaved run(s). "CPU µs/req": busy time of the proxy core (/proc/stat cpu${ctx.serverCore}: ` +
      `user+nice+system+irq+softirq) per completed request — lower is better; "CPU vs nginx" above 1.00x means more CPU than nginx. ` +
      `"client core" is wrk plus the upstream: near 100% there, the client side is the bottleneck and req/s understates the faster proxy. ` +
      `Medians are over the undisturbed runs (see notes).`,
  );
  if (upstreamStarts > 1) console.log(`\nNOTE: the upstream had to be started ${upstreamStarts} times (it died in between; see the runs above).`);
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);

  console.log('\n### Target: Switchyard req/s vs nginx, all resilience features on\n');
  console.log(targetVerdict(`- >= ${TARGET.toFixed(1)}x nginx:`, TARGET, rows.find((r) => r.peer.id === 'switchyard'), ng));
  if (ng && ng.clientCoreBusy >= CLIENT_BOUND) {
    console.log(
      `- nginx was client-bound (client core ${formatPercent(ng.clientCoreBusy)}): its req/s is a lower bound, so every "vs nginx" ratio ` +
        'flatters the slower proxies; "CPU vs nginx" is the like-for-like cost.',
    );
  }
  const plain = rows.find((r) => r.peer.id === 'switchyard');
  const inspected = rows.find((r) => r.peer.id === 'switchyard-inspect');
  if (plain && inspected && Number.isFinite(plain.cpu) && Number.isFinite(inspected.cpu) && plain.cpu > 0) {
    const extra = inspected.cpu / plain.cpu - 1;
    console.log(
      `- inspection (default rules): ${formatMicros(inspected.cpu)} vs ${formatMicros(plain.cpu)} CPU µs/req, ${extra >= 0 ? '+' : ''}${(extra * 100).toFixed(1)}% ` +
        `(goal: at most +10%): ${extra <= 0.1 ? 'met' : 'not met'}`,
    );
  }
  const floor = rows.find((r) => r.peer.id === 'undici');
  if (floor && ng && Number.isFinite(floor.rps) && Number.isFinite(ng.rps) && ng.rps > 0) {
    console.log(`- for reference, the bare node:http + undici proxy (the floor): ${(floor.rps / ng.rps).toFixed(2)}x nginx`);
  }
}

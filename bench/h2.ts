import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { h2Request, withH2Session } from './lib/h2-client.ts';
import { h2loadProblems, runH2load, type H2loadResult } from './lib/h2load.ts';
import { interleave, prepareAll, printFailures } from './lib/interleave.ts';
import {
  backgroundLoad,
  disturbedWarning,
  formatMs,
  isDisturbed,
  measureLoad,
  ratio,
  progressLine,
  summarizeRow,
  type RowSummary,
  type RunSample,
} from './lib/measure.ts';
import { commandExists, pickPort, runCaptured, startServer, type RunningServer } from './lib/proc.ts';
import { caddyGlobalOptions, caddyPeer, nginxMainContext, nginxPeer, nginxTempPaths, prepareNginx, prepareNodePeer, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatMicros, formatPercent, formatRate, median } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import { makeCertificate } from './lib/tls-load.ts';
import { UPSTREAM_BODY, upstreamConf } from './proxy.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- h2`: HTTP/2 over TLS, h2load -c16 -m16 on core 1, each server alone on core 0.
//
// (a) small: a fixed 100-byte response (Switchyard's `respond` handler, nginx `return 200`, Caddy
//     `respond`, the bare node:http2 peer's cached Buffer).
// (b) static: a 4 KiB file (Switchyard `static`, nginx `root`, Caddy `file_server`, the bare peer
//     from memory).
// (c) proxy: h2 -> HTTP/1.1 proxying to the proxy benchmark's upstream (its own nginx, `return
//     200` with a 100-byte body, pinned to core 1 next to h2load): Switchyard `proxy` vs nginx
//     `proxy_pass` vs Caddy `reverse_proxy`. The bare peer does not proxy.
//
// One EC P-256 certificate made with openssl at bench start, for every server. Interleaved runs
// (run -> server -> scenario); median req/s, ratios to the bare node:http2 server, Caddy and nginx,
// and the server core's CPU time per request from /proc/stat.

export const H2_IDS = ['switchyard', 'nginx', 'caddy', 'node'] as const;
type PeerId = (typeof H2_IDS)[number];
type Scenario = 'small' | 'static' | 'proxy';
const SCENARIOS: readonly Scenario[] = ['small', 'static', 'proxy'];

/** h2load -c16 -m16: 16 connections, 16 streams in flight on each (the load the goals are stated for). */
const CONNECTIONS = 16;
const STREAMS = 16;

/** The small response's body: 100 bytes, not the upstream's (so a mixed-up route shows). */
const SMALL_BODY = 'switchyard-bench-h2-small-response-0123456789abcdefghijklmnopqrstuvwxyz'.padEnd(100, '.');
const FILE = { name: '4k.bin', size: 4 << 10 } as const;

const PATH: Record<Scenario, string> = { small: '/small', static: `/${FILE.name}`, proxy: '/proxy/' };
const SIZE: Record<Scenario, number> = { small: SMALL_BODY.length, static: FILE.size, proxy: UPSTREAM_BODY.length };

const SCENARIO_TITLE: Record<Scenario, string> = {
  small: `Small response (${SMALL_BODY.length} bytes) over h2`,
  static: '4 KiB static file over h2',
  proxy: `h2 -> HTTP/1.1 proxy (upstream: nginx return 200, ${UPSTREAM_BODY.length}-byte body)`,
};

/** The goals on Switchyard's req/s over the peer's (nginx is reported, with no goal). */
const GOALS: readonly { readonly scenario: Scenario; readonly peer: PeerId; readonly goal: number }[] = [
  { scenario: 'static', peer: 'node', goal: 0.9 },
  { scenario: 'static', peer: 'caddy', goal: 2.0 },
];

/** At this share busy the client core (h2load, plus the upstream for proxy) is what limits req/s. */
const CLIENT_BOUND = 0.95;

interface Env {
  readonly ctx: BenchContext;
  /** bench/.work/h2 */
  readonly work: string;
  readonly www: string;
  readonly cert: string;
  readonly key: string;
  readonly upstreamPort: number;
}

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  /** Whether it serves /proxy/* (h2 -> h1 proxying). */
  readonly proxies: boolean;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample extends RunSample {
  readonly peer: PeerId;
  readonly scenario: Scenario;
  readonly background: number;
  /** h2load's own CPU per request, µs. */
  readonly clientUsPerReq: number;
  /** The upstream's CPU per request, µs (proxy scenario). */
  readonly upstreamUsPerReq: number;
  /** h2load's mean request time, ms (it reports no percentiles). */
  readonly meanMs: number;
  readonly tls: string;
}

// ---------------------------------------------------------------------------------------------
// Peers

const switchyard: Peer = {
  id: 'switchyard',
  label: 'Switchyard',
  proxies: true,
  prepare(env, port) {
    return prepareSwitchyard({
      repo: env.ctx.repoRoot,
      work: env.work,
      configName: 'switchyard.yaml',
      port,
      core: env.ctx.serverCore,
      // HTTP/2 is on by default over TLS (ALPN h2, then http/1.1). The proxy route's upstream is
      // bench/proxy.ts's: all resilience features on.
      config: [
        '# Written by bench/h2.ts.',
        'listeners:',
        '  - name: web',
        '    protocol: http',
        `    address: 127.0.0.1:${port}`,
        `    tls: { certificates: [{ cert: ${JSON.stringify(env.cert)}, key: ${JSON.stringify(env.key)} }] }`,
        '    middleware: { accessLog: false, requestId: false }',
        '    routes:',
        '      - match: { path: /small }',
        `        handler: { type: respond, body: ${JSON.stringify(SMALL_BODY)}, contentType: text/plain }`,
        '      - match: { path: /proxy/* }',
        '        handler: { type: proxy, upstream: up }',
        '      - match: { path: /* }',
        `        handler: { type: static, root: ${JSON.stringify(env.www)} }`,
        'upstreams:',
        '  up:',
        `    targets: ['http://127.0.0.1:${env.upstreamPort}']`,
        '    health: { path: /, interval: 5s }',
        '    breaker: {}',
        '    outlier: {}',
        '    retry: {}',
        '',
      ].join('\n'),
    });
  },
};

/** Upstream connections kept alive by nginx and Caddy: one per stream h2load keeps in flight. */
const UPSTREAM_KEEPALIVE = CONNECTIONS * STREAMS;

function nginxConf(dir: string, env: Env, port: number, temps: readonly string[]): string {
  return `# Written by bench/h2.ts: one worker process, no access log, HTTP/2 over TLS (nginx 1.22
# syntax: listen ... ssl http2), keep-alive to the upstream.
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
        application/octet-stream bin;
    }
    default_type application/octet-stream;

    upstream up {
        server 127.0.0.1:${env.upstreamPort};
        keepalive ${UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:${port} ssl http2;
        server_name localhost;
        ssl_certificate ${env.cert};
        ssl_certificate_key ${env.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        root ${env.www};
        location = /small {
            default_type text/plain;
            return 200 "${SMALL_BODY}";
        }
        location /proxy/ {
            proxy_pass http://up;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
        }
        location / {
        }
    }
}
`;
}

const nginx: Peer = { ...nginxPeer<Env>('nginx', (env, dir, port, temps) => nginxConf(dir, env, port, temps)), proxies: true };

function caddyfile(env: Env, dir: string, port: number): string {
  return `# Written by bench/h2.ts: admin API off, logs discarded, HTTP/1.1 and HTTP/2 over TLS (no
# HTTP/3 UDP listener), the benchmark's certificate, no automatic HTTPS.
${caddyGlobalOptions(dir, 'h1 h2')}
https://127.0.0.1:${port} {
	tls ${env.cert} ${env.key}
	handle /small {
		header Content-Type text/plain
		respond "${SMALL_BODY}" 200
	}
	handle /proxy/* {
		reverse_proxy 127.0.0.1:${env.upstreamPort} {
			transport http {
				keepalive_idle_conns_per_host ${UPSTREAM_KEEPALIVE}
			}
		}
	}
	handle {
		root * ${env.www}
		file_server
	}
}
`;
}

const caddy: Peer = { ...caddyPeer<Env>('caddy', (env, dir, port) => caddyfile(env, dir, port)), proxies: true };

const bareNode: Peer = {
  id: 'node',
  label: 'node:http2',
  proxies: false,
  async prepare(env, port) {
    return prepareNodePeer({
      repo: env.ctx.repoRoot,
      work: env.work,
      id: 'node',
      label: 'node:http2',
      script: 'h2-bare-server.ts',
      extraArgs: [env.cert, env.key, join(env.www, FILE.name), SMALL_BODY],
      packages: [],
      describe: () => `bare node:http2 ${process.version} secure server, 'stream' API, file and body from memory`,
      port,
      core: env.ctx.serverCore,
    });
  },
};

const PEERS: readonly Peer[] = [switchyard, nginx, caddy, bareNode];

// ---------------------------------------------------------------------------------------------
// Measurement

/** One h2 session: ALPN must pick h2; each path's answer must be exactly what the scenario expects. */
async function verify(env: Env, port: number, peer: Peer): Promise<string | undefined> {
  const file = readFileSync(join(env.www, FILE.name));
  const expected: Record<Scenario, Buffer> = { small: Buffer.from(SMALL_BODY), static: file, proxy: Buffer.from(UPSTREAM_BODY) };
  try {
    const { result, alpn } = await withH2Session(`https://127.0.0.1:${port}`, readFileSync(env.cert, 'utf8'), 10_000, async (session) => {
      for (const scenario of SCENARIOS) {
        if (scenario === 'proxy' && !peer.proxies) continue;
        const r = await h2Request(session, { path: PATH[scenario] });
        if (r.status !== 200) return `GET ${PATH[scenario]} over h2 answered ${r.status}`;
        if (!r.body.equals(expected[scenario])) {
          return `GET ${PATH[scenario]} over h2 returned ${r.body.length} bytes that are not the expected ${expected[scenario].length}: ${JSON.stringify(r.body.subarray(0, 80).toString('latin1'))}`;
        }
      }
      return undefined;
    });
    if (alpn !== 'h2') return `ALPN picked ${alpn}, not h2`;
    return result;
  } catch (e) {
    return `h2 check failed: ${(e as Error).message}`;
  }
}

async function measure(env: Env, server: RunningServer, upstream: RunningServer | undefined, peer: Peer, scenario: Scenario, run: number, background: number): Promise<Sample> {
  const { ctx } = env;
  const url = `https://127.0.0.1:${server.spec.port}${PATH[scenario]}`;
  const m = await measureLoad<H2loadResult>({
    ctx,
    server,
    helperGroups: upstream ? [upstream.pid] : [],
    run: (durationSec) => runH2load({ url, durationSec, connections: CONNECTIONS, streams: STREAMS, core: ctx.clientCore }),
  });
  const r = m.load;
  const problems = [...m.problems, ...h2loadProblems(r, 'h2').filter((p) => p !== 'no requests completed')];
  if (r.protocol === undefined) problems.push('h2load reported no application protocol (no ALPN h2?)');
  // h2load's data bytes include the DATA of streams still open when the window closed; allow 2%.
  if (r.requests > 0 && r.dataBytes / r.requests < SIZE[scenario] * 0.98) {
    problems.push(`only ${Math.round(r.dataBytes / r.requests)} body bytes per response (expected ${SIZE[scenario]})`);
  }
  if (scenario === 'proxy' && upstream?.exitInfo) problems.push('the upstream died during the run');
  return {
    peer: peer.id,
    scenario,
    run,
    rps: m.rps,
    cpuUsPerReq: m.cpuUsPerReq,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: Number.NaN,
    others: m.others,
    problems,
    background,
    clientUsPerReq: r.requests > 0 && r.clientCpuSeconds !== undefined ? (r.clientCpuSeconds * 1e6) / r.requests : Number.NaN,
    upstreamUsPerReq: scenario === 'proxy' && r.requests > 0 ? (m.helperCpuSeconds * 1e6) / r.requests : Number.NaN,
    meanMs: r.meanMs,
    tls: [r.tlsProtocol, r.cipher].filter(Boolean).join(' ') || '?',
  };
}

// ---------------------------------------------------------------------------------------------

export async function runH2(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/h2');
  mkdirSync(join(work, 'www'), { recursive: true });
  for (const tool of ['h2load', 'openssl']) {
    if (!commandExists(tool)) {
      console.error(`bench h2: ${tool} is not installed (${tool === 'h2load' ? 'Debian: apt-get install nghttp2-client' : 'it makes the certificate'}; scripts/install-system-deps.sh)`);
      return 1;
    }
  }
  const made = await makeCertificate(work);
  if (typeof made === 'string') {
    console.error(`bench h2: ${made}`);
    return 1;
  }
  const used = new Set<number>();
  const upstreamPort = await pickPort(used);
  used.add(upstreamPort);
  const env: Env = { ctx, work, www: join(work, 'www'), ...made, upstreamPort };
  writeFileSync(join(env.www, FILE.name), randomBytes(FILE.size));
  const versions = (await runCaptured('h2load', ['--version'], 10_000)).stdout.trim();
  console.log(`Certificate: EC P-256, self-signed, made now: ${env.cert} (the same pair for every server); load: ${versions}`);

  // The upstream of the proxy scenario: bench/proxy.ts's nginx, on the client core.
  const up = await prepareNginx({ name: 'upstream (nginx)', dir: join(work, 'upstream'), port: upstreamPort, core: ctx.clientCore, conf: (dir, temps) => upstreamConf(dir, upstreamPort, temps) });
  if (!up.ok) console.log(`  ${'upstream'.padEnd(10)} cannot run, so the proxy scenario is skipped: ${up.reason}`);
  else console.log(`  ${'upstream'.padEnd(10)} ${up.info} (core ${ctx.clientCore}, ${UPSTREAM_BODY.length}-byte body)`);

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const { ready, skipped } = await prepareAll(wanted, env, used);
  if (ready.length === 0) {
    console.error('\nNo server can run; nothing to measure.');
    return 1;
  }

  console.log(
    `\nServer core ${ctx.serverCore}; h2load (and the proxy scenario's upstream) on core ${ctx.clientCore}: ` +
      `h2load -t1 -c${CONNECTIONS} -m${STREAMS} -D ${ctx.durationSec} over TLS (ALPN h2), warm-up ${ctx.warmupSec}s, ${ctx.runs} interleaved run(s)`,
  );
  console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

  let upstream: RunningServer | undefined;
  let upstreamStarts = 0;
  const samples: Sample[] = [];
  let failures: Map<string, string[]>;
  try {
    failures = await interleave({
      ctx,
      ready,
      async beforeStart() {
        if (!up.ok || (upstream && !upstream.exitInfo)) return;
        if (upstream) console.log('  upstream died; starting it again');
        upstreamStarts++;
        upstream = await startServer(up.spec);
      },
      verify: (server, { peer }) => verify(env, server.spec.port, peer),
      async measure(server, { peer }, run, background) {
        for (const scenario of SCENARIOS) {
          if (server.exitInfo) break;
          if (scenario === 'proxy' && (!peer.proxies || !upstream)) continue;
          const s = await measure(env, server, upstream, peer, scenario, run, background);
          samples.push(s);
          console.log(
            progressLine(s, ctx.runs, `${peer.label.padEnd(10)} ${scenario.padEnd(6)}`, {
              clientCoreName: 'client core',
              latency: `mean ${formatMs(s.meanMs)} ms`,
              extra: `  h2load ${formatMicros(s.clientUsPerReq)} µs/req${scenario === 'proxy' ? `  upstream ${formatMicros(s.upstreamUsPerReq)} µs/req` : ''}`,
            }),
          );
        }
      },
    });
  } finally {
    await upstream?.stop();
  }
  console.log(`after: ${(await backgroundLoad(ctx)).text}`);

  printTables(ctx, ready.map((r) => r.peer), samples);
  if (upstreamStarts > 1) console.log(`\nNOTE: the upstream had to be started ${upstreamStarts} times (it died in between; see the runs above).`);
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);
  printGoals(ctx, samples, ready.map((r) => r.peer));
  printFailures(failures);
  return samples.length > 0 ? 0 : 1;
}

// ---------------------------------------------------------------------------------------------
// Summary

interface Row extends RowSummary<Sample> {
  readonly peer: Peer;
  readonly scenario: Scenario;
  readonly clientUs: number;
  readonly upstreamUs: number;
  readonly meanMs: number;
}

function rowsOf(ctx: BenchContext, peers: readonly Peer[], samples: readonly Sample[]): Row[] {
  const rows: Row[] = [];
  for (const scenario of SCENARIOS) {
    for (const peer of peers) {
      if (scenario === 'proxy' && !peer.proxies) continue;
      const sum = summarizeRow(samples.filter((s) => s.peer === peer.id && s.scenario === scenario), ctx.runs);
      rows.push({
        peer,
        scenario,
        ...sum,
        clientUs: median(sum.used.map((s) => s.clientUsPerReq)),
        upstreamUs: median(sum.used.map((s) => s.upstreamUsPerReq)),
        meanMs: median(sum.used.map((s) => s.meanMs)),
      });
    }
  }
  return rows;
}

const clientBound = (r: Row): boolean => r.clientCoreBusy >= CLIENT_BOUND && r.serverCoreBusy < 0.9;
const LABEL: Record<PeerId, string> = { switchyard: 'Switchyard', nginx: 'nginx', caddy: 'Caddy', node: 'bare node:http2' };

function printTables(ctx: BenchContext, peers: readonly Peer[], samples: readonly Sample[]): void {
  const rows = rowsOf(ctx, peers, samples);
  const rowOf = (scenario: Scenario, id: PeerId) => rows.find((r) => r.scenario === scenario && r.peer.id === id);
  const vs = (r: Row, id: PeerId, field: 'rps' | 'cpu') => {
    const o = rowOf(r.scenario, id);
    return o ? ratio(r[field], o[field]) : '—';
  };
  for (const scenario of SCENARIOS) {
    const these = rows.filter((r) => r.scenario === scenario);
    if (these.length === 0) continue;
    const against: PeerId[] = scenario === 'proxy' ? ['caddy', 'nginx'] : ['node', 'caddy', 'nginx'];
    const short: Record<PeerId, string> = { switchyard: 'Switchyard', nginx: 'nginx', caddy: 'Caddy', node: 'node:http2' };
    const columns: Column[] = [
      { title: scenario === 'proxy' ? 'Proxy' : 'Server' },
      { title: 'req/s (median)', align: 'right' },
      { title: 'per run' },
      ...against.map((id): Column => ({ title: `vs ${short[id]}`, align: 'right' })),
      { title: 'CPU µs/req', align: 'right' },
      ...against.map((id): Column => ({ title: `CPU vs ${short[id]}`, align: 'right' })),
      { title: scenario === 'proxy' ? 'proxy core' : 'server core', align: 'right' },
      { title: 'client core', align: 'right' },
      { title: 'h2load µs/req', align: 'right' },
      ...(scenario === 'proxy' ? [{ title: 'upstream µs/req', align: 'right' } as Column] : []),
      { title: 'mean ms', align: 'right' },
      { title: 'notes' },
    ];
    const body = these.map((r) => [
      r.peer.label,
      formatRate(r.rps),
      r.perRun,
      ...against.map((id) => vs(r, id, 'rps')),
      formatMicros(r.cpu),
      ...against.map((id) => vs(r, id, 'cpu')),
      formatPercent(r.serverCoreBusy),
      formatPercent(r.clientCoreBusy),
      formatMicros(r.clientUs),
      ...(scenario === 'proxy' ? [formatMicros(r.upstreamUs)] : []),
      formatMs(r.meanMs),
      [...(clientBound(r) ? ["client-bound: the client core is saturated, req/s is a lower bound"] : []), ...r.notes].join('; '),
    ]);
    console.log(`\n## ${SCENARIO_TITLE[scenario]}\n`);
    console.log(markdownTable(columns, body));
  }

  const tls = new Map<PeerId, string>();
  for (const s of samples) if (!tls.has(s.peer)) tls.set(s.peer, s.tls);
  console.log(`\nNegotiated with h2load (OpenSSL client defaults): ${peers.map((p) => `${p.label} ${tls.get(p.id) ?? '?'}`).join('; ')}; ALPN h2 everywhere (checked).`);
  console.log(
    `\nh2load -t1 -c${CONNECTIONS} -m${STREAMS} -D ${ctx.durationSec} on core ${ctx.clientCore} (${CONNECTIONS * STREAMS} requests in flight), server on core ${ctx.serverCore}; ` +
      `median of ${ctx.runs} interleaved run(s), undisturbed ones (see notes). "CPU µs/req": busy time of the server core (/proc/stat cpu${ctx.serverCore}: ` +
      'user+nice+system+irq+softirq) per completed request, lower is better; "CPU vs X" above 1.00x means more CPU per request than X. ' +
      '"client core" is h2load (plus, for the proxy, the upstream nginx): near 100% there while the server core is not, the load generator ' +
      'is the bottleneck and req/s understates that server; compare CPU per request then. "mean ms": h2load\'s mean request time (it prints no percentiles).',
  );
}

function printGoals(ctx: BenchContext, samples: readonly Sample[], peers: readonly Peer[]): void {
  const rows = rowsOf(ctx, peers, samples);
  const rowOf = (scenario: Scenario, id: PeerId) => rows.find((r) => r.scenario === scenario && r.peer.id === id);
  const capacity = (r: Row): number => (Number.isFinite(r.cpu) && r.cpu > 0 ? 1e6 / r.cpu : Number.NaN);
  const line = (scenario: Scenario, peer: PeerId, goal: number | undefined): string => {
    const what = scenario === 'static' ? 'h2 4 KiB static' : scenario === 'small' ? 'h2 small response' : 'h2 -> h1 proxy';
    const target = goal === undefined ? 'no goal' : `goal >= ${goal.toFixed(1)}x`;
    const a = rowOf(scenario, 'switchyard');
    const b = rowOf(scenario, peer);
    if (!a || !b || !Number.isFinite(a.rps) || !Number.isFinite(b.rps) || b.rps <= 0) {
      return `- ${what}, Switchyard / ${LABEL[peer]}: n/a (${target}): ${!a || !Number.isFinite(a.rps) ? 'Switchyard' : LABEL[peer]} not measured`;
    }
    const r = a.rps / b.rps;
    const flags: string[] = [];
    if (goal !== undefined) flags.push(r >= goal ? 'MET' : 'NOT MET');
    if (a.used.some(isDisturbed) || b.used.some(isDisturbed)) flags.push('DISTURBED runs in the medians, see notes');
    if (a.used.some((s) => s.problems.length > 0) || b.used.some((s) => s.problems.length > 0)) flags.push('SUSPICIOUS row, see notes');
    if (clientBound(a) || clientBound(b)) {
      // The rates are the load generator's then: what each server core could do at saturation.
      const c = capacity(a) / capacity(b);
      const who = [clientBound(a) ? 'Switchyard' : '', clientBound(b) ? LABEL[peer] : ''].filter(Boolean).join(' and ');
      flags.push(`${who} client-bound; by CPU per request (capacity at 100% core) ${Number.isFinite(c) ? c.toFixed(2) : '—'}x${goal !== undefined && Number.isFinite(c) ? (c >= goal ? ': MET that way' : ': NOT MET that way') : ''}`);
    }
    const cpu = Number.isFinite(a.cpu) && Number.isFinite(b.cpu) && b.cpu > 0 ? `; CPU per request ${(a.cpu / b.cpu).toFixed(2)}x ${LABEL[peer]}'s` : '';
    return `- ${what}, Switchyard / ${LABEL[peer]}: ${r.toFixed(2)}x${goal === undefined ? '' : ` (${target})`}${flags.length ? `: ${flags.join('; ')}` : ''}${cpu}`;
  };
  console.log('\n### Goals: Switchyard req/s over the peer\'s\n');
  for (const g of GOALS) console.log(line(g.scenario, g.peer, g.goal));
  console.log(`${line('static', 'nginx', undefined)} (no goal: reported as measured)`);
  console.log('\nReported, no goal:\n');
  for (const peer of ['node', 'caddy', 'nginx'] as const) console.log(line('small', peer, undefined));
  for (const peer of ['caddy', 'nginx'] as const) console.log(line('proxy', peer, undefined));
}

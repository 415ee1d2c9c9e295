import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { coreUsage, processGroupCpuSeconds, sampleCpu, totalBusySeconds } from './lib/cpu.ts';
import { interleave, prepareAll, printFailures } from './lib/interleave.ts';
import {
  backgroundLoad,
  disturbedWarning,
  formatMs,
  isDisturbed,
  measureWrk,
  progressLine,
  ratio,
  summarizeRow,
  type RowSummary,
  type RunSample,
} from './lib/measure.ts';
import { commandExists, describeExit, runCaptured, type RunningServer } from './lib/proc.ts';
import { caddyGlobalOptions, caddyPeer, nginxMainContext, nginxPeer, nginxTempPaths, prepareNodePeer, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatMicros, formatPercent, formatRate } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import { httpsGet, makeCertificate, probeTls, runHandshakes, type Negotiated } from './lib/tls-load.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- tls`: TLS termination, Switchyard vs nginx vs Caddy vs a bare node:https
// server (the floor: what Node itself costs, on the Node that runs Switchyard), one core each, in
// one run.
//
// (a) handshakes: new TLS connections per second, full handshakes only (no session offered by
//     the client; session caches and tickets off where the server's config can say so):
//     `openssl s_time -new` processes on the client core.
// (b) 4 KiB static over TLS keep-alive: wrk -t1 -c<n> over https.
//
// One EC P-256 certificate, made with openssl at bench start, for all four. Server on core 0,
// load on core 1; interleaved runs (run -> server -> scenario); median rate, ratios to nginx,
// Caddy and node:https, and the server core's CPU time per handshake/request from /proc/stat.

export const TLS_IDS = ['switchyard', 'nginx', 'caddy', 'node'] as const;
type PeerId = (typeof TLS_IDS)[number];
type Scenario = 'handshake' | 'static';

const FILE = { name: '4k.bin', size: 4 << 10 } as const;
/** Concurrent s_time processes: each is one connection at a time, so this is the handshakes in flight. */
const HANDSHAKE_CLIENTS = 8;

/** The goals, on Switchyard's rate over the peer's. */
const GOALS: readonly { readonly scenario: Scenario; readonly peer: PeerId; readonly goal: number }[] = [
  { scenario: 'handshake', peer: 'nginx', goal: 0.8 },
  { scenario: 'static', peer: 'nginx', goal: 0.45 },
  { scenario: 'static', peer: 'caddy', goal: 2.0 },
];

const SCENARIO_TITLE: Record<Scenario, string> = {
  handshake: 'New TLS connections (full handshakes, no resumption)',
  static: '4 KiB static file over TLS keep-alive',
};

interface Env {
  readonly ctx: BenchContext;
  readonly work: string;
  readonly www: string;
  readonly cert: string;
  readonly key: string;
}

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample extends RunSample {
  readonly peer: PeerId;
  readonly scenario: Scenario;
  readonly background: number;
  /** Load generator CPU (s_time processes or wrk) per handshake/request, µs. */
  readonly clientUsPerReq: number;
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
        `    tls: { certificates: [{ cert: ${JSON.stringify(env.cert)}, key: ${JSON.stringify(env.key)} }], sessionTickets: false }`,
        '    middleware: { accessLog: false, requestId: false }',
        '    routes:',
        '      - match: { path: /* }',
        `        handler: { type: static, root: ${JSON.stringify(env.www)} }`,
        '',
      ].join('\n'),
    });
  },
};

function nginxConf(dir: string, env: Env, port: number, temps: readonly string[]): string {
  return `# Written by bench/tls.ts; one worker process, no access log, no session cache or tickets.
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

    server {
        listen 127.0.0.1:${port} ssl;
        server_name localhost;
        ssl_certificate ${env.cert};
        ssl_certificate_key ${env.key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_session_cache off;
        ssl_session_tickets off;
        root ${env.www};
        location / {
        }
    }
}
`;
}

const nginx: Peer = nginxPeer<Env>('nginx', (env, dir, port, temps) => nginxConf(dir, env, port, temps));

function caddyfile(env: Env, dir: string, port: number): string {
  return `# Written by bench/tls.ts: admin API off, logs discarded, HTTP/1.1 only (what wrk and
# s_time speak; no HTTP/3 UDP listener), the benchmark's certificate, no automatic HTTPS.
# The Caddyfile has no switch for session tickets (Caddy's JSON has); s_time never offers one.
${caddyGlobalOptions(dir, 'h1')}
https://127.0.0.1:${port} {
	tls ${env.cert} ${env.key}
	root * ${env.www}
	file_server
}
`;
}

const caddy: Peer = caddyPeer<Env>('caddy', (env, dir, port) => caddyfile(env, dir, port));

const bareNode: Peer = {
  id: 'node',
  label: 'node:https',
  prepare(env, port) {
    return Promise.resolve(
      prepareNodePeer({
        repo: env.ctx.repoRoot,
        work: env.work,
        id: 'node',
        label: 'node:https',
        script: 'https-bare-server.ts',
        extraArgs: [env.cert, env.key, join(env.www, FILE.name)],
        packages: [],
        describe: () => `bare node:https ${process.version} (OpenSSL ${process.versions.openssl}), Switchyard's TLS defaults, file from memory`,
        port,
        core: env.ctx.serverCore,
      }),
    );
  },
};

const PEERS: readonly Peer[] = [switchyard, nginx, caddy, bareNode];
const PEER_LABEL: Record<PeerId, string> = { switchyard: 'Switchyard', nginx: 'nginx', caddy: 'Caddy', node: 'node:https' };

// ---------------------------------------------------------------------------------------------
// Measurement

async function verify(env: Env, port: number): Promise<string | undefined> {
  const url = `https://127.0.0.1:${port}/${FILE.name}`;
  try {
    const r = await httpsGet(url, readFileSync(env.cert, 'utf8'));
    if (r.status !== 200) return `GET /${FILE.name} over TLS answered ${r.status}`;
    if (!r.body.equals(readFileSync(join(env.www, FILE.name)))) return `GET /${FILE.name} returned ${r.body.length} bytes that differ from the file`;
  } catch (e) {
    return `GET ${url} failed: ${(e as Error).message}`;
  }
  return undefined;
}

async function measureHandshakes(env: Env, server: RunningServer, peer: Peer, run: number, background: number): Promise<Sample> {
  const { ctx } = env;
  const port = server.spec.port;
  if (ctx.warmupSec > 0) await runHandshakes(port, HANDSHAKE_CLIENTS, ctx.warmupSec, ctx.clientCore);
  await sleep(200);
  const t0 = performance.now();
  const harness0 = process.cpuUsage();
  const server0 = processGroupCpuSeconds(server.pid);
  const before = sampleCpu();
  const h = await runHandshakes(port, HANDSHAKE_CLIENTS, ctx.durationSec, ctx.clientCore);
  const after = sampleCpu();
  const serverCpu = processGroupCpuSeconds(server.pid) - server0;
  const harness = process.cpuUsage(harness0);
  const wall = (performance.now() - t0) / 1000;
  const othersCpu = totalBusySeconds(before, after) - serverCpu - h.clientCpuSeconds - (harness.user + harness.system) / 1e6;
  const srv = coreUsage(before, after, Number(ctx.serverCore));
  const cli = coreUsage(before, after, Number(ctx.clientCore));
  const problems = [...h.problems];
  if (h.connections === 0) problems.push('no handshakes completed');
  if (server.exitInfo) problems.push(`server ${describeExit(server.exitInfo)} during the run`);
  return {
    peer: peer.id,
    scenario: 'handshake',
    run,
    rps: h.rate,
    cpuUsPerReq: h.connections > 0 ? (srv.busySeconds * 1e6) / h.connections : Number.NaN,
    clientUsPerReq: h.connections > 0 ? (h.clientCpuSeconds * 1e6) / h.connections : Number.NaN,
    serverCoreBusy: srv.busyFraction,
    clientCoreBusy: cli.busyFraction,
    p99Ms: Number.NaN,
    background,
    others: wall > 0 ? Math.max(0, othersCpu) / wall : 0,
    problems,
  };
}

async function measureStatic(env: Env, server: RunningServer, peer: Peer, run: number, background: number): Promise<Sample> {
  const m = await measureWrk({ ctx: env.ctx, url: `https://127.0.0.1:${server.spec.port}/${FILE.name}`, server });
  const problems = [...m.problems];
  if (m.requests > 0 && m.wrk.bytesRead / m.requests < FILE.size * 0.98) {
    problems.push(`only ${Math.round(m.wrk.bytesRead / m.requests)} bytes read per request (file is ${FILE.size})`);
  }
  return {
    peer: peer.id,
    scenario: 'static',
    run,
    rps: m.rps,
    cpuUsPerReq: m.cpuUsPerReq,
    clientUsPerReq: m.requests > 0 && m.wrk.wrkCpuSeconds !== undefined ? (m.wrk.wrkCpuSeconds * 1e6) / m.requests : Number.NaN,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: m.p99Ms,
    background,
    others: m.others,
    problems,
  };
}

// ---------------------------------------------------------------------------------------------

export async function runTls(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/tls');
  mkdirSync(join(work, 'www'), { recursive: true });
  if (!commandExists('openssl')) {
    console.error('bench tls: openssl is not installed (it makes the certificate and drives the handshakes)');
    return 1;
  }
  const made = await makeCertificate(work);
  if (typeof made === 'string') {
    console.error(`bench tls: ${made}`);
    return 1;
  }
  const env: Env = { ctx, work, www: join(work, 'www'), ...made };
  writeFileSync(join(env.www, FILE.name), randomBytes(FILE.size));
  const openssl = (await runCaptured('openssl', ['version'], 10_000)).stdout.trim();
  console.log(`Certificate: EC P-256, self-signed, made now with ${openssl}: ${env.cert} (the same pair for every server)`);
  console.log(
    `Switchyard and node:https run on Node ${process.version} with its bundled OpenSSL ${process.versions.openssl} ` +
      `(${process.execPath}); nginx, s_time and wrk use the system's ${openssl}`,
  );

  const wanted = PEERS.filter((p) => !ctx.servers || ctx.servers.has(p.id));
  const { ready, skipped } = await prepareAll(wanted, env, new Set<number>());
  if (ready.length === 0) {
    console.error('\nNo server can run; nothing to measure.');
    return 1;
  }

  console.log(
    `\nServer core ${ctx.serverCore}, load on core ${ctx.clientCore}: handshakes with ${HANDSHAKE_CLIENTS} x ` +
      `\`openssl s_time -new -time ${ctx.durationSec}\`, static with wrk -t1 -c${ctx.connections} -d${ctx.durationSec}s over https; ` +
      `warm-up ${ctx.warmupSec}s each, ${ctx.runs} interleaved run(s)`,
  );
  console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

  const samples: Sample[] = [];
  const negotiated = new Map<PeerId, Negotiated | string>();
  const failures = await interleave({
    ctx,
    ready,
    async verify(server, { peer }) {
      const bad = await verify(env, server.spec.port);
      if (!bad && !negotiated.has(peer.id)) negotiated.set(peer.id, await probeTls(server.spec.port, `/${FILE.name}`));
      return bad;
    },
    async measure(server, { peer }, run, background) {
      for (const scenario of ['handshake', 'static'] as const) {
        if (server.exitInfo) break;
        const s = scenario === 'handshake' ? await measureHandshakes(env, server, peer, run, background) : await measureStatic(env, server, peer, run, background);
        samples.push(s);
        console.log(
          progressLine(s, ctx.runs, `${peer.label.padEnd(10)} ${scenario.padEnd(9)}`, {
            clientCoreName: 'client core',
            extra: `  load gen ${formatMicros(s.clientUsPerReq)} µs/req`,
          }),
        );
      }
    },
  });
  console.log(`after: ${(await backgroundLoad(ctx)).text}`);

  // -------------------------------------------------------------------------------------------
  // Summary

  interface Row extends RowSummary<Sample> {
    readonly peer: Peer;
    readonly scenario: Scenario;
    readonly clientUs: number;
  }
  const rows: Row[] = [];
  for (const scenario of ['handshake', 'static'] as const) {
    for (const { peer } of ready) {
      const sum = summarizeRow(samples.filter((s) => s.peer === peer.id && s.scenario === scenario), ctx.runs);
      const cu = sum.used.map((s) => s.clientUsPerReq).filter(Number.isFinite).sort((a, b) => a - b);
      rows.push({ peer, scenario, ...sum, clientUs: cu.length ? cu[(cu.length - 1) >> 1] : Number.NaN });
    }
  }
  const rowOf = (scenario: Scenario, id: PeerId) => rows.find((r) => r.scenario === scenario && r.peer.id === id);
  const vs = (r: Row, id: PeerId, field: 'rps' | 'cpu') => {
    const o = rowOf(r.scenario, id);
    return o ? ratio(r[field], o[field]) : '—';
  };
  const clientBound = (r: Row): boolean => r.clientCoreBusy >= 0.95 && r.serverCoreBusy < 0.9;
  /**
   * What the server core could do at 100% busy: 1 s over its CPU per handshake/request. An
   * estimate (it assumes the cost per handshake stays flat up to saturation), shown for the
   * handshakes, where the load generator's core saturates first.
   */
  const capacity = (r: Row): number => (Number.isFinite(r.cpu) && r.cpu > 0 ? 1e6 / r.cpu : Number.NaN);

  for (const scenario of ['handshake', 'static'] as const) {
    const unit = scenario === 'handshake' ? 'handshakes/s' : 'req/s';
    const per = scenario === 'handshake' ? 'hs' : 'req';
    const columns: Column[] = [
      { title: 'Server' },
      { title: `${unit} (median)`, align: 'right' },
      { title: 'per run' },
      { title: 'vs nginx', align: 'right' },
      { title: 'vs Caddy', align: 'right' },
      { title: 'vs node:https', align: 'right' },
      { title: `CPU µs/${per}`, align: 'right' },
      { title: 'CPU vs nginx', align: 'right' },
      { title: 'CPU vs Caddy', align: 'right' },
      { title: 'CPU vs node:https', align: 'right' },
      { title: 'server core', align: 'right' },
      { title: 'client core', align: 'right' },
      { title: `load gen µs/${per}`, align: 'right' },
      ...(scenario === 'handshake' ? [{ title: 'capacity/s at 100% core', align: 'right' } as Column] : []),
      ...(scenario === 'static' ? [{ title: 'p99 ms', align: 'right' } as Column] : []),
      { title: 'notes' },
    ];
    const body = rows
      .filter((r) => r.scenario === scenario)
      .map((r) => [
        r.peer.label,
        formatRate(r.rps),
        r.perRun,
        vs(r, 'nginx', 'rps'),
        vs(r, 'caddy', 'rps'),
        vs(r, 'node', 'rps'),
        formatMicros(r.cpu),
        vs(r, 'nginx', 'cpu'),
        vs(r, 'caddy', 'cpu'),
        vs(r, 'node', 'cpu'),
        formatPercent(r.serverCoreBusy),
        formatPercent(r.clientCoreBusy),
        formatMicros(r.clientUs),
        ...(scenario === 'handshake' ? [formatRate(capacity(r))] : []),
        ...(scenario === 'static' ? [formatMs(r.p99Ms)] : []),
        [...(clientBound(r) ? ['client-bound: the load generator\'s core is saturated, the rate is a lower bound'] : []), ...r.notes].join('; '),
      ]);
    console.log(`\n## ${SCENARIO_TITLE[scenario]}\n`);
    console.log(markdownTable(columns, body));
  }

  console.log('\n### Negotiated (one `openssl s_client` connection and GET per server; OpenSSL defaults, as s_time and wrk use)\n');
  console.log(
    markdownTable(
      [{ title: 'Server' }, { title: 'protocol' }, { title: 'cipher' }, { title: 'key exchange' }, { title: 'session tickets sent', align: 'right' }],
      ready.map(({ peer }) => {
        const n = negotiated.get(peer.id);
        return n === undefined ? [peer.label, 'not probed', '', '', ''] : typeof n === 'string' ? [peer.label, n, '', '', ''] : [peer.label, n.protocol, n.cipher, n.group, String(n.tickets)];
      }),
    ),
  );

  console.log(
    `\nHandshakes: ${HANDSHAKE_CLIENTS} \`openssl s_time -connect 127.0.0.1:<port> -new -time ${ctx.durationSec}\` processes on core ${ctx.clientCore}, ` +
      'each a loop of connect, full handshake (no session offered), close_notify, close; rate = sum of each client\'s handshakes over its own wall time. ' +
      `Static: wrk -t1 -c${ctx.connections} over https (one handshake per connection, then keep-alive). ` +
      `"CPU µs": busy time of the server core (/proc/stat cpu${ctx.serverCore}: user+nice+system+irq+softirq) per handshake or request, ` +
      'including the kernel\'s TCP work; "load gen µs": the load generator\'s own CPU time per handshake or request. ' +
      'When "client core" is near 100% and "server core" is not, the load generator is the bottleneck and the rate understates that server; ' +
      '"capacity/s at 100% core" (1 s / CPU per handshake) is then the fairer comparison, and the goals below are judged on it. ' +
      `Medians over ${ctx.runs} interleaved run(s), undisturbed ones (see notes).`,
  );
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const s of skipped) console.log(`\nNot measured: ${s.peer.label}: ${s.reason}`);

  console.log('\n### Goals: Switchyard\'s rate over the peer\'s\n');
  for (const g of GOALS) {
    const a = rowOf(g.scenario, 'switchyard');
    const b = rowOf(g.scenario, g.peer);
    const what = g.scenario === 'handshake' ? 'handshakes/s' : '4 KiB over TLS keep-alive, req/s';
    const peerLabel = PEER_LABEL[g.peer];
    if (!a || !b || !Number.isFinite(a.rps) || !Number.isFinite(b.rps) || b.rps <= 0) {
      console.log(`- ${what}: n/a (goal ${g.goal}x ${peerLabel}): ${!a || !Number.isFinite(a.rps) ? 'Switchyard' : peerLabel} not measured`);
      continue;
    }
    const r = a.rps / b.rps;
    const flags = [
      r >= g.goal ? 'at or above the goal' : 'below the goal',
      ...(a.used.some(isDisturbed) || b.used.some(isDisturbed) ? ['DISTURBED runs in the medians, see notes'] : []),
      ...(a.used.some((s) => s.problems.length > 0) || b.used.some((s) => s.problems.length > 0) ? ['SUSPICIOUS row, see notes'] : []),
      ...(clientBound(b) ? [`${peerLabel} was client-bound, so its rate is a lower bound and this ratio flatters Switchyard`] : []),
      ...(clientBound(a) ? ['Switchyard was client-bound, so its rate is a lower bound'] : []),
    ];
    if (clientBound(a) || clientBound(b)) {
      // The rates are the load generator's, not the servers': judge on what each server core
      // could do at saturation (the inverse of its CPU per handshake/request) instead.
      const c = capacity(a) / capacity(b);
      if (Number.isFinite(c)) {
        flags[0] = `not decided by the rates (client-bound); by CPU per ${g.scenario === 'handshake' ? 'handshake' : 'request'} (capacity at 100% core) ${c.toFixed(2)}x ${peerLabel}: ${c >= g.goal ? 'at or above the goal' : 'below the goal'}`;
      }
    }
    const cpu = Number.isFinite(a.cpu) && Number.isFinite(b.cpu) && b.cpu > 0 ? `; CPU per ${g.scenario === 'handshake' ? 'handshake' : 'request'} ${(a.cpu / b.cpu).toFixed(2)}x ${peerLabel}'s` : '';
    console.log(`- ${what}: ${r.toFixed(2)}x ${peerLabel} (goal ${g.goal}x): ${flags.join('; ')}${cpu}`);
  }

  // The same goals held to the floor: what Node alone reaches, so what no code above it can beat.
  const floorLines: string[] = [];
  for (const g of GOALS) {
    const f = rowOf(g.scenario, 'node');
    const b = rowOf(g.scenario, g.peer);
    const sw = rowOf(g.scenario, 'switchyard');
    if (!f || !b) continue;
    const per = g.scenario === 'handshake' ? 'handshake' : 'request';
    const byCpu = capacity(f) / capacity(b);
    const byRate = b.rps > 0 ? f.rps / b.rps : Number.NaN;
    const share = sw && Number.isFinite(sw.cpu) && Number.isFinite(f.cpu) && sw.cpu > 0 ? `; Switchyard spends ${(sw.cpu / f.cpu).toFixed(2)}x the floor's CPU per ${per}` : '';
    floorLines.push(
      `- ${g.scenario === 'handshake' ? 'handshakes' : '4 KiB over TLS keep-alive'}: node:https is ${byRate.toFixed(2)}x ${PEER_LABEL[g.peer]} by rate, ` +
        `${byCpu.toFixed(2)}x by CPU per ${per} (goal for Switchyard ${g.goal}x)${share}`,
    );
  }
  if (floorLines.length > 0) {
    console.log(`\n### The floor: bare node:https (Node ${process.version}, OpenSSL ${process.versions.openssl}) against the same goals\n`);
    for (const line of floorLines) console.log(line);
  }

  printFailures(failures);
  return samples.length > 0 ? 0 : 1;
}

import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { credentials, makeGenericClientConstructor, type ServiceError } from '@grpc/grpc-js';
import { h2Request, withH2Session } from './lib/h2-client.ts';
import { h2loadProblems, runH2load, type H2loadResult } from './lib/h2load.ts';
import { interleave, prepareAll, printFailures } from './lib/interleave.ts';
import {
  backgroundLoad,
  disturbedWarning,
  formatMs,
  isDisturbed,
  measureLoad,
  pinned,
  progressLine,
  ratio,
  summarizeRow,
  type RowSummary,
  type RunSample,
} from './lib/measure.ts';
import { commandExists, pickPort, runCaptured, startServer, type RunningServer, type ServerSpec } from './lib/proc.ts';
import { caddyGlobalOptions, caddyPeer, nginxMainContext, nginxPeer, nginxTempPaths, prepareNodePeer, prepareSwitchyard, type Prepared } from './lib/servers.ts';
import { formatMicros, formatPercent, formatRate, median } from './lib/stats.ts';
import { markdownTable, type Column } from './lib/table.ts';
import type { BenchContext } from './types.ts';

// `npm run bench -- grpc`: gRPC unary calls per second against a @grpc/grpc-js server
// (bench/peers/grpc-echo-server.ts, /bench.Echo/Unary, raw-bytes messages echoed back), called
// directly and through a proxy: Switchyard (an h2c listener, route /* -> proxy to an h2c://
// upstream), and, as references, nginx (grpc_pass) and Caddy (reverse_proxy h2c://).
//
// The load is h2load posting one prebuilt gRPC message (the 5-byte frame header and a 100-byte
// payload) on every stream, over h2c, -c16 -m16: far less CPU per call than any gRPC client
// library, so it measures the servers. A machine with two cores cannot give the load generator,
// the proxy and the gRPC server a core each, so every path is measured in two placements:
//
//   split   the proxy alone on core 0; the gRPC server next to h2load on core 1 (as the proxy
//           benchmark's upstream sits next to wrk). Direct: the gRPC server on core 1 too, core 0
//           unused. The proxy has a core of its own, as it would in a deployment: the ratio says
//           whether it keeps up with what the server (and client) can do.
//   shared  the gRPC server, and the proxy in front of it, on core 0; h2load alone on core 1.
//           The ratio is then what stays of one core's gRPC capacity once a proxy hop shares it:
//           a cost view (the proxy's CPU per call against the server's).
//
// Per-process columns show where the time went (proxy process, backend process, h2load).

export const GRPC_IDS = ['direct', 'switchyard', 'switchyard-lean', 'switchyard-spread', 'switchyard-baseline', 'nginx', 'caddy'] as const;
type PeerId = (typeof GRPC_IDS)[number];
type Placement = 'split' | 'shared';
/** Both placements, or the one SWITCHYARD_GRPC_PLACEMENT names (split or shared): a shorter run. */
const PLACEMENTS: readonly Placement[] = (() => {
  const only = process.env.SWITCHYARD_GRPC_PLACEMENT;
  if (only === undefined || only === '') return ['split', 'shared'];
  if (only !== 'split' && only !== 'shared') throw new Error(`SWITCHYARD_GRPC_PLACEMENT must be split or shared, not ${only}`);
  return [only];
})();
const PLACEMENT_TITLE: Record<Placement, string> = {
  split: 'split: proxy alone on core 0, the gRPC server next to h2load on core 1 (direct: core 0 unused)',
  shared: 'shared: the gRPC server and the proxy on core 0, h2load alone on core 1',
};

const METHOD = '/bench.Echo/Unary';
const CONNECTIONS = 16;
const STREAMS = 16;
/** The request message (the server echoes it): 100 bytes. */
const PAYLOAD = Buffer.from('switchyard-bench-grpc-unary-0123456789abcdefghijklmnopqrstuvwxyz'.padEnd(100, '.'));
/** The gRPC length-prefixed message: flag 0 (not compressed), 4-byte big-endian length, bytes. */
const FRAME = Buffer.concat([Buffer.from([0, 0, 0, 0, PAYLOAD.length]), PAYLOAD]);
const GRPC_HEADERS = ['content-type: application/grpc', 'te: trailers'] as const;

/** The goal: calls/s through Switchyard over calls/s direct. */
const GOAL = 0.6;

interface Env {
  readonly ctx: BenchContext;
  /** bench/.work/grpc */
  readonly work: string;
  readonly bodyFile: string;
  /** Where the backend behind the proxies listens. */
  readonly backendPort: number;
  readonly placement: Placement;
  /** The core the gRPC server runs on in this placement. */
  readonly backendCore: string;
}

interface Peer {
  readonly id: PeerId;
  readonly label: string;
  /** A proxy in front of the backend (false: the backend itself, called directly). */
  readonly proxy: boolean;
  prepare(env: Env, port: number): Promise<Prepared>;
}

interface Sample extends RunSample {
  readonly peer: PeerId;
  readonly placement: Placement;
  readonly background: number;
  /** Busy time of core 0 and core 1 per call, µs. */
  readonly core0UsPerCall: number;
  readonly core1UsPerCall: number;
  /** The proxy process's own CPU per call, µs (NaN for direct). */
  readonly proxyUsPerCall: number;
  /** The gRPC server process's own CPU per call, µs. */
  readonly backendUsPerCall: number;
  readonly clientUsPerReq: number;
  readonly meanMs: number;
}

// ---------------------------------------------------------------------------------------------
// Peers

function backendPeer(env: Env, port: number, id: string): Prepared {
  return prepareNodePeer({
    repo: env.ctx.repoRoot,
    work: env.work,
    id,
    label: id === 'direct' ? 'grpc-js direct' : 'grpc-js backend',
    script: 'grpc-echo-server.ts',
    packages: ['@grpc/grpc-js'],
    describe: (v) => `${v} server, ${METHOD} echoing raw bytes, h2c, on core ${env.backendCore}`,
    port,
    core: env.backendCore,
  });
}

const direct: Peer = {
  id: 'direct',
  label: 'direct',
  proxy: false,
  async prepare(env, port) {
    return backendPeer(env, port, 'direct');
  },
};

/** What a Switchyard row changes in the benchmark config; every field left out stays at its default. */
interface SwitchyardVariant {
  /** The upstream group's pool block (YAML flow map). */
  readonly pool?: string;
  /** More proxy handler options on the route (YAML flow-map entries, e.g. `forwarded: none`). */
  readonly handler?: string;
}

/** Switchyard's benchmark config: the `switchyard` row's, with a variant's changes. */
function switchyardConfig(port: number, env: Env, variant: SwitchyardVariant = {}): string {
  return [
    '# Written by bench/grpc.ts.',
    'listeners:',
    '  - name: grpc',
    '    protocol: http',
    `    address: 127.0.0.1:${port}`,
    '    http2: { h2c: true }',
    '    middleware: { accessLog: false, requestId: false }',
    '    routes:',
    "      - match: { path: '/*' }",
    `        handler: { type: proxy, upstream: g${variant.handler ? `, ${variant.handler}` : ''} }`,
    'upstreams:',
    '  g:',
    `    targets: ['h2c://127.0.0.1:${env.backendPort}']`,
    ...(variant.pool ? [`    pool: ${variant.pool}`] : []),
    '',
  ].join('\n');
}

const switchyard: Peer = {
  id: 'switchyard',
  label: 'Switchyard',
  proxy: true,
  prepare(env, port) {
    // The setup: an h2c listener, every path proxied to one h2c:// target; the upstream group at
    // its defaults (breaker, outlier detection and retries on, no active health checks; every
    // call on one connection to the target).
    return prepareSwitchyard({ repo: env.ctx.repoRoot, work: env.work, configName: 'switchyard.yaml', port, core: env.ctx.serverCore, config: switchyardConfig(port, env) });
  },
};

const switchyardLean: Peer = {
  id: 'switchyard-lean',
  label: 'Switchyard, forwarded: none, via: false',
  proxy: true,
  prepare(env, port) {
    // The same, with the route's forwarding fields and Via left out (docs/grpc.md's setting for
    // services that read none of them): five fewer metadata entries for the gRPC server per call.
    return prepareSwitchyard({
      repo: env.ctx.repoRoot,
      work: env.work,
      configName: 'switchyard-lean.yaml',
      port,
      core: env.ctx.serverCore,
      config: switchyardConfig(port, env, { handler: 'forwarded: none, via: false' }),
    });
  },
};

/** Streams per upstream connection for the spread variant: h2load's calls in flight over 8 connections. */
const SPREAD_STREAMS = (CONNECTIONS * STREAMS) / 8;

const switchyardSpread: Peer = {
  id: 'switchyard-spread',
  label: `Switchyard, pool.maxStreamsPerConnection ${SPREAD_STREAMS}`,
  proxy: true,
  prepare(env, port) {
    // The same, with the calls spread over several connections to the target.
    return prepareSwitchyard({
      repo: env.ctx.repoRoot,
      work: env.work,
      configName: 'switchyard-spread.yaml',
      port,
      core: env.ctx.serverCore,
      config: switchyardConfig(port, env, { pool: `{ maxStreamsPerConnection: ${SPREAD_STREAMS} }` }),
    });
  },
};

/**
 * Another build of Switchyard for an A/B in one run: the compiled daemon of another tree
 * (SWITCHYARD_BASELINE=<its dist folder>, e.g. a `git worktree` of an earlier commit after `npm run
 * build`), with the same config as the `switchyard` row. Measured only when that is set.
 */
const BASELINE_DIST = process.env.SWITCHYARD_BASELINE;

const switchyardBaseline: Peer = {
  id: 'switchyard-baseline',
  label: 'Switchyard (baseline build)',
  proxy: true,
  async prepare(env, port) {
    if (!BASELINE_DIST) return { ok: false, reason: 'SWITCHYARD_BASELINE (the dist folder of the build to compare with) is not set' };
    const main = join(BASELINE_DIST, 'cli/main.js');
    if (!existsSync(main)) return { ok: false, reason: `no ${main}` };
    const cfg = join(env.work, 'switchyard-baseline.yaml');
    writeFileSync(cfg, switchyardConfig(port, env));
    const args = [main, 'serve', cfg, '--log-level', 'warn'];
    return {
      ok: true,
      info: `node ${args.join(' ')}`,
      spec: {
        name: 'Switchyard (baseline build)',
        ...pinned(env.ctx.serverCore, process.execPath, args),
        cwd: env.ctx.repoRoot,
        env: { ...process.env, NODE_ENV: 'production' },
        logFile: cfg.replace(/\.ya?ml$/, '') + '.log',
        port,
        startTimeoutMs: 60_000,
      },
    };
  },
};

/** Upstream connections nginx keeps: its grpc_pass runs one call per upstream connection at a time. */
const UPSTREAM_KEEPALIVE = CONNECTIONS * STREAMS;

function nginxConf(dir: string, env: Env, port: number, temps: readonly string[]): string {
  return `# Written by bench/grpc.ts: one worker process, no access log, h2c (listen ... http2 without
# ssl: prior knowledge), grpc_pass to the backend with keep-alive connections.
${nginxMainContext(dir)}
http {
    access_log off;
    tcp_nodelay on;
    keepalive_timeout 65s;
    keepalive_requests 1000000;
${nginxTempPaths(dir, temps)}

    upstream g {
        server 127.0.0.1:${env.backendPort};
        keepalive ${UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
        keepalive_timeout 60s;
    }

    server {
        listen 127.0.0.1:${port} http2;
        server_name localhost;
        location / {
            grpc_pass grpc://g;
        }
    }
}
`;
}

const nginx: Peer = { ...nginxPeer<Env>('nginx', (env, dir, port, temps) => nginxConf(dir, env, port, temps)), proxy: true };

function caddyfile(env: Env, dir: string, port: number): string {
  return `# Written by bench/grpc.ts: admin API off, logs discarded, h2c (and HTTP/1.1) in plain text,
# reverse_proxy to the backend over h2c.
${caddyGlobalOptions(dir, 'h1 h2c')}
http://127.0.0.1:${port} {
	reverse_proxy h2c://127.0.0.1:${env.backendPort}
}
`;
}

const caddy: Peer = { ...caddyPeer<Env>('caddy', (env, dir, port) => caddyfile(env, dir, port)), proxy: true };

const PEERS: readonly Peer[] = [direct, switchyard, switchyardLean, switchyardSpread, switchyardBaseline, nginx, caddy];

// ---------------------------------------------------------------------------------------------
// Checks

/** The exact exchange h2load makes, once: 200, the echoed frame, grpc-status 0 in the trailers. */
async function checkRaw(port: number): Promise<string | undefined> {
  try {
    const { result } = await withH2Session(`http://127.0.0.1:${port}`, undefined, 10_000, (s) =>
      h2Request(s, { method: 'POST', path: METHOD, headers: { 'content-type': 'application/grpc', te: 'trailers' }, body: FRAME }),
    );
    const status = result.trailers['grpc-status'] ?? result.headers['grpc-status'];
    if (result.status !== 200) return `POST ${METHOD} (h2c) answered HTTP ${result.status}`;
    if (String(status) !== '0') return `POST ${METHOD} (h2c) ended with grpc-status ${String(status)} (${String(result.trailers['grpc-message'] ?? result.headers['grpc-message'] ?? '')})`;
    if (!result.body.equals(FRAME)) return `POST ${METHOD} (h2c) returned ${result.body.length} bytes that are not the ${FRAME.length}-byte echo`;
    return undefined;
  } catch (e) {
    return `POST ${METHOD} (h2c) failed: ${(e as Error).message}`;
  }
}

const EchoClient = makeGenericClientConstructor(
  {
    Unary: {
      path: METHOD,
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  },
  'Echo',
);

/** One unary call with @grpc/grpc-js's client: a real gRPC client gets the echo through. */
function checkGrpcJs(port: number): Promise<string | undefined> {
  const client = new EchoClient(`127.0.0.1:${port}`, credentials.createInsecure());
  return new Promise<string | undefined>((resolve) => {
    const unary = client.Unary as (req: Buffer, opts: { deadline: number }, cb: (err: ServiceError | null, res?: Buffer) => void) => void;
    unary.call(client, PAYLOAD, { deadline: Date.now() + 10_000 }, (err, res) => {
      if (err) resolve(`grpc-js client call failed: ${err.code} ${err.details}`);
      else if (!res || !Buffer.from(res).equals(PAYLOAD)) resolve(`grpc-js client call returned ${res?.length ?? 0} bytes that are not the echo`);
      else resolve(undefined);
    });
  }).finally(() => client.close());
}

async function verify(port: number): Promise<string | undefined> {
  return (await checkRaw(port)) ?? (await checkGrpcJs(port));
}

// ---------------------------------------------------------------------------------------------
// Measurement

async function measure(env: Env, server: RunningServer, backend: RunningServer | undefined, peer: Peer, run: number, background: number): Promise<Sample> {
  const { ctx } = env;
  const m = await measureLoad<H2loadResult>({
    ctx,
    server,
    helperGroups: backend ? [backend.pid] : [],
    run: (durationSec) =>
      runH2load({
        url: `http://127.0.0.1:${server.spec.port}${METHOD}`,
        durationSec,
        connections: CONNECTIONS,
        streams: STREAMS,
        core: ctx.clientCore,
        dataFile: env.bodyFile,
        headers: GRPC_HEADERS,
      }),
  });
  const r = m.load;
  const problems = [...m.problems, ...h2loadProblems(r).filter((p) => p !== 'no requests completed')];
  // h2load does not read grpc-status: a call that failed with a trailers-only answer is a 200
  // without DATA, so fewer response bytes per call than the echoed frame is the tell.
  if (r.requests > 0 && r.dataBytes / r.requests < FRAME.length * 0.98) {
    problems.push(`only ${Math.round(r.dataBytes / r.requests)} response bytes per call (the echo is ${FRAME.length}): some calls failed at the gRPC level`);
  }
  if (backend?.exitInfo) problems.push('the gRPC backend died during the run');
  const per = (cpuSeconds: number) => (r.requests > 0 ? (cpuSeconds * 1e6) / r.requests : Number.NaN);
  return {
    peer: peer.id,
    placement: env.placement,
    run,
    rps: m.rps,
    cpuUsPerReq: m.cpuUsPerReq,
    serverCoreBusy: m.serverCoreBusy,
    clientCoreBusy: m.clientCoreBusy,
    p99Ms: Number.NaN,
    others: m.others,
    problems,
    background,
    core0UsPerCall: per(m.serverCoreSeconds),
    core1UsPerCall: per(m.clientCoreSeconds),
    proxyUsPerCall: peer.proxy ? per(m.serverCpuSeconds) : Number.NaN,
    backendUsPerCall: per(peer.proxy ? m.helperCpuSeconds : m.serverCpuSeconds),
    clientUsPerReq: r.clientCpuSeconds !== undefined ? per(r.clientCpuSeconds) : Number.NaN,
    meanMs: r.meanMs,
  };
}

// ---------------------------------------------------------------------------------------------

export async function runGrpc(ctx: BenchContext): Promise<number> {
  const work = join(ctx.repoRoot, 'bench/.work/grpc');
  mkdirSync(work, { recursive: true });
  if (!commandExists('h2load')) {
    console.error('bench grpc: h2load is not installed (Debian: apt-get install nghttp2-client; scripts/install-system-deps.sh)');
    return 1;
  }
  const used = new Set<number>();
  const backendPort = await pickPort(used);
  used.add(backendPort);
  const bodyFile = join(work, 'unary-request.bin');
  writeFileSync(bodyFile, FRAME);
  const base = { ctx, work, bodyFile, backendPort };
  const versions = (await runCaptured('h2load', ['--version'], 10_000)).stdout.trim();
  console.log(`Request: ${bodyFile} (${FRAME.length} bytes: the 5-byte gRPC frame header and a ${PAYLOAD.length}-byte message); load: ${versions}`);

  const samples: Sample[] = [];
  const failures = new Map<string, string[]>();
  const skippedAll = new Map<string, string>();
  const measuredPeers: Peer[] = [];
  for (const placement of PLACEMENTS) {
    const env: Env = { ...base, placement, backendCore: placement === 'split' ? ctx.clientCore : ctx.serverCore };
    console.log(`\n# Placement ${PLACEMENT_TITLE[placement]}\n`);
    const backendPrep = backendPeer(env, backendPort, 'backend');
    if (!backendPrep.ok) {
      console.error(`bench grpc: the gRPC server cannot run: ${backendPrep.reason}`);
      return 1;
    }
    const backendSpec: ServerSpec = backendPrep.spec;
    console.log(`  ${'backend'.padEnd(10)} ${backendPrep.info} (behind the proxies, started fresh for each proxy run)`);
    // The baseline build runs when asked for by name or when SWITCHYARD_BASELINE names one.
    const wanted = PEERS.filter((p) => (ctx.servers ? ctx.servers.has(p.id) : p !== switchyardBaseline || BASELINE_DIST !== undefined));
    const { ready, skipped } = await prepareAll(wanted, env, new Set([...used]));
    for (const s of skipped) skippedAll.set(s.peer.label, s.reason);
    for (const r of ready) if (!measuredPeers.includes(r.peer)) measuredPeers.push(r.peer);
    if (ready.length === 0) continue;
    console.log(
      `\nProxy on core ${ctx.serverCore}, gRPC server on core ${env.backendCore}, h2load on core ${ctx.clientCore}: ` +
        `h2load -t1 -c${CONNECTIONS} -m${STREAMS} -D ${ctx.durationSec} over h2c, warm-up ${ctx.warmupSec}s, ${ctx.runs} interleaved run(s)`,
    );
    console.log(`Before: ${(await backgroundLoad(ctx)).text}\n`);

    let backend: RunningServer | undefined;
    try {
      const f = await interleave({
        ctx,
        ready,
        // A fresh backend for every proxy run (as the direct one is fresh for its own); none while
        // the direct server runs.
        async beforeStart({ peer }) {
          await backend?.stop();
          backend = undefined;
          if (!peer.proxy) return;
          backend = await startServer(backendSpec);
          const bad = await checkRaw(backendPort);
          if (bad) throw new Error(`the gRPC backend does not answer: ${bad}`);
        },
        verify: (server) => verify(server.spec.port),
        async measure(server, { peer }, run, background) {
          const s = await measure(env, server, peer.proxy ? backend : undefined, peer, run, background);
          samples.push(s);
          console.log(
            progressLine(s, ctx.runs, `${placement.padEnd(6)} ${peer.label.padEnd(10)}`, {
              clientCoreName: 'client core',
              latency: `mean ${formatMs(s.meanMs)} ms`,
              extra: `  proxy ${formatMicros(s.proxyUsPerCall)} µs/call  backend ${formatMicros(s.backendUsPerCall)} µs/call  h2load ${formatMicros(s.clientUsPerReq)} µs/call`,
            })
              .replace(' req/s ', ' calls/s ')
              .replace(' µs/req ', ' µs/call '),
          );
        },
      });
      for (const [id, msgs] of f) failures.set(`${placement} ${id}`, msgs);
    } finally {
      await backend?.stop();
    }
  }
  console.log(`\nafter: ${(await backgroundLoad(ctx)).text}`);
  if (samples.length === 0 && measuredPeers.length === 0) {
    console.error('\nNothing can run; nothing to measure.');
    for (const [label, reason] of skippedAll) console.log(`\nNot measured: ${label}: ${reason}`);
    return 1;
  }

  // -------------------------------------------------------------------------------------------
  // Summary

  interface Row extends RowSummary<Sample> {
    readonly peer: Peer;
    readonly placement: Placement;
    readonly core0Us: number;
    readonly core1Us: number;
    readonly proxyUs: number;
    readonly backendUs: number;
    readonly clientUs: number;
    readonly meanMs: number;
  }
  const rows: Row[] = PLACEMENTS.flatMap((placement) =>
    measuredPeers.map((peer) => {
      const sum = summarizeRow(samples.filter((s) => s.peer === peer.id && s.placement === placement), ctx.runs);
      const med = (f: (s: Sample) => number) => median(sum.used.map(f));
      return {
        peer,
        placement,
        ...sum,
        core0Us: med((s) => s.core0UsPerCall),
        core1Us: med((s) => s.core1UsPerCall),
        proxyUs: med((s) => s.proxyUsPerCall),
        backendUs: med((s) => s.backendUsPerCall),
        clientUs: med((s) => s.clientUsPerReq),
        meanMs: med((s) => s.meanMs),
      };
    }),
  );
  const rowOf = (placement: Placement, id: PeerId) => rows.find((r) => r.placement === placement && r.peer.id === id);
  /** Which core limited the rate: the one at 95% or more busy (both: the two were balanced). */
  const bottleneck = (r: Row): string | undefined => {
    const c0 = r.serverCoreBusy >= 0.95;
    const c1 = r.clientCoreBusy >= 0.95;
    const core1 = r.placement === 'split' ? 'h2load + gRPC server' : 'h2load';
    const core0 = r.placement === 'split' ? (r.peer.proxy ? 'proxy' : 'nothing') : r.peer.proxy ? 'proxy + gRPC server' : 'gRPC server';
    if (c0 && c1) return `both cores saturated`;
    if (c1) return `core ${ctx.clientCore} (${core1}) saturated: the limit is there, not on core ${ctx.serverCore} (${core0})`;
    if (c0) return undefined; // the expected bottleneck: the side under test
    return 'neither core saturated: latency-bound';
  };
  const columns: Column[] = [
    { title: 'Path' },
    { title: 'calls/s (median)', align: 'right' },
    { title: 'per run' },
    { title: 'vs direct', align: 'right' },
    { title: `core ${ctx.serverCore} µs/call`, align: 'right' },
    { title: `core ${ctx.clientCore} µs/call`, align: 'right' },
    { title: 'proxy process µs/call', align: 'right' },
    { title: 'backend process µs/call', align: 'right' },
    { title: 'h2load µs/call', align: 'right' },
    { title: `core ${ctx.serverCore} busy`, align: 'right' },
    { title: `core ${ctx.clientCore} busy`, align: 'right' },
    { title: 'mean ms', align: 'right' },
    { title: 'notes' },
  ];
  for (const placement of PLACEMENTS) {
    const these = rows.filter((r) => r.placement === placement);
    if (these.every((r) => r.all.length === 0)) continue;
    const directRow = rowOf(placement, 'direct');
    const body = these.map((r) => [
      r.peer.proxy ? `through ${r.peer.label}` : 'direct (grpc-js)',
      formatRate(r.rps),
      r.perRun,
      ratio(r.rps, directRow?.rps ?? Number.NaN),
      formatMicros(r.core0Us),
      formatMicros(r.core1Us),
      formatMicros(r.proxyUs),
      formatMicros(r.backendUs),
      formatMicros(r.clientUs),
      formatPercent(r.serverCoreBusy),
      formatPercent(r.clientCoreBusy),
      formatMs(r.meanMs),
      [bottleneck(r), ...r.notes].filter(Boolean).join('; '),
    ]);
    console.log(`\n## gRPC unary calls (${PAYLOAD.length}-byte messages, echoed), ${PLACEMENT_TITLE[placement]}\n`);
    console.log(markdownTable(columns, body));
  }
  console.log(
    `\nh2load -t1 -c${CONNECTIONS} -m${STREAMS} -D ${ctx.durationSec} (${CONNECTIONS * STREAMS} calls in flight, each a POST of the prebuilt frame with ` +
      `content-type: application/grpc and te: trailers) on core ${ctx.clientCore}; median of ${ctx.runs} interleaved run(s), undisturbed ones (see notes). ` +
      `"core N µs/call": that core's busy time per completed call (every process on it plus the kernel); "proxy/backend process µs/call", ` +
      '"h2load µs/call": each process\'s own CPU time per call. h2load does not read grpc-status: every path was checked before measuring with ' +
      'one raw call (grpc-status 0, the echo) and one @grpc/grpc-js client call, and a run whose responses carry fewer bytes than the echo ' +
      'per call is marked SUSPICIOUS.',
  );
  const warning = disturbedWarning(samples);
  if (warning) console.log(`\n${warning}`);
  for (const [label, reason] of skippedAll) console.log(`\nNot measured: ${label}: ${reason}`);

  console.log(`\n### Goal: calls/s through Switchyard >= ${GOAL.toFixed(1)}x calls/s direct, in each placement\n`);
  for (const placement of PLACEMENTS) {
    const sy = rowOf(placement, 'switchyard');
    const directRow = rowOf(placement, 'direct');
    if (!sy || !directRow || !Number.isFinite(sy.rps) || !Number.isFinite(directRow.rps) || directRow.rps <= 0) {
      console.log(`- ${placement}: n/a (${!directRow || !Number.isFinite(directRow.rps) ? 'direct' : 'Switchyard'} not measured)`);
      continue;
    }
    const r = sy.rps / directRow.rps;
    const flags = [
      r >= GOAL ? 'MET' : 'NOT MET',
      ...(sy.used.some(isDisturbed) || directRow.used.some(isDisturbed) ? ['DISTURBED runs in the medians, see notes'] : []),
      ...(sy.used.some((s) => s.problems.length > 0) || directRow.used.some((s) => s.problems.length > 0) ? ['SUSPICIOUS row, see notes'] : []),
    ];
    console.log(
      `- ${placement}: ${r.toFixed(2)}x direct: ${flags.join('; ')}. Switchyard's own CPU per call ${formatMicros(sy.proxyUs)} µs; ` +
        `the gRPC server's ${formatMicros(sy.backendUs)} µs behind it, ${formatMicros(directRow.backendUs)} µs called directly`,
    );
    for (const o of rows.filter((x) => x.placement === placement && x.peer.proxy && x.peer.id !== 'switchyard')) {
      console.log(`  - for reference, through ${o.peer.label}: ${ratio(o.rps, directRow.rps)} direct (its own CPU per call ${formatMicros(o.proxyUs)} µs)`);
    }
  }
  printFailures(failures);
  return samples.length > 0 ? 0 : 1;
}

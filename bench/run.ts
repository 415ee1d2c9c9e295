// Benchmark entry point: `npm run bench -- <name> [options]` (= node --import tsx bench/run.ts).
// Benchmarks are not tests: they never fail a build, they print a table to stdout.
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { coreCount } from './lib/cpu.ts';
import { commandExists, installCleanupHandlers, killAllChildren, pinSelf } from './lib/proc.ts';
import { GRPC_IDS, runGrpc } from './grpc.ts';
import { H2_IDS, runH2 } from './h2.ts';
import { PROXY_IDS, runProxy } from './proxy.ts';
import { COMPRESS_IDS, runCompress } from './compress.ts';
import { LOADGEN_IDS, runLoadgen } from './loadgen.ts';
import { OBJECTS_IDS, runObjects } from './objects.ts';
import { runStatic, STATIC_IDS } from './static.ts';
import { runTls, TLS_IDS } from './tls.ts';
import { runTickGame, TICK_GAME_IDS } from './tick-game.ts';
import { runWs, WS_IDS } from './ws.ts';
import { RESP_IDS, runResp } from './resp.ts';
import { QUIC_IDS, runQuic } from './quic.ts';
import { HTTP3_IDS, runHttp3 } from './http3.ts';
import type { Benchmark, BenchContext } from './types.ts';

const BENCHMARKS: Readonly<Record<string, Benchmark>> = {
  static: {
    description: 'static files (4 KiB, 1 MiB): Switchyard `static` vs nginx, Caddy, sirv',
    servers: STATIC_IDS,
    run: runStatic,
  },
  proxy: {
    description: 'HTTP proxy, 100-byte upstream body: Switchyard `proxy` vs nginx, HAProxy, Caddy, http-proxy, @fastify/http-proxy, bare undici',
    servers: PROXY_IDS,
    run: runProxy,
  },
  ws: {
    description: 'WebSocket echo (1 connection, 100 in flight) and fan-out (1 sender, 100 receivers): Switchyard ws-echo/chat vs bare ws, uWS, socket.io',
    servers: WS_IDS,
    run: runWs,
  },
  tls: {
    description: 'TLS: new connections/s (full handshakes) and 4 KiB static over TLS keep-alive: Switchyard vs nginx, Caddy, bare node:https',
    servers: TLS_IDS,
    run: runTls,
  },
  h2: {
    description: 'HTTP/2 over TLS, h2load -c16 -m16: 100-byte response, 4 KiB static file, h2 -> h1 proxy: Switchyard vs nginx, Caddy, bare node:http2',
    servers: H2_IDS,
    tools: ['h2load', 'taskset'],
    run: runH2,
  },
  grpc: {
    description: 'gRPC unary calls/s (@grpc/grpc-js server, h2load over h2c): direct vs through Switchyard `proxy` (h2c listener, h2c:// upstream), nginx grpc_pass, Caddy',
    servers: GRPC_IDS,
    tools: ['h2load', 'taskset'],
    run: runGrpc,
  },
  compress: {
    description: 'on-the-fly gzip (level 6) of a 100 KB JSON static file: Switchyard `compress` vs nginx `gzip on`, Caddy `encode gzip`',
    servers: COMPRESS_IDS,
    run: runCompress,
  },
  loadgen: {
    description: 'load generators on one core against nginx `return 200` and Switchyard `respond`: `switchyard bench` vs wrk vs autocannon, req/s, ratio to wrk, latency percentiles',
    servers: LOADGEN_IDS,
    run: runLoadgen,
  },
  objects: {
    description: 'objects handler, 1 MiB: GET vs static serving the same file (wrk), PUT vs an in-process write + fsync (undici loop)',
    servers: OBJECTS_IDS,
    run: runObjects,
  },
  'tick-game': {
    description: 'the tick-game example at 30 Hz: players per core (ws clients added in steps) until p99 tick time passes half the period',
    servers: TICK_GAME_IDS,
    tools: ['taskset'],
    run: runTickGame,
  },
  http3: { description: 'HTTP/3 vs HTTP/2 over TLS, GET of a 100-byte response, 16 in flight on one connection (src/http3 client, node:http2): Switchyard vs Caddy, req/s and CPU per request', servers: HTTP3_IDS, tools: ['taskset'], run: runHttp3 },
  quic: { description: 'echo: one bulk stream (QUIC at 1350, 16 KiB, 64 KiB UDP payloads) and 100-byte exchanges (a QUIC stream each) vs TLS over TCP, MB/s, rate and CPU', servers: QUIC_IDS, tools: ['taskset'], run: runQuic },
  resp: {
    description: 'Redis-compatible cache: Switchyard `resp` vs redis-server, redis-benchmark SET/GET, 50 clients, unpipelined and -P 16',
    servers: RESP_IDS,
    tools: ['redis-benchmark', 'redis-server', 'taskset'],
    run: runResp,
  },
};

const SERVER_CORE = '0';
const CLIENT_CORE = '1';

function usage(): string {
  const names = Object.entries(BENCHMARKS)
    .map(([n, b]) => `  ${n.padEnd(10)} ${b.description}\n  ${''.padEnd(10)} servers: ${b.servers.join(', ')}`)
    .join('\n');
  return `usage: npm run bench -- <benchmark> [options]

benchmarks:
${names}

options:
  --duration <s>     measured seconds per load run (wrk, h2load; default 5)
  --warmup <s>       unmeasured load seconds before each measurement (default 2)
  --runs <n>         interleaved runs, median reported (default 3)
  --quick            smoke run: 1 run of 2s, 1s warm-up
  --servers <a,b>    only these servers (e.g. nginx,sirv; each benchmark's list is above)
  --connections <n>  wrk connections (default 64; h2 and grpc always use h2load -c16 -m16)
  --max-wait <s>     before each server's run, wait up to this long for other processes to
                     leave both cores idle (default 60, --quick 10; 0 = do not wait)
  -h, --help         this text

Needs Linux, 2+ cores, wrk and taskset (h2load for h2 and grpc; nginx, haproxy, caddy for their peers): bash bench/install.sh`;
}

function intOption(value: string | undefined, name: string, fallback: number, min: number, max: number): number {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isInteger(n) || n < min || n > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got "${value}"`);
  return n;
}

class UsageError extends Error {}

async function main(argv: readonly string[]): Promise<number> {
  const { values, positionals } = parseArgs({
    args: [...argv],
    allowPositionals: true,
    strict: true,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      runs: { type: 'string' },
      quick: { type: 'boolean', default: false },
      servers: { type: 'string' },
      connections: { type: 'string' },
      'max-wait': { type: 'string' },
      help: { type: 'boolean', short: 'h', default: false },
    },
  });
  if (values.help) {
    console.log(usage());
    return 0;
  }
  const available = Object.keys(BENCHMARKS).join(', ');
  if (positionals.length !== 1) throw new UsageError(`name one benchmark (available: ${available})`);
  const name = positionals[0];
  const bench = Object.hasOwn(BENCHMARKS, name) ? BENCHMARKS[name] : undefined;
  if (!bench) throw new UsageError(`unknown benchmark "${name}"; available: ${available}`);

  const quick = values.quick;
  const servers = values.servers?.split(',').map((s) => s.trim()).filter(Boolean);
  for (const s of servers ?? []) {
    if (!bench.servers.includes(s)) throw new UsageError(`unknown server "${s}" for ${name}; available: ${bench.servers.join(', ')}`);
  }
  const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '..');
  const ctx: BenchContext = {
    repoRoot,
    durationSec: intOption(values.duration, 'duration', quick ? 2 : 5, 1, 600),
    warmupSec: intOption(values.warmup, 'warmup', quick ? 1 : 2, 0, 120),
    runs: intOption(values.runs, 'runs', quick ? 1 : 3, 1, 20),
    connections: intOption(values.connections, 'connections', 64, 1, 10_000),
    maxWaitSec: intOption(values['max-wait'], 'max-wait', quick ? 10 : 60, 0, 600),
    servers: servers ? new Set(servers) : undefined,
    serverCore: SERVER_CORE,
    clientCore: CLIENT_CORE,
  };

  // Preflight: what every benchmark here needs.
  if (process.platform !== 'linux' || !existsSync('/proc/stat')) {
    console.error('bench: needs Linux (/proc/stat for per-core CPU time, taskset for pinning).');
    return 1;
  }
  const cores = coreCount();
  if (cores < 2) {
    console.error(`bench: needs at least 2 cores (server on core ${SERVER_CORE}, wrk on core ${CLIENT_CORE}); this machine has ${cores}.`);
    return 1;
  }
  const missing = (bench.tools ?? ['wrk', 'taskset']).filter((c) => !commandExists(c));
  if (missing.length > 0) {
    console.error(`bench: ${missing.join(' and ')} not installed. Install the benchmark tools with: bash bench/install.sh`);
    return 1;
  }
  installCleanupHandlers();
  // Keep the harness itself off the server's core.
  if (!pinSelf(CLIENT_CORE)) console.error(`bench: warning: could not pin the harness to core ${CLIENT_CORE}`);

  console.log(`# bench ${name} — ${new Date().toISOString()}, node ${process.version}, ${cores} cores\n`);
  try {
    return await bench.run(ctx);
  } finally {
    killAllChildren();
  }
}

main(process.argv.slice(2)).then(
  (code) => {
    process.exitCode = code;
  },
  (e: unknown) => {
    killAllChildren();
    if (e instanceof UsageError || (e instanceof TypeError && 'code' in e && String(e.code).startsWith('ERR_PARSE_ARGS'))) {
      console.error(`bench: ${e.message}\n\n${usage()}`);
      process.exitCode = 2;
    } else {
      console.error('bench: failed:', e instanceof Error ? (e.stack ?? e.message) : e);
      process.exitCode = 1;
    }
  },
);

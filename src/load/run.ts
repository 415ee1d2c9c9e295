import { lookup } from 'node:dns/promises';
import { isIPv4 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LoadConnection, type LoadContext } from './connection.ts';
import { H2Connection, h2Headers } from './h2-engine.ts';
import { Http1Connection, http1Shared } from './http1-engine.ts';
import { buildBatches, buildHttp1Request } from './http1-request.ts';
import { NativeHttp1Connection } from './http1-native-engine.ts';
import { UringHttp1Connection, UringSocketLoop } from './http1-uring-engine.ts';
import { ipv4SocketAddress, NativeSocketLoop, nativeSocketsUnavailable } from './native-sockets.ts';
import type { LoadOptions } from './options.ts';
import { Scheduler } from './scheduler.ts';
import { LoadStats } from './stats.ts';
import { TcpConnection } from './tcp-engine.ts';
import { UdpConnection } from './udp-engine.ts';
import { WsConnection } from './ws-engine.ts';

// One load run: open the connections, let them send until the count or the deadline, then close
// everything. Bounded three ways: the deadline (-d), the count (-n, each request itself bounded
// by --timeout through the sweeper), and nothing waits on a connection that stopped answering.

export interface RunHooks {
  /** Called about once a second with the stats so far and the time since the start (ms). */
  readonly tick?: (stats: LoadStats, elapsedMs: number) => void;
}

export interface RunOutcome {
  readonly stats: LoadStats;
  /** From the first connect to the last answer (count-bound) or to the deadline, ms. */
  readonly elapsedMs: number;
  /** CPU time this process used during the run (user + system), ms: the load generator's own cost. */
  readonly cpuMs: number;
  /** Which engine carried the load (see SocketsKind). */
  readonly sockets: SocketsKind;
  /** Why a preferred engine was not used (it could not be set up here), when one was not. */
  readonly socketsFallback?: string;
}

/**
 * Whose sockets carry plain http:// over IPv4: "io_uring" (one ring for the run,
 * http1-uring-engine.ts), "native" (non-blocking sockets and one epoll set through koffi,
 * http1-native-engine.ts) or "node" (Node's net sockets, as every other target uses).
 */
export type SocketsKind = 'io_uring' | 'native' | 'node';
const SOCKETS_KINDS: readonly SocketsKind[] = ['io_uring', 'native', 'node'];

/** How long the native socket loop may hold the event loop waiting for more answers (closed model). */
const HOLD_MS = 2;

/** Set to `io_uring`, `native` or `node` to force that engine for plain http:// (see SocketsKind). */
export const SOCKETS_ENV = 'SWITCHYARD_BENCH_SOCKETS';

/** The engines tried in turn for plain http:// over IPv4 when SOCKETS_ENV does not choose one. */
const PREFERENCE: readonly SocketsKind[] = ['io_uring', 'native', 'node'];

/**
 * The target's IPv4 address when plain HTTP/1.1 can run on the load generator's own sockets,
 * else undefined: TLS, HTTP/2, an IPv6 target.
 */
async function nativeHttp1Address(o: LoadOptions): Promise<Buffer | undefined> {
  if (o.target.protocol !== 'http' || o.target.tls || o.http2) return undefined;
  let ip = o.target.host;
  if (!isIPv4(ip)) {
    // A name with IPv6 addresses too is left to Node's sockets, which try every family.
    let addresses: { address: string; family: number }[];
    try {
      addresses = await lookup(ip, { all: true });
    } catch {
      return undefined; // Node's sockets report the lookup failure as a connect error
    }
    if (addresses.length === 0 || addresses.some((a) => a.family !== 4)) return undefined;
    ip = addresses[0].address;
  }
  return ipv4SocketAddress(ip, o.target.port);
}

/** The engine chosen for a run and what it holds. */
type Transport =
  | { readonly kind: 'io_uring'; readonly loop: UringSocketLoop; readonly address: Buffer; readonly fallback?: string }
  | { readonly kind: 'native'; readonly loop: NativeSocketLoop; readonly address: Buffer; readonly fallback?: string }
  | { readonly kind: 'node'; readonly fallback?: string };

/**
 * Picks the engine for plain http:// over IPv4: the one SOCKETS_ENV names, else the first of
 * PREFERENCE that can be set up here. Why a better one could not be had goes into the report.
 */
async function chooseTransport(o: LoadOptions): Promise<Transport> {
  const address = await nativeHttp1Address(o);
  if (address === undefined) return { kind: 'node' };
  const forced = process.env[SOCKETS_ENV];
  if (forced !== undefined && forced !== '' && !(SOCKETS_KINDS as readonly string[]).includes(forced)) {
    throw new Error(`${SOCKETS_ENV}=${forced}: expected one of ${SOCKETS_KINDS.join(', ')}`);
  }
  const order = forced ? [forced as SocketsKind] : PREFERENCE;
  // Closed model: a callback may wait up to 2 ms for more answers (timers then run up to 2 ms
  // late, which only the open model's pacing would notice).
  const holdMs = o.rate === undefined ? HOLD_MS : 0;
  const reasons: string[] = [];
  for (const kind of order) {
    const fallback = reasons.length > 0 ? reasons.join('; ') : undefined;
    if (kind === 'io_uring') {
      const requestBytes = http1RequestBytes(o);
      const loop = UringSocketLoop.open(o.connections, requestBytes, holdMs);
      if (typeof loop !== 'string') return { kind, loop, address, fallback };
      reasons.push(`io_uring: ${loop}`);
    } else if (kind === 'native') {
      const why = nativeSocketsUnavailable();
      if (why === undefined) return { kind, loop: new NativeSocketLoop(holdMs), address, fallback };
      reasons.push(`native sockets: ${why}`);
    } else {
      return { kind, fallback };
    }
  }
  return { kind: 'node', fallback: reasons.join('; ') };
}

/** Bytes of ring memory the request batches of a run take (see UringSocketLoop.layout). */
function http1RequestBytes(o: LoadOptions): number {
  return buildBatches(buildHttp1Request(o), o.pipeline).reduce((sum, b) => sum + (b?.length ?? 0), 0);
}

function connectionFactory(ctx: LoadContext, transport: Transport): () => LoadConnection {
  const o = ctx.options;
  switch (o.target.protocol) {
    case 'http':
      if (o.http2) {
        const headers = h2Headers(ctx);
        return () => new H2Connection(ctx, headers);
      } else if (transport.kind === 'io_uring') {
        const shared = { loop: transport.loop, requests: transport.loop.layout(http1Shared(ctx), transport.address) };
        return () => new UringHttp1Connection(ctx, shared);
      } else if (transport.kind === 'native') {
        const shared = { ...http1Shared(ctx), loop: transport.loop, address: transport.address };
        return () => new NativeHttp1Connection(ctx, shared);
      } else {
        const shared = http1Shared(ctx);
        return () => new Http1Connection(ctx, shared);
      }
    case 'ws':
      return () => new WsConnection(ctx);
    case 'tcp':
      return () => new TcpConnection(ctx);
    case 'udp':
      return () => new UdpConnection(ctx);
  }
}

/** Runs the load described by `options` (its warm-up is the caller's: see runBench). */
export async function runLoad(options: LoadOptions, hooks: RunHooks = {}): Promise<RunOutcome> {
  const transport = await chooseTransport(options);
  try {
    return await runConnections(options, hooks, transport);
  } finally {
    if (transport.kind !== 'node') transport.loop.close();
  }
}

function runConnections(options: LoadOptions, hooks: RunHooks, transport: Transport): Promise<RunOutcome> {
  const stats = new LoadStats();
  const cpu0 = process.cpuUsage();
  const start = performance.now();
  const scheduler = new Scheduler({
    startMs: start,
    endMs: options.durationMs === undefined ? Infinity : start + options.durationMs,
    limit: options.requests ?? Infinity,
    rate: options.rate,
  });
  return new Promise((resolve) => {
    const connections: LoadConnection[] = [];
    let finished = false;
    const timers: NodeJS.Timeout[] = [];
    const finish = (end: number) => {
      if (finished) return;
      finished = true;
      scheduler.stop();
      for (const t of timers) clearTimeout(t);
      for (const c of connections) c.close();
      const cpu = process.cpuUsage(cpu0);
      resolve({ stats, elapsedMs: end - start, cpuMs: (cpu.user + cpu.system) / 1000, sockets: transport.kind, socketsFallback: transport.fallback });
    };
    const settled = () => {
      if (finished) return;
      const now = performance.now();
      if (!scheduler.exhausted(now)) return;
      for (const c of connections) if (!c.idle()) return;
      finish(options.durationMs === undefined ? now : Math.min(now, start + options.durationMs));
    };
    const ctx: LoadContext = { options, stats, scheduler, settled };
    const make = connectionFactory(ctx, transport);
    for (let i = 0; i < options.connections; i++) connections.push(make());

    if (options.durationMs !== undefined) {
      const durationMs = options.durationMs;
      // What is still in flight at the deadline is dropped, not counted (as wrk does).
      timers.push(setTimeout(() => finish(start + durationMs), durationMs));
    }
    const sweepMs = Math.min(250, Math.max(10, Math.floor(options.timeoutMs / 4)));
    timers.push(
      setInterval(() => {
        const now = performance.now();
        for (const c of connections) c.checkTimeout(now);
        settled();
      }, sweepMs),
    );
    if (hooks.tick) {
      const tick = hooks.tick;
      timers.push(setInterval(() => tick(stats, performance.now() - start), 1000));
    }
    for (const c of connections) c.start();
  });
}

import { createSocket, type RemoteInfo, type Socket as UdpSocket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { z } from 'zod';
import { duration } from '../config/units.ts';
import type { UpstreamGroup } from '../upstream/group.ts';
import { addressPick, type Admission } from '../upstream/admission.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { CounterCell } from '../observe/hot-metrics.ts';
import type { Target } from '../upstream/target.ts';
import type { DatagramContext, DatagramHandler, HandlerModule } from './types.ts';

// L4 datagram proxy. UDP has no connections, so a session stands for one: the first datagram
// from a client address (ip:port) picks a target and opens a socket connected to it; later
// datagrams from that address go out on the same socket, and whatever the target answers on it
// goes back to that client through the listener's socket. A session quiet for `sessionIdle` is
// closed. Sessions are capped at `maxSessions`, and each is admitted by the upstream group like
// any proxied call (breaker, pending cap): beyond them new clients are dropped, never queued,
// and every dropped datagram is counted in switchyard_udp_proxy_dropped_total by reason. Datagrams that arrive while the session's socket is still connecting are held
// up to a small bound; a send queue backed up in the kernel drops rather than grows.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('udp-proxy'),
  /** Name of a group under `upstreams:`. */
  upstream: z.string().min(1),
  /** A session with no datagram either way for this long is closed. */
  sessionIdle: duration()
    .pipe(z.number().int().min(1, 'sessionIdle must be at least 1ms'))
    .default(60_000),
  /** Sessions (client addresses) at once; datagrams from further clients are dropped. */
  maxSessions: z.number().int().min(1).max(1_000_000).default(10_000),
});

export type UdpProxyConfig = z.output<typeof schema>;

/** Datagrams held per session while its socket connects. */
const MAX_EARLY = 64;
/** Datagrams queued in libuv per session socket beyond this are dropped. */
const MAX_SEND_QUEUE = 256;

interface Session {
  readonly key: string;
  readonly adm: Admission;
  readonly target: Target;
  readonly socket: UdpSocket;
  /** Datagrams waiting for the connect; undefined once connected. */
  early: Buffer[] | undefined;
  /** Last datagram either way (ms, Date.now()). */
  last: number;
  closed: boolean;
  /** Its target refused it (ICMP port unreachable): a failure for the breaker. */
  failed: boolean;
}

const DROP_REASONS = ['max-sessions', 'no-target', 'breaker-open', 'max-requests', 'max-pending', 'backlog'] as const;
type DropReason = (typeof DROP_REASONS)[number];

class UdpProxyHandler implements DatagramHandler {
  private readonly sessions = new Map<string, Session>();
  private readonly sweeper: NodeJS.Timeout;
  private readonly dropped: Record<DropReason, CounterCell>;

  constructor(
    private readonly group: UpstreamGroup,
    private readonly config: UdpProxyConfig,
    listener: string,
    metrics: Metrics,
  ) {
    const drops = metrics.counter('switchyard_udp_proxy_dropped_total', 'Datagrams from clients the udp-proxy dropped, by reason (session limit, the group refusing a new session, a session backed up).', ['listener', 'upstream', 'reason']);
    this.dropped = {} as Record<DropReason, CounterCell>;
    for (const r of DROP_REASONS) this.dropped[r] = drops.labels(listener, group.name, r);
    // One timer for all sessions: each sweep closes those idle for sessionIdle or longer, so a
    // session lives between sessionIdle and about 1.25 x sessionIdle after its last datagram.
    const every = Math.max(10, Math.min(1000, Math.ceil(config.sessionIdle / 4)));
    this.sweeper = setInterval(() => this.sweep(), every);
    this.sweeper.unref();
  }

  /** Sessions open now. */
  get size(): number {
    return this.sessions.size;
  }

  handle(message: Buffer, from: RemoteInfo, ctx: DatagramContext): void {
    const key = `${from.address}:${from.port}`;
    let session = this.sessions.get(key);
    if (!session) {
      if (this.sessions.size >= this.config.maxSessions) {
        this.dropped['max-sessions'].inc();
        ctx.log.debug({ listener: ctx.listener, upstream: this.group.name, client: key }, 'udp-proxy: session limit reached, datagram dropped');
        return;
      }
      session = this.open(key, from, ctx);
      if (!session) return;
    }
    session.last = Date.now();
    if (session.early) {
      if (session.early.length < MAX_EARLY) session.early.push(message);
      else this.dropped['backlog'].inc();
      return;
    }
    this.send(session, message, ctx);
  }

  private open(key: string, from: RemoteInfo, ctx: DatagramContext): Session | undefined {
    // A session is one call for the group's admission: a target, the breaker (maxRequests caps
    // the group's sessions), the pending cap while its socket connects.
    const adm = this.group.admit(addressPick(from.address));
    if (!adm.ok) {
      this.dropped[adm.reason].inc();
      ctx.log.debug({ listener: ctx.listener, upstream: this.group.name, client: key, reason: adm.reason }, 'udp-proxy: no session (refused by the upstream group), datagram dropped');
      return undefined;
    }
    const target = adm.target;
    adm.begin(target);
    const socket = createSocket({ type: isIPv6(target.host) ? 'udp6' : 'udp4' });
    const session: Session = { key, adm, target, socket, early: [], last: Date.now(), closed: false, failed: false };
    this.sessions.set(key, session);
    // The client's address is copied: the RemoteInfo object belongs to one message event.
    const client: RemoteInfo = { address: from.address, family: from.family, port: from.port, size: 0 };
    socket.on('message', (reply) => {
      session.last = Date.now();
      try {
        ctx.reply(reply, client);
      } catch (err) {
        // The listener's socket is closed (the yard is stopping): the reply has nowhere to go.
        ctx.log.debug({ err, listener: ctx.listener }, 'udp-proxy: reply dropped');
      }
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      // ECONNREFUSED: the target's port is closed (ICMP unreachable on a connected socket).
      ctx.log.debug({ err, listener: ctx.listener, upstream: this.group.name, target: target.id, client: key }, 'udp-proxy: session socket error');
      // Nothing listens there: counted like a refused TCP connect (outlier detection ejects).
      if (session.early || err.code === 'ECONNREFUSED') {
        adm.report('connect-failure');
        session.failed = true;
      }
      this.closeSession(session);
    });
    socket.connect(target.port, target.host, () => {
      if (session.closed) return;
      const early = session.early ?? [];
      session.early = undefined;
      adm.connected();
      adm.report('success');
      for (const m of early) this.send(session, m, ctx);
    });
    return session;
  }

  private send(session: Session, message: Buffer, ctx: DatagramContext): void {
    if (session.closed) return;
    if (session.socket.getSendQueueCount() > MAX_SEND_QUEUE) {
      this.dropped['backlog'].inc();
      return;
    }
    try {
      session.socket.send(message, (err) => {
        if (err) ctx.log.debug({ err, listener: ctx.listener, target: session.target.id }, 'udp-proxy: send failed');
      });
    } catch (err) {
      ctx.log.debug({ err, listener: ctx.listener, target: session.target.id }, 'udp-proxy: send failed');
      this.closeSession(session);
    }
  }

  private closeSession(session: Session): void {
    if (session.closed) return;
    session.closed = true;
    session.early = undefined;
    session.adm.finishTry();
    session.adm.end(session.failed ? 'failure' : 'success');
    if (this.sessions.get(session.key) === session) this.sessions.delete(session.key);
    try {
      session.socket.close();
    } catch {
      // already closed
    }
  }

  private sweep(): void {
    const cutoff = Date.now() - this.config.sessionIdle;
    for (const s of this.sessions.values()) if (s.last <= cutoff) this.closeSession(s);
  }

  close(): void {
    clearInterval(this.sweeper);
    for (const s of [...this.sessions.values()]) this.closeSession(s);
  }
}

export const udpProxyHandler: HandlerModule<UdpProxyConfig> = {
  type: 'udp-proxy',
  summary: 'L4 datagram proxy: a session (own socket to a target) per client address, replies sent back, idle sessions closed',
  schema,
  datagram: (config, ctx) => new UdpProxyHandler(ctx.upstream(config.upstream), config, ctx.listener, ctx.metrics),
};

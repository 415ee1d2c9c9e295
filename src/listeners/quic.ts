import type { Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Logger } from 'pino';
import type { ListenerConfig, QuicListenerConfig } from '../config/schema.ts';
import { formatHostPort, parseHostPort } from '../config/address.ts';
import type { ConnContext, ListenerSummary, StreamHandler } from '../handlers/types.ts';
import type { Metrics } from '../observe/metrics.ts';
import { certificateFromTls } from '../quic/certificate.ts';
import type { QuicLimits } from '../quic/config.ts';
import type { QuicConnection } from '../quic/connection.ts';
import { QuicServer, type EndpointObserver } from '../quic/endpoint.ts';
import { isQuicError } from '../quic/errors.ts';
import { quicMetricsObserver } from '../quic/metrics.ts';
import type { QuicStream } from '../quic/stream.ts';
import { quicUdpMode } from './bind.ts';
import { Generation } from './generation.ts';
import type { ListenerTls } from './tls.ts';
import { ListenError, listenErrorReason, type BoundAddress, type Listener, type ListenerHandlers, type ListeningSocket } from './types.ts';

// The QUIC front end: every stream of every connection goes to the listener's stream handler
// as a Duplex with the socket's address fields, so handlers written for TCP (echo pipes the
// stream to itself) serve QUIC streams unchanged. The transport is src/quic; this file adds
// the config, metrics, logs, drain and reload.

export interface QuicListenerOptions {
  config: QuicListenerConfig;
  handler: StreamHandler;
  tls: ListenerTls;
  metrics: Metrics;
  log: Logger;
  /** A bound UDP socket handed over by the daemon this one replaces (upgrade). */
  inherit?: UdpSocket;
}

/** The transport's limits from the listener's config. */
export function quicLimitsOf(config: QuicListenerConfig): Partial<QuicLimits> {
  const l = config.limits;
  return {
    maxConnections: l.maxConnections,
    maxStreamsBidi: l.maxStreams.bidi,
    maxStreamsUni: l.maxStreams.uni,
    idleTimeoutMs: l.idleTimeout,
    handshakeTimeoutMs: l.handshakeTimeout,
    maxStreamData: l.maxStreamData,
    maxData: l.maxConnectionData,
    maxUdpPayload: l.maxUdpPayload,
  };
}

export class QuicListener implements Listener {
  readonly protocol = 'quic' as const;
  readonly name: string;
  private server: QuicServer | undefined;
  private bound: BoundAddress | undefined;
  private gen = new Generation();
  private readonly observer: EndpointObserver;
  /** The endpoint binds a socket of its own with SO_REUSEPORT (a worker of several): see stopAccepting. */
  private ownSocket = false;
  private draining = false;

  constructor(private options: QuicListenerOptions) {
    this.name = options.config.name;
    const counters = quicMetricsObserver(options.metrics, this.name);
    const log = options.log;
    const name = this.name;
    this.observer = {
      ...counters,
      handshakeFailed(remote, reason, info) {
        counters.handshakeFailed?.(remote, reason, info);
        log.debug({ listener: name, remote: remote.host, port: remote.port, reason, err: info.error?.message }, 'quic handshake failed');
      },
    };
  }

  private alpn(config: QuicListenerConfig): string[] {
    return config.alpn ?? [config.handler.type];
  }

  async start(): Promise<void> {
    const { config, tls, log } = this.options;
    const where = config.address;
    const hp = parseHostPort(where);
    if (!hp) throw new ListenError(this.name, where, 'not a host:port address');
    const reusePort = !this.options.inherit && quicUdpMode(hp.port, log) === 'own';
    const server = new QuicServer({
      host: hp.host,
      port: hp.port,
      certificate: certificateFromTls(tls.source),
      alpn: this.alpn(config),
      limits: quicLimitsOf(config),
      retry: config.retry,
      earlyData: config.earlyData,
      migration: config.migration,
      observer: this.observer,
      onConnection: (conn) => this.onConnection(conn),
      socket: this.options.inherit,
      // A worker of several binds its own socket where it can, so each connection's packets reach it.
      reusePort,
    });
    try {
      await server.start();
    } catch (err) {
      const cause = isQuicError(err) && err.cause instanceof Error ? (err.cause as NodeJS.ErrnoException) : undefined;
      throw new ListenError(this.name, `udp ${where}`, cause ? listenErrorReason(cause) : (err as Error).message, { cause: err });
    }
    this.server = server;
    this.ownSocket = reusePort;
    this.bound = server.address();
    log.debug({ listener: this.name, address: formatHostPort(server.address()) }, 'quic listener started');
  }

  private onConnection(conn: QuicConnection): void {
    const gen = this.gen;
    const { handler, log, metrics, config } = this.options;
    const name = this.name;
    const route = config.handler.type;
    gen.enter();
    void conn.closed.then(() => {
      gen.leave();
      // After the endpoint has let the connection go (its own closed handler runs first).
      setImmediate(() => this.closeOwnSocketWhenIdle());
    });
    const requests = metrics.totalRequests;
    const ctx: ConnContext = {
      listener: name,
      log,
      // Stream bytes are counted by the transport as they move; nothing goes behind its back.
      addBytesSent: () => {},
      countRequest: (status, count = 1) => requests.labels(name, route, status).inc(count),
    };
    conn.on('stream', (stream: QuicStream) => {
      stream.on('error', (err: Error) => {
        log.debug({ listener: name, stream: stream.id, remote: conn.remoteAddress, err: err.message }, 'quic stream ended with an error');
      });
      try {
        // A QuicStream carries the socket fields stream handlers read (remoteAddress, setNoDelay, ...).
        handler.handle(stream as unknown as Socket, ctx);
      } catch (err) {
        log.error({ err, listener: name }, 'handler failed');
        stream.destroy();
      }
    });
  }

  address(): BoundAddress {
    if (!this.bound) throw new Error(`listener "${this.name}" is not started`);
    return this.bound;
  }

  summary(): ListenerSummary {
    const a = this.address() as { host: string; port: number };
    const hp = formatHostPort(a);
    const alpn = this.alpn(this.options.config);
    const ca = this.options.tls.rootCertFile ? ` --ca ${this.options.tls.rootCertFile}` : '';
    return {
      name: this.name,
      protocol: 'quic',
      url: `quic://${hp}`,
      handlers: [this.options.config.handler.type],
      tryIt: `echo hello | switchyard connect quic://${hp} --alpn ${alpn[0]}${ca}`,
    };
  }

  async stopAccepting(): Promise<void> {
    // The socket stays open: the connections still draining receive through it.
    this.draining = true;
    this.server?.stopAccepting();
    this.closeOwnSocketWhenIdle();
  }

  /**
   * A draining worker's own SO_REUSEPORT socket goes as soon as its last connection has: while
   * it is open the kernel gives it a share of new clients' datagrams, which it no longer accepts
   * (an upgrade's new workers serve beside it). A shared socket stays until destroy().
   */
  private closeOwnSocketWhenIdle(): void {
    if (this.draining && this.ownSocket && this.server && this.server.connectionCount() === 0) void this.server.close();
  }

  inFlight(): number {
    return this.server?.connectionCount() ?? 0;
  }

  destroy(): void {
    this.options.tls.source.close();
    void this.server?.close();
  }

  /** New handler, ALPN and limits for new connections; open connections keep theirs until they close. */
  reconfigure(config: ListenerConfig, handlers: ListenerHandlers): Promise<void> {
    if (config.protocol !== 'quic' || Array.isArray(handlers)) throw new Error(`listener "${this.name}": not a quic config`);
    const old = this.gen;
    this.gen = new Generation();
    this.options = { ...this.options, config, handler: handlers as StreamHandler };
    this.server?.update({ alpn: this.alpn(config), retry: config.retry, earlyData: config.earlyData, limits: quicLimitsOf(config) });
    return old.retire();
  }

  listening(): ListeningSocket | undefined {
    return this.server?.udpSocket();
  }
}

import { createServer, type Server, type Socket } from 'node:net';
import { createServer as createTlsServer } from 'node:tls';
import type { Logger } from 'pino';
import type { ListenerConfig, StreamLimitsConfig } from '../config/schema.ts';
import type { ConnContext, ListenerSummary, StreamHandler } from '../handlers/types.ts';
import { Generation } from './generation.ts';
import type { Metrics } from '../observe/metrics.ts';
import { ByteMeter } from '../observe/byte-meter.ts';
import type { CounterCell, GaugeCell } from '../observe/hot-metrics.ts';
import type { BoundAddress, Listener, ListenerHandlers, ListeningSocket } from './types.ts';
import { watchHandshakes, type ListenerTls } from './tls.ts';

// The connection-oriented front end shared by tcp and unix listeners: a net.Server that counts
// and limits connections, closes idle ones and hands each socket to the handler. A socket error
// is the connection's own business: it is logged and the socket destroyed, never thrown.

export interface StreamListenerOptions {
  name: string;
  handlerType: string;
  handler: StreamHandler;
  limits: StreamLimitsConfig;
  metrics: Metrics;
  log: Logger;
  /** TLS in front of the handler (the yard builds the certificates from `tls:`). */
  tls?: ListenerTls;
  /** A listening socket handed over by the daemon this one replaces (upgrade), used instead of binding. */
  inherit?: Server;
}

export abstract class StreamListener implements Listener {
  abstract readonly protocol: 'tcp' | 'unix';
  readonly name: string;
  protected readonly server: Server;
  protected bound: BoundAddress | undefined;
  private readonly sockets = new Set<Socket>();
  private readonly meter: ByteMeter;
  private readonly connections: CounterCell;
  private readonly active: GaugeCell;
  private gen = new Generation();

  constructor(protected options: StreamListenerOptions) {
    this.name = options.name;
    this.meter = new ByteMeter(options.name, options.metrics.totalBytesSent, options.metrics.totalBytesReceived);
    this.connections = options.metrics.totalConnections.labels(options.name);
    this.active = options.metrics.activeConnections.labels(options.name);
    const tls = options.tls;
    if (tls) {
      // The handler is handed the TLS socket once its handshake is done: a clear stream like any other.
      const server = createTlsServer({ ...tls.source.serverOptions(), noDelay: true }, (socket) => this.onConnection(socket));
      watchHandshakes(server, tls, options.name, options.metrics, options.log);
      this.server = server;
    } else this.server = createServer({ noDelay: true }, (socket) => this.onConnection(socket));
    this.server.maxConnections = options.limits.maxConnections;
  }

  abstract start(): Promise<void>;
  abstract summary(): ListenerSummary;

  address(): BoundAddress {
    if (!this.bound) throw new Error(`listener "${this.name}" is not started`);
    return this.bound;
  }

  async stopAccepting(): Promise<void> {
    // Stops listening at once; the callback form would wait for every connection to end.
    this.server.close();
  }

  inFlight(): number {
    return this.sockets.size;
  }

  listening(): ListeningSocket | undefined {
    return this.server.listening ? this.server : undefined;
  }

  destroy(): void {
    this.options.tls?.source.close();
    for (const s of this.sockets) s.destroy();
  }

  /**
   * A reload's handler and limits for this listener, on the same socket: new connections get
   * them; connections already open stay with the old handler until they close.
   */
  reconfigure(config: ListenerConfig, handlers: ListenerHandlers): Promise<void> {
    if ((config.protocol !== 'tcp' && config.protocol !== 'unix') || Array.isArray(handlers)) throw new Error(`listener "${this.name}": not a ${this.protocol} config`);
    const old = this.gen;
    this.gen = new Generation();
    this.options = { ...this.options, handler: handlers as StreamHandler, handlerType: config.handler.type, limits: config.limits };
    this.server.maxConnections = config.limits.maxConnections;
    return old.retire();
  }

  private onConnection(socket: Socket): void {
    const { metrics, log, limits, handler } = this.options;
    const name = this.name;
    const gen = this.gen;
    gen.enter();
    this.sockets.add(socket);
    this.connections.inc();
    this.active.inc();
    this.meter.track(socket);
    socket.on('error', (err: NodeJS.ErrnoException) => {
      if (err.code !== 'ECONNRESET' && err.code !== 'EPIPE') log.debug({ err, listener: name }, 'connection error');
      socket.destroy();
    });
    socket.setTimeout(limits.idleTimeout, () => socket.destroy());
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.active.dec();
      this.meter.flush(socket);
      gen.leave();
    });
    const requests = metrics.totalRequests;
    const route = this.options.handlerType;
    const ctx: ConnContext = {
      listener: name,
      log,
      addBytesSent: (n) => this.meter.addSent(n),
      countRequest: (status, count = 1) => requests.labels(name, route, status).inc(count),
    };
    try {
      handler.handle(socket, ctx);
    } catch (err) {
      log.error({ err, listener: name }, 'handler failed');
      socket.destroy();
    }
  }
}

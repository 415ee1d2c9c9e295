import { createServer, STATUS_CODES, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { HttpListenerConfig } from '../../config/schema.ts';
import { formatHostPort } from '../../config/address.ts';
import { listenTcp } from '../bind.ts';
import type { HttpHandler, ListenerSummary } from '../../handlers/types.ts';
import { replyError } from '../../handlers/http/reply.ts';
import { BodyAbortedError, BodyTooLargeError } from '../../handlers/http/body.ts';
import { buildMiddleware, compose, newRequestId, type Middleware, type MiddlewareContext } from '../../middleware/index.ts';
import type { Metrics } from '../../observe/metrics.ts';
import { ByteMeter } from '../../observe/byte-meter.ts';
import type { CounterCell, GaugeCell, HistogramCell } from '../../observe/hot-metrics.ts';
import { compileRoutes, hostOf, normalisePath, type CompiledRoute } from './router.ts';
import { RequestContext } from './context.ts';
import type { BoundAddress, Listener } from '../types.ts';

// The HTTP/1.1 front end on node:http. A request passes through named phases:
//   accept (connection limits, byte metering) -> parse (Node: header size and time limits)
//   -> route (normalise path, match host/method/path) -> admit (declared body size)
//   -> middleware -> handler -> finish (metrics).
// Limits are Node's own where Node has them (maxHeaderSize -> 431, headersTimeout and
// requestTimeout -> 408) and ours where it does not (body size -> 413).

interface RouteEntry {
  route: CompiledRoute<HttpHandler>;
  run: (ctx: MiddlewareContext) => void | Promise<void>;
  stats: RouteStats;
}


/** Metric children of one route, looked up once instead of hashing labels on every request. */
class RouteStats {
  private readonly byStatus = new Map<number, CounterCell>();
  readonly duration: HistogramCell;
  constructor(
    private readonly metrics: Metrics,
    private readonly listener: string,
    private readonly route: string,
  ) {
    this.duration = metrics.requestDuration.labels(listener, route);
  }

  record(status: number, started: bigint): void {
    let c = this.byStatus.get(status);
    if (!c) {
      c = this.metrics.totalRequests.labels(this.listener, this.route, String(status));
      this.byStatus.set(status, c);
    }
    c.inc();
    this.duration.observe(Number(process.hrtime.bigint() - started) / 1e9);
  }
}

/** Node keeps the response a socket is writing as `_httpMessage`; it is not in the typings. */
type SocketWithMessage = Socket & { _httpMessage?: ServerResponse | null };

export interface HttpListenerOptions {
  config: HttpListenerConfig;
  handlers: HttpHandler[];
  metrics: Metrics;
  log: Logger;
  accessLogDefault: boolean;
}

export class HttpListener implements Listener {
  readonly protocol = 'http' as const;
  readonly name: string;
  private readonly server: Server;
  private readonly routes: RouteEntry[];
  private readonly sockets = new Set<Socket>();
  private readonly meter: ByteMeter;
  private readonly unrouted: RouteStats;
  private readonly connections: CounterCell;
  private readonly active: GaugeCell;
  private draining = false;
  private bound: BoundAddress | undefined;

  constructor(private readonly options: HttpListenerOptions) {
    const { config, handlers, metrics } = options;
    this.name = config.name;
    this.meter = new ByteMeter(config.name, metrics.totalBytesSent, metrics.totalBytesReceived);
    const compiled = compileRoutes(config.routes, handlers);
    const shared = new Map<object, Middleware>();
    this.routes = compiled.map((route) => {
      const chain = buildMiddleware(config.middleware, route.config.middleware, options.accessLogDefault, shared);
      const handler = route.handler;
      return { route, run: compose(chain, (ctx) => handler.handle(ctx)), stats: new RouteStats(metrics, config.name, route.name) };
    });
    this.unrouted = new RouteStats(metrics, config.name, '-');
    this.connections = metrics.totalConnections.labels(config.name);
    this.active = metrics.activeConnections.labels(config.name);

    const l = config.limits;
    this.server = createServer({
      maxHeaderSize: l.maxHeaderSize,
      headersTimeout: l.headerTimeout,
      requestTimeout: l.requestTimeout,
      keepAliveTimeout: l.keepAliveTimeout,
      // How often Node checks the two timeouts above; its default (30 s) would let a slow
      // client hold a connection for up to 30 s past its deadline.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(l.headerTimeout, l.requestTimeout || l.headerTimeout) / 4))),
    });
    this.server.maxConnections = l.maxConnections;
    this.server.maxRequestsPerSocket = l.maxRequestsPerConnection;
    this.server.setTimeout(l.idleTimeout);
    this.server.on('connection', (socket: Socket) => this.onConnection(socket));
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  async start(): Promise<void> {
    this.bound = await listenTcp(this.server, this.name, this.options.config.address, this.options.log);
  }

  address(): BoundAddress {
    if (!this.bound) throw new Error(`listener "${this.name}" is not started`);
    return this.bound;
  }

  summary(): ListenerSummary {
    const a = this.address() as { host: string; port: number };
    const url = `http://${formatHostPort(a)}/`;
    return {
      name: this.name,
      protocol: 'http',
      url,
      handlers: this.options.config.routes.map((r) => r.handler.type),
      // The first route with a concrete path (not a pattern) is something that answers.
      tryIt: `curl -i ${url}${(this.options.config.routes.find((r) => !r.match.path.includes('*'))?.match.path ?? '/').slice(1)}`,
    };
  }

  async stopAccepting(): Promise<void> {
    this.draining = true;
    // server.close() stops listening at once and (Node >= 19) closes idle keep-alive connections;
    // its callback waits for every connection, which the yard tracks itself through inFlight().
    // Connections in the middle of a request finish it and then close (see onRequest).
    this.server.close();
  }

  inFlight(): number {
    if (this.draining) this.server.closeIdleConnections();
    return this.sockets.size;
  }

  destroy(): void {
    this.server.closeAllConnections();
    for (const s of this.sockets) s.destroy();
  }

  private onConnection(socket: Socket): void {
    this.sockets.add(socket);
    this.connections.inc();
    this.active.inc();
    this.meter.track(socket);
    socket.once('close', () => {
      this.sockets.delete(socket);
      this.active.dec();
      this.meter.flush(socket);
    });
  }

  private match(req: IncomingMessage, path: string): { entry: RouteEntry; rest: string } | { allow: string[] } | undefined {
    const host = hostOf(req.headers.host);
    const method = req.method ?? 'GET';
    let allow: string[] | undefined;
    for (const entry of this.routes) {
      const r = entry.route;
      if (!r.matchHost(host)) continue;
      const rest = r.matchPath(path);
      if (rest === undefined) continue;
      if (r.matchMethod(method)) return { entry, rest };
      allow = [...(allow ?? []), ...(r.methods ?? [])];
    }
    return allow ? { allow: [...new Set(allow)] } : undefined;
  }

  private onRequest(req: IncomingMessage, res: ServerResponse): void {
    const started = process.hrtime.bigint();
    let stats = this.unrouted;
    res.once('close', () => {
      this.meter.flush(req.socket);
      stats.record(res.statusCode, started);
    });
    if (this.draining) res.shouldKeepAlive = false;

    const path = normalisePath(req.url ?? '');
    if (path === undefined) return replyError(res, 400, 'bad request path', { close: true });
    const found = this.match(req, path);
    if (!found) return replyError(res, 404, 'not found');
    if ('allow' in found) return replyError(res, 405, 'method not allowed', { headers: { allow: found.allow.join(', ') } });

    const { entry, rest } = found;
    stats = entry.stats;
    const limits = this.options.config.limits;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > limits.maxBodySize) {
      return replyError(res, 413, `request body larger than ${limits.maxBodySize} bytes`, { close: true });
    }
    const ctx = new RequestContext(req, res, this.name, entry.route.name, rest, limits, this.options.log, this.addSent);
    try {
      const pending = entry.run(ctx);
      if (pending) pending.catch((err: unknown) => this.onHandlerError(ctx, err));
    } catch (err) {
      this.onHandlerError(ctx, err);
    }
  }

  private readonly addSent = (n: number): void => this.meter.addSent(n);

  /** Upgrade requests (WebSocket) go through the same routing; the handler then owns the socket. */
  private onUpgrade(req: IncomingMessage, socket: Socket, head: Buffer): void {
    const refuse = (status: number, reason: string) => {
      const body = `${status} ${reason}\n`;
      this.unrouted.record(status, process.hrtime.bigint());
      socket.end(`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    };
    socket.on('error', () => socket.destroy());
    if (this.draining) return refuse(503, 'shutting down');
    const path = normalisePath(req.url ?? '');
    if (path === undefined) return refuse(400, 'bad request path');
    const found = this.match(req, path);
    if (!found || 'allow' in found) return refuse(404, 'not found');
    const { entry, rest } = found;
    const handler = entry.route.handler;
    if (!handler.upgrade) return refuse(400, 'this route does not take upgrades');
    const incoming = req.headers['x-request-id'];
    const requestId = typeof incoming === 'string' && /^[A-Za-z0-9._:@\-]{1,128}$/.test(incoming) ? incoming : newRequestId();
    const started = process.hrtime.bigint();
    socket.once('close', () => entry.stats.record(101, started));
    try {
      const pending = handler.upgrade({ req, socket, head, listener: this.name, route: entry.route.name, requestId, pathRest: rest, log: this.options.log });
      if (pending) {
        pending.catch((err: unknown) => {
          this.options.log.error({ err, listener: this.name, route: entry.route.name }, 'upgrade handler failed');
          socket.destroy();
        });
      }
    } catch (err) {
      this.options.log.error({ err, listener: this.name, route: entry.route.name }, 'upgrade handler failed');
      socket.destroy();
    }
  }

  private onHandlerError(ctx: RequestContext, err: unknown): void {
    const { res } = ctx;
    if (err instanceof BodyTooLargeError) return replyError(res, 413, err.message, { close: true });
    if (err instanceof BodyAbortedError) {
      if (!res.headersSent && !res.destroyed) replyError(res, 400, 'request body incomplete', { close: true });
      return;
    }
    ctx.log.error({ err, listener: this.name, route: ctx.route, requestId: ctx.requestId }, 'handler failed');
    if (!res.headersSent) replyError(res, 500, 'internal error', { close: true });
    else res.destroy();
  }

  private onClientError(err: NodeJS.ErrnoException, socket: Socket): void {
    const pending = (socket as SocketWithMessage)._httpMessage;
    if (err.code === 'ECONNRESET' || !socket.writable || (pending && pending.headersSent)) {
      socket.destroy();
      return;
    }
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const reason = STATUS_CODES[status] ?? 'Bad Request';
    const body = `${status} ${reason.toLowerCase()}\n`;
    this.unrouted.record(status, process.hrtime.bigint());
    socket.end(`HTTP/1.1 ${status} ${reason}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${body.length}\r\n\r\n${body}`);
    // A client that does not read its error reply must not hold the socket open.
    socket.setTimeout(5000, () => socket.destroy());
  }
}

import { createServer as createHttpsServer } from 'node:https';
import { createServer, ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { TLSSocket } from 'node:tls';
import { Server as NetServer, type Socket } from 'node:net';
import type { Logger } from 'pino';
import type { HttpListenerConfig, ListenerConfig } from '../../config/schema.ts';
import { formatHostPort } from '../../config/address.ts';
import { listenTcp, quicUdpMode } from '../bind.ts';
import type { HttpHandler, HttpRequest, HttpResponse, ListenerSummary } from '../../handlers/types.ts';
import { replyError } from '../../handlers/http/reply.ts';
import { BodyAbortedError, BodyTooLargeError } from '../../handlers/http/body.ts';
import { buildMiddleware, closeMiddleware, compose, errorPagesBeforeRouting, hstsValue, redirectToHttps, type Middleware, type MiddlewareContext, type RateLimits } from '../../middleware/index.ts';
import type { Metrics } from '../../observe/metrics.ts';
import { ByteMeter } from '../../observe/byte-meter.ts';
import type { CounterCell, GaugeCell, HistogramCell } from '../../observe/hot-metrics.ts';
import { compileRoutes, hostOf, NO_PARAMS, type CompiledRoute, type PathParams } from './router.ts';
import { compileRewrites, type Rewritten, type RewriteStep } from './rewrite.ts';
import { RequestContext, UpgradeRequestContext } from './context.ts';
import { checkAnyRequest, checkRequest, MAX_HEADER_FIELDS, type CheckedTarget, type TargetRefusal } from './request-target.ts';
import { Http2Front } from './h2.ts';
import { sniffPreface, stream1Headers, upgradeToH2c, wantsH2c } from './h2c.ts';
import { StreamSocket, h1UpgradeHead } from './h2-websocket.ts';
import { pipelineOf, takeUnparsed, watchReads, whenPipelineIdle, type ConnectionPipeline } from './pipeline.ts';
import { chooseProtocol, reparseAsPlain, responseOnSocket } from './upgrade.ts';
import { refuseRaw } from './refusal.ts';
import { watchHandshakes, type ListenerTls } from '../tls.ts';
import { answerHttp01, HTTP01_PREFIX, type Http01Responder } from '../../tls/acme/http01.ts';
import type { BoundAddress, Listener, ListenerHandlers, ListeningSocket } from '../types.ts';
import { Generation } from '../generation.ts';
import type { Http3Server } from '../../http3/server.ts';
import { loadQuic } from '../../quic/load.ts';
import { http3Settings } from '../../http3/config.ts';
import { certificateFromTls } from '../../quic/certificate.ts';

// The HTTP/1.1 front end on node:http. A request passes through named phases:
//   accept (connection limits, byte metering) -> parse (Node: framing, header size and time
//   limits) -> pipeline (at most maxPipelinedRequests of a connection at once, pipeline.ts)
//   -> check (version, Host, target, request-target.ts) -> route (match host/method/path)
//   -> admit (declared body size; only then 100 Continue) -> middleware -> handler
//   -> finish (metrics with the status sent).
// Upgrade requests take the same phases with a response bound to the raw socket (upgrade.ts);
// CONNECT gets 501. HTTP/2 connections (ALPN h2 on TLS; h2c on plain text when enabled, by
// prior knowledge or Upgrade) are sessions of h2.ts, whose requests take the same phases from
// check on (no pipeline: HTTP/2 multiplexes, bounded by maxConcurrentStreams).
// Limits are Node's own where Node has them (maxHeaderSize -> 431, headersTimeout and
// requestTimeout -> 408) and ours where it does not (body size -> 413).

interface RouteEntry {
  route: CompiledRoute<HttpHandler>;
  /** The set of handlers this route belongs to (replaced as a whole by a reload). */
  gen: Generation;
  run: (ctx: MiddlewareContext) => void | Promise<void>;
  /** The same middleware chain, ending in the handler's `upgrade`. */
  runUpgrade: (ctx: UpgradeRequestContext) => void | Promise<void>;
  stats: RouteStats;
}

/** The route a request takes; `params` are decoded once the route is final (admit). */
interface RouteFound {
  readonly entry: RouteEntry;
  readonly rest: string;
  params: PathParams;
}

const WEBSOCKET_ONLY = ['websocket'];

/** How long HTTP/3 keeps trying to bind a UDP port another socket holds, and how often (retryHttp3). */
const HTTP3_RETRY_MS = 5 * 60_000;
const HTTP3_RETRY_INTERVAL = 500;

/** The bind failed because the UDP port is taken (the QUIC endpoint's error keeps the socket's as its cause). */
function udpPortInUse(err: unknown): boolean {
  return (err as { cause?: { code?: unknown } } | undefined)?.cause?.code === 'EADDRINUSE';
}

/** While draining, idle keep-alive connections are closed after this long (see stopAccepting). */
const IDLE_CLOSE_DELAY = 1000;
const H2C = ['h2c'];

/** Allow for a 405 on a route that takes any method but TRACE (which no route takes unless it names it). */
const ANY_METHOD_ALLOW = ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'];


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

/** Node keeps the response a socket is writing as `_httpMessage`, and its parser (with the request being read) as `parser`; neither is in the typings. */
type SocketWithMessage = Socket & { _httpMessage?: ServerResponse | null; parser?: { incoming?: IncomingMessage | null } | null };

export interface HttpListenerOptions {
  config: HttpListenerConfig;
  /** The yard's rate limits (shared stores); without it, limits are in memory only. */
  rateLimits?: RateLimits;
  handlers: HttpHandler[];
  metrics: Metrics;
  log: Logger;
  accessLogDefault: boolean;
  /** Where relative paths in the listener's middleware settings resolve (the config file's folder). */
  baseDir?: string;
  /** HTTPS: the listener's certificates (the yard builds them from `tls:`). */
  tls?: ListenerTls;
  /** ACME HTTP-01: the yard's pending challenges, answered before routing when any listener orders certificates. */
  http01?: Http01Responder;
  /** A listening socket handed over by the daemon this one replaces (upgrade), used instead of binding. */
  inherit?: import('node:net').Server;
  /** HTTP/3's UDP socket handed over the same way (`<name>#h3`): HTTP/3 starts on it at once. */
  inheritHttp3?: import('node:dgram').Socket;
}

export class HttpListener implements Listener {
  readonly protocol = 'http' as const;
  readonly name: string;
  private readonly server: Server;
  private routes: RouteEntry[];
  /** The listener's `rewrites:`, applied before routing (rewrite.ts); undefined without any. */
  private rewrite: RewriteStep | undefined;
  private gen = new Generation();
  private readonly sockets = new Set<Socket>();
  private readonly reparsed = new WeakSet<Socket>();
  private readonly connectionEvent: 'connection' | 'secureConnection';
  /** Connections whose parser has failed and been answered (onClientError). */
  private readonly refused = new WeakSet<Socket>();
  private readonly meter: ByteMeter;
  private readonly unrouted: RouteStats;
  private readonly connections: CounterCell;
  private readonly active: GaugeCell;
  private draining = false;
  private drainingSince = 0;
  private bound: BoundAddress | undefined;
  /** `hsts:` (https listeners): the Strict-Transport-Security value every response gets. */
  private hsts: string | undefined;
  /** HTTP/2 sessions, when this listener speaks it (tls with http2.enabled, or http2.h2c). */
  private readonly h2: Http2Front | undefined;
  /** HTTP/3 over QUIC on the same host and port (`http3:` with tls), started with the TCP side. */
  private h3: Http3Server | undefined;
  /** `Alt-Svc: h3=":PORT"; ma=86400` on the TCP side's responses once HTTP/3 is up. */
  private altSvc: string | undefined;
  /** The next try to bind HTTP/3's UDP port while another socket holds it (retryHttp3). */
  private h3Retry: NodeJS.Timeout | undefined;

  constructor(private options: HttpListenerOptions) {
    const { config, handlers, metrics } = options;
    this.name = config.name;
    this.meter = new ByteMeter(config.name, metrics.totalBytesSent, metrics.totalBytesReceived);
    this.routes = this.buildRoutes(config, handlers, this.gen);
    this.rewrite = compileRewrites(config.rewrites, config.mergeSlashes);
    this.unrouted = new RouteStats(metrics, config.name, '-');
    this.hsts = config.hsts && options.tls ? hstsValue(config.hsts) : undefined;
    this.connections = metrics.totalConnections.labels(config.name);
    this.active = metrics.activeConnections.labels(config.name);

    const l = config.limits;
    const httpOptions = {
      maxHeaderSize: l.maxHeaderSize,
      headersTimeout: l.headerTimeout,
      requestTimeout: l.requestTimeout,
      keepAliveTimeout: l.keepAliveTimeout,
      // A missing Host is the check phase's to refuse (request-target.ts), upgrades included:
      // node's own check skips them and answers without a reason.
      requireHostHeader: false,
      // TCP_NODELAY on each accepted connection (`socket.noDelay`, docs/socket-options.md).
      noDelay: config.socket?.noDelay ?? true,
      // How often Node checks the two timeouts above; its default (30 s) would let a slow
      // client hold a connection for up to 30 s past its deadline.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(Math.min(l.headerTimeout, l.requestTimeout || l.headerTimeout) / 4))),
    };
    const tls = options.tls;
    if (tls) {
      const server = createHttpsServer({ ...tls.source.serverOptions(), ...httpOptions });
      watchHandshakes(server, tls, config.name, metrics, options.log);
      this.server = server;
    } else this.server = createServer(httpOptions);
    // node:http's own reader is set up on the TLS socket once the handshake is done.
    this.connectionEvent = tls ? 'secureConnection' : 'connection';
    this.server.maxConnections = l.maxConnections;
    // One past the limit, so that a request over it is refused, not silently cut (request-target.ts).
    this.server.maxHeadersCount = MAX_HEADER_FIELDS + 1;
    this.server.maxRequestsPerSocket = l.maxRequestsPerConnection;
    this.server.setTimeout(l.idleTimeout);
    const h2 = config.http2;
    if (tls ? h2.enabled : h2.h2c) {
      this.h2 = new Http2Front({
        listener: config.name,
        config: h2,
        maxHeaderSize: l.maxHeaderSize,
        idleTimeout: l.idleTimeout,
        log: options.log,
        onRequest: (req, res, socket, expectsContinue) => this.serve(req, res, expectsContinue, undefined, socket),
        onWebSocket: (req, _res, socket) => {
          // The stream stands in for a socket carrying an HTTP/1.1 upgrade request: node:http
          // reads it and it takes the usual upgrade phases (h2-websocket.ts).
          const bridge = new StreamSocket(req.stream, socket) as unknown as Socket;
          this.reparsed.add(bridge);
          toHttp1(bridge);
          (bridge as unknown as StreamSocket).feed(h1UpgradeHead(req.headers));
        },
        onFlood: (kind) => metrics.http2Floods.labels(config.name, kind).inc(),
      });
    }
    // node:http's own reader of a new connection; the listener decides first which protocol gets it.
    const http1 = this.server.listeners(this.connectionEvent) as ((socket: Socket) => void)[];
    this.server.removeAllListeners(this.connectionEvent);
    const toHttp1 = (socket: Socket) => {
      for (const f of http1) f.call(this.server, socket);
      this.onHttp1Connection(socket);
    };
    this.server.on(this.connectionEvent, (socket: Socket) => {
      // An upgrade request served as a plain one comes back through here (upgrade.ts).
      if (this.reparsed.has(socket)) return toHttp1(socket);
      this.track(socket);
      const front = this.h2;
      if (!front) return toHttp1(socket);
      if (tls) return (socket as TLSSocket).alpnProtocol === 'h2' ? front.accept(socket) : toHttp1(socket);
      sniffPreface(socket, l.headerTimeout, (kind) => {
        if (kind === 'h2') return front.accept(socket);
        toHttp1(socket);
        // The look paused the socket with its first bytes put back; node:http reads it from here.
        socket.resume();
      });
    });
    this.server.on('request', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res));
    this.server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => this.onRequest(req, res, true));
    this.server.on('connect', (req: IncomingMessage, socket: Socket) => this.onConnect(req, socket));
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.onClientError(err, socket));
    this.server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => this.onUpgrade(req, socket, head));
  }

  /**
   * Takes a request that arrived on a server of someone else's (routes mounted into node:http,
   * express or fastify: src/yard/mount.ts) through the same phases as one from this listener's
   * own sockets: pipeline, checks, route, 404/405/413, middleware, handler, metrics.
   */
  dispatch(req: IncomingMessage, res: ServerResponse): void {
    this.onRequest(req, res);
  }

  async start(): Promise<void> {
    this.bound = await listenTcp(this.server, this.name, this.options.config.address, this.options.log, this.options.inherit, this.options.config.socket);
    await this.startHttp3();
  }

  /** HTTP/3 (docs/http3.md): a QUIC endpoint on the TCP side's host and bound port, the same phases. */
  private async startHttp3(): Promise<void> {
    const { config, tls, metrics, log } = this.options;
    const settings = http3Settings(config.http3);
    const inherited = this.takeInheritedHttp3();
    if (!settings || !tls || !this.bound || !('port' in this.bound)) {
      inherited?.close();
      return;
    }
    const source = tls.source;
    // Loaded here, not at startup: only a listener with http3 needs quiche (src/quic/load.ts).
    const { Http3Server } = await loadQuic(() => import('../../http3/server.ts'));
    const h3 = new Http3Server({
      listener: config.name,
      host: this.bound.host,
      port: this.bound.port,
      socket: inherited,
      // A worker of several binds its own socket where it can, so each connection's packets reach it.
      reusePort: !inherited && quicUdpMode(this.bound.port, log) === 'own',
      certificate: certificateFromTls(source),
      limits: {
        maxFieldSectionSize: settings.maxFieldSectionSize ?? config.limits.maxHeaderSize,
        maxFields: MAX_HEADER_FIELDS,
        idleTimeout: settings.idleTimeout,
        maxStreams: settings.maxStreams,
        headerTimeout: config.limits.headerTimeout,
      },
      earlyData: settings.earlyData,
      log,
      metrics,
      // Connections and bytes are counted by the QUIC endpoint (src/quic/metrics.ts), requests by serve().
      onRequest: (req, res, socket, expectsContinue) => this.serve(req, res as unknown as HttpResponse, expectsContinue, undefined, socket),
    });
    try {
      await h3.start();
    } catch (err) {
      if (udpPortInUse(err)) return this.retryHttp3(h3, Date.now() + HTTP3_RETRY_MS, err as Error);
      // The TCP side is bound already: let it go, so that a failed start leaves nothing behind.
      this.server.close();
      throw new Error(`listener "${this.name}": cannot open HTTP/3 on UDP ${formatHostPort(this.bound)}: ${(err as Error).message}`, { cause: err });
    }
    this.enableHttp3(h3);
  }

  /**
   * HTTP/3's UDP socket handed over by the daemon this one replaces, when it is on the TCP
   * side's host and bound port (else closed: HTTP/3 binds its own). Taken once.
   */
  private takeInheritedHttp3(): import('node:dgram').Socket | undefined {
    const socket = this.options.inheritHttp3;
    if (!socket) return undefined;
    this.options = { ...this.options, inheritHttp3: undefined };
    let at: { address: string; port: number } | undefined;
    try {
      at = socket.address();
    } catch {
      return undefined;
    }
    if (this.bound && 'port' in this.bound && at.port === this.bound.port && at.address === this.bound.host) return socket;
    socket.close();
    return undefined;
  }

  /**
   * The UDP port is still held: by the listener this one replaces (a reload that changed its
   * TLS: the old one drains its QUIC connections on that socket) or by the daemon this one takes
   * over from when it did not hand HTTP/3's socket over (one that predates the hand-over of
   * `<name>#h3`, or a listener whose address changed). The TCP side serves meanwhile, without Alt-Svc;
   * HTTP/3 starts once the port is free, or gives up (logged) after HTTP3_RETRY_MS.
   */
  private retryHttp3(h3: Http3Server, deadline: number, cause: Error): void {
    if (this.h3Retry === undefined) this.options.log.warn({ listener: this.name, err: cause.message }, 'HTTP/3 waits for its UDP port, still in use; TCP serves meanwhile');
    this.h3Retry = setTimeout(() => {
      if (this.draining || this.h3Retry === undefined) return;
      h3.start().then(
        () => {
          if (this.draining || this.h3Retry === undefined) return void h3.destroy();
          this.h3Retry = undefined;
          this.enableHttp3(h3);
          this.options.log.info({ listener: this.name }, 'HTTP/3 started');
        },
        (err: unknown) => {
          if (udpPortInUse(err) && Date.now() < deadline) return this.retryHttp3(h3, deadline, err as Error);
          this.h3Retry = undefined;
          this.options.log.error({ listener: this.name, err: (err as Error).message }, 'HTTP/3 not started');
        },
      );
    }, HTTP3_RETRY_INTERVAL);
    this.h3Retry.unref();
  }

  private enableHttp3(h3: Http3Server): void {
    this.h3 = h3;
    this.altSvc = `h3=":${h3.address().port}"; ma=86400`;
  }

  address(): BoundAddress {
    if (!this.bound) throw new Error(`listener "${this.name}" is not started`);
    return this.bound;
  }

  summary(): ListenerSummary {
    const a = this.address() as { host: string; port: number };
    const tls = this.options.tls;
    const url = `${tls ? 'https' : 'http'}://${formatHostPort(a)}/`;
    return {
      name: this.name,
      protocol: 'http',
      url,
      handlers: this.options.config.routes.map((r) => r.handler.type),
      // The first route with a concrete path (not a pattern, no parameters) is something that answers.
      tryIt: `curl -i ${tls?.rootCertFile ? `--cacert ${tls.rootCertFile} ` : ''}${url}${(this.options.config.routes.find((r) => !/[*:]/.test(r.match.path))?.match.path ?? '/').slice(1)}`,
    };
  }

  async stopAccepting(): Promise<void> {
    this.draining = true;
    this.drainingSince = Date.now();
    this.h2?.drain();
    this.h3?.drain();
    this.altSvc = undefined;
    clearTimeout(this.h3Retry);
    this.h3Retry = undefined;
    // Stops listening at once. node:http's own close() would also close idle keep-alive
    // connections right away, racing a client that sends its next request on one at that moment
    // (it gets a reset). Instead, a keep-alive connection's next request is answered with
    // `Connection: close` (serve), and those still idle after IDLE_CLOSE_DELAY are closed
    // (inFlight). The yard tracks the rest through inFlight().
    NetServer.prototype.close.call(this.server);
  }

  listening(): ListeningSocket | undefined {
    return this.server.listening ? this.server : undefined;
  }

  http3Listening(): import('node:dgram').Socket | undefined {
    return this.draining ? undefined : this.h3?.udpSocket();
  }

  inFlight(): number {
    if (this.draining && Date.now() - this.drainingSince >= IDLE_CLOSE_DELAY) this.server.closeIdleConnections();
    // HTTP/2 connections are in `sockets` too; draining sessions close once their streams end.
    // HTTP/3 connections close once their requests are done (GOAWAY).
    return this.sockets.size + (this.h3?.size ?? 0);
  }

  destroy(): void {
    this.options.tls?.source.close();
    // node:http's close() clears its timeout-checking timer (stopAccepting closed only the socket).
    this.server.close();
    this.server.closeAllConnections();
    this.h2?.destroy();
    void this.h3?.destroy();
    clearTimeout(this.h3Retry);
    this.h3Retry = undefined;
    for (const s of this.sockets) s.destroy();
    const gen = this.gen;
    void gen.retire().then(() => closeMiddleware(gen, this.options.log));
  }

  /** HTTP/1.x on a connection node:http has just taken. */
  private onHttp1Connection(socket: Socket): void {
    watchReads(socket, this.options.tls !== undefined);
  }

  /** Counts a new connection, whichever protocol it speaks. */
  private track(socket: Socket): void {
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

  private match(req: HttpRequest, path: string): RouteFound | { allow: string[] } | undefined {
    const host = hostOf(req.headers.host);
    const method = req.method ?? 'GET';
    let allow: string[] | undefined;
    for (const entry of this.routes) {
      const r = entry.route;
      if (!r.matchHost(host) || !r.matchClient(req.socket)) continue;
      const rest = r.matchPath(path);
      if (rest === undefined) continue;
      if (r.matchMethod(method)) return { entry, rest, params: NO_PARAMS };
      allow = [...(allow ?? []), ...(r.methods ?? ANY_METHOD_ALLOW)];
    }
    return allow ? { allow: [...new Set(allow)] } : undefined;
  }

  /**
   * Phase "route" for a checked request. A path with a lenient reading (%2F, `\`, `;`: see
   * router.ts) must pick the same route both ways; if not, it is refused rather than served by
   * a route its upstream would not have chosen.
   */
  private route(req: HttpRequest, checked: CheckedTarget): ReturnType<HttpListener['match']> | TargetRefusal {
    const found = this.match(req, checked.path);
    if (checked.lenient === undefined) return found;
    const other = this.match(req, checked.lenient);
    const a = found && 'entry' in found ? found.entry : undefined;
    const b = other && 'entry' in other ? other.entry : undefined;
    if (a !== b) return { status: 400, reason: 'an encoded slash, backslash or ";" in the path changes which route it takes' };
    return found;
  }

  /**
   * The phases every request and every upgrade shares before middleware: check (request line,
   * Host, target), route (404/405), admit (declared body size). Returns the route, or undefined
   * when `res` has been answered.
   */
  private admit(
    req: HttpRequest,
    res: HttpResponse,
    checked = checkAnyRequest(req, this.options.config.mergeSlashes),
    found = 'status' in checked ? undefined : this.route(req, checked),
  ): RouteFound | undefined {
    if ('status' in checked) {
      replyError(res, checked.status, checked.reason, { close: true });
      return undefined;
    }
    if (found && 'status' in found) {
      replyError(res, found.status, found.reason, { close: true });
      return undefined;
    }
    if (checked.close && res instanceof ServerResponse) res.shouldKeepAlive = false;
    if (!found) {
      replyError(res, 404, 'not found');
      return undefined;
    }
    if ('allow' in found) {
      replyError(res, 405, 'method not allowed', { headers: { allow: found.allow.join(', ') } });
      return undefined;
    }
    const params = found.entry.route.params(checked.path);
    if (params === undefined) {
      replyError(res, 400, 'a malformed percent escape in the path');
      return undefined;
    }
    const maxBody = this.options.config.limits.maxBodySize;
    const declared = req.headers['content-length'];
    if (declared !== undefined && Number(declared) > maxBody) {
      replyError(res, 413, `request body larger than ${maxBody} bytes`, { close: true });
      return undefined;
    }
    found.params = params;
    return found;
  }

  /**
   * Phase "rewrite", between check and route: the listener's first matching rule (rewrite.ts).
   * Undefined when the request keeps its target (no rules, none matched, or a refusal already);
   * req.url is the caller's to update (see upgradeOrServe).
   */
  private rewriteOf(req: HttpRequest, checked: CheckedTarget | TargetRefusal): Rewritten | TargetRefusal | undefined {
    return this.rewrite === undefined || 'status' in checked ? undefined : this.rewrite(checked, req.url ?? '/');
  }

  private buildRoutes(config: HttpListenerConfig, handlers: HttpHandler[], gen: Generation): RouteEntry[] {
    const { metrics, accessLogDefault } = this.options;
    const shared = new Map<object, Middleware>();
    return compileRoutes(config.routes, handlers).map((route) => {
      const limits = this.options.rateLimits && { limits: this.options.rateLimits, listener: config.name, route: route.name };
      const chain = buildMiddleware(config.middleware, route.config.middleware, { accessLogDefault, shared, limits, baseDir: this.options.baseDir, metrics, owner: gen });
      const handler = route.handler;
      const upgrade = compose(chain, (ctx) => handler.upgrade?.(ctx as UpgradeRequestContext));
      return {
        route,
        gen,
        run: compose(chain, (ctx) => handler.handle(ctx)),
        runUpgrade: upgrade,
        stats: new RouteStats(metrics, config.name, route.name),
      };
    });
  }

  /**
   * A reload's routes, middleware, handlers and limits for this listener, on the same socket:
   * requests from now on take them; requests and WebSockets already on the old routes finish
   * there. (The yard keeps a listener only when its address, TLS, HTTP/2 settings and header
   * size limit are unchanged: those are fixed when the server is made.)
   */
  reconfigure(config: ListenerConfig, handlers: ListenerHandlers): Promise<void> {
    if (config.protocol !== 'http' || !Array.isArray(handlers)) throw new Error(`listener "${this.name}": not an http config`);
    const old = this.gen;
    const gen = new Generation();
    const routes = this.buildRoutes(config, handlers, gen);
    const rewrite = compileRewrites(config.rewrites, config.mergeSlashes);
    this.options = { ...this.options, config, handlers };
    this.routes = routes;
    this.rewrite = rewrite;
    this.gen = gen;
    const l = config.limits;
    this.server.headersTimeout = l.headerTimeout;
    this.server.requestTimeout = l.requestTimeout;
    this.server.keepAliveTimeout = l.keepAliveTimeout;
    this.server.maxConnections = l.maxConnections;
    this.server.maxRequestsPerSocket = l.maxRequestsPerConnection;
    this.server.setTimeout(l.idleTimeout);
    this.hsts = config.hsts && this.options.tls ? hstsValue(config.hsts) : undefined;
    // The old generation's middleware (forwardAuth's pool) goes once its requests have finished.
    return old.retire().then(() => closeMiddleware(old, this.options.log));
  }

  private onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue = false): void {
    const pipeline = pipelineOf(req.socket, this.options.config.limits.maxPipelinedRequests);
    if (pipeline.admit(res)) this.serve(req, res, expectsContinue, pipeline, req.socket);
    else pipeline.park(res, () => this.serve(req, res, expectsContinue, pipeline, req.socket));
  }

  /**
   * A request's phases from check on, for HTTP/1.x (`res` a ServerResponse, `pipeline` its
   * connection's) and HTTP/2 alike. `socket` is the connection's own socket (bytes are counted on it).
   */
  private serve(req: HttpRequest, res: HttpResponse, expectsContinue: boolean, pipeline: ConnectionPipeline | undefined, socket: Socket): void {
    const started = process.hrtime.bigint();
    let stats = this.unrouted;
    let gen: Generation | undefined;
    // 'close' comes once (node:http, H2Response, H3Response): `on`, without once()'s wrapper.
    res.on('close', () => {
      this.meter.flush(socket);
      stats.record(res.statusCode, started);
      gen?.leave();
      if (pipeline) pipeline.done(res as ServerResponse);
    });
    if (this.draining && res instanceof ServerResponse) res.shouldKeepAlive = false;
    if (this.hsts) res.setHeader('strict-transport-security', this.hsts);
    // Browsers move to HTTP/3 when told where it is (RFC 7838).
    if (this.altSvc && req.httpVersionMajor !== 3) res.setHeader('alt-svc', this.altSvc);
    // The listener's error pages for its own refusals before a route's middleware runs (404, 413...).
    const pages = this.options.config.middleware.errorPages;
    if (pages) errorPagesBeforeRouting(res, req, this.name, pages);
    // A CA validating an order reaches us before any route (and any redirect to HTTPS) could.
    if (this.options.http01 && req.url?.startsWith(HTTP01_PREFIX) && answerHttp01(this.options.http01, req, res)) return;

    // redirectToHttps: a checked request goes to https, ACME HTTP-01 paths excepted (routed).
    const redirect = this.options.config.redirectToHttps;
    const checked = checkAnyRequest(req, this.options.config.mergeSlashes);
    if (redirect && !('status' in checked) && redirectToHttps(req, res, redirect === true ? { status: 308 } : redirect)) return;
    const rewritten = this.rewriteOf(req, checked);
    if (rewritten !== undefined && 'url' in rewritten) req.url = rewritten.url;
    const found = this.admit(req, res, rewritten === undefined ? checked : 'url' in rewritten ? rewritten.target : rewritten);
    if (!found) return;
    const { entry, rest, params } = found;
    stats = entry.stats;
    gen = entry.gen;
    gen.enter();
    // 100 Continue only once the request is known to be acceptable: a body over the limit is
    // refused (413 above) before the client sends it.
    if (expectsContinue) res.writeContinue();
    const ctx = new RequestContext(req, res, this.name, entry.route.name, rest, params, this.options.config.limits, this.options.log, this.addSent);
    try {
      const pending = entry.run(ctx);
      if (pending) pending.catch((err: unknown) => this.onHandlerError(ctx, err));
    } catch (err) {
      this.onHandlerError(ctx, err);
    }
  }

  private readonly addSent = (n: number): void => this.meter.addSent(n);

  /**
   * Upgrade requests take the same phases as any request: check, route, admit, middleware,
   * handler, log and metrics with the status the client got. Only a route whose handler takes
   * the asked protocol sees an upgrade; any other is served as a plain request. Nothing the
   * client sent after the head is read here: it is the handler's to pass on after the switch.
   */
  private onUpgrade(req: IncomingMessage, socket: Socket, parsedHead: Buffer): void {
    const unparsed = takeUnparsed(socket);
    const head = unparsed.length === 0 ? parsedHead : Buffer.concat([parsedHead, unparsed]);
    socket.on('error', () => socket.destroy());
    // An upgrade pipelined behind requests still being answered waits for them: its answer
    // (and whatever protocol follows) must not overtake theirs.
    whenPipelineIdle(socket, () => this.upgradeOrServe(req, socket, head));
  }

  private upgradeOrServe(req: IncomingMessage, socket: Socket, head: Buffer): void {
    if (socket.destroyed) return;
    // h2c by Upgrade: the request becomes stream 1 of an HTTP/2 connection and is routed there.
    if (this.h2 && !this.draining && req.httpVersionMinor === 1 && chooseProtocol(req.headers.upgrade, H2C) && wantsH2c(req)) {
      const headers = stream1Headers(req);
      const front = this.h2;
      if (headers) return upgradeToH2c(socket, head, headers, this.options.config.limits.headerTimeout, (s) => front.accept(s));
    }
    const sent = checkRequest(req, this.options.config.mergeSlashes);
    const rewritten = this.rewriteOf(req, sent);
    const checked = rewritten === undefined ? sent : 'url' in rewritten ? rewritten.target : rewritten;
    const found = 'status' in checked ? undefined : this.route(req, checked);
    const handler = found && 'entry' in found ? found.entry.route.handler : undefined;
    // An Upgrade in an HTTP/1.0 request is ignored (RFC 9110 §7.8): it is served as a plain one.
    // With redirectToHttps every upgrade is served as a plain request: redirected (or an ACME path).
    const protocol = handler?.upgrade && req.httpVersionMinor === 1 && !this.options.config.redirectToHttps ? chooseProtocol(req.headers.upgrade, handler.upgrades ?? WEBSOCKET_ONLY) : undefined;
    // Refusals of the check and route phases, too, are the plain path's to give.
    // (With req.url as sent: the plain request is parsed anew and rewritten then.)
    if (protocol === undefined) return reparseAsPlain(this.server, this.connectionEvent, req, socket, head, this.reparsed);
    if (rewritten !== undefined && 'url' in rewritten) req.url = rewritten.url;

    const started = process.hrtime.bigint();
    const res = responseOnSocket(req, socket);
    let stats = this.unrouted;
    res.once('close', () => stats.record(res.statusCode, started));
    if (this.draining) return replyError(res, 503, 'shutting down');
    const admitted = this.admit(req, res, checked, found);
    if (!admitted) return;
    const { entry, rest, params } = admitted;
    stats = entry.stats;
    // The upgraded connection keeps its route's handlers until it closes.
    const gen = entry.gen;
    gen.enter();
    socket.once('close', () => gen.leave());
    // A WebSocket handshake has no body. Bytes after an upgrade request's head are the new
    // protocol's, so a body declared there could only be read one way by us and another by
    // whoever we pass them to.
    if (req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0')) {
      return replyError(res, 400, 'an upgrade request carries no body', { close: true });
    }
    const ctx = new UpgradeRequestContext(req, res, this.name, entry.route.name, rest, params, this.options.config.limits, this.options.log, this.addSent, socket, head, protocol);
    const failed = (err: unknown) => {
      this.options.log.error({ err, listener: this.name, route: entry.route.name, requestId: ctx.requestId }, 'upgrade handler failed');
      if (!res.headersSent && res.statusCode !== 101) replyError(res, 500, 'internal error', { close: true });
      else socket.destroy();
    };
    try {
      const pending = entry.runUpgrade(ctx);
      if (pending) pending.catch(failed);
    } catch (err) {
      failed(err);
    }
  }

  /** CONNECT asks for a tunnel, which a gateway in front of its own routes does not open. */
  private onConnect(req: IncomingMessage, socket: Socket): void {
    socket.on('error', () => socket.destroy());
    const started = process.hrtime.bigint();
    const res = responseOnSocket(req, socket);
    res.once('close', () => this.unrouted.record(res.statusCode, started));
    replyError(res, 501, 'CONNECT is not supported: this is not a forward proxy', { close: true });
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
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    // The parser stays failed: every later read of the connection fails again. One answer.
    if (this.refused.has(socket)) return;
    this.refused.add(socket);
    const status = err.code === 'HPE_HEADER_OVERFLOW' ? 431 : err.code === 'ERR_HTTP_REQUEST_TIMEOUT' ? 408 : 400;
    const refuse = () => {
      const pending = (socket as SocketWithMessage)._httpMessage;
      if (!socket.writable || (pending && pending.headersSent)) {
        socket.destroy();
        return;
      }
      this.unrouted.record(status, process.hrtime.bigint());
      refuseRaw(socket, status);
    };
    // Failed inside a request's body: the refusal is that request's answer.
    const current = (socket as SocketWithMessage).parser?.incoming;
    if (current && !current.complete) return refuse();
    // Failed in the head of a request pipelined behind others: those are answered first, in
    // order, and the refusal (or, after `Connection: close`, nothing: RFC 9112 §9.6) follows
    // them, as nginx does. Written at once, it would overtake and cut off their answers.
    whenPipelineIdle(socket, () => (err.code === 'HPE_CLOSED_CONNECTION' ? socket.end() : refuse()));
  }

}

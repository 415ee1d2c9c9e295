import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { WebSocketServer, type WebSocket, type ServerOptions } from 'ws';
import type { Metrics } from '../../observe/metrics.ts';
import type { CounterCell, GaugeCell, HotCounter } from '../../observe/hot-metrics.ts';
import { TokenBucket, tokenBucketPolicy, type TokenBucketPolicy } from '../../protocol/token-bucket.ts';
import type { UpgradeContext } from '../types.ts';
import { replyError } from '../http/reply.ts';
import type { WebSocketOptions } from './options.ts';
import type { WsPeer } from './peer.ts';

// One WebSocket endpoint: the `ws` library does the protocol; this adds the limits a public
// endpoint needs (origin, connection cap, message rate, send queue, dead peers, draining) and
// hands each accepted connection to a handler as a WsPeer.
//
// The per-message path is what a benchmark against a bare `ws` server measures, so it is kept to
// a token-bucket step, a counter increment and the handler call: listeners are bound once per
// connection, the send options are shared constants, metric cells are resolved up front, and
// one timer per endpoint (not per peer) drives pings.

export interface WsEndpointContext {
  listener: string;
  handlerType: string;
  log: Logger;
  metrics: Metrics;
}

/** ws 8.23 takes `closeTimeout` (server side too); @types/ws does not know it yet. */
type ServerOptionsWithClose = ServerOptions & { closeTimeout: number };

const TEXT = { binary: false } as const;
const BINARY = { binary: true } as const;

/** A slow consumer's close frame waits behind everything it has not read; this is all it gets. */
const SLOW_CLOSE_GRACE = 1000;

/** Close codes of ws's protocol errors (its error codes are public, its status-code symbol is not). */
const ERROR_CLOSE_CODES: Record<string, number> = {
  WS_ERR_UNSUPPORTED_MESSAGE_LENGTH: 1009,
  WS_ERR_UNSUPPORTED_DATA_PAYLOAD_LENGTH: 1009,
  WS_ERR_INVALID_UTF8: 1007,
  WS_ERR_TOO_MANY_BUFFERED_PARTS: 1008,
};

/** Terminated without a closing handshake (dead peer, endpoint closed): 1006 as RFC 6455 names it. */
const ABNORMAL = 1006;

let nextId = 0;

function noMessage(): void {}

function terminate(ws: WebSocket): void {
  ws.terminate();
}

/**
 * What an endpoint's peers share: its limits flattened for the hot path, its metric cells and its
 * peer set. Kept apart from WsEndpoint so that the endpoint's public face is only its API.
 */
class Shared {
  readonly queueLimit: number;
  readonly dropSlow: boolean;
  /** The message rate every peer's bucket runs on; undefined when there is no rate limit. */
  readonly ratePolicy: TokenBucketPolicy | undefined;
  readonly slowCloseGrace: number;
  readonly messagesIn: CounterCell;
  readonly messagesOut: CounterCell;
  readonly dropped: CounterCell;
  readonly connections: GaugeCell;
  readonly closedTotal: HotCounter;
  readonly peers = new Set<Peer>();
  whenEmpty: (() => void) | undefined;

  constructor(
    options: WebSocketOptions,
    readonly ctx: WsEndpointContext,
  ) {
    this.queueLimit = options.sendQueueLimit;
    this.dropSlow = options.slowConsumer === 'drop';
    this.ratePolicy = options.rateLimit ? tokenBucketPolicy(options.rateLimit) : undefined;
    this.slowCloseGrace = Math.min(options.closeTimeout, SLOW_CLOSE_GRACE);
    const m = ctx.metrics;
    this.connections = m.gauge('switchyard_ws_connections', 'WebSocket connections open now, by listener.', ['listener']).labels(ctx.listener);
    const messages = m.counter('switchyard_ws_messages_total', 'WebSocket messages, by listener and direction (in: from clients, out: queued to clients).', ['listener', 'direction']);
    this.messagesIn = messages.labels(ctx.listener, 'in');
    this.messagesOut = messages.labels(ctx.listener, 'out');
    this.closedTotal = m.counter('switchyard_ws_closed_total', 'WebSocket connections closed, by listener and close code (the code this side sent when it closed first; 1006 when cut off).', ['listener', 'code']);
    this.dropped = m.counter('switchyard_ws_dropped_total', 'WebSocket messages dropped because the client was not reading (slowConsumer: drop), by listener.', ['listener']).labels(ctx.listener);
  }

  /** A handler threw: the peer cannot be trusted to be in a sane state, so it goes (1011). */
  handlerFailed(peer: Peer, err: unknown): void {
    this.ctx.log.error({ err, peer: peer.id, listener: this.ctx.listener, handler: this.ctx.handlerType }, 'websocket handler failed');
    peer.close(1011, 'internal error');
  }

  /** Called once per peer, from its 'close' event. */
  forget(peer: Peer, code: number): void {
    if (!this.peers.delete(peer)) return;
    this.connections.dec();
    this.closedTotal.labels(this.ctx.listener, String(code)).inc();
    if (this.peers.size === 0 && this.whenEmpty) {
      this.whenEmpty();
      this.whenEmpty = undefined;
    }
  }
}

/** How many bytes one tick may hold back before they are written anyway. */
const CORK_FLUSH_BYTES = 64 * 1024;

function releaseAtTickEnd(peer: Peer): void {
  peer.releaseScheduled = false;
  if (peer.corkedNow) peer.release();
}

class Peer implements WsPeer {
  readonly id = `ws-${++nextId}`;
  readonly remoteAddress: string;
  /** Set by a ping round, cleared by any pong. */
  awaitingPong = false;
  /** The code this side closed with, for the closed_total label (the client may never answer). */
  private closedWith = 0;
  private readonly bucket: TokenBucket | undefined;
  private messageFn: (data: Buffer, isBinary: boolean) => void = noMessage;
  private closeFn: ((code: number, reason: string) => void) | undefined;
  private slowTimer: NodeJS.Timeout | undefined;
  /** Writes of this tick are being held (socket corked). */
  private corked = false;
  /** Bytes sent while corked since the last release. */
  private held = 0;
  releaseScheduled = false;

  constructor(
    readonly ws: WebSocket,
    private readonly socket: Socket,
    private readonly shared: Shared,
  ) {
    this.remoteAddress = socket.remoteAddress ?? '';
    this.bucket = shared.ratePolicy && new TokenBucket(shared.ratePolicy, Date.now());
    ws.on('message', this.onWsMessage);
    ws.on('pong', this.onWsPong);
    ws.on('error', this.onWsError);
    ws.on('close', this.onWsClose);
  }

  get open(): boolean {
    return this.ws.readyState === 1;
  }

  get corkedNow(): boolean {
    return this.corked;
  }

  get bufferedAmount(): number {
    return this.ws.bufferedAmount;
  }

  send(data: string | Buffer, binary?: boolean): boolean {
    const ws = this.ws;
    if (ws.readyState !== 1) return false;
    // Sends of one tick go out in one writev: a room's burst of events costs each client one
    // system call instead of one per message (half the fan-out CPU went to writev). The queue
    // limit is judged on what was pending before the burst, plus what a flush every
    // CORK_FLUSH_BYTES leaves unwritten, so that held bytes never count as a slow reader.
    if (this.corked && this.held >= CORK_FLUSH_BYTES) this.release();
    if (!this.corked) {
      if (ws.bufferedAmount > this.shared.queueLimit) return this.overQueue();
      this.socket.cork();
      this.corked = true;
      this.held = 0;
      if (!this.releaseScheduled) {
        this.releaseScheduled = true;
        process.nextTick(releaseAtTickEnd, this);
      }
    }
    if (binary === undefined) ws.send(data);
    else ws.send(data, binary ? BINARY : TEXT);
    this.held += data.length;
    this.shared.messagesOut.inc();
    return true;
  }

  /** Lets the held writes go (one uncork per cork). */
  release(): void {
    this.corked = false;
    this.socket.uncork();
  }

  close(code: number, reason: string): void {
    if (this.ws.readyState !== 1) return;
    // ws throws on a code or reason it cannot send; the peer then stays as it was.
    this.ws.close(code, reason);
    this.closedWith = code;
  }

  /** Cuts the connection without a closing handshake. */
  terminate(): void {
    if (this.closedWith === 0) this.closedWith = ABNORMAL;
    this.ws.terminate();
  }

  onMessage(fn: (data: Buffer, isBinary: boolean) => void): void {
    this.messageFn = fn;
  }

  onClose(fn: (code: number, reason: string) => void): void {
    this.closeFn = fn;
  }

  private overQueue(): boolean {
    const shared = this.shared;
    if (shared.dropSlow) {
      shared.dropped.inc();
      return false;
    }
    this.close(1013, 'send queue over limit');
    this.slowTimer = setTimeout(terminate, shared.slowCloseGrace, this.ws);
    return false;
  }

  private readonly onWsMessage = (data: Buffer, isBinary: boolean): void => {
    if (this.ws.readyState !== 1) return;
    const shared = this.shared;
    shared.messagesIn.inc();
    if (this.bucket !== undefined && !this.bucket.take(Date.now())) {
      this.close(1008, 'message rate over limit');
      return;
    }
    try {
      this.messageFn(data, isBinary);
    } catch (err) {
      shared.handlerFailed(this, err);
    }
  };

  private readonly onWsPong = (): void => {
    this.awaitingPong = false;
  };

  private readonly onWsError = (err: Error & { code?: string }): void => {
    // ws has already started the close with the matching code; this only remembers it.
    if (this.closedWith === 0) this.closedWith = ERROR_CLOSE_CODES[err.code ?? ''] ?? 1002;
    this.shared.ctx.log.debug({ err, peer: this.id, listener: this.shared.ctx.listener }, 'websocket protocol error');
  };

  private readonly onWsClose = (code: number, reason: Buffer): void => {
    clearTimeout(this.slowTimer);
    this.shared.forget(this, this.closedWith || code);
    const fn = this.closeFn;
    this.closeFn = undefined;
    this.messageFn = noMessage;
    if (!fn) return;
    try {
      fn(code, reason.toString());
    } catch (err) {
      this.shared.ctx.log.error({ err, peer: this.id, listener: this.shared.ctx.listener }, 'websocket close handler failed');
    }
  };
}

/** Headers of the 101 that ws writes itself; middleware's own (x-request-id, CORS) are added. */
const HANDSHAKE_HEADERS = new Set(['connection', 'upgrade', 'content-length', 'content-type', 'sec-websocket-accept', 'sec-websocket-protocol', 'sec-websocket-extensions']);

export class WsEndpoint {
  private readonly shared: Shared;
  private readonly server: WebSocketServer;
  private readonly origins: Set<string> | undefined;
  private draining = false;
  /** The upgrade inside handleUpgrade now (its events fire synchronously within the call). */
  private handshaking: UpgradeContext | undefined;
  private closed = false;
  private pingTimer: NodeJS.Timeout | undefined;
  private roundStartedAt = 0;

  constructor(
    private readonly options: WebSocketOptions,
    ctx: WsEndpointContext,
  ) {
    this.shared = new Shared(options, ctx);
    this.origins = options.origins && !options.origins.includes('*') ? new Set(options.origins) : undefined;
    const deflate = options.deflate;
    const serverOptions: ServerOptionsWithClose = {
      noServer: true,
      clientTracking: false,
      maxPayload: options.maxMessageSize,
      closeTimeout: options.closeTimeout,
      perMessageDeflate: deflate
        ? { threshold: deflate.threshold, concurrencyLimit: deflate.concurrency, zlibDeflateOptions: { level: deflate.level } }
        : false,
    };
    this.server = new WebSocketServer(serverOptions);
    // ws validates the handshake itself; its refusals and the 101's extra headers go through
    // the upgrade's response, so they are logged and counted with their real status and carry
    // what middleware set (x-request-id, CORS). Both events fire inside handleUpgrade's call.
    this.server.on('wsClientError', (err: Error) => {
      const ctx = this.handshaking;
      if (!ctx) return;
      const version = /Sec-WebSocket-Version/.test(err.message);
      replyError(ctx.res, err.message === 'Invalid HTTP method' ? 405 : 400, err.message.toLowerCase(), {
        close: true,
        headers: version ? { 'sec-websocket-version': '13, 8' } : undefined,
      });
    });
    this.server.on('headers', (headers: string[]) => {
      const ctx = this.handshaking;
      if (!ctx) return;
      for (const [name, value] of Object.entries(ctx.res.getHeaders())) {
        if (value === undefined || HANDSHAKE_HEADERS.has(name)) continue;
        for (const v of Array.isArray(value) ? value : [value]) headers.push(`${name}: ${v}`);
      }
    });
    if (options.pingInterval > 0) this.schedulePing(options.pingInterval);
  }

  /** Open peers now. */
  get size(): number {
    return this.shared.peers.size;
  }

  /** Checks origin/capacity/draining, completes the handshake (or answers 403/503/400 and closes the socket) and hands the peer over. */
  accept(ctx: UpgradeContext, onPeer: (peer: WsPeer, req: IncomingMessage) => void): void {
    const { req, socket, res } = ctx;
    if (this.draining) return replyError(res, 503, 'server shutting down', { close: true });
    if (this.origins) {
      const origin = req.headers.origin;
      if (origin === undefined || !this.origins.has(origin)) return replyError(res, 403, 'origin not allowed', { close: true });
    }
    const shared = this.shared;
    if (shared.peers.size >= this.options.maxConnections) return replyError(res, 503, 'too many websocket connections', { close: true });
    // The HTTP server's idle timeout stays armed on an upgraded socket with nobody listening for
    // it, refreshed on every read and write. Pings are this endpoint's liveness check instead.
    socket.setTimeout(0);
    this.handshaking = ctx;
    try {
      this.server.handleUpgrade(req, socket, ctx.head, (ws) => this.opened(ws, ctx, onPeer));
    } finally {
      this.handshaking = undefined;
    }
  }

  private opened(ws: WebSocket, ctx: UpgradeContext, onPeer: (peer: WsPeer, req: IncomingMessage) => void): void {
    const shared = this.shared;
    ctx.res.statusCode = 101;
    const peer = new Peer(ws, ctx.socket, shared);
    shared.peers.add(peer);
    shared.connections.inc();
    try {
      onPeer(peer, ctx.req);
    } catch (err) {
      shared.handlerFailed(peer, err);
    }
  }

  /** Stop begins: refuse new upgrades (503) and close every open peer with 1001 'server shutting down'. */
  drain(): void {
    this.draining = true;
    for (const peer of this.shared.peers) peer.close(1001, 'server shutting down');
  }

  /** Terminates what is left and stops the ping timer. */
  async close(): Promise<void> {
    this.draining = true;
    this.closed = true;
    clearTimeout(this.pingTimer);
    const shared = this.shared;
    if (shared.peers.size === 0) return;
    const empty = new Promise<void>((resolve) => (shared.whenEmpty = resolve));
    for (const peer of shared.peers) peer.terminate();
    // Destroyed sockets report 'close' within a tick or two; the bound only guards against a
    // peer whose inflate is still waiting in zlib's queue.
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([empty, new Promise<void>((resolve) => (timer = setTimeout(resolve, this.options.closeTimeout)))]);
    clearTimeout(timer);
  }

  private schedulePing(delay: number): void {
    if (this.closed) return;
    this.pingTimer = setTimeout(this.pingRound, delay);
    // The endpoint must not keep a process alive on its own; its listener does that.
    this.pingTimer.unref();
  }

  private readonly pingRound = (): void => {
    this.roundStartedAt = Date.now();
    for (const peer of this.shared.peers) {
      if (peer.ws.readyState !== 1) continue;
      peer.awaitingPong = true;
      peer.ws.ping();
    }
    if (this.closed) return;
    this.pingTimer = setTimeout(this.pongCheck, this.options.pongTimeout);
    this.pingTimer.unref();
  };

  /** Runs pongTimeout after a round: whoever was pinged then and is still silent is dead. */
  private readonly pongCheck = (): void => {
    for (const peer of this.shared.peers) {
      // A peer already closing is left to closeTimeout.
      if (peer.awaitingPong && peer.ws.readyState === 1) {
        this.shared.ctx.log.debug({ peer: peer.id, listener: this.shared.ctx.listener }, 'websocket peer did not answer a ping: terminated');
        peer.terminate();
      }
    }
    // Rounds start pingInterval apart, or back to back when pongTimeout is the longer of the two.
    this.schedulePing(Math.max(0, this.roundStartedAt + this.options.pingInterval - Date.now()));
  };
}

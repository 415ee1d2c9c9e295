import { constants, createServer as createHttp2Server, type Http2Server, type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Http2Config } from '../../config/schema.ts';
import type { Http2Response } from '../../handlers/types.ts';
import { TokenBucket, tokenBucketPolicy, type TokenBucketPolicy } from '../../protocol/token-bucket.ts';
import { H2Request, H2Response, streamTimeout, timesItself, type StreamOwner } from './h2-exchange.ts';
import { MAX_HEADER_FIELDS } from './request-target.ts';

// The HTTP/2 side of an http listener. node:http2 does the protocol (nghttp2: framing, HPACK,
// flow control, stream states); this file makes sessions out of the connections the listener
// accepted and holds the limits nghttp2 leaves to its user:
//
//   - streams at once (SETTINGS_MAX_CONCURRENT_STREAMS: nghttp2 refuses the extra ones with
//     REFUSED_STREAM, or ends the connection once the client has acknowledged the limit), header
//     list size (nghttp2 resets once acknowledged; before that, 431 here) and field count,
//     flow-control windows per stream and per connection;
//   - floods, one token bucket per connection each: streams the client resets (rapid reset,
//     CVE-2023-44487: opening and cancelling streams costs the client nothing and the server a
//     handler run each), PING and SETTINGS frames (each one makes us queue an ACK). Over a limit
//     the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed (a lingering close, so that the
//     GOAWAY is read); other connections go on. CONTINUATION floods (CVE-2024-27983) are
//     refused by nghttp2 itself (1.61: the 9th CONTINUATION frame of one header block ends the
//     connection);
//   - a stream with no progress either way for `idleTimeout` (a client that stops reading, its
//     window at zero, holds our response in memory) is reset with CANCEL (node's stream timer,
//     given only to streams still open at two sweeps in a row: see sweepPeriod); a connection
//     with no frame either way for `idleTimeout` is closed, whatever nghttp2 still waits for on it;
//   - drain: GOAWAY NO_ERROR, streams already open finish, new ones are refused.
//
// Each stream becomes a request and a response of h2-exchange.ts (not node's compatibility
// layer, which costs a good deal more per request: see there), the same shape as HTTP/1.1's for
// handlers, and goes through the listener's one set of phases.

/** What the listener does with each request: the same phases as HTTP/1.1. `socket` is the connection's own socket. */
export type Http2RequestSink = (req: H2Request, res: Http2Response, socket: Socket, expectsContinue: boolean) => void;

export interface Http2FrontOptions {
  readonly listener: string;
  readonly config: Http2Config;
  /** Largest request head (the listener's limits.maxHeaderSize): SETTINGS_MAX_HEADER_LIST_SIZE. */
  readonly maxHeaderSize: number;
  /** A stream with no bytes either way for this long is reset; a session with no stream for this long is closed. */
  readonly idleTimeout: number;
  readonly log: Logger;
  readonly onRequest: Http2RequestSink;
  /**
   * An extended CONNECT (RFC 8441) for `websocket`: the listener serves it as an HTTP/1.1
   * upgrade over the stream (h2-websocket.ts). Without it, such a request gets 501.
   */
  readonly onWebSocket?: Http2RequestSink;
  /** A connection was closed for a flood (`reason`: resets, pings, settings): counted by the listener. */
  readonly onFlood: (reason: FloodKind) => void;
}

export type FloodKind = 'resets' | 'pings' | 'settings';

const kSocket = Symbol('switchyard.h2.socket');
type TrackedSession = ServerHttp2Session & { [kSocket]?: Socket };

/** Per-session guards (a class: one shape for every session); told of each stream's close. */
class SessionGuards implements StreamOwner {
  readonly resets: TokenBucket;
  readonly pings: TokenBucket;
  readonly settings: TokenBucket;
  /** Streams node has handed us and not yet closed. */
  open = 0;
  /** Open streams without an idle timer yet: opened since the last sweep. */
  private fresh = new Set<ServerHttp2Stream>();
  /** Open streams without an idle timer yet that were open at the last sweep too. */
  private aging = new Set<ServerHttp2Stream>();
  constructor(
    policies: Record<FloodKind, TokenBucketPolicy>,
    now: number,
    private readonly onResetFlood: () => void,
  ) {
    this.resets = new TokenBucket(policies.resets, now);
    this.pings = new TokenBucket(policies.pings, now);
    this.settings = new TokenBucket(policies.settings, now);
  }

  streamOpened(stream: ServerHttp2Stream): void {
    this.open++;
    this.fresh.add(stream);
  }

  streamClosed(stream: ServerHttp2Stream): void {
    this.open--;
    if (!this.fresh.delete(stream)) this.aging.delete(stream);
    if (stream.rstCode !== constants.NGHTTP2_NO_ERROR && !this.resets.take(Date.now())) this.onResetFlood();
  }

  /**
   * The idle sweep (Http2Front.sweep): streams open at two sweeps in a row get node's idle timer
   * of `idleTimeout` now (unless their idle timing is someone else's: a handler's own timeout, an
   * open WebSocket); streams opened since the last sweep are looked at next time.
   */
  sweep(idleTimeout: number): void {
    const aging = this.aging;
    for (const stream of aging) {
      if (!stream.closed && !stream.destroyed && !timesItself(stream)) streamTimeout(stream, idleTimeout, false);
    }
    aging.clear();
    this.aging = this.fresh;
    this.fresh = aging;
  }
}

/**
 * How often the idle sweep runs: a quarter of the idle timeout, at most a second. A stream is
 * timed from the second sweep it is open at, so one idle from its start is reset after between
 * idleTimeout and idleTimeout plus two sweep periods, never sooner.
 */
export function sweepPeriod(idleTimeout: number): number {
  return Math.max(1, Math.min(1000, Math.floor(idleTimeout / 4)));
}

const EXPECTATION_FAILED = 417;

export class Http2Front {
  /** Never listens: sessions are made from sockets the listener accepted (TLS with ALPN h2, or h2c). */
  private readonly server: Http2Server;
  /** The sessions being served, each with its guards. */
  private readonly sessions = new Map<TrackedSession, SessionGuards>();
  private readonly policies: Record<FloodKind, TokenBucketPolicy>;
  private draining = false;
  /** The socket accept() is making a session of. */
  private accepting: Socket | undefined;
  /** The idle sweep, while there are sessions. */
  private sweeper: NodeJS.Timeout | undefined;

  constructor(private readonly options: Http2FrontOptions) {
    const c = options.config;
    this.policies = { resets: tokenBucketPolicy(c.maxResets), pings: tokenBucketPolicy(c.maxPings), settings: tokenBucketPolicy(c.maxSettings) };
    this.server = createHttp2Server({
      settings: {
        maxConcurrentStreams: c.maxConcurrentStreams,
        initialWindowSize: c.initialWindowSize,
        maxHeaderListSize: options.maxHeaderSize,
        // RFC 8441: WebSocket over an HTTP/2 stream (extended CONNECT).
        enableConnectProtocol: true,
      },
      // Header fields per request, as on HTTP/1.1 (request-target.ts); node's default is 128.
      maxHeaderListPairs: MAX_HEADER_FIELDS,
      // Streams refused past maxConcurrentStreams count as invalid frames (node never hands them
      // to us, so the reset bucket does not see them): after 100 of either node ends the
      // session (GOAWAY INTERNAL_ERROR).
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
      maxOutstandingPings: 10,
      // Header blocks, pending writes and unacknowledged data of one session together, in MB.
      maxSessionMemory: 16,
    });
    // Streams are taken from each session's 'stream' event (onSession); the server's 'request'
    // event (node's compatibility layer) is never listened to.
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session));
    // Session-level timeout: a connection with no stream open for idleTimeout is closed.
    this.server.setTimeout(options.idleTimeout);
    this.server.on('timeout', () => {});
  }

  /** Connections being served over HTTP/2. */
  get size(): number {
    return this.sessions.size;
  }

  /** Serves HTTP/2 on an accepted connection (TLS with ALPN h2, or h2c once its preface is seen). Bytes already read may be unshifted into `socket`. */
  accept(socket: Socket): void {
    this.accepting = socket;
    try {
      this.server.emit('connection', socket);
    } finally {
      this.accepting = undefined;
    }
  }

  /** GOAWAY to every session: open streams finish, then the connection closes; new streams are refused. */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions.keys()) if (!s.closed) s.close();
  }

  destroy(): void {
    for (const s of this.sessions.keys()) s.destroy();
    this.stopSweep();
  }

  /**
   * Streams get node's idle timer only once they have been open a while (see sweepPeriod): a
   * timer per stream costs every request an object, a place in node's timer list, a refresh
   * per write and a 'timeout' listener, and most streams end long before any timer could fire.
   */
  private sweep(): void {
    const idle = this.options.idleTimeout;
    for (const g of this.sessions.values()) g.sweep(idle);
  }

  private stopSweep(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** A new stream of `session` (whose connection is `socket`): its request and response, then the phases. */
  private onStream(guards: SessionGuards, socket: Socket, stream: ServerHttp2Stream, headers: IncomingHttpHeaders, rawHeaders: string[]): void {
    guards.streamOpened(stream);
    const req = new H2Request(stream, headers, rawHeaders, socket);
    const res = new H2Response(stream, req, guards) as unknown as Http2Response;
    // CONNECT: only the extended kind for WebSocket is served; a plain CONNECT (a tunnel to
    // host:port) is no gateway's business here: 405, as node answers it.
    if (headers[':method'] === 'CONNECT') return this.onConnect(req, res, socket);
    // Expect: 100-continue is the listener's phases to answer (once the request is admitted);
    // any other expectation cannot be met (RFC 9110 §10.1.1), as node answers it.
    const expect = headers.expect;
    if (expect !== undefined && expect !== '100-continue') {
      res.statusCode = EXPECTATION_FAILED;
      res.end();
      return;
    }
    this.onRequest(req, res, socket, expect !== undefined);
  }

  private onRequest(req: H2Request, res: Http2Response, socket: Socket, expectsContinue: boolean): void {
    // nghttp2 holds a client to SETTINGS_MAX_HEADER_LIST_SIZE only once the client has
    // acknowledged our SETTINGS (it then resets the stream, ENHANCE_YOUR_CALM, before anyone sees
    // it). Requests sent before that, as curl's first one is, arrive here whatever their size.
    if (headerListSize(req.rawHeaders) > this.options.maxHeaderSize) {
      const body = '431 request header fields too large\n';
      res.writeHead(431, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body) });
      res.end(body);
      return;
    }
    this.options.onRequest(req, res, socket, expectsContinue);
  }

  private onConnect(req: H2Request, res: Http2Response, socket: Socket): void {
    const protocol = req.headers[':protocol'];
    if (protocol === undefined) {
      res.writeHead(405, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
      res.end();
      return;
    }
    if (String(protocol).toLowerCase() !== 'websocket' || !this.options.onWebSocket || this.draining) {
      res.writeHead(501, { 'content-type': 'text/plain; charset=utf-8' });
      res.end(`${String(protocol)} over HTTP/2 is not served here\n`);
      return;
    }
    this.options.onWebSocket(req, res, socket, false);
  }

  private onSession(session: TrackedSession): void {
    // session.socket is a proxy that refuses most socket calls; the listener keys its
    // per-connection accounting (bytes) on the connection's own socket, the one accept() was
    // given ('session' is emitted within that call).
    const socket = this.accepting;
    if (!socket) {
      session.destroy();
      return;
    }
    session[kSocket] = socket;
    const guards = new SessionGuards(this.policies, Date.now(), () => this.flood(session, 'resets'));
    this.sessions.set(session, guards);
    if (this.sweeper === undefined && this.options.idleTimeout > 0) {
      this.sweeper = setInterval(() => this.sweep(), sweepPeriod(this.options.idleTimeout));
      this.sweeper.unref();
    }
    session.once('close', () => {
      this.sessions.delete(session);
      if (this.sessions.size === 0) this.stopSweep();
    });
    session.on('error', (err: NodeJS.ErrnoException) => this.options.log.debug({ listener: this.options.listener, err: err.message, code: err.code }, 'h2 session error'));
    // No frame either way for idleTimeout. Without a stream open the connection is closed now
    // (GOAWAY, then FIN): close() alone would wait for ever on what has no stream yet, a header
    // block nghttp2 is still waiting the rest of (HEADERS without END_HEADERS, then silence), and
    // node never closes a connection nghttp2 has ended with a GOAWAY for a protocol error. With
    // streams open: GOAWAY, they may finish (each stream's own idle timer resets a stalled one),
    // and whatever is left after one more idleTimeout is closed.
    let closing: NodeJS.Timeout | undefined;
    session.on('timeout', () => {
      if (guards.open === 0) return session.destroy();
      session.close();
      if (closing || session.destroyed) return;
      closing = setTimeout(() => session.destroy(), this.options.idleTimeout);
      closing.unref();
    });
    session.once('close', () => clearTimeout(closing));
    if (this.draining) {
      session.close();
      return;
    }
    const c = this.options.config;
    // The connection window (the per-stream one is SETTINGS_INITIAL_WINDOW_SIZE above).
    if (c.connectionWindowSize > 65_535) {
      try {
        session.setLocalWindowSize(c.connectionWindowSize);
      } catch {
        // The session went away while being set up.
      }
    }
    session.on('ping', () => {
      if (!guards.pings.take(Date.now())) this.flood(session, 'pings');
    });
    session.on('remoteSettings', () => {
      if (!guards.settings.take(Date.now())) this.flood(session, 'settings');
    });
    // Every stream, each with its idle timer and its close counted (reset floods), whatever
    // becomes of it.
    session.on('stream', (stream: ServerHttp2Stream, headers: IncomingHttpHeaders, _flags: number, rawHeaders: string[]) => this.onStream(guards, socket, stream, headers, rawHeaders));
  }

  private flood(session: ServerHttp2Session, kind: FloodKind): void {
    if (session.destroyed) return;
    this.options.onFlood(kind);
    this.options.log.debug({ listener: this.options.listener, flood: kind }, 'h2: connection over its limit, GOAWAY ENHANCE_YOUR_CALM');
    // One GOAWAY ENHANCE_YOUR_CALM (destroy's own), then the connection is closed. Closed at once,
    // the kernel would answer the flood still unread with a TCP reset, and the client would lose
    // the GOAWAY that says why: its input is read and dropped for a moment first.
    const socket = (session as TrackedSession)[kSocket];
    if (socket) lingerOnDestroy(socket, LINGER_MS);
    session.destroy(new Error(`HTTP/2 ${kind} flood`), constants.NGHTTP2_ENHANCE_YOUR_CALM);
  }
}

/** How long a connection closed for a flood goes on being read (and its bytes dropped) after its GOAWAY. */
const LINGER_MS = 1000;

/**
 * The next destroy() of `socket` (node's, once the session has written its last frames and
 * ended the socket) becomes a lingering close: what the client still sends is read and dropped
 * until it closes its side or `ms` pass, so that its unread bytes do not make the kernel reset
 * the connection over the GOAWAY. Later calls (the listener's own shutdown) destroy at once.
 */
function lingerOnDestroy(socket: Socket, ms: number): void {
  const destroy = socket.destroy;
  socket.destroy = function lingering(this: Socket) {
    socket.destroy = destroy;
    if (socket.destroyed) return socket;
    const timer = setTimeout(() => socket.destroy(), ms);
    timer.unref();
    socket.once('close', () => clearTimeout(timer));
    socket.once('end', () => socket.destroy());
    socket.on('data', () => {});
    socket.resume();
    return socket;
  } as Socket['destroy'];
}

/** A header list's size as RFC 9113 §6.5.2 counts it (and node does): name and value octets plus 32 per field. */
function headerListSize(raw: string[]): number {
  let n = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) n += raw[i].length + raw[i + 1].length + 32;
  return n;
}

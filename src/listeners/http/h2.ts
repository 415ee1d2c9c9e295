import {
  constants,
  createServer as createHttp2Server,
  type Http2Server,
  type Http2ServerRequest,
  type Http2ServerResponse,
  type ServerHttp2Session,
  type ServerHttp2Stream,
} from 'node:http2';
import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Http2Config } from '../../config/schema.ts';
import { TokenBucket, tokenBucketPolicy, type TokenBucketPolicy } from '../../protocol/token-bucket.ts';
import { MAX_HEADER_FIELDS } from './request-target.ts';

// The HTTP/2 side of an http listener. node:http2 does the protocol (nghttp2: framing, HPACK,
// flow control, stream states); this file makes sessions out of the connections the listener
// accepted and holds the limits nghttp2 leaves to its user:
//
//   - streams at once (SETTINGS_MAX_CONCURRENT_STREAMS; more: REFUSED_STREAM), header list
//     size and field count, flow-control windows per stream and per connection;
//   - floods, one token bucket per connection each: streams reset or refused (rapid reset,
//     CVE-2023-44487: opening and cancelling streams costs the client nothing and the server a
//     handler run each), PING and SETTINGS frames (each one makes us queue an ACK). Over a limit
//     the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed; other connections go on.
//     CONTINUATION floods (CVE-2024-27983) are refused by nghttp2 itself (1.61: a header block
//     of more than 8 CONTINUATION frames ends the connection);
//   - a stream with no progress either way for `idleTimeout` (a client that stops reading, its
//     window at zero, holds our response in memory) is reset with CANCEL;
//   - drain: GOAWAY NO_ERROR, streams already open finish, new ones are refused.
//
// Requests come out as node's compatibility request and response, the same shape as HTTP/1.1's,
// and go through the listener's one set of phases.

/** What the listener does with each request: the same phases as HTTP/1.1. `socket` is the connection's own socket. */
export type Http2RequestSink = (req: Http2ServerRequest, res: Http2ServerResponse, socket: Socket, expectsContinue: boolean) => void;

export interface Http2FrontOptions {
  readonly listener: string;
  readonly config: Http2Config;
  /** Largest request head (the listener's limits.maxHeaderSize): SETTINGS_MAX_HEADER_LIST_SIZE. */
  readonly maxHeaderSize: number;
  /** A stream with no bytes either way for this long is reset; a session with no stream for this long is closed. */
  readonly idleTimeout: number;
  readonly log: Logger;
  readonly onRequest: Http2RequestSink;
  /** A connection was closed for a flood (`reason`: resets, pings, settings): counted by the listener. */
  readonly onFlood: (reason: FloodKind) => void;
}

export type FloodKind = 'resets' | 'pings' | 'settings';

const kSocket = Symbol('switchyard.h2.socket');
type TrackedSession = ServerHttp2Session & { [kSocket]?: Socket };

/** Per-session guards (a class: one shape for every session). */
class SessionGuards {
  readonly resets: TokenBucket;
  readonly pings: TokenBucket;
  readonly settings: TokenBucket;
  constructor(policies: Record<FloodKind, TokenBucketPolicy>, now: number) {
    this.resets = new TokenBucket(policies.resets, now);
    this.pings = new TokenBucket(policies.pings, now);
    this.settings = new TokenBucket(policies.settings, now);
  }
}

export class Http2Front {
  /** Never listens: sessions are made from sockets the listener accepted (TLS with ALPN h2, or h2c). */
  private readonly server: Http2Server;
  private readonly sessions = new Set<TrackedSession>();
  private readonly policies: Record<FloodKind, TokenBucketPolicy>;
  private draining = false;
  /** The socket accept() is making a session of. */
  private accepting: Socket | undefined;

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
      // Streams refused past maxConcurrentStreams, and malformed frames, before node itself ends
      // the session; the reset bucket above usually acts first.
      maxSessionRejectedStreams: 100,
      maxSessionInvalidFrames: 100,
      maxOutstandingPings: 10,
      // Header blocks, pending writes and unacknowledged data of one session together, in MB.
      maxSessionMemory: 16,
    });
    this.server.on('session', (session: ServerHttp2Session) => this.onSession(session));
    this.server.on('request', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const socket = (req.stream.session as TrackedSession | undefined)?.[kSocket];
      if (socket) this.options.onRequest(req, res, socket, false);
    });
    // The compat layer would answer Expect: 100-continue itself; the listener's phases decide.
    this.server.on('checkContinue', (req: Http2ServerRequest, res: Http2ServerResponse) => {
      const socket = (req.stream.session as TrackedSession | undefined)?.[kSocket];
      if (socket) this.options.onRequest(req, res, socket, true);
    });
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
    for (const s of this.sessions) if (!s.closed) s.close();
  }

  destroy(): void {
    for (const s of this.sessions) s.destroy();
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
    this.sessions.add(session);
    session.once('close', () => this.sessions.delete(session));
    session.on('error', (err: NodeJS.ErrnoException) => this.options.log.debug({ listener: this.options.listener, err: err.message, code: err.code }, 'h2 session error'));
    session.on('timeout', () => session.close());
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
    const guards = new SessionGuards(this.policies, Date.now());
    session.on('ping', () => {
      if (!guards.pings.take(Date.now())) this.flood(session, 'pings');
    });
    session.on('remoteSettings', () => {
      if (!guards.settings.take(Date.now())) this.flood(session, 'settings');
    });
    session.on('stream', (stream: ServerHttp2Stream) => {
      stream.setTimeout(this.options.idleTimeout, () => stream.close(constants.NGHTTP2_CANCEL));
      stream.once('close', () => {
        if (stream.rstCode !== constants.NGHTTP2_NO_ERROR && !guards.resets.take(Date.now())) this.flood(session, 'resets');
      });
    });
  }

  private flood(session: ServerHttp2Session, kind: FloodKind): void {
    if (session.destroyed) return;
    this.options.onFlood(kind);
    this.options.log.debug({ listener: this.options.listener, flood: kind }, 'h2: connection over its limit, GOAWAY ENHANCE_YOUR_CALM');
    session.goaway(constants.NGHTTP2_ENHANCE_YOUR_CALM);
    session.destroy();
  }
}

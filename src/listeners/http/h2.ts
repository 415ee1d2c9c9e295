import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import type { Http2Config } from '../../config/schema.ts';
import type { Http2Response } from '../../handlers/types.ts';
import { TokenBucket, tokenBucketPolicy, type TokenBucketPolicy } from '../../protocol/token-bucket.ts';
import { ENHANCE_YOUR_CALM, NO_ERROR } from '../../protocol/h2/frames.ts';
import { H2Request, H2Response, streamTimeout, timesItself, type StreamOwner } from './h2-exchange.ts';
import { H2ServerSession, type H2SessionOptions } from './h2-engine/session.ts';
import { fieldsToRecord, type H2ServerStream } from './h2-engine/stream.ts';
import type { FieldList } from './h2-engine/fields.ts';
import { MAX_HEADER_FIELDS } from './request-target.ts';

// The HTTP/2 side of an http listener. The protocol is our own engine (h2-engine/: framing,
// HPACK, flow control, stream states, on the HTTP/2 client's frames and HPACK code), not
// node:http2: nghttp2 and node's JS/C++ stream layer cost 3-4x the engine's CPU per request in a
// bare comparison (bench/h2-engine.ts: 13-byte responses over TLS, h2load -c16 -m16, node:http2
// 22.8-26.0 µs of server CPU per request, the engine 4.9-13.3; docs/http2.md, "The engine").
// This file makes sessions out of the connections the listener accepted and holds the limits:
//
//   - streams at once (SETTINGS_MAX_CONCURRENT_STREAMS: the engine refuses the extra ones with
//     REFUSED_STREAM, 100 of them end the connection, and a client past the limit it has
//     acknowledged is a connection error), header list size (reset with ENHANCE_YOUR_CALM once
//     acknowledged; before that, 431 here) and field count, flow-control windows per stream and
//     per connection;
//   - floods, one token bucket per connection each: streams the client resets (rapid reset,
//     CVE-2023-44487: opening and cancelling streams costs the client nothing and the server a
//     handler run each), PING and SETTINGS frames (each one makes us queue an ACK). Over a limit
//     the connection gets GOAWAY ENHANCE_YOUR_CALM and is closed (a lingering close, so that the
//     GOAWAY is read); other connections go on. CONTINUATION floods (CVE-2024-27983) are
//     refused by the engine itself (the 9th CONTINUATION frame of one header block ends the
//     connection, as nghttp2 1.61 does);
//   - a stream with no progress either way for `idleTimeout` (a client that stops reading, its
//     window at zero, holds our response in memory) is reset with CANCEL (the stream's idle
//     timer, given only to streams still open at two sweeps in a row: see sweepPeriod); a
//     connection with no frame either way for `idleTimeout` is closed (the same sweep);
//   - memory of quiet connections: a session with no frame for a sweep period gives back its
//     output slab (the same sweep, also without an idle timeout: H2ServerSession.trim), so that
//     thousands of idle connections hold no buffers;
//   - drain: GOAWAY NO_ERROR, streams already open finish, new ones are refused.
//
// Each stream becomes a request and a response of h2-exchange.ts, the same shape as HTTP/1.1's
// for handlers, and goes through the listener's one set of phases.

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

/** Per-session guards (a class: one shape for every session); told of each stream's close. */
class SessionGuards implements StreamOwner {
  readonly resets: TokenBucket;
  readonly pings: TokenBucket;
  readonly settings: TokenBucket;
  /** Streams the engine has handed us and not yet closed. */
  open = 0;
  /** The session was told to close for idleness (GOAWAY); it is destroyed at the next idle timeout. */
  closingSince = 0;
  constructor(
    policies: Record<FloodKind, TokenBucketPolicy>,
    now: number,
    private readonly onResetFlood: () => void,
  ) {
    this.resets = new TokenBucket(policies.resets, now);
    this.pings = new TokenBucket(policies.pings, now);
    this.settings = new TokenBucket(policies.settings, now);
  }

  streamOpened(): void {
    this.open++;
  }

  /** A stream the engine handed us closed; one we reset with an error counts as a reset. */
  streamClosed(stream: H2ServerStream): void {
    this.open--;
    if (stream.rstCode !== NO_ERROR && !stream.resetByPeer) this.reset();
  }

  /** The client reset a stream (counted in the reset bucket, open or already answered). */
  reset(): void {
    if (!this.resets.take(Date.now())) this.onResetFlood();
  }

  /**
   * The idle sweep (Http2Front.sweep): streams open at two sweeps in a row get the idle timer of
   * `idleTimeout` now (unless their idle timing is someone else's: a handler's own timeout, an
   * open WebSocket); streams opened since the last sweep are looked at next time. The session's
   * own table of open streams is walked, not a set of ours: a Set that every stream enters and
   * leaves would keep closed streams alive through young collections (protocol/h2/stream-table.ts).
   */
  sweep(session: H2ServerSession, idleTimeout: number): void {
    for (const stream of session.streams.values()) {
      if (stream.idleSweeps++ !== 1) continue;
      if (!stream.closed && !stream.destroyed && !timesItself(stream)) streamTimeout(stream, idleTimeout, false);
    }
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

/** How often the sweep runs without an idle timeout: only to trim quiet sessions then. */
const TRIM_PERIOD = 1000;

const EXPECTATION_FAILED = 417;

/** Refused streams and invalid frames a session may cause before it is ended (node:http2's maxSessionRejectedStreams). */
const MAX_REJECTED = 100;
/** Output not taken by the socket beyond which the session makes no more (DATA waits; answers to a flood end it). */
const MAX_QUEUED_OUTPUT = 1 << 20;

export class Http2Front {
  /** The sessions being served, each with its guards. */
  private readonly sessions = new Map<H2ServerSession, SessionGuards>();
  private readonly policies: Record<FloodKind, TokenBucketPolicy>;
  private readonly sessionOptions: H2SessionOptions;
  private draining = false;
  /** The idle sweep, while there are sessions. */
  private sweeper: NodeJS.Timeout | undefined;
  /** The sweep's period: a session with no frame for that long is quiet and trimmed. */
  private readonly sweepEvery: number;

  constructor(private readonly options: Http2FrontOptions) {
    const c = options.config;
    this.sweepEvery = options.idleTimeout > 0 ? sweepPeriod(options.idleTimeout) : TRIM_PERIOD;
    this.policies = { resets: tokenBucketPolicy(c.maxResets), pings: tokenBucketPolicy(c.maxPings), settings: tokenBucketPolicy(c.maxSettings) };
    this.sessionOptions = {
      maxConcurrentStreams: c.maxConcurrentStreams,
      initialWindowSize: c.initialWindowSize,
      connectionWindowSize: c.connectionWindowSize,
      maxHeaderListSize: options.maxHeaderSize,
      // Header fields per request, as on HTTP/1.1 (request-target.ts).
      maxHeaderFields: MAX_HEADER_FIELDS,
      // RFC 8441: WebSocket over an HTTP/2 stream (extended CONNECT).
      enableConnectProtocol: true,
      maxContinuations: 8,
      maxRejectedStreams: MAX_REJECTED,
      maxQueuedOutput: MAX_QUEUED_OUTPUT,
    };
  }

  /** Connections being served over HTTP/2. */
  get size(): number {
    return this.sessions.size;
  }

  /** Bytes of output slab the sessions hold: none for a session quiet since about the last sweep. */
  get outputHeld(): number {
    let n = 0;
    for (const s of this.sessions.keys()) n += s.out.held;
    return n;
  }

  /** Serves HTTP/2 on an accepted connection (TLS with ALPN h2, or h2c once its preface is seen). Bytes already read may be unshifted into `socket`. */
  accept(socket: Socket): void {
    let session: H2ServerSession | undefined;
    let guards: SessionGuards | undefined;
    const flood = (kind: FloodKind) => this.flood(session!, kind);
    const handler = {
      onStream: (stream: H2ServerStream, fields: FieldList) => this.onStream(guards!, socket, stream, fields),
      onPeerReset: () => guards!.reset(),
      onPing: () => {
        if (!guards!.pings.take(Date.now())) flood('pings');
      },
      onSettings: () => {
        if (!guards!.settings.take(Date.now())) flood('settings');
      },
      onError: (err: Error) => this.options.log.debug({ listener: this.options.listener, err: err.message }, 'h2 session error'),
      onClose: () => {
        this.sessions.delete(session!);
        if (this.sessions.size === 0) this.stopSweep();
      },
    };
    guards = new SessionGuards(this.policies, Date.now(), () => flood('resets'));
    session = new H2ServerSession(socket, this.sessionOptions, handler);
    if (session.closed) return;
    this.sessions.set(session, guards);
    if (this.sweeper === undefined) {
      this.sweeper = setInterval(() => this.sweep(), this.sweepEvery);
      this.sweeper.unref();
    }
    if (this.draining) session.close();
  }

  /** GOAWAY to every session: open streams finish, then the connection closes; new streams are refused. */
  drain(): void {
    this.draining = true;
    for (const s of this.sessions.keys()) s.close();
  }

  destroy(): void {
    for (const s of [...this.sessions.keys()]) {
      s.destroy(NO_ERROR);
      s.socket.destroy();
    }
    this.sessions.clear();
    this.stopSweep();
  }

  /**
   * Streams get an idle timer only once they have been open a while (see sweepPeriod): a timer
   * per stream costs every request an object and a place in node's timer list, and most streams
   * end long before any timer could fire. Sessions with no frame either way for idleTimeout are
   * closed here too: at once without a stream open (whatever the engine still waits for on it:
   * a header block that never ends), with streams open by GOAWAY (they may finish; each
   * stream's own idle timer resets a stalled one) and whatever is left one more idleTimeout later.
   * A session with no frame since about the last sweep is trimmed (its output slab given back):
   * thousands of idle connections hold no buffers, and a busy session keeps its slab.
   */
  private sweep(): void {
    const idle = this.options.idleTimeout;
    const now = Date.now();
    for (const [session, g] of this.sessions) {
      if (now - session.lastActivity >= this.sweepEvery) session.trim();
      if (idle === 0) continue;
      g.sweep(session, idle);
      if (g.closingSince > 0) {
        if (now - g.closingSince >= idle) session.destroy(NO_ERROR);
        continue;
      }
      if (now - session.lastActivity < idle) continue;
      if (g.open === 0) {
        session.destroy(NO_ERROR);
        continue;
      }
      session.close();
      g.closingSince = now;
    }
  }

  private stopSweep(): void {
    clearInterval(this.sweeper);
    this.sweeper = undefined;
  }

  /** A new stream of a session (whose connection is `socket`): its request and response, then the phases. */
  private onStream(guards: SessionGuards, socket: Socket, stream: H2ServerStream, fields: FieldList): void {
    guards.streamOpened();
    const headers = fieldsToRecord(fields);
    const req = new H2Request(stream, headers, fields, socket);
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
    // The engine holds a client to SETTINGS_MAX_HEADER_LIST_SIZE only once the client has
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

  private flood(session: H2ServerSession, kind: FloodKind): void {
    if (session.destroyed) return;
    this.options.onFlood(kind);
    this.options.log.debug({ listener: this.options.listener, flood: kind }, 'h2: connection over its limit, GOAWAY ENHANCE_YOUR_CALM');
    // One GOAWAY ENHANCE_YOUR_CALM, then the connection is closed. Closed at once, the kernel
    // would answer the flood still unread with a TCP reset, and the client would lose the GOAWAY
    // that says why: its input is read and dropped for a moment first (a lingering close).
    session.destroy(ENHANCE_YOUR_CALM, `${kind} flood`, true);
  }
}

/** A header list's size as RFC 9113 §6.5.2 counts it: name and value octets plus 32 per field. */
function headerListSize(raw: string[]): number {
  let n = 0;
  for (let i = 0; i + 1 < raw.length; i += 2) n += raw[i].length + raw[i + 1].length + 32;
  return n;
}

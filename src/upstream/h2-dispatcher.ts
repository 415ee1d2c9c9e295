import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Dispatcher } from 'undici';
import { H2Connection, type ConnectionOwner, type RequestHead } from './h2/connection.ts';
import { openSocket } from './h2/connect.ts';
import { H2ClientError } from './h2/errors.ts';
import type { ClientStream } from './h2/stream.ts';

// Requests to an HTTP/2 target (h2c://, or https:// with http2: true) over HTTP/2 connections
// kept for the life of the config, behind the same dispatch(options, handler) contract as the
// undici pools of HTTP/1.1 targets, so the proxy's exchange (and its retries, timeouts and
// backpressure) is one piece of code for both.
//
// The client is our own, written on the socket (h2/: frames, HPACK, one connection), not
// node:http2 and not undici's. Measured on the gRPC benchmark (the proxy's CPU per proxied unary
// call): through undici's HTTP/2 client ~300 us; through node:http2 125-148 us, much of it its
// per-stream objects (a Duplex, its events, an AsyncResource) and a socket write per frame; with
// this client 68-92 us in the same runs. It frames the calls of one event-loop turn into one
// write and parses responses straight into the handler's calls (bench/README.md, grpc).
//
// Connections: at most `maxSessions`; a request goes on the connection with the most room under
// the target's SETTINGS_MAX_CONCURRENT_STREAMS (and under maxStreamsPerSession, when set), and a
// new connection is opened (one at a time) only when every one is full. Past
// maxStreamsPerSession the request does not wait for the new connection: it goes on the least
// busy one still under the target's limit while the next connects. When every connection is at
// the target's limit and no more may open, requests wait (`pending`) until a stream ends. A
// connection that got GOAWAY, failed or closed leaves the pool at once; streams already on it
// finish there (those the GOAWAY says were not processed fail as safe to send again).
//
// The handler sees what undici would show it: onConnect(abort) when the stream is opened,
// onHeaders(status, raw [name, value, ...], resume) for 1xx and the response (false pauses the
// stream until resume: no window credit goes back to the target meanwhile), onData (false
// pauses), onComplete(trailers object or null), and onError with undici's codes where the proxy
// classifies by them (UND_ERR_HEADERS_TIMEOUT, UND_ERR_BODY_TIMEOUT, UND_ERR_CONNECT_TIMEOUT,
// ECONNREFUSED, ECONNRESET, HPE_* for a target that breaks HTTP/2...). A stream the target
// refused (REFUSED_STREAM) or did not process (above a GOAWAY's last stream id) fails as not
// sent when its body is at hand (none or a Buffer), so the proxy may send it again anywhere.

export interface Http2DispatcherOptions {
  /** h2c (`http:`) or h2 over TLS (`https:`, ALPN h2). */
  readonly protocol: 'http:' | 'https:';
  readonly host: string;
  readonly port: number;
  /** The target's `host:port`, the :authority when a request has no Host. */
  readonly id: string;
  /** TLS options (the group's CA, SNI, client certificate). */
  readonly tls?: ConnectionOptions;
  /**
   * No connection (TCP, TLS and the target's SETTINGS) within this long (ms): UND_ERR_CONNECT_TIMEOUT.
   * Also how long the target has to acknowledge our SETTINGS: past it, GOAWAY SETTINGS_TIMEOUT.
   */
  readonly connectTimeout: number;
  /** No response head within this long (ms): UND_ERR_HEADERS_TIMEOUT (0: none). */
  readonly headersTimeout: number;
  /** No body bytes for this long (ms) while the response streams: UND_ERR_BODY_TIMEOUT (0: none). */
  readonly bodyTimeout: number;
  readonly maxSessions: number;
  /**
   * Streams a connection carries before the next request opens another connection (up to
   * maxSessions), so that calls are spread over a few connections instead of all on one (0: one
   * connection until the target's own SETTINGS_MAX_CONCURRENT_STREAMS is reached).
   */
  readonly maxStreamsPerSession?: number;
  /** Runs on each connection's socket once its TCP connection is up (the group's `socket:` options). */
  readonly onConnect?: (socket: Socket) => void;
}

/** What the proxy sends: headers as a flat [name, value, ...] list, a body held or streamed. */
interface DispatchOptions {
  path: string;
  method: string;
  headers: string[];
  body: Buffer | AsyncIterable<Buffer> | null;
}

/** What a pool of either kind offers the proxy (undici's Pool has it). */
export interface UpstreamDispatcher {
  dispatch(options: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean;
  readonly stats: { connected: number; pending: number; running: number };
  destroy(): Promise<void>;
}

/**
 * A request body that can push itself into a writable with backpressure (the proxy's gRPC body
 * does): cheaper than reading it as an async iterable, which costs promises per chunk.
 */
export interface PipeableBody extends AsyncIterable<Buffer> {
  pipeTo(sink: BodySink, onError: (err: Error) => void): void;
}

/** What a PipeableBody writes into (an HTTP/2 client stream is one). */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
}

function isPipeable(body: unknown): body is PipeableBody {
  return typeof (body as PipeableBody).pipeTo === 'function';
}

/** Request header names HTTP/2 forbids (RFC 9113 §8.2.2) or that become pseudo-headers. */
const DROPPED = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** After a failed connection attempt, connections past maxStreamsPerSession wait this long (ms) before trying again. */
const BACKGROUND_CONNECT_BACKOFF = 1000;

/**
 * Our receive window per stream: the unread response bytes one stream may hold while its
 * handler is paused (a slow client downstream). 1 MiB keeps a single stream's transfer from
 * waiting on window updates on a fast link.
 */
const STREAM_WINDOW = 1 << 20;
/** Our receive window for a connection: what all its paused streams together may hold. */
const CONNECTION_WINDOW = 16 << 20;
/** The largest response header list we take (decoded, as SETTINGS_MAX_HEADER_LIST_SIZE counts). */
const MAX_HEADER_LIST_SIZE = 64 << 10;

interface Waiting {
  options: DispatchOptions;
  handler: Dispatcher.DispatchHandler;
}

export class Http2Dispatcher implements UpstreamDispatcher {
  private readonly conns: H2Connection[] = [];
  /** Every connection whose socket is open, those draining after GOAWAY too: destroy() ends them all. */
  private readonly open = new Set<H2Connection>();
  private readonly waiting: Waiting[] = [];
  private connecting = false;
  /** When the last connection attempt failed (Date.now()), to pace attempts no request waits for. */
  private failedAt = 0;
  private closed = false;
  private readonly scheme: 'http' | 'https';
  private readonly owner: ConnectionOwner;
  /** The head of the request being started (see start). */
  private readonly head: { -readonly [K in keyof RequestHead]: RequestHead[K] } & { headers: string[] };

  constructor(private readonly options: Http2DispatcherOptions) {
    this.scheme = options.protocol === 'https:' ? 'https' : 'http';
    this.head = { method: '', path: '', scheme: this.scheme, authority: '', headers: [] };
    this.owner = {
      ready: () => {},
      room: () => {
        if (this.waiting.length > 0) this.flush();
      },
      gone: (conn) => {
        const i = this.conns.indexOf(conn);
        if (i !== -1) this.conns.splice(i, 1);
        // Requests that were waiting go to another connection (or a new one).
        if (this.waiting.length > 0) this.flush();
      },
    };
  }

  get stats(): { connected: number; pending: number; running: number } {
    let running = 0;
    for (const c of this.conns) running += c.active;
    return { connected: this.conns.length, pending: this.waiting.length, running };
  }

  dispatch(dispatchOptions: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // The proxy's exchange passes its flat header list and a Buffer or an async iterable body.
    const options = dispatchOptions as unknown as DispatchOptions;
    if (this.closed) {
      handler.onError?.(new H2ClientError('the pool is closed', 'UND_ERR_DESTROYED'));
      return false;
    }
    const c = this.waiting.length === 0 ? this.pick() : undefined;
    if (c) this.start(c, options, handler);
    else {
      this.waiting.push({ options, handler });
      this.flush();
    }
    return true;
  }

  async destroy(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.handler.onError?.(new H2ClientError('the pool is closed', 'UND_ERR_DESTROYED'));
    this.conns.length = 0;
    for (const c of [...this.open]) c.destroy();
    this.open.clear();
  }

  /** The connection with the most room, or undefined when the request has to wait (a new one is opened if it may). */
  private pick(): H2Connection | undefined {
    const conns = this.conns;
    const soft = this.options.maxStreamsPerSession ?? 0;
    let best: H2Connection | undefined;
    let bestRoom = 0;
    for (let i = 0; i < conns.length; i++) {
      const c = conns[i];
      let room = c.room;
      if (soft > 0 && soft - c.active < room) room = soft - c.active;
      if (room > bestRoom) {
        best = c;
        bestRoom = room;
      }
    }
    if (best) return best;
    const more = conns.length < this.options.maxSessions;
    if (soft > 0) {
      // Every connection has its share: another one is opened (one at a time), and meanwhile the
      // request goes on the least busy connection the target still takes streams on.
      if (more && Date.now() - this.failedAt >= BACKGROUND_CONNECT_BACKOFF) this.connect(false);
      let least: H2Connection | undefined;
      for (const c of conns) if (c.room > 0 && (!least || c.active < least.active)) least = c;
      if (least) return least;
    }
    if (more) this.connect(true);
    return undefined;
  }

  /**
   * Opens a connection (one at a time). `forWaiting`: requests wait for it, and fail with its
   * error when it cannot be made (nothing was sent: the proxy retries them elsewhere).
   */
  private connect(forWaiting: boolean): void {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    const { connectTimeout, id } = this.options;
    let conn: H2Connection | undefined;
    let settled = false;
    const fail = (err: Error): void => {
      if (settled) return;
      settled = true;
      this.connecting = false;
      this.failedAt = Date.now();
      clearTimeout(timer);
      giveUp(err);
      // Waiting requests fail before the connection is destroyed, whose going would start them on a new one.
      const waiting = forWaiting || this.conns.length === 0 ? this.waiting.splice(0) : [];
      conn?.destroy();
      for (const w of waiting) w.handler.onError?.(err);
      if (this.waiting.length > 0) this.flush();
    };
    const timer = setTimeout(() => fail(new H2ClientError(`no HTTP/2 connection to ${id} within ${connectTimeout} ms`, 'UND_ERR_CONNECT_TIMEOUT')), connectTimeout);
    const giveUp = openSocket(this.options, (err, socket) => {
      if (err || !socket) return fail(err ?? new H2ClientError(`no connection to ${id}`, 'ECONNRESET'));
      if (settled) return void socket.destroy();
      conn = new H2Connection(socket, settings(this.options), {
        ready: (c) => {
          if (settled) return;
          settled = true;
          this.connecting = false;
          clearTimeout(timer);
          if (this.closed) return c.destroy();
          this.conns.push(c);
          this.open.add(c);
          socket.once('close', () => this.open.delete(c));
          // Idle connections must not keep the process alive when the yard stops.
          socket.unref();
          this.flush();
        },
        room: this.owner.room,
        gone: (c, goneErr) => {
          if (!settled) return fail(goneErr);
          this.owner.gone(c, goneErr);
        },
      });
    });
  }

  /** Starts waiting requests on connections with room; opens one when there is none. */
  private flush(): void {
    while (this.waiting.length > 0) {
      const c = this.pick();
      if (!c) return;
      const w = this.waiting.shift()!;
      this.start(c, w.options, w.handler);
    }
  }

  private start(conn: H2Connection, options: DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    // The head is filled into the pool's one scratch head: openStream encodes it before it
    // returns and keeps nothing of it (a request retried from inside it, after a refusal, fills
    // it again only once it is done with it).
    const head = this.head;
    const out = head.headers;
    let n = 0;
    let authority: string | undefined;
    const flat = options.headers;
    for (let i = 0; i < flat.length; i += 2) {
      const name = flat[i].toLowerCase();
      const value = flat[i + 1];
      if (DROPPED.has(name)) {
        if (name === 'host') authority ??= value;
        continue;
      }
      if (name === 'te' && value !== 'trailers') continue;
      out[n++] = name;
      out[n++] = value;
    }
    if (out.length !== n) out.length = n;
    head.method = options.method;
    head.path = options.path;
    head.authority = authority ?? this.options.id;
    const body = options.body;
    const held = body === null || Buffer.isBuffer(body);
    const endStream = body === null || (Buffer.isBuffer(body) && body.length === 0);
    const stream = conn.openStream(head, handler, endStream, held);
    if (stream === null) return; // refused before sending: the handler has the error
    handler.onConnect?.(stream.abort);
    if (stream.done || endStream) return;
    if (Buffer.isBuffer(body)) conn.sendData(stream, body, true);
    else if (isPipeable(body)) body.pipeTo(stream, stream.abort);
    else if (body) void pump(stream, body);
  }
}

function settings(options: Http2DispatcherOptions) {
  return {
    id: options.id,
    streamWindow: STREAM_WINDOW,
    connectionWindow: CONNECTION_WINDOW,
    maxHeaderListSize: MAX_HEADER_LIST_SIZE,
    settingsTimeout: options.connectTimeout,
    headersTimeout: options.headersTimeout,
    bodyTimeout: options.bodyTimeout,
  };
}

/** A request body read as an async iterable: the next chunk is pulled only when the stream can send it. */
async function pump(stream: ClientStream, body: AsyncIterable<Buffer>): Promise<void> {
  try {
    for await (const chunk of body) {
      if (stream.done) return;
      if (!stream.write(chunk)) {
        await stream.writableOrDone();
        if (stream.done) return;
      }
    }
    stream.end();
  } catch (err) {
    // The client's body broke off or grew past the limit: the request ends with that error.
    stream.abort(err as Error);
  }
}

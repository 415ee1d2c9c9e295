import { connect as connectHttp2, constants, type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';
import { connect as connectTls, type ConnectionOptions } from 'node:tls';
import { connect as connectTcp, type Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { installLeanAsyncResourceBind } from './async-resource-bind.ts';

// Requests to an HTTP/2 target (h2c://, or https:// with http2: true) over node:http2 sessions
// kept for the life of the config, behind the same dispatch(options, handler) contract as the
// undici pools of HTTP/1.1 targets, so the proxy's exchange (and its retries, timeouts and
// backpressure) is one piece of code for both. Why not undici's own HTTP/2 client: measured
// here, a proxied gRPC call through it cost ~300 us of CPU and the proxy sat 40% idle at 3k
// calls/s; node:http2 directly does the same work in a fraction of it.
//
// Sessions: at most `maxSessions`; a request goes on the session with the most room under the
// target's SETTINGS_MAX_CONCURRENT_STREAMS (and under maxStreamsPerSession, when set), and a new
// session is opened (one at a time) only when every session is full. Past maxStreamsPerSession
// the request does not wait for the new session: it goes on the least busy one that is still
// under the target's limit while the next connects. A session that got GOAWAY, failed or closed leaves at once; streams
// already on it finish there. Requests waiting for a session count as `pending`.
//
// The handler sees what undici would show it: onConnect(abort) when the stream is opened,
// onHeaders(status, raw [name, value, ...], resume) for 1xx and the response (false pauses the
// stream until resume), onData (false pauses), onComplete(trailers object or null), and
// onError with undici's codes where the proxy classifies by them (UND_ERR_HEADERS_TIMEOUT,
// UND_ERR_BODY_TIMEOUT, ECONNREFUSED, ECONNRESET...).

export interface Http2DispatcherOptions {
  /** h2c (`http:`) or h2 over TLS (`https:`, ALPN h2). */
  readonly protocol: 'http:' | 'https:';
  readonly host: string;
  readonly port: number;
  /** The target's `host:port`, the :authority when a request has no Host. */
  readonly id: string;
  /** TLS options (the group's CA, SNI, client certificate). */
  readonly tls?: ConnectionOptions;
  readonly connectTimeout: number;
  /** No response head within this long: UND_ERR_HEADERS_TIMEOUT (0: none). */
  readonly headersTimeout: number;
  /** No body bytes for this long while the response streams: UND_ERR_BODY_TIMEOUT (0: none). */
  readonly bodyTimeout: number;
  readonly maxSessions: number;
  /**
   * Streams a session carries before the next request opens another session (up to
   * maxSessions), so that calls are spread over a few connections instead of all on one (0: one
   * session until the target's own SETTINGS_MAX_CONCURRENT_STREAMS is reached).
   */
  readonly maxStreamsPerSession?: number;
  /** Runs on each session's socket once its TCP connection is up (the group's `socket:` options). */
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

class CodedError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
  }
}

/** Request header names HTTP/2 forbids (RFC 9113 §8.2.2) or that become pseudo-headers. */
const DROPPED = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'http2-settings']);

/** After a failed connection attempt, sessions past maxStreamsPerSession wait this long (ms) before trying again. */
const BACKGROUND_CONNECT_BACKOFF = 1000;

class PooledSession {
  streams = 0;
  usable = true;
  constructor(readonly session: ClientHttp2Session) {}

  /** Streams it may still take under the target's limit. */
  get room(): number {
    if (!this.usable || this.session.closed || this.session.destroyed) return 0;
    return (this.session.remoteSettings.maxConcurrentStreams ?? 100) - this.streams;
  }
}

interface Waiting {
  options: DispatchOptions;
  handler: Dispatcher.DispatchHandler;
}

export class Http2Dispatcher implements UpstreamDispatcher {
  private readonly sessions: PooledSession[] = [];
  private readonly waiting: Waiting[] = [];
  private connecting = false;
  /** When the last connection attempt failed (Date.now()), to pace attempts no request waits for. */
  private failedAt = 0;
  private closed = false;
  private running = 0;
  private readonly scheme: string;

  constructor(private readonly options: Http2DispatcherOptions) {
    this.scheme = options.protocol === 'https:' ? 'https' : 'http';
    // session.request() binds an AsyncResource per request: see async-resource-bind.ts.
    installLeanAsyncResourceBind();
  }

  get stats(): { connected: number; pending: number; running: number } {
    return { connected: this.sessions.length, pending: this.waiting.length, running: this.running };
  }

  dispatch(dispatchOptions: Dispatcher.DispatchOptions, handler: Dispatcher.DispatchHandler): boolean {
    // The proxy's exchange passes its flat header list and a Buffer or an async iterable body.
    const options = dispatchOptions as unknown as DispatchOptions;
    if (this.closed) {
      handler.onError?.(new CodedError('the pool is closed', 'UND_ERR_DESTROYED'));
      return false;
    }
    const s = this.pick();
    if (s) this.start(s, options, handler);
    else {
      this.waiting.push({ options, handler });
      this.connect();
    }
    return true;
  }

  async destroy(): Promise<void> {
    this.closed = true;
    for (const w of this.waiting.splice(0)) w.handler.onError?.(new CodedError('the pool is closed', 'UND_ERR_DESTROYED'));
    for (const s of this.sessions.splice(0)) s.session.destroy();
  }

  /** The session with the most room, or undefined when a new one is needed (or all are full and no more may open). */
  private pick(): PooledSession | undefined {
    const sessions = this.sessions;
    const soft = this.options.maxStreamsPerSession ?? 0;
    let best: PooledSession | undefined;
    let bestRoom = 0;
    for (let i = 0; i < sessions.length; i++) {
      const s = sessions[i];
      let room = s.room;
      if (soft > 0 && soft - s.streams < room) room = soft - s.streams;
      if (room > bestRoom) {
        best = s;
        bestRoom = room;
      }
    }
    if (best) return best;
    const more = sessions.length < this.options.maxSessions;
    if (soft > 0) {
      // Every session has its share: another one is opened (one at a time), and meanwhile the
      // request goes on the least busy session the target still takes streams on.
      if (more && Date.now() - this.failedAt >= BACKGROUND_CONNECT_BACKOFF) this.connect();
      let least: PooledSession | undefined;
      for (const s of sessions) if (s.room > 0 && (!least || s.streams < least.streams)) least = s;
      if (least) return least;
    }
    if (!more && sessions.length > 0) {
      // Every session is at the target's limit and no more may open: the least busy one takes
      // it (nghttp2 holds the stream until one ends).
      return sessions.reduce((a, b) => (a.streams <= b.streams ? a : b));
    }
    return undefined;
  }

  private connect(): void {
    if (this.connecting || this.closed) return;
    this.connecting = true;
    const { protocol, host, port, tls, connectTimeout, id, onConnect } = this.options;
    const authority = `${this.scheme}://${id}`;
    const socketOf = (socket: Socket): Socket => {
      if (onConnect) socket.once('connect', () => onConnect(socket));
      return socket;
    };
    const session =
      protocol === 'https:'
        ? connectHttp2(authority, { createConnection: () => socketOf(connectTls({ ...tls, host, port, ALPNProtocols: ['h2'] })) })
        : connectHttp2(authority, onConnect ? { createConnection: () => socketOf(connectTcp({ host, port })) } : undefined);
    let settled = false;
    const fail = (err: Error) => {
      if (settled) return;
      settled = true;
      this.connecting = false;
      this.failedAt = Date.now();
      clearTimeout(timer);
      session.destroy();
      // Nothing was sent: every request waiting for this connection fails as a connect failure
      // (the proxy retries it elsewhere).
      for (const w of this.waiting.splice(0)) w.handler.onError?.(err);
    };
    const timer = setTimeout(() => fail(new CodedError(`no HTTP/2 connection to ${id} within ${connectTimeout} ms`, 'UND_ERR_CONNECT_TIMEOUT')), connectTimeout);
    session.once('error', (err: NodeJS.ErrnoException) => fail(err));
    session.once('remoteSettings', () => {
      if (settled) return;
      const socket = session.socket as { alpnProtocol?: string | false } | undefined;
      if (protocol === 'https:' && socket?.alpnProtocol !== 'h2') return fail(new CodedError(`${id} does not offer HTTP/2 (ALPN h2)`, 'HPE_INVALID_CONSTANT'));
      settled = true;
      this.connecting = false;
      clearTimeout(timer);
      const pooled = new PooledSession(session);
      this.sessions.push(pooled);
      const leave = () => {
        pooled.usable = false;
        const i = this.sessions.indexOf(pooled);
        if (i !== -1) this.sessions.splice(i, 1);
        // Requests that were waiting go to another session (or a new one).
        if (this.waiting.length > 0) this.flush();
      };
      // A stream on a session that dies gets its own error; the pool just forgets the session.
      session.on('error', leave);
      session.once('goaway', leave);
      session.once('close', leave);
      // Idle sessions must not keep the process alive when the yard stops.
      session.unref();
      this.flush();
    });
  }

  /** Starts waiting requests on sessions with room; connects again when there is none. */
  private flush(): void {
    while (this.waiting.length > 0) {
      const s = this.pick();
      if (!s) return this.connect();
      const w = this.waiting.shift()!;
      this.start(s, w.options, w.handler);
    }
  }

  private start(pooled: PooledSession, options: DispatchOptions, handler: Dispatcher.DispatchHandler): void {
    const headers: OutgoingHttpHeaders = { ':method': options.method, ':path': options.path, ':scheme': this.scheme };
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
      const had = headers[name];
      if (had === undefined) headers[name] = value;
      else if (name === 'cookie') headers[name] = `${String(had)}; ${value}`;
      else headers[name] = Array.isArray(had) ? [...had, value] : [String(had), value];
    }
    headers[':authority'] = authority ?? this.options.id;
    const body = options.body;
    const endStream = body === null || (Buffer.isBuffer(body) && body.length === 0);
    let stream: ClientHttp2Stream;
    try {
      stream = pooled.session.request(headers, { endStream });
    } catch (err) {
      pooled.usable = false;
      handler.onError?.(new CodedError(`cannot open a stream to ${this.options.id}: ${(err as Error).message}`, 'ECONNRESET', { cause: err }));
      return;
    }
    pooled.streams++;
    this.running++;
    new StreamExchange(this.options, stream, handler, () => {
      pooled.streams--;
      this.running--;
      if (this.waiting.length > 0) this.flush();
    }).begin(body, endStream);
  }
}

/**
 * A request body that can push itself into a writable with backpressure (the proxy's gRPC body
 * does): cheaper than reading it as an async iterable, which costs promises per chunk.
 */
export interface PipeableBody extends AsyncIterable<Buffer> {
  pipeTo(sink: BodySink, onError: (err: Error) => void): void;
}

/** What a PipeableBody writes into (an HTTP/2 stream has it). */
export interface BodySink {
  write(chunk: Buffer): boolean;
  end(): void;
  once(event: 'drain' | 'close', listener: () => void): unknown;
  readonly destroyed: boolean;
}

function isPipeable(body: unknown): body is PipeableBody {
  return typeof (body as PipeableBody).pipeTo === 'function';
}

const kExchange = Symbol('switchyard.h2.exchange');
type TaggedStream = ClientHttp2Stream & { [kExchange]: StreamExchange };

// The stream's listeners are these module functions (the exchange found through the stream), not
// closures: a proxied call should not cost eight function allocations for its listeners.
function onStreamClose(this: TaggedStream): void {
  this[kExchange].closed();
}
function onStreamError(this: TaggedStream, err: NodeJS.ErrnoException): void {
  this[kExchange].fail(err.code === 'ERR_HTTP2_STREAM_ERROR' ? new CodedError(err.message, 'ECONNRESET', { cause: err }) : err);
}
function onStreamInformation(this: TaggedStream, h: IncomingHttpHeaders): void {
  // 1xx: 103 Early Hints and the like.
  const ex = this[kExchange];
  if (!ex.done) ex.handler.onHeaders?.(Number(h[':status']), rawOf(h) as unknown as Buffer[], noop, '');
}
function onStreamResponse(this: TaggedStream, h: IncomingHttpHeaders): void {
  this[kExchange].response(h);
}
function onStreamData(this: TaggedStream, chunk: Buffer): void {
  const ex = this[kExchange];
  if (ex.done) return;
  if (ex.handler.onData?.(chunk) === false) this.pause();
}
function onStreamTrailers(this: TaggedStream, t: IncomingHttpHeaders): void {
  this[kExchange].trailers = t;
}
function onStreamEnd(this: TaggedStream): void {
  const ex = this[kExchange];
  if (ex.done || !ex.responded) return;
  ex.done = true;
  ex.handler.onComplete?.(ex.trailers as unknown as string[] | null);
}
function onStreamTimeout(this: TaggedStream): void {
  const ex = this[kExchange];
  ex.fail(new CodedError(ex.responded ? 'no response body bytes within timeouts.idle' : 'no response head within timeouts.firstByte', ex.responded ? 'UND_ERR_BODY_TIMEOUT' : 'UND_ERR_HEADERS_TIMEOUT'));
}

/** One request on one stream, reported to an undici-style handler. */
class StreamExchange {
  done = false;
  responded = false;
  trailers: IncomingHttpHeaders | null = null;
  private readonly abort = (err?: Error): void => this.fail(err ?? new CodedError('aborted', 'UND_ERR_ABORTED'));
  private readonly resume = (): void => {
    this.stream.resume();
  };

  constructor(
    private readonly options: Http2DispatcherOptions,
    private readonly stream: ClientHttp2Stream,
    readonly handler: Dispatcher.DispatchHandler,
    private readonly onClose: () => void,
  ) {}

  begin(body: Buffer | AsyncIterable<Buffer> | null, endStream: boolean): void {
    const stream = this.stream as TaggedStream;
    stream[kExchange] = this;
    stream.once('close', onStreamClose);
    stream.on('error', onStreamError);
    stream.on('headers', onStreamInformation);
    stream.on('response', onStreamResponse);
    stream.on('data', onStreamData);
    stream.on('trailers', onStreamTrailers);
    stream.on('end', onStreamEnd);
    stream.on('timeout', onStreamTimeout);
    if (this.options.headersTimeout > 0) stream.setTimeout(this.options.headersTimeout);
    this.handler.onConnect?.(this.abort);
    if (this.done || endStream) return;
    if (Buffer.isBuffer(body)) stream.end(body);
    else if (body && isPipeable(body)) body.pipeTo(stream, this.abort);
    else if (body) void this.pump(body);
    else stream.end();
  }

  response(h: IncomingHttpHeaders): void {
    if (this.done) return;
    this.responded = true;
    // Each setTimeout() makes a new timer: kept when the body's limit is the head's.
    const { headersTimeout, bodyTimeout } = this.options;
    if (bodyTimeout !== headersTimeout) this.stream.setTimeout(bodyTimeout);
    if (this.handler.onHeaders?.(Number(h[':status']), rawOf(h) as unknown as Buffer[], this.resume, '') === false) this.stream.pause();
  }

  /** The request body from the client, with backpressure both ways. */
  private async pump(body: AsyncIterable<Buffer>): Promise<void> {
    const stream = this.stream;
    try {
      for await (const chunk of body) {
        if (this.done || stream.destroyed) return;
        if (!stream.write(chunk)) {
          await new Promise<void>((resolve) => {
            const go = () => {
              stream.off('drain', go);
              stream.off('close', go);
              resolve();
            };
            stream.on('drain', go);
            stream.on('close', go);
          });
        }
      }
      if (!this.done && !stream.destroyed) stream.end();
    } catch (err) {
      // The client's body broke off or grew past the limit: the request ends with that error.
      this.fail(err as Error);
    }
  }

  fail(err: Error): void {
    if (this.done) return;
    this.done = true;
    if (!this.stream.destroyed) this.stream.close(constants.NGHTTP2_CANCEL);
    this.handler.onError?.(err);
  }

  closed(): void {
    this.onClose();
    if (this.done) return;
    // Closed without an end or an error we saw: reset by the target, or its session went away.
    const code = this.stream.rstCode;
    this.fail(new CodedError(`stream to ${this.options.id} closed${code ? ` (RST_STREAM ${code})` : ''} before the response was complete`, 'ECONNRESET'));
  }
}

const noop = (): void => {};

/** A header object as undici's raw list: [name, value, ...], pseudo-headers left out. */
function rawOf(h: IncomingHttpHeaders): string[] {
  const out: string[] = [];
  for (const name in h) {
    if (name.charCodeAt(0) === 58) continue;
    const v = h[name];
    if (v === undefined) continue;
    if (Array.isArray(v)) for (const one of v) out.push(name, one);
    else out.push(name, String(v));
  }
  return out;
}

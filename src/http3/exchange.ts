import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders } from 'node:http2';
import type { OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import type { QuicStream } from '../quic/stream.ts';
import { PseudoHeaderRequest } from '../protocol/pseudo-header-request.ts';
import { H3 } from './errors.ts';
import { checkResponseValue, codedError, responseFieldName } from '../protocol/http-fields.ts';
import { appendFields, responseFields } from './fields.ts';
import { dataFrameHead, encodeFrame, FRAME } from './frames.ts';
import { encodeFieldSection, type FieldLine } from './qpack.ts';

// One HTTP/3 request and its response over a QUIC bidirectional stream, with the shape handlers
// use (handlers/types.ts: Http3Request, HttpResponse), as h2-exchange.ts is for HTTP/2.
//
// The request is a Readable of the body the request stream's DATA frames carry (request-stream.ts
// feeds it); `headers` and `rawHeaders` hold the pseudo-headers too, as on HTTP/2. `socket` is
// the connection's stand-in socket (peer-socket.ts): addresses, `encrypted`, byte counts.
//
// The response's head goes out as a HEADERS frame with the first write() or end(), as
// node:http's does; each write is one DATA frame; trailers (addTrailers, at any time before the
// end: HTTP/3 needs no notice of them) are a last HEADERS frame; the end is the stream's FIN.
// The response emits 'finish' once the FIN has been handed to QUIC and then 'close'; cut off
// before (the client reset the stream, the connection went, destroy()), 'close' alone, and the
// request 'aborted'. It has no `stream` property on purpose: code that finds one takes the
// response for an HTTP/2 one (http2Stream in handlers/types.ts) and calls nghttp2's methods.

type FieldValue = number | string | string[];
type Fields = Record<string, FieldValue>;

/** The request: a Readable of the body with the head of node:http's IncomingMessage. */
export class H3Request extends PseudoHeaderRequest {
  aborted = false;
  /** The request stream ended right after its HEADERS (no body at all), as far as was known at dispatch. */
  endAfterHeaders = false;
  /** No more of the body will come (ended, or cut off). */
  private done = false;

  constructor(
    readonly headers: IncomingHttpHeaders,
    readonly rawHeaders: string[],
    readonly socket: Socket,
    /** Resumes reading the QUIC stream (the body reader wants more). */
    private readonly resumeSource: () => void,
    highWaterMark: number,
  ) {
    super({ autoDestroy: false, highWaterMark });
  }

  get httpVersion(): '3.0' {
    return '3.0';
  }
  get httpVersionMajor(): 3 {
    return 3;
  }
  get httpVersionMinor(): 0 {
    return 0;
  }
  get complete(): boolean {
    return this.done;
  }

  setTimeout(_ms: number, _callback?: () => void): this {
    // The QUIC connection's idle timeout bounds a silent peer.
    return this;
  }

  override _read(): void {
    this.resumeSource();
  }

  /** A piece of the body; false: stop reading the stream until _read. */
  bodyChunk(chunk: Buffer): boolean {
    if (this.done) return true;
    return this.push(chunk);
  }

  bodyEnd(): void {
    if (this.done) return;
    this.done = true;
    this.push(null);
  }

  /** The stream went before the body ended (reset, connection gone, malformed): readers see an error, not an end. */
  cut(err?: Error): void {
    const wasDone = this.done;
    this.done = true;
    if (!this.aborted) {
      this.aborted = true;
      this.emit('aborted');
    }
    if (!wasDone && !this.destroyed) this.destroy(err ?? codedError('ECONNRESET', 'aborted'));
    else if (!this.destroyed) this.emit('close');
  }

}

/** The response: what handlers use of node:http's ServerResponse (HttpResponse), written as HTTP/3 frames. */
export class H3Response extends EventEmitter {
  statusCode = 200;
  sendDate = true;
  private fields: Fields | null = null;
  private trailers: FieldLine[] | null = null;
  private headWritten = false;
  private headSent = false;
  private ended = false;
  private destroyCalled = false;
  private closed = false;
  private finishedFully = false;
  /** HEAD, 204, 304: no body goes out. */
  private bodyless = false;
  private drainHooked = false;
  /** Run just before the head goes out (response header rules); they may still change fields. */
  private headHooks: (() => void)[] | null = null;
  private inHeadHooks = false;

  constructor(
    readonly quicStream: QuicStream,
    readonly req: H3Request,
    /** Current date for the Date field (cached per second by the caller). */
    private readonly dateNow: () => string,
  ) {
    super();
  }

  get headersSent(): boolean {
    return this.headWritten || this.headSent;
  }
  get _header(): boolean {
    return this.headersSent;
  }
  get statusMessage(): string {
    return '';
  }
  set statusMessage(_value: string) {}

  /** Calls `fn` just before the head goes out, when it may still change the fields (header rules). */
  onHead(fn: () => void): void {
    (this.headHooks ??= []).push(fn);
  }

  setHeader(name: string, value: FieldValue): this {
    if (this.headSent || (this.headWritten && !this.inHeadHooks)) throw codedError('ERR_HTTP_HEADERS_SENT', 'Cannot set headers after they are sent to the client');
    // The same rules as an HTTP/2 response's (a handler sees the same errors on both).
    const key = responseFieldName(name);
    checkResponseValue(key, value);
    if (key !== '') (this.fields ??= Object.create(null) as Fields)[key] = value;
    return this;
  }

  appendHeader(name: string, value: string | string[]): this {
    const key = responseFieldName(name);
    if (key === '') return this;
    const had = this.fields?.[key];
    if (had === undefined) return this.setHeader(key, value);
    const list = Array.isArray(had) ? [...had] : [String(had)];
    if (Array.isArray(value)) list.push(...value);
    else list.push(value);
    return this.setHeader(key, list);
  }

  getHeader(name: string): FieldValue | undefined {
    return this.fields?.[name.toLowerCase()];
  }

  getHeaders(): OutgoingHttpHeaders {
    const out = Object.create(null) as OutgoingHttpHeaders;
    if (this.fields) for (const k in this.fields) out[k] = this.fields[k];
    return out;
  }

  getHeaderNames(): string[] {
    return this.fields ? Object.keys(this.fields) : [];
  }

  hasHeader(name: string): boolean {
    return this.fields?.[name.toLowerCase()] !== undefined;
  }

  removeHeader(name: string): void {
    if (this.headSent || (this.headWritten && !this.inHeadHooks)) throw codedError('ERR_HTTP_HEADERS_SENT', 'Cannot remove headers after they are sent to the client');
    const key = name.toLowerCase();
    if (key === 'date') this.sendDate = false;
    if (this.fields) delete this.fields[key];
  }

  writeHead(statusCode: number, reasonOrHeaders?: string | OutgoingHttpHeaders | readonly unknown[], maybeHeaders?: OutgoingHttpHeaders | readonly unknown[]): this {
    if (this.closed) return this;
    if (this.headersSent) throw codedError('ERR_HTTP_HEADERS_SENT', 'Cannot write headers after they are sent to the client');
    const headers = typeof reasonOrHeaders === 'string' ? maybeHeaders : reasonOrHeaders;
    const status = statusCode | 0;
    // Interim (1xx) answers go through writeContinue / writeEarlyHints: the head is the final one.
    if (status < 200 || status > 599) throw codedError('ERR_HTTP_INVALID_STATUS_CODE', `Invalid status code: ${statusCode}`);
    if (Array.isArray(headers)) {
      // [name, value, ...] or [[name, value], ...]: replaces fields of those names.
      const pairs: [string, string][] = Array.isArray(headers[0]) ? (headers as [string, string][]) : [];
      if (pairs.length === 0) for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([String(headers[i]), String(headers[i + 1])]);
      const seen = new Set<string>();
      for (const [n, v] of pairs) {
        const key = n.toLowerCase();
        if (!seen.has(key)) {
          seen.add(key);
          if (this.fields) delete this.fields[key];
        }
        this.appendHeader(key, v);
      }
    } else if (headers) {
      for (const name in headers as OutgoingHttpHeaders) {
        const value = (headers as OutgoingHttpHeaders)[name];
        if (value !== undefined) this.setHeader(name, value as FieldValue);
      }
    }
    this.statusCode = status;
    this.headWritten = true;
    return this;
  }

  flushHeaders(): void {
    if (!this.headSent && !this.closed) this.sendHead();
  }

  private sendHead(): void {
    const hooks = this.headHooks;
    if (hooks) {
      this.headHooks = null;
      this.inHeadHooks = true;
      try {
        for (const fn of hooks) fn();
      } finally {
        this.inHeadHooks = false;
      }
    }
    this.headSent = true;
    this.headWritten = true;
    const status = this.statusCode;
    this.bodyless = this.req.method === 'HEAD' || status === 204 || status === 304;
    const section = encodeFieldSection(responseFields(status, this.fields, this.sendDate ? this.dateNow() : undefined));
    this.quicStream.write(encodeFrame(FRAME.HEADERS, section));
  }

  addTrailers(headers: OutgoingHttpHeaders | readonly [string, string][]): void {
    const list = (this.trailers ??= []);
    if (Array.isArray(headers)) for (const [n, v] of headers as [string, string][]) appendFields(list, { [n]: v });
    else appendFields(list, headers as Record<string, FieldValue>);
  }

  writeContinue(): boolean {
    return this.interim([[':status', '100']]);
  }

  writeEarlyHints(hints: Record<string, string | string[]>): boolean {
    if (hints.link === undefined) return false;
    return this.interim(appendFields([[':status', '103']], hints));
  }

  private interim(fields: FieldLine[]): boolean {
    if (this.headSent || this.closed) return false;
    this.quicStream.write(encodeFrame(FRAME.HEADERS, encodeFieldSection(fields)));
    return true;
  }

  get writable(): boolean {
    return !this.ended && !this.destroyed;
  }
  get writableEnded(): boolean {
    return this.ended;
  }
  get finished(): boolean {
    return this.ended;
  }
  get writableFinished(): boolean {
    return this.finishedFully;
  }
  get writableLength(): number {
    return this.quicStream.writableLength;
  }
  get writableHighWaterMark(): number {
    return this.quicStream.writableHighWaterMark;
  }
  get writableNeedDrain(): boolean {
    return this.quicStream.writableNeedDrain;
  }
  get writableCorked(): number {
    return this.quicStream.writableCorked;
  }
  get destroyed(): boolean {
    return this.destroyCalled || this.closed;
  }
  get socket(): Socket | undefined {
    return this.closed ? undefined : this.req.socket;
  }
  get connection(): Socket | undefined {
    return this.socket;
  }
  cork(): void {
    this.quicStream.cork();
  }
  uncork(): void {
    this.quicStream.uncork();
  }

  setTimeout(_ms: number, _callback?: () => void): this {
    return this;
  }

  write(chunk: string | Uint8Array, encoding?: BufferEncoding | ((err?: Error | null) => void), callback?: (err?: Error | null) => void): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.ended || this.destroyed) {
      const err = this.ended ? codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end') : codedError('ERR_STREAM_DESTROYED', 'the stream has been destroyed');
      if (callback) process.nextTick(callback, err);
      return false;
    }
    if (!this.headSent) this.sendHead();
    const bytes = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : chunk;
    if (this.bodyless || bytes.byteLength === 0) {
      if (callback) process.nextTick(callback);
      return true;
    }
    const stream = this.quicStream;
    stream.write(dataFrameHead(bytes.byteLength));
    const ok = stream.write(bytes, callback);
    if (!ok && !this.drainHooked) {
      this.drainHooked = true;
      stream.once('drain', () => {
        this.drainHooked = false;
        this.emit('drain');
      });
    }
    return ok;
  }

  end(chunk?: string | Uint8Array | (() => void), encoding?: BufferEncoding | (() => void), callback?: () => void): this {
    if (typeof chunk === 'function') {
      callback = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    if (this.ended) {
      if (callback) process.nextTick(callback);
      return this;
    }
    if (chunk !== undefined && chunk !== null) this.write(chunk, encoding as BufferEncoding | undefined);
    this.ended = true;
    if (this.destroyed) {
      if (callback) process.nextTick(callback);
      return this;
    }
    if (!this.headSent) this.sendHead();
    if (callback) this.once('finish', callback);
    const stream = this.quicStream;
    if (this.trailers && this.trailers.length > 0) stream.write(encodeFrame(FRAME.HEADERS, encodeFieldSection(this.trailers)));
    stream.end();
    return this;
  }

  destroy(_err?: Error): this {
    if (this.destroyCalled) return this;
    this.destroyCalled = true;
    if (!this.closed) this.quicStream.reset(H3.REQUEST_CANCELLED);
    return this;
  }

  /** The stream's sending side is done (FIN handed to QUIC): the response is complete. */
  streamFinished(): void {
    if (this.closed) return;
    this.finishedFully = true;
    this.closed = true;
    this.emit('finish');
    this.emit('close');
  }

  /** The stream went before the response ended. */
  streamGone(): void {
    if (this.closed) return;
    this.closed = true;
    this.emit('close');
  }
}

import { EventEmitter } from 'node:events';
import { DATA, FLAG_END_STREAM, INTERNAL_ERROR, NO_ERROR } from '../../../protocol/h2/frames.ts';
import { read, readSync, fstatSync } from 'node:fs';
import { statusOf, type OutgoingFields } from './encode.ts';
import type { H2ServerSession } from './session.ts';

// One server stream: the request's body in (flow-controlled: credit goes back as it is read) and
// the response out (head, DATA as the windows allow, trailers). It has the part of node:http2's
// ServerHttp2Stream the listener uses (respond, write/end with backpressure, sendTrailers,
// additionalHeaders, close, the readable's data/end/pause/resume, setTimeout), without a
// Duplex stream's machinery: an EventEmitter and a queue.

/** What sendSome() left: more to send, nothing more (leave the send queue), or waiting on a window. */
export const enum SendState {
  More,
  Done,
  Stalled,
}

/** Bytes queued beyond which write() returns false (node's default for a Writable). */
const HIGH_WATER_MARK = 16 * 1024;

type WriteCallback = (err?: Error | null) => void;

export interface RespondOptions {
  readonly endStream?: boolean;
  readonly waitForTrailers?: boolean;
  /** Add a Date field unless the head has one (node's default: true). */
  readonly sendDate?: boolean;
}

export interface RespondWithFDOptions {
  readonly offset?: number;
  readonly length?: number;
  readonly waitForTrailers?: boolean;
  readonly sendDate?: boolean;
}

/**
 * What reads a request's body straight from its stream (the gRPC proxy's body pipe): called where
 * 'data', 'end', 'error' and 'close' are emitted, after their listeners. Four listeners per call
 * cost the emitter's table entries (and turned the 'error' and 'close' listeners the exchange
 * already has into lists copied on each emit); one reader is a field.
 */
export interface StreamBodyReader {
  onData(chunk: Buffer): void;
  onEnd(): void;
  onError(err: Error): void;
  onClose(): void;
}

/** An error with node's code, for callers that tell failures apart by it. */
export class H2StreamError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = 'H2StreamError';
  }
}

export class H2ServerStream extends EventEmitter {
  sendWindow: number;
  /** In the session's send queue. */
  inSendQueue = false;
  /** END_STREAM received. */
  remoteEnded = false;
  /** END_STREAM sent. */
  localEnded = false;
  /** The request ended with its HEADERS (no body). */
  endAfterHeaders = false;
  /** The request is a HEAD: its response never has a body. */
  headRequest = false;
  closed = false;
  /** How many of the listener's idle sweeps found the stream open (its bookkeeping: h2.ts). */
  idleSweeps = 0;
  destroyed = false;
  headersSent = false;
  rstCode = NO_ERROR;
  /** The client reset the stream (or the connection went): not a reset of ours. */
  resetByPeer = false;
  aborted = false;
  /** end() was called. */
  writableEnded = false;
  /** END_STREAM is out (node: 'finish'). */
  writableFinished = false;
  readableEnded = false;
  /** content-length of the request, -1 when none: DATA must add up to it. */
  contentLength = -1;
  private received = 0;

  // Output: chunks queued, the first one sent from `offset`.
  private chunks: Buffer[] = [];
  private offset = 0;
  private queued = 0;
  private needDrain = false;
  private waitForTrailers = false;
  private trailersAsked = false;
  /** Write callbacks, each with the total bytes sent after which it is called. */
  private callbacks: { at: number; cb: WriteCallback }[] | null = null;
  private totalQueued = 0;
  private totalSent = 0;

  // Input.
  private flowing = false;
  /** The body has been asked for (a 'data' listener or resume()). */
  private didRead = false;
  private inbox: Buffer[] | null = null;
  /** The body's reader, set by readBody(). */
  private reader: StreamBodyReader | null = null;
  /** Bytes read and not yet credited back with a WINDOW_UPDATE. */
  private unacked = 0;

  // Idle timer (setTimeout).
  private timeoutMs = 0;
  private timer: NodeJS.Timeout | null = null;
  private lastActivity = 0;

  constructor(
    readonly session: H2ServerSession,
    readonly id: number,
    public recvWindow: number,
  ) {
    super();
    this.sendWindow = session.peerInitialWindow;
  }

  // ---------------------------------------------------------------------------------------------
  // Readable side

  override on(event: string | symbol, listener: (...args: never[]) => void): this {
    super.on(event, listener as (...args: unknown[]) => void);
    if (event === 'data' && !this.flowing) this.resume();
    return this;
  }

  override addListener(event: string | symbol, listener: (...args: never[]) => void): this {
    return this.on(event, listener);
  }

  get bodyReader(): StreamBodyReader | null {
    return this.reader;
  }

  /** Starts reading the body into `reader` (as a 'data' listener would), until releaseBody(). */
  readBody(reader: StreamBodyReader): void {
    this.reader = reader;
    if (!this.flowing) this.resume();
  }

  releaseBody(reader: StreamBodyReader): void {
    if (this.reader === reader) this.reader = null;
  }

  pause(): this {
    this.flowing = false;
    return this;
  }

  resume(): this {
    if (this.flowing) return this;
    this.flowing = true;
    this.didRead = true;
    if (this.inbox !== null || this.remoteEnded) process.nextTick(deliverInbox, this);
    return this;
  }

  isPaused(): boolean {
    return !this.flowing;
  }

  /** DATA for this stream (the session has checked the windows). */
  receiveData(buf: Buffer, start: number, end: number, endStream: boolean): void {
    const n = end - start;
    if (n > 0) {
      this.received += n;
      if (this.contentLength >= 0 && this.received > this.contentLength) {
        this.session.resetStream(this.id, 1 /* PROTOCOL_ERROR */);
        return;
      }
      this.progress();
      // A view of the socket's chunk keeps all of that chunk alive for as long as the body is
      // held. Small pieces of large chunks are copied: DATA frames of a byte each, padded to
      // 16 KiB, would otherwise hold 16 KiB per byte of window (padding is credited at once).
      const chunk = n * 2 < buf.buffer.byteLength ? Buffer.from(buf.subarray(start, end)) : buf.subarray(start, end);
      if (this.flowing && this.inbox === null) {
        this.credit(n);
        this.emit('data', chunk);
        this.reader?.onData(chunk);
      } else (this.inbox ??= []).push(chunk);
    }
    if (endStream) {
      if (this.contentLength >= 0 && this.received !== this.contentLength) {
        this.session.resetStream(this.id, 1 /* PROTOCOL_ERROR */);
        return;
      }
      this.remoteEnded = true;
      this.afterRemoteEnd();
    }
  }

  receiveTrailers(fields: string[]): void {
    this.remoteEnded = true;
    this.emit('trailers', fieldsToRecord(fields), 0);
    this.afterRemoteEnd();
  }

  /** END_STREAM has arrived: 'end' once the buffered data is read; closed if the response is out too. */
  afterRemoteEnd(): void {
    if (this.closed) return;
    // Not reading (a GET, nearly always): 'end' comes when someone starts to (resume()).
    if (this.inbox === null && this.flowing) this.endReadable();
    if (this.localEnded) this.session.closeStream(this, NO_ERROR, false);
  }

  private endReadable(): void {
    if (this.readableEnded) return;
    this.readableEnded = true;
    process.nextTick(emitEnd, this);
  }

  /** Buffered data to a listener that has started (or resumed) reading. */
  deliver(): void {
    while (this.flowing && this.inbox !== null) {
      const chunk = this.inbox.shift()!;
      if (this.inbox.length === 0) this.inbox = null;
      if (!this.closed) this.credit(chunk.length);
      this.emit('data', chunk);
      this.reader?.onData(chunk);
    }
    if (this.flowing && this.inbox === null && this.remoteEnded) this.endReadable();
  }

  /** `n` bytes read: the client may send them again (WINDOW_UPDATE once half the window is read). */
  credit(n: number): void {
    if (this.remoteEnded) return;
    this.unacked += n;
    if (this.unacked >= this.session.options.initialWindowSize >>> 1 || this.unacked >= this.recvWindow) {
      this.recvWindow += this.unacked;
      this.session.sendStreamWindowUpdate(this.id, this.unacked);
      this.unacked = 0;
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Writable side

  /**
   * Sends the response head. As node's: a HEAD request and 204, 205 and 304 end the stream with
   * it (no body can follow); a Date field is added unless `sendDate` is false.
   */
  respond(headers: OutgoingFields = { ':status': 200 }, options?: RespondOptions): void {
    if (this.destroyed || this.closed) throw new H2StreamError('The stream has been destroyed', 'ERR_HTTP2_INVALID_STREAM');
    if (this.headersSent) throw new H2StreamError('Response has already been initiated.', 'ERR_HTTP2_HEADERS_SENT');
    let status = statusOf(headers);
    if (status === 0) {
      headers = Array.isArray(headers) ? [':status', 200, ...(headers as readonly string[])] : { ':status': 200, ...headers };
      status = 200;
    } else if (status < 200 || status > 599) throw new H2StreamError(`Invalid status code: ${status}`, 'ERR_HTTP2_STATUS_INVALID');
    const sendDate = options?.sendDate !== false;
    let endStream = options?.endStream === true;
    this.waitForTrailers = options?.waitForTrailers === true;
    if (this.headRequest || status === 204 || status === 205 || status === 304) {
      endStream = true;
      this.waitForTrailers = false;
    }
    // A head that cannot be sent throws before anything is written: the response may be tried again.
    this.session.writeHeaders(this.id, headers, endStream && !this.waitForTrailers, sendDate);
    this.headersSent = true;
    if (endStream && !this.waitForTrailers) {
      this.writableEnded = true;
      this.sentEnd();
      return;
    }
    if (endStream) this.endWritable();
  }

  /**
   * Sends the head, then `length` bytes of the open file `fd` from `offset` (to its end when no
   * length is given) as the body, read as the client's window takes them, then ends the stream.
   */
  respondWithFD(fd: number | { readonly fd: number }, headers?: OutgoingFields, options?: RespondWithFDOptions): void {
    this.respond(headers, { waitForTrailers: options?.waitForTrailers, sendDate: options?.sendDate });
    if (this.writableEnded) return;
    const n = typeof fd === 'number' ? fd : fd.fd;
    const offset = options?.offset ?? 0;
    let length = options?.length ?? -1;
    if (length < 0) {
      try {
        length = Math.max(0, fstatSync(n).size - offset);
      } catch (err) {
        this.destroy(err as Error);
        return;
      }
    }
    sendFile(this, n, offset, length);
  }

  /** A 1xx head before the response's. */
  additionalHeaders(headers: OutgoingFields): void {
    if (this.destroyed || this.closed) throw new H2StreamError('The stream has been destroyed', 'ERR_HTTP2_INVALID_STREAM');
    if (this.headersSent) throw new H2StreamError('Response has already been initiated.', 'ERR_HTTP2_HEADERS_AFTER_RESPOND');
    this.session.writeHeaders(this.id, headers, false, false);
  }

  sendTrailers(headers: OutgoingFields): void {
    if (this.destroyed || this.closed) throw new H2StreamError('The stream has been destroyed', 'ERR_HTTP2_INVALID_STREAM');
    if (this.localEnded) throw new H2StreamError('Trailing headers have already been sent', 'ERR_HTTP2_TRAILERS_ALREADY_SENT');
    if (!this.trailersAsked) throw new H2StreamError('Trailing headers cannot be sent until after the wantTrailers event is emitted', 'ERR_HTTP2_TRAILERS_NOT_READY');
    this.session.writeHeaders(this.id, headers, true, false);
    this.sentEnd();
  }

  write(chunk: string | Uint8Array, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): boolean {
    if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded) {
      const err = new H2StreamError('write after end', 'ERR_STREAM_WRITE_AFTER_END');
      process.nextTick(emitError, this, err, cb);
      return false;
    }
    if (this.closed || this.destroyed) {
      if (cb) process.nextTick(cb, new H2StreamError('Cannot call write after a stream was destroyed', 'ERR_STREAM_DESTROYED'));
      return false;
    }
    this.enqueue(chunk, encoding, cb);
    const ok = this.queued < HIGH_WATER_MARK;
    if (!ok) this.needDrain = true;
    return ok;
  }

  end(chunk?: string | Uint8Array | WriteCallback, encoding?: BufferEncoding | WriteCallback, cb?: WriteCallback): this {
    if (typeof chunk === 'function') {
      cb = chunk;
      chunk = undefined;
    } else if (typeof encoding === 'function') {
      cb = encoding;
      encoding = undefined;
    }
    if (this.writableEnded || this.closed || this.destroyed) {
      if (cb) process.nextTick(cb);
      return this;
    }
    if (chunk !== undefined && chunk !== null) this.enqueue(chunk, encoding as BufferEncoding | undefined, undefined);
    if (cb) this.once('finish', cb);
    this.endWritable();
    return this;
  }

  cork(): void {}

  uncork(): void {}

  get writableLength(): number {
    return this.queued;
  }

  get writableHighWaterMark(): number {
    return HIGH_WATER_MARK;
  }

  get writableNeedDrain(): boolean {
    return this.needDrain;
  }

  get writableCorked(): number {
    return 0;
  }

  get writable(): boolean {
    return !this.writableEnded && !this.closed;
  }

  private enqueue(chunk: string | Uint8Array, encoding: BufferEncoding | undefined, cb: WriteCallback | undefined): void {
    const buf = typeof chunk === 'string' ? Buffer.from(chunk, encoding) : Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength);
    if (!this.headersSent) this.respond({ ':status': 200 });
    if (buf.length > 0) {
      this.chunks.push(buf);
      this.queued += buf.length;
      this.totalQueued += buf.length;
      this.session.wantSend(this);
    }
    if (cb) (this.callbacks ??= []).push({ at: this.totalQueued, cb });
    if (buf.length === 0 && cb) this.runCallbacks();
  }

  private endWritable(): void {
    if (!this.headersSent) this.respond({ ':status': 200 });
    if (this.localEnded) return;
    this.writableEnded = true;
    this.session.wantSend(this);
  }

  hasQueued(): boolean {
    return this.queued > 0 || (this.writableEnded && !this.localEnded && !this.closed);
  }

  canSend(): boolean {
    return this.queued === 0 ? this.hasQueued() : this.sendWindow > 0 && this.session.sendWindow > 0;
  }

  /** One DATA frame (or the end) if the windows allow; called by the session's pump. */
  sendSome(maxFrame: number): SendState {
    if (this.closed) return SendState.Done;
    const session = this.session;
    if (this.queued === 0) {
      if (!this.writableEnded || this.localEnded) return SendState.Done;
      if (this.waitForTrailers) {
        if (!this.trailersAsked) {
          this.trailersAsked = true;
          if (this.listenerCount('wantTrailers') > 0) this.emit('wantTrailers');
          else this.sendTrailers({});
        }
        return SendState.Done;
      }
      session.out.header(0, DATA, FLAG_END_STREAM, this.id);
      this.sentEnd();
      return SendState.Done;
    }
    const window = Math.min(this.sendWindow, session.sendWindow);
    if (window <= 0) return SendState.Stalled;
    const n = Math.min(maxFrame, window, this.queued);
    const last = n === this.queued && this.writableEnded && !this.waitForTrailers;
    const out = session.out;
    out.header(n, DATA, last ? FLAG_END_STREAM : 0, this.id);
    const slab = out.reserve(n);
    let left = n;
    while (left > 0) {
      const c = this.chunks[0];
      const take = Math.min(left, c.length - this.offset);
      if (take === c.length) slab.set(c, out.pos);
      else slab.set(c.subarray(this.offset, this.offset + take), out.pos);
      out.pos += take;
      left -= take;
      this.offset += take;
      if (this.offset === c.length) {
        this.chunks.shift();
        this.offset = 0;
      }
    }
    this.queued -= n;
    this.sendWindow -= n;
    session.sendWindow -= n;
    this.totalSent += n;
    if (this.timer !== null) this.progress();
    if (this.callbacks !== null) this.runCallbacks();
    if (this.needDrain && this.queued === 0) {
      this.needDrain = false;
      process.nextTick(emitDrain, this);
    }
    if (last) {
      this.sentEnd();
      return SendState.Done;
    }
    return this.queued > 0 || this.writableEnded ? SendState.More : SendState.Done;
  }

  private runCallbacks(): void {
    const list = this.callbacks!;
    while (list.length > 0 && list[0].at <= this.totalSent) process.nextTick(list.shift()!.cb, null);
  }

  /** END_STREAM is out. */
  private sentEnd(): void {
    this.localEnded = true;
    this.writableEnded = true;
    this.writableFinished = true;
    // 'finish' for those listening by now (end()'s callback is): no tick spent on every stream.
    if (this.listenerCount('finish') > 0) process.nextTick(emitFinish, this);
    if (this.remoteEnded) this.session.closeStream(this, NO_ERROR, false);
    // The response is out and nobody has asked for the request's body (a refusal of an upload,
    // say): the client is told to stop sending it (RST_STREAM NO_ERROR, RFC 9113 §8.1), as
    // node:http2 does, a turn later, unless someone starts reading meanwhile.
    else if (!this.didRead) setImmediate(closeUnread, this);
  }

  // ---------------------------------------------------------------------------------------------
  // Ending

  closeIfUnread(): void {
    if (!this.closed && !this.didRead && !this.remoteEnded) this.session.resetStream(this.id, NO_ERROR);
  }

  /** RST_STREAM `code` (NO_ERROR by default), as node's stream.close(). */
  close(code = NO_ERROR, callback?: () => void): void {
    if (callback) this.once('close', callback);
    if (this.closed) return;
    this.session.resetStream(this.id, code);
  }

  destroy(err?: Error | null): this {
    if (this.destroyed) return this;
    if (err) process.nextTick(emitError, this, err, undefined);
    if (!this.closed) this.session.closeStream(this, err ? INTERNAL_ERROR : NO_ERROR, false);
    return this;
  }

  /** The session closed the stream (ended, reset either way, or the connection gone). */
  onClosed(code: number, byPeer: boolean): void {
    this.closed = true;
    this.destroyed = true;
    this.rstCode = code;
    this.resetByPeer = byPeer;
    const complete = this.localEnded && this.remoteEnded;
    if (!complete && (byPeer || code !== NO_ERROR)) {
      this.aborted = true;
      if (this.listenerCount('aborted') > 0) this.emit('aborted');
    }
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    if (this.callbacks !== null && this.callbacks.length > 0) {
      const err = new H2StreamError('The stream was closed before its data was sent', 'ERR_STREAM_DESTROYED');
      for (const { cb } of this.callbacks) process.nextTick(cb, err);
      this.callbacks = null;
    }
    this.chunks.length = 0;
    this.queued = 0;
    this.inbox = null;
    process.nextTick(emitClose, this);
  }

  // ---------------------------------------------------------------------------------------------
  // Idle timer

  setTimeout(ms: number, callback?: () => void): this {
    if (callback) this.once('timeout', callback);
    if (this.timer !== null) {
      clearTimeout(this.timer);
      this.timer = null;
    }
    this.timeoutMs = ms;
    if (ms > 0 && !this.closed) {
      this.lastActivity = Date.now();
      this.timer = setTimeout(onTimer, ms, this);
      this.timer.unref();
    }
    return this;
  }

  /** Bytes moved either way (or a window opened): the idle timer starts over. */
  progress(): void {
    if (this.timer !== null) this.lastActivity = Date.now();
  }

  fireTimer(): void {
    this.timer = null;
    if (this.closed || this.timeoutMs <= 0) return;
    const idle = Date.now() - this.lastActivity;
    if (idle < this.timeoutMs) {
      this.timer = setTimeout(onTimer, this.timeoutMs - idle, this);
      this.timer.unref();
      return;
    }
    this.emit('timeout');
  }
}

/** A body range read at once, synchronously, when this small (a page or four of a file just opened). */
const SYNC_READ_MAX = 16 * 1024;
/** The read size of larger bodies. */
const FILE_CHUNK = 64 * 1024;

/** The body of respondWithFD: read in chunks, each written once the stream has taken the last. */
function sendFile(stream: H2ServerStream, fd: number, offset: number, length: number): void {
  if (length === 0) {
    stream.end();
    return;
  }
  if (length <= SYNC_READ_MAX) {
    const buf = Buffer.allocUnsafe(length);
    let got: number;
    try {
      got = readSync(fd, buf, 0, length, offset);
    } catch (err) {
      stream.destroy(err as Error);
      return;
    }
    if (got !== length) {
      stream.destroy(new H2StreamError('the file is shorter than the length promised', 'ERR_HTTP2_FILE_SHORT'));
      return;
    }
    stream.end(buf);
    return;
  }
  let position = offset;
  let left = length;
  const next = (): void => {
    if (stream.closed) return;
    const n = Math.min(left, FILE_CHUNK);
    read(fd, Buffer.allocUnsafe(n), 0, n, position, (err, got, buf) => {
      if (stream.closed) return;
      if (err || got !== n) {
        stream.destroy(err ?? new H2StreamError('the file is shorter than the length promised', 'ERR_HTTP2_FILE_SHORT'));
        return;
      }
      position += n;
      left -= n;
      if (left === 0) {
        stream.end(buf);
        return;
      }
      if (stream.write(buf)) next();
      else stream.once('drain', next);
    });
  };
  next();
}

function closeUnread(stream: H2ServerStream): void {
  stream.closeIfUnread();
}

function onTimer(stream: H2ServerStream): void {
  stream.fireTimer();
}

function deliverInbox(stream: H2ServerStream): void {
  stream.deliver();
}

function emitEnd(stream: H2ServerStream): void {
  stream.emit('end');
  stream.bodyReader?.onEnd();
}

function emitDrain(stream: H2ServerStream): void {
  if (!stream.closed) stream.emit('drain');
}

function emitFinish(stream: H2ServerStream): void {
  stream.emit('finish');
}

function emitClose(stream: H2ServerStream): void {
  stream.emit('close');
  stream.bodyReader?.onClose();
}

function emitError(stream: H2ServerStream, err: Error, cb: WriteCallback | undefined): void {
  if (cb) cb(err);
  if (stream.listenerCount('error') > 0) stream.emit('error', err);
  stream.bodyReader?.onError(err);
}

/**
 * The prototype of request header records: empty and without Object.prototype, so that no name
 * (not `__proto__`, not `constructor`) means anything but a field. Objects made from it, unlike
 * Object.create(null) ones, stay in V8's fast mode.
 */
const RECORD = Object.create(null) as object;

/** A header list as node's headers object: no prototype fields, repeated fields joined. */
export function fieldsToRecord(fields: string[]): Record<string, string | string[]> {
  const out = Object.create(RECORD) as Record<string, string | string[]>;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    const value = fields[i + 1];
    const prev = out[name];
    if (prev === undefined) out[name] = name === 'set-cookie' ? [value] : value;
    else if (typeof prev !== 'string') prev.push(value);
    else if (name === 'cookie') out[name] = `${prev}; ${value}`;
    else out[name] = `${prev}, ${value}`;
  }
  return out;
}

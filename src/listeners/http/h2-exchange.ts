import { EventEmitter } from 'node:events';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { CANCEL, NO_ERROR } from '../../protocol/h2/frames.ts';
import type { H2ServerStream } from './h2-engine/stream.ts';
import { PseudoHeaderRequest } from '../../protocol/pseudo-header-request.ts';
import { checkResponseValue as checkValue, codedError, httpDate, responseFieldName as fieldName } from '../../protocol/http-fields.ts';

// One HTTP/2 request and its response over a stream of the listener's HTTP/2 engine
// (h2-engine/stream.ts, which has the part of node:http2's ServerHttp2Stream used here), with the
// shape handlers use (handlers/types.ts: Http2Request and Http2Response). Made when node:http2
// served HTTP/2, as the lean counterpart of its compatibility layer (Http2ServerRequest /
// Http2ServerResponse); what that layer cost per request and this does not:
//
//   - listeners: it puts eleven on each stream (trailers, end, error, aborted, close and timeout
//     for the request; drain, aborted, close, wantTrailers and timeout for the response), each
//     running node's listener bookkeeping. Here a stream gets two ('close', 'error') besides the
//     idle timer's; 'data'/'end' only once the body is read, 'drain' only after a write returned
//     false, 'wantTrailers' only when trailers are expected;
//   - trailers: its response always asks for them (`waitForTrailers: true`), so every response
//     ends with an extra step (nghttp2 calls back, node queues a setImmediate) and an extra frame
//     (empty trailers, or an empty DATA frame with END_STREAM). Here trailers are asked for only
//     when they can come (below);
//   - frames: writeHead() sends HEADERS at once there, so `writeHead(); end()` is HEADERS and then
//     an empty DATA frame ending the stream. Here the head goes out with the first write() or
//     end(), as node:http's ServerResponse does: end() without a body is one HEADERS frame with
//     END_STREAM, end(body) is HEADERS and one DATA frame with END_STREAM.
//
// Trailers. The engine has to know when the response starts whether trailers will follow
// (`waitForTrailers`, as nghttp2 had), and a handler may call addTrailers() only at the end (the proxy passes on
// the upstream's trailers once its body has been read). The response asks for them when:
//   - addTrailers() has been called before the head goes out, or
//   - the head goes out with end() (then exactly the trailers added so far are sent), or
//   - the head goes out before the end and the trailers may still come: the response is gRPC
//     (content-type application/grpc, not gRPC-Web, whose trailers are in the body), announces
//     them (a Trailer field), or the client said it takes them (TE: trailers, which every gRPC
//     client sends).
// Trailers added after a head that did not ask for them are dropped, as node:http drops them
// from a response that is not chunked.
//
// Events, as the compatibility layer has them: the request emits 'aborted' when the stream
// closes before the response ended (the client reset it, or the connection went), then 'close';
// its body ends with 'end' as usual, or, cut off by a reset, without it (an async iterator over
// it throws, a 'data' reader sees 'close' first). The response emits 'close' when the stream has
// closed, preceded by 'finish' when the response had been written in full.

const NGHTTP2_NO_ERROR = NO_ERROR;
const NGHTTP2_CANCEL = CANCEL;

type FieldValue = number | string | string[];
type Fields = Record<string, FieldValue>;

/**
 * The prototype of field objects: empty and without Object.prototype, so that no name (not
 * `__proto__`, not `constructor`) means anything but a field. Objects made from it, unlike
 * `{ __proto__: null }` ones, stay in V8's fast mode.
 */
const FIELDS = Object.create(null) as object;

function newFields(): Fields {
  return Object.create(FIELDS) as Fields;
}

/**
 * Heads a handler keeps and passes to writeHead() on every response (the static handler's per
 * file, the respond handler's): frozen, so that once every name has been found lower case and
 * sendable and every value allowed, they can go to node as they are, neither checked nor copied
 * again. The rest are copied field by field.
 */
const checkedHeads = new WeakSet<object>();

/**
 * A checked head goes to the engine's respond() as a flat [name, value, ...] list (encoded as it
 * is, no object walked): made once per head with a slot for the status first and one for Date
 * last, copied per response.
 */

interface FlatHead {
  /** `:status`, 200, the head's fields, then `date`, '' unless the head has a Date of its own. */
  readonly list: FieldValue[];
  /** The last two entries are the Date slot. */
  readonly dateSlot: boolean;
}

const flatHeads = new WeakMap<object, FlatHead>();

function flatHead(head: Fields): FlatHead {
  let flat = flatHeads.get(head);
  if (flat === undefined) {
    const list: FieldValue[] = [':status', 200];
    for (const name of Object.keys(head)) list.push(name, head[name]);
    const dateSlot = !Object.hasOwn(head, 'date');
    if (dateSlot) list.push('date', '');
    flat = { list, dateSlot };
    flatHeads.set(head, flat);
  }
  return flat;
}

/**
 * A checked head for a respond() that middleware has wrapped (it takes objects): a copy per
 * response with `:status` first and Date last.
 */
function completeHead(head: Fields, status: number, sendDate: boolean): Fields {
  const out = newFields();
  out[':status'] = status;
  for (const name in head) out[name] = head[name];
  if (sendDate && out.date === undefined) out.date = httpDate();
  return out;
}

function isCheckedHead(headers: object): boolean {
  if (checkedHeads.has(headers)) return true;
  if (!Object.isFrozen(headers) || Object.getPrototypeOf(headers) !== Object.prototype) return false;
  for (const name of Object.keys(headers)) {
    try {
      if (fieldName(name) !== name) return false;
      checkValue(name, (headers as Fields)[name]);
    } catch {
      // The copying path throws the error a caller should see.
      return false;
    }
  }
  checkedHeads.add(headers);
  return true;
}

function noop(): void {}

const kResponse = Symbol('switchyard.h2.response');

/** A stream with the response written on it (for the one shared 'close' listener). */
type ExchangeStream = H2ServerStream & { [kResponse]?: H2Response };

/** respond()'s options, with the one the typings leave out. */
type RespondOptions = { endStream: boolean; waitForTrailers: boolean; sendDate?: boolean };

/** Every respond() options object sendHead() gives, by endStream << 2 | waitForTrailers << 1 | sendDate: none made per response. */
const RESPOND_OPTIONS: readonly RespondOptions[] = Array.from({ length: 8 }, (_, i) =>
  Object.freeze({ endStream: (i & 4) !== 0, waitForTrailers: (i & 2) !== 0, sendDate: (i & 1) !== 0 }),
);

/**
 * Streams whose idle timing is not the listener's sweep's (h2.ts gives a stream that stays open
 * the stream's idle timer at its sweep): a handler has set a timeout of its own, or the stream carries
 * an open WebSocket, which has none.
 */
const selfTimed = new WeakSet<H2ServerStream>();

export function timesItself(stream: H2ServerStream): boolean {
  return selfTimed.has(stream);
}

/** The stream went quiet for its timeout: reset it (CANCEL). */
function onStreamTimeout(this: H2ServerStream): void {
  this.close(NGHTTP2_CANCEL);
}

/**
 * Node's idle timer of `ms` on `stream` (0: none); when it fires the stream is reset (CANCEL),
 * after the callback if one is given. `own`: the stream's user chose it, and the listener's
 * sweep leaves the stream's timing alone from now on.
 */
export function streamTimeout(stream: H2ServerStream, ms: number, own: boolean, callback?: () => void): void {
  if (own) selfTimed.add(stream);
  stream.setTimeout(ms, callback);
  // closeStream() drops the stream's 'timeout' listeners; until then it has one of ours at most.
  if (ms > 0 && !stream.listeners('timeout').includes(onStreamTimeout)) stream.on('timeout', onStreamTimeout);
}

/** Told when a stream closes (the HTTP/2 front's per-connection accounting). */
export interface StreamOwner {
  streamClosed(stream: H2ServerStream): void;
}

/** The request: a Readable of the body over the stream, with the request head of node:http's IncomingMessage. */
export class H2Request extends PseudoHeaderRequest {
  /** The client reset the stream (or the connection went) before the response ended. */
  aborted = false;
  /** The stream has closed. */
  private streamGone = false;
  /** The body is being read from the stream ('data'/'end' listeners on it). */
  private reading = false;

  constructor(
    /** The stream the request came on. */
    readonly stream: H2ServerStream,
    /** The request's fields, pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`) included, lower case. */
    readonly headers: IncomingHttpHeaders,
    /** The fields as received: [name, value, ...], pseudo-headers first. */
    readonly rawHeaders: string[],
    /** The connection's own socket (TLS or TCP): its address, certificate, encryption. */
    readonly socket: Socket,
  ) {
    super({ autoDestroy: false });
  }

  get httpVersion(): '2.0' {
    return '2.0';
  }

  get httpVersionMajor(): 2 {
    return 2;
  }

  get httpVersionMinor(): 0 {
    return 0;
  }

  /** As node:http2's compatibility request: no more body will come. */
  get complete(): boolean {
    return this.aborted || this.readableEnded || this.streamGone || this.stream.destroyed;
  }

  setTimeout(ms: number, callback?: () => void): this {
    if (!this.streamGone) streamTimeout(this.stream, ms, true, callback);
    return this;
  }

  override _read(): void {
    if (this.reading) {
      this.stream.resume();
      return;
    }
    this.reading = true;
    const stream = this.stream;
    // HEADERS with END_STREAM: there is no body, and nothing of the stream's own reading side is
    // touched (the stream closes once the response is out).
    // An empty body ended by a DATA frame, the stream already reading: its 'end' is out already.
    if (stream.endAfterHeaders || stream.readableEnded) {
      this.push(null);
      return;
    }
    // Read only after the stream closed (a handler that awaited something first).
    if (this.streamGone) {
      this.endCut();
      return;
    }
    stream.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stream.pause();
    });
    stream.once('end', () => {
      // A reset is the close's to handle, not an end of the body.
      if (stream.aborted || stream.rstCode !== NGHTTP2_NO_ERROR) return;
      this.push(null);
    });
  }

  /** The stream has closed (the response listens for it); `aborted`: before the response ended (node's stream.aborted). */
  streamClosed(aborted: boolean): void {
    this.streamGone = true;
    if (aborted && !this.aborted) {
      this.aborted = true;
      this.emit('aborted');
    }
    if (this.destroyed) return;
    // Never read (the usual GET): nothing to end.
    if (this.readableEnded || !this.reading) {
      this.emit('close');
      return;
    }
    if (this.endCut()) this.emit('close');
  }

  /**
   * The body as far as the stream has given it, once the stream has closed. Cut off by a reset,
   * it is incomplete, and readers must not take it for whole: the request is destroyed with an
   * `aborted` error (ECONNRESET, as node:http's request; an async iterator throws it, 'close'
   * comes without 'end'). Closed cleanly, node has had the whole body read before the close, so
   * what is left is at most the end. Returns whether the request is still to be closed.
   */
  private endCut(): boolean {
    if (this.aborted || this.stream.rstCode !== NGHTTP2_NO_ERROR) {
      this.destroy(codedError('ECONNRESET', 'aborted'));
      return false;
    }
    this.push(null);
    return true;
  }

}

/** A response written on the stream: what handlers use of node:http's ServerResponse (HttpResponse). */
export class H2Response extends EventEmitter {
  statusCode = 200;
  /** Sent with every response unless turned off (removeHeader('date')). */
  sendDate = true;
  private fields: Fields | null = null;
  /** `fields` is a checked head of the handler's (isCheckedHead): copied before anything changes it. */
  private borrowed = false;
  private trailers: Fields | null = null;
  /** writeHead() was called (the head is fixed, and goes out with the first write or end). */
  private headWritten = false;
  private ended = false;
  private destroyCalled = false;
  private closed = false;
  /** Known once the stream has closed: the whole response went out. */
  private completed = false;
  private drainHooked = false;

  constructor(
    readonly stream: H2ServerStream,
    readonly req: H2Request,
    private readonly owner: StreamOwner,
  ) {
    super();
    // Stream errors reach us as the stream's close (and its rstCode); without a listener node
    // would throw them.
    stream.on('error', noop);
    (stream as ExchangeStream)[kResponse] = this;
    stream.on('close', H2Response.onStreamClose);
  }

  /**
   * The stream's 'close' listener, one function for every stream (no closure per response). It
   * lets go of the response first: node's handle of a closed stream (a C++-wrapped object, freed
   * only by a full collection) keeps the stream reachable through every young-generation
   * collection until then, and with it whatever the stream points to. Left linked, the response,
   * its request, context and listeners were copied and promoted with every stream (twice the
   * scavenger's work under h2load -c16 -m16), then collected by the next mark-compact.
   */
  private static onStreamClose(this: ExchangeStream): void {
    const response = this[kResponse];
    this[kResponse] = undefined;
    response?.streamClosed();
  }

  /** The fields, the response's own to change. */
  private ownFields(): Fields {
    const had = this.fields;
    if (had === null || this.borrowed) {
      const fields = newFields();
      if (had !== null) for (const k in had) fields[k] = had[k];
      this.fields = fields;
      this.borrowed = false;
      return fields;
    }
    return had;
  }

  // --- head ------------------------------------------------------------------------------------

  get headersSent(): boolean {
    return this.headWritten || this.stream.headersSent;
  }

  /** As node:http's (some code tests it for "head sent"). */
  get _header(): boolean {
    return this.headersSent;
  }

  get statusMessage(): string {
    return '';
  }

  set statusMessage(_value: string) {}

  setHeader(name: string, value: FieldValue): this {
    if (this.headersSent) throw codedError('ERR_HTTP2_HEADERS_SENT', 'Response has already been initiated.');
    const key = fieldName(name);
    checkValue(key, value);
    if (key !== '') this.ownFields()[key] = value;
    return this;
  }

  appendHeader(name: string, value: string | string[]): this {
    if (this.headersSent) throw codedError('ERR_HTTP2_HEADERS_SENT', 'Response has already been initiated.');
    const key = fieldName(name);
    if (key === '') return this;
    const fields = this.ownFields();
    const had = fields[key];
    if (had === undefined || had === '') return this.setHeader(key, value);
    const list = Array.isArray(had) ? [...(had as string[])] : [String(had)];
    if (Array.isArray(value)) list.push(...(value as string[]));
    else list.push(value as string);
    checkValue(key, list);
    fields[key] = list;
    return this;
  }

  getHeader(name: string): FieldValue | undefined {
    const fields = this.fields;
    if (fields === null) return undefined;
    const key = name.toLowerCase();
    // A borrowed head is a plain object: only its own properties are fields.
    return this.borrowed && !Object.hasOwn(fields, key) ? undefined : fields[key];
  }

  getHeaders(): OutgoingHttpHeaders {
    const out = { __proto__: null } as unknown as Fields;
    if (this.fields) for (const k in this.fields) if (k !== ':status') out[k] = this.fields[k];
    return out as OutgoingHttpHeaders;
  }

  getHeaderNames(): string[] {
    return this.fields ? Object.keys(this.fields).filter((k) => k !== ':status') : [];
  }

  hasHeader(name: string): boolean {
    return this.getHeader(name) !== undefined;
  }

  removeHeader(name: string): void {
    if (this.headersSent) throw codedError('ERR_HTTP2_HEADERS_SENT', 'Response has already been initiated.');
    const key = name.trim().toLowerCase();
    if (key === 'date') {
      this.sendDate = false;
      return;
    }
    if (this.fields) delete this.ownFields()[key];
  }

  /**
   * Fixes the status and head (merged over fields set before); they go out with the first
   * write() or end(). Throws, as node does, for fields HTTP/2 cannot carry.
   */
  writeHead(statusCode: number, reasonOrHeaders?: string | OutgoingHttpHeaders | readonly unknown[], maybeHeaders?: OutgoingHttpHeaders | readonly unknown[]): this {
    const stream = this.stream;
    if (this.closed || stream.destroyed || stream.closed) return this;
    if (this.headersSent) throw codedError('ERR_HTTP2_HEADERS_SENT', 'Response has already been initiated.');
    const headers = typeof reasonOrHeaders === 'string' ? maybeHeaders : reasonOrHeaders;
    const status = statusCode | 0;
    if (status < 200 || status > 599) throw codedError('ERR_HTTP2_STATUS_INVALID', `Invalid status code: ${statusCode}`, RangeError);
    if (Array.isArray(headers)) this.appendFlat(headers);
    else if (headers && this.fields === null && isCheckedHead(headers)) {
      this.fields = headers as Fields;
      this.borrowed = true;
    } else if (headers) {
      const fields = this.ownFields();
      for (const name in headers as OutgoingHttpHeaders) {
        const value = (headers as OutgoingHttpHeaders)[name];
        const key = fieldName(name);
        checkValue(key, value);
        if (key !== '') fields[key] = value as FieldValue;
      }
    }
    this.statusCode = status;
    this.headWritten = true;
    return this;
  }

  /**
   * writeHead() with the head as a flat [name, value, ...] list in which a repeated name makes one
   * field of several values, as the object form has them (the proxy's answer heads): the fields go
   * straight into the response's own, no record is made for them first. The list's names replace
   * fields of those names set before.
   */
  writeHeadList(statusCode: number, flat: readonly string[]): this {
    const stream = this.stream;
    if (this.closed || stream.destroyed || stream.closed) return this;
    if (this.headersSent) throw codedError('ERR_HTTP2_HEADERS_SENT', 'Response has already been initiated.');
    const status = statusCode | 0;
    if (status < 200 || status > 599) throw codedError('ERR_HTTP2_STATUS_INVALID', `Invalid status code: ${statusCode}`, RangeError);
    const had = this.fields !== null;
    const fields = this.ownFields();
    if (had) for (let i = 0; i < flat.length; i += 2) delete fields[fieldName(flat[i])];
    for (let i = 0; i < flat.length; i += 2) {
      const key = fieldName(flat[i]);
      if (key === '') continue;
      const value = flat[i + 1];
      const before = fields[key];
      if (before === undefined) {
        checkValue(key, value);
        fields[key] = value;
      } else if (Array.isArray(before)) {
        before.push(value);
        checkValue(key, before);
      } else {
        const list = [before as string, value];
        checkValue(key, list);
        fields[key] = list;
      }
    }
    this.statusCode = status;
    this.headWritten = true;
    return this;
  }

  /** writeHead's list forms: [name, value, ...] or [[name, value], ...]; they replace fields of those names set before. */
  private appendFlat(list: readonly unknown[]): void {
    const pairs: [string, string | string[]][] = [];
    if (list.length > 0 && Array.isArray(list[0])) for (const p of list as [string, string][]) pairs.push([p[0], p[1]]);
    else {
      if (list.length % 2 !== 0) throw codedError('ERR_INVALID_ARG_VALUE', 'The argument \'headers\' is invalid', TypeError);
      for (let i = 0; i < list.length; i += 2) pairs.push([list[i] as string, list[i + 1] as string]);
    }
    const seen = new Set<string>();
    for (const [name, value] of pairs) {
      const key = fieldName(name);
      if (key === '') continue;
      if (!seen.has(key)) {
        seen.add(key);
        if (this.fields) delete this.ownFields()[key];
      }
      this.appendHeader(key, value);
    }
  }

  flushHeaders(): void {
    if (!this.closed && !this.stream.headersSent && !this.stream.destroyed) this.sendHead(false, false);
  }

  /**
   * Sends the head. `ending`: the response ends now, with `withBody` bytes or none (one HEADERS
   * frame with END_STREAM then, unless trailers follow).
   */
  private sendHead(ending: boolean, withBody: boolean): void {
    const stream = this.stream;
    const status = this.statusCode;
    // A borrowed head goes as a list (not to a respond() that middleware has wrapped,
    // which takes objects), or as a complete copy (completeHead).
    const asList = this.borrowed && !Object.hasOwn(stream, 'respond');
    const fields = this.borrowed ? (this.fields as Fields) : this.ownFields();
    let trailers: boolean;
    if (ending) trailers = this.trailers !== null;
    else trailers = this.trailers !== null || mayHaveTrailers(fields, this.req.headers.te);
    // node ends these by itself (no body can follow), trailers or not.
    if (status === 204 || status === 205 || status === 304 || stream.headRequest) trailers = false;
    const endStream = ending && !withBody && !trailers;
    const options = RESPOND_OPTIONS[(endStream ? 4 : 0) | (trailers ? 2 : 0) | (this.sendDate ? 1 : 0)];
    if (asList) {
      const flat = flatHead(fields);
      const list = flat.list.slice();
      list[1] = status;
      if (flat.dateSlot) {
        if (this.sendDate) list[list.length - 1] = httpDate();
        else list.length -= 2;
      }
      stream.respond(list as unknown as OutgoingHttpHeaders, options);
    } else if (this.borrowed) {
      stream.respond(completeHead(fields, status, this.sendDate), options);
    } else {
      // Left in place (a delete would cost more than the field): getHeaders() skips it.
      fields[':status'] = status;
      stream.respond(fields, options);
    }
    // 'wantTrailers' comes once per stream: `on`, and one function for every stream (no
    // closure, no once() wrapper per call).
    if (trailers) stream.on('wantTrailers', H2Response.onWantTrailers);
  }

  private static onWantTrailers(this: ExchangeStream): void {
    this[kResponse]?.sendTrailers();
  }

  private sendTrailers(): void {
    const stream = this.stream;
    if (stream.destroyed || stream.closed) return;
    try {
      stream.sendTrailers(this.trailers ?? {});
    } catch {
      // A field nghttp2 refuses: the stream still has to end.
      stream.sendTrailers({});
    }
  }

  /** Trailers to send after the body (see the top of this file for when they can be). */
  addTrailers(headers: OutgoingHttpHeaders | readonly [string, string][]): void {
    if (Array.isArray(headers)) {
      for (const [name, value] of headers as readonly [string, string][]) this.addTrailer(name, value);
      return;
    }
    // Own enumerable fields, as Object.entries() would give them, without its list of pairs.
    const record = headers as OutgoingHttpHeaders;
    for (const name in record) if (Object.hasOwn(record, name)) this.addTrailer(name, record[name]);
  }

  private addTrailer(name: string, value: unknown): void {
    const key = fieldName(name);
    if (key === '') return;
    checkValue(key, value);
    (this.trailers ??= newFields())[key] = value as FieldValue;
  }

  writeContinue(): boolean {
    const stream = this.stream;
    if (stream.headersSent || this.closed || stream.destroyed || stream.closed) return false;
    stream.additionalHeaders({ ':status': 100 });
    return true;
  }

  writeEarlyHints(hints: Record<string, string | string[]>): boolean {
    const link = hints.link;
    const value = typeof link === 'string' ? link : Array.isArray(link) ? link.join(', ') : '';
    if (value === '') return false;
    if (/[\r\n]/.test(value)) throw codedError('ERR_INVALID_ARG_VALUE', 'The argument \'hints\' is invalid', TypeError);
    const stream = this.stream;
    if (stream.headersSent || this.closed || stream.destroyed || stream.closed) return false;
    const headers: OutgoingHttpHeaders = { ':status': 103 };
    for (const name of Object.keys(hints)) {
      if (name === 'link') continue;
      const key = fieldName(name);
      if (key !== '') headers[key] = hints[name];
    }
    headers.link = value;
    stream.additionalHeaders(headers);
    return true;
  }

  // --- body ------------------------------------------------------------------------------------

  get writable(): boolean {
    return !this.ended && !this.destroyed;
  }

  get writableEnded(): boolean {
    return this.ended;
  }

  get finished(): boolean {
    return this.ended;
  }

  /**
   * The whole response has been handed over. Once the stream has closed: it was ended by us and
   * closed cleanly (nghttp2 can close a stream whose last DATA frame carried END_STREAM before
   * node's writable side reports itself finished).
   */
  get writableFinished(): boolean {
    return this.closed ? this.completed : this.stream.writableFinished;
  }

  get writableLength(): number {
    return this.stream.writableLength;
  }

  get writableHighWaterMark(): number {
    return this.stream.writableHighWaterMark;
  }

  get writableNeedDrain(): boolean {
    return this.stream.writableNeedDrain;
  }

  get writableCorked(): number {
    return this.stream.writableCorked;
  }

  get destroyed(): boolean {
    return this.destroyCalled || this.stream.destroyed;
  }

  /** The connection's socket while the stream is open (node:http's response lets go of it at the end too). */
  get socket(): Socket | undefined {
    return this.closed ? undefined : this.req.socket;
  }

  get connection(): Socket | undefined {
    return this.socket;
  }

  cork(): void {
    this.stream.cork();
  }

  uncork(): void {
    this.stream.uncork();
  }

  write(chunk: string | Uint8Array, encoding?: BufferEncoding | ((err?: Error | null) => void), callback?: (err?: Error | null) => void): boolean {
    if (typeof encoding === 'function') {
      callback = encoding;
      encoding = undefined;
    }
    const stream = this.stream;
    if (this.ended || this.closed || this.destroyCalled || stream.destroyed || stream.closed) {
      const err = this.ended ? codedError('ERR_STREAM_WRITE_AFTER_END', 'write after end') : codedError('ERR_HTTP2_INVALID_STREAM', 'The stream has been destroyed');
      if (callback) process.nextTick(callback, err);
      return false;
    }
    if (!stream.headersSent) this.sendHead(false, true);
    // HEAD, 204, 304, or a head someone sent with END_STREAM: no body goes out.
    if (stream.writableEnded) {
      if (callback) process.nextTick(callback);
      return true;
    }
    const ok = encoding === undefined ? stream.write(chunk, callback) : stream.write(chunk, encoding, callback);
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
    this.ended = true;
    const stream = this.stream;
    if (this.closed || stream.destroyed || stream.closed) {
      if (callback) process.nextTick(callback);
      return this;
    }
    const body = chunk !== undefined && chunk !== null && (typeof chunk === 'string' ? chunk.length > 0 : chunk.byteLength > 0);
    if (!stream.headersSent) this.sendHead(true, body);
    if (callback) this.once('finish', callback);
    if (stream.writableEnded) return this;
    if (body) {
      if (encoding === undefined) stream.end(chunk);
      else stream.end(chunk, encoding as BufferEncoding);
    } else stream.end();
    return this;
  }

  destroy(err?: Error): this {
    if (this.destroyCalled) return this;
    this.destroyCalled = true;
    this.stream.destroy(err);
    return this;
  }

  setTimeout(ms: number, callback?: () => void): this {
    if (!this.closed) streamTimeout(this.stream, ms, true, callback);
    return this;
  }

  // --- end -------------------------------------------------------------------------------------

  private streamClosed(): void {
    this.closed = true;
    const stream = this.stream;
    this.owner.streamClosed(stream);
    // Closed before the response ended (the compatibility layer's 'aborted'): the client reset
    // the stream, the connection went, or the response was destroyed.
    const aborted = stream.aborted;
    this.completed = !aborted && stream.rstCode === NGHTTP2_NO_ERROR && stream.writableEnded;
    this.req.streamClosed(aborted);
    if (this.completed) this.emit('finish');
    this.emit('close');
  }
}

/**
 * The head goes out before the end of the response: whether trailers may still be added, so that
 * nghttp2 must wait for them (see the top of the file).
 */
const GRPC_TYPE = /^application\/grpc(?:$|[+;\s])/i;

function mayHaveTrailers(fields: Fields, te: string | string[] | undefined): boolean {
  if (fields.trailer !== undefined) return true;
  if (typeof te === 'string' && /(?:^|,)\s*trailers\s*(?:[;,]|$)/i.test(te)) return true;
  const type = fields['content-type'];
  return typeof type === 'string' && GRPC_TYPE.test(type);
}

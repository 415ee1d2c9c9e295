import type { Socket } from 'node:net';
import type { Dispatcher } from 'undici';
import { H2ProtocolError } from '../../protocol/h2/errors.ts';
import { H2ClientError, HEADERS_TOO_LARGE, NOT_PROCESSED, PROTOCOL_VIOLATION } from './errors.ts';
import {
  CANCEL,
  COMPRESSION_ERROR,
  CONTINUATION,
  DATA,
  DEFAULT_MAX_FRAME_SIZE,
  DEFAULT_WINDOW,
  ENHANCE_YOUR_CALM,
  FLAG_ACK,
  FLAG_END_HEADERS,
  FLAG_END_STREAM,
  FLAG_PADDED,
  FLAG_PRIORITY,
  FLOW_CONTROL_ERROR,
  FRAME_HEADER_SIZE,
  FRAME_SIZE_ERROR,
  FrameReader,
  GOAWAY,
  HEADERS,
  INTERNAL_ERROR,
  MAX_WINDOW,
  NO_ERROR,
  PING,
  PREFACE,
  PRIORITY,
  PROTOCOL_ERROR,
  PUSH_PROMISE,
  REFUSED_STREAM,
  RST_STREAM,
  SETTINGS,
  SETTINGS_ENABLE_PUSH,
  SETTINGS_HEADER_TABLE_SIZE,
  SETTINGS_INITIAL_WINDOW_SIZE,
  SETTINGS_MAX_CONCURRENT_STREAMS,
  SETTINGS_MAX_FRAME_SIZE,
  SETTINGS_MAX_HEADER_LIST_SIZE,
  SETTINGS_TIMEOUT,
  WINDOW_UPDATE,
  frame,
  goawayFrame,
  rstStreamFrame,
  settingsFrame,
  windowUpdateFrame,
  writeFrameHeader,
} from '../../protocol/h2/frames.ts';
import { HpackDecoder, HpackEncoder, HpackError } from '../../protocol/h2/hpack.ts';
import { ClientStream, type Trailers } from './stream.ts';
import { StreamTable } from '../../protocol/h2/stream-table.ts';

// One HTTP/2 client connection (RFC 9113) on a socket that is already connected (TCP for h2c,
// TLS with ALPN h2): the preface and SETTINGS, flow control both ways, the target's control
// frames (SETTINGS, PING, GOAWAY, RST_STREAM, WINDOW_UPDATE) and its responses, parsed straight
// into the proxy's handler calls without a stream object of node:http2 per request.
//
// Writes: every frame is queued and the queue goes out as one socket write per turn of the event
// loop (setImmediate), so the HEADERS and DATA of many calls share a write.
//
// Flow control, sending: DATA never exceeds the target's connection and stream windows; what does
// not fit waits on the stream (pendingOut) until a WINDOW_UPDATE or SETTINGS opens the window, and
// the body's writer is told to wait (write() returns false, 'drain' later).
// Receiving: each stream's window is `streamWindow`, the connection's `connectionWindow`; credit
// goes back to the target only for bytes the handler took, so a handler that pauses (a slow
// client downstream) stops the target after at most one window of unread data per stream.
//
// Limits on what the target sends: frames above 16 KiB (our SETTINGS_MAX_FRAME_SIZE), header
// blocks above twice maxHeaderListSize or in more than MAX_CONTINUATIONS frames, a dynamic table
// above 4096 bytes, PUSH_PROMISE (push is off) and any malformed frame end the connection with
// GOAWAY; a decoded header list above maxHeaderListSize or a malformed response (a field name
// with uppercase or invalid characters, CR, LF or NUL in a value, a connection-specific field, a
// pseudo-header other than one leading :status, RFC 9113 §8.2-8.3) ends its stream with
// PROTOCOL_ERROR. Limits the target sets: a request whose header list is above its
// SETTINGS_MAX_HEADER_LIST_SIZE is not sent; our SETTINGS unacknowledged within settingsTimeout
// end the connection (GOAWAY SETTINGS_TIMEOUT).

export interface ConnectionSettings {
  /** The target's `host:port`, for messages. */
  readonly id: string;
  /** Our receive window per stream (SETTINGS_INITIAL_WINDOW_SIZE): unread response bytes a stream may hold. */
  readonly streamWindow: number;
  /** Our receive window for the whole connection. */
  readonly connectionWindow: number;
  /** Largest decoded response header list (SETTINGS_MAX_HEADER_LIST_SIZE); above it the stream fails. */
  readonly maxHeaderListSize: number;
  /** No response head within this long (ms): UND_ERR_HEADERS_TIMEOUT (0: none). */
  readonly headersTimeout: number;
  /** No response body bytes for this long (ms) while not paused: UND_ERR_BODY_TIMEOUT (0: none). */
  readonly bodyTimeout: number;
  /**
   * No ACK of our SETTINGS within this long (ms) from the connection's start: GOAWAY
   * SETTINGS_TIMEOUT (RFC 9113 §6.5.3) and its streams fail (0: none). The pool passes its
   * connect timeout: a target that answers within it also acknowledges within it.
   */
  readonly settingsTimeout: number;
}

/** What the pool learns from a connection. */
export interface ConnectionOwner {
  /** The target's SETTINGS arrived: streams may start. */
  ready(conn: H2Connection): void;
  /** A stream ended or the target's limits grew: waiting requests may start. */
  room(conn: H2Connection): void;
  /** The connection takes no more streams (GOAWAY, error, closed); `err` is why. Called once. */
  gone(conn: H2Connection, err: Error): void;
}

export interface RequestHead {
  readonly method: string;
  readonly path: string;
  readonly scheme: 'http' | 'https';
  readonly authority: string;
  /** Flat [name, value, ...]: lowercase names, nothing connection-specific, no pseudo-headers. */
  readonly headers: readonly string[];
}

/** Header blocks in more frames than this end the connection (a CONTINUATION flood). */
const MAX_CONTINUATIONS = 64;
/** Bytes queued for the socket (ours and the socket's own buffer) above which request bodies wait. */
const SEND_HIGH_WATER = 1 << 20;
/** The largest stream id (2^31 - 1): past it the connection takes no more streams. */
const MAX_STREAM_ID = MAX_WINDOW;
/** Our dynamic table for the target's header blocks (SETTINGS_HEADER_TABLE_SIZE's default). */
const HEADER_TABLE_SIZE = 4096;

/** DATA payloads up to this many bytes are copied into their frame's buffer; larger ones are queued as they are. */
const SMALL_DATA = 1024;
/** Streams we open at most on a connection whose target set no SETTINGS_MAX_CONCURRENT_STREAMS (as Go's HTTP/2 client does). */
const UNANNOUNCED_MAX_STREAMS = 1000;
/** Where HEADERS blocks are encoded before being copied out at their size (grown when a block may not fit). */
let headerScratch = Buffer.allocUnsafe(4096);

const noop = (): void => {};

export class H2Connection {
  /** Open streams by id (a StreamTable, not a Map: see protocol/h2/stream-table.ts). */
  private readonly streams = new StreamTable<ClientStream>();
  private nextStreamId = 1;
  /** Streams with request bytes waiting for window. */
  private readonly blocked = new Set<ClientStream>();
  /** Streams whose body waits for 'drain'. */
  private readonly draining = new Set<ClientStream>();

  // the target's settings
  private peerInitialWindow = DEFAULT_WINDOW;
  private peerMaxFrame = DEFAULT_MAX_FRAME_SIZE;
  /** Until the target's first SETTINGS: 100 (RFC 9113 §6.5.2's floor); then what it says, or UNANNOUNCED_MAX_STREAMS. */
  private peerMaxStreams = 100;
  /** The target's SETTINGS_MAX_HEADER_LIST_SIZE: requests with larger header lists are not sent (none until it says). */
  private peerMaxHeaderList = Infinity;

  /** Bytes we may still send on the connection. */
  private sendWindow = DEFAULT_WINDOW;
  /** Bytes the target may still send on the connection. */
  private recvWindow: number;
  private recvUnacked = 0;

  private readonly decoder: HpackDecoder;
  private readonly encoder = new HpackEncoder();
  private readonly reader = new FrameReader(DEFAULT_MAX_FRAME_SIZE);

  private out: Buffer[] = [];
  private outBytes = 0;
  /** Socket writes so far: tells whether a queued frame has gone out yet. */
  private flushes = 0;
  private flushScheduled = false;

  /** The header block being received (HEADERS without END_HEADERS, then CONTINUATION). */
  private blockStream = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockEndStream = false;

  /** The target's first SETTINGS arrived. */
  private ready = false;
  /** GOAWAY received (or stream ids used up): no new streams, the connection closes when the last one ends. */
  private goingAway = false;
  private closed = false;
  /** When (Date.now()) our SETTINGS time out unacknowledged; 0 once acknowledged (or with no timeout). */
  private settingsDeadline = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly tick: number;

  constructor(
    readonly socket: Socket,
    private readonly settings: ConnectionSettings,
    private readonly owner: ConnectionOwner,
  ) {
    this.recvWindow = settings.connectionWindow;
    this.decoder = new HpackDecoder(HEADER_TABLE_SIZE, settings.maxHeaderListSize);
    const timeouts = [settings.headersTimeout, settings.bodyTimeout, settings.settingsTimeout].filter((t) => t > 0);
    // Timeouts are checked by one timer per connection, a few times per timeout (not a timer per request).
    this.tick = timeouts.length > 0 ? Math.min(1000, Math.max(10, Math.floor(Math.min(...timeouts) / 4))) : 0;
    this.queue(PREFACE);
    this.queue(
      settingsFrame([
        [SETTINGS_ENABLE_PUSH, 0],
        [SETTINGS_INITIAL_WINDOW_SIZE, settings.streamWindow],
        [SETTINGS_MAX_HEADER_LIST_SIZE, settings.maxHeaderListSize],
      ]),
    );
    if (settings.connectionWindow > DEFAULT_WINDOW) this.queue(windowUpdateFrame(0, settings.connectionWindow - DEFAULT_WINDOW));
    if (settings.settingsTimeout > 0) {
      this.settingsDeadline = Date.now() + settings.settingsTimeout;
      this.timer = setInterval(this.sweep, this.tick).unref();
    }
    socket.on('data', this.onSocketData);
    socket.on('drain', this.wakeDrains);
    socket.on('error', (err: Error) => this.lost(err));
    socket.on('close', () => this.lost(new H2ClientError(`the connection to ${settings.id} closed`, 'ECONNRESET')));
  }

  /** Streams running. */
  get active(): number {
    return this.streams.size;
  }

  /** Streams it may still start under the target's SETTINGS_MAX_CONCURRENT_STREAMS. */
  get room(): number {
    if (!this.ready || this.goingAway || this.closed) return 0;
    return Math.max(0, this.peerMaxStreams - this.streams.size);
  }

  get usable(): boolean {
    return this.ready && !this.goingAway && !this.closed;
  }

  /**
   * Opens a stream: its HEADERS are queued at once (END_STREAM with them when there is no body).
   * Null when the request's header list is larger than the target takes: then nothing is sent
   * and the handler got the error (HEADERS_TOO_LARGE: the proxy answers 431 and tries nowhere
   * else, since no target of a group is likely to take more).
   */
  openStream(head: RequestHead, handler: Dispatcher.DispatchHandler, endStream: boolean, replayable: boolean): ClientStream | null {
    if (this.peerMaxHeaderList !== Infinity) {
      const size = headerListSize(head);
      if (size > this.peerMaxHeaderList) {
        handler.onError?.(new H2ClientError(`the request's header list is ${size} bytes (as HTTP/2 counts it), above the ${this.peerMaxHeaderList} that ${this.settings.id} accepts (its SETTINGS_MAX_HEADER_LIST_SIZE)`, HEADERS_TOO_LARGE));
        return null;
      }
    }
    const id = this.nextStreamId;
    this.nextStreamId += 2;
    const stream = new ClientStream(this, id, handler, this.peerInitialWindow, this.settings.streamWindow);
    stream.replayable = replayable;
    stream.noBody = head.method === 'HEAD';
    this.streams.set(stream);
    stream.headersFlush = this.flushes;
    this.writeHeaders(id, head, endStream);
    if (endStream) stream.localEnded = true;
    if (this.settings.headersTimeout > 0) {
      stream.deadline = Date.now() + this.settings.headersTimeout;
      if (this.timer === undefined) this.timer = setInterval(this.sweep, this.tick).unref();
    }
    // Retired once this stream is on its way (the pool, told, may start waiting requests elsewhere
    // at once, and `head` is its scratch: see the dispatcher's start).
    if (this.nextStreamId > MAX_STREAM_ID) this.retire();
    return stream;
  }

  private writeHeaders(id: number, head: RequestHead, endStream: boolean): void {
    const h = head.headers;
    let bound = HpackEncoder.BLOCK_START_BOUND + 2 + HpackEncoder.bound(':method', head.method) + HpackEncoder.bound(':path', head.path) + HpackEncoder.bound(':authority', head.authority);
    for (let i = 0; i < h.length; i += 2) bound += HpackEncoder.bound(h[i], h[i + 1]);
    // Encoded into a scratch buffer and copied out at its exact size: one Buffer per HEADERS
    // frame (a pool slice), not one for the bound and a view of the part used.
    if (headerScratch.length < FRAME_HEADER_SIZE + bound) headerScratch = Buffer.allocUnsafe(Math.max(FRAME_HEADER_SIZE + bound, 2 * headerScratch.length));
    const buf = headerScratch;
    const enc = this.encoder;
    let pos = enc.begin(buf, FRAME_HEADER_SIZE);
    const method = head.method;
    pos = method === 'POST' ? HpackEncoder.indexed(buf, pos, 3) : method === 'GET' ? HpackEncoder.indexed(buf, pos, 2) : enc.write(buf, pos, ':method', method);
    pos = HpackEncoder.indexed(buf, pos, head.scheme === 'https' ? 7 : 6);
    pos = enc.write(buf, pos, ':path', head.path);
    pos = enc.write(buf, pos, ':authority', head.authority);
    for (let i = 0; i < h.length; i += 2) pos = enc.write(buf, pos, h[i], h[i + 1]);
    const blockLength = pos - FRAME_HEADER_SIZE;
    const flags = endStream ? FLAG_END_STREAM : 0;
    if (blockLength <= this.peerMaxFrame) {
      writeFrameHeader(buf, 0, blockLength, HEADERS, flags | FLAG_END_HEADERS, id);
      const f = Buffer.allocUnsafe(pos);
      buf.copy(f, 0, 0, pos);
      this.queue(f);
      return;
    }
    // A block larger than the target's frames: HEADERS, then CONTINUATIONs, with nothing between.
    const max = this.peerMaxFrame;
    let offset = FRAME_HEADER_SIZE;
    let first = true;
    while (offset < pos) {
      const n = Math.min(max, pos - offset);
      const last = offset + n === pos;
      const f = Buffer.allocUnsafe(FRAME_HEADER_SIZE + n);
      writeFrameHeader(f, 0, n, first ? HEADERS : CONTINUATION, (first ? flags : 0) | (last ? FLAG_END_HEADERS : 0), id);
      buf.copy(f, FRAME_HEADER_SIZE, offset, offset + n);
      this.queue(f);
      offset += n;
      first = false;
    }
  }

  // ---- sending request bodies ---------------------------------------------------------------

  /** Sends body bytes (and END_STREAM with the last of them) as far as the windows allow; the rest waits. */
  sendData(stream: ClientStream, chunk: Buffer, end: boolean): void {
    if (stream.done) return;
    if (stream.deadline !== 0 && !stream.responded) stream.deadline = Date.now() + this.settings.headersTimeout;
    if (stream.pendingBytes > 0 || stream.pendingEnd) {
      if (chunk.length > 0) {
        (stream.pendingOut ??= []).push(chunk);
        stream.pendingBytes += chunk.length;
      }
      if (end) stream.pendingEnd = true;
      return;
    }
    let offset = 0;
    const length = chunk.length;
    while (offset < length) {
      const n = Math.min(length - offset, this.sendWindow, stream.sendWindow, this.peerMaxFrame);
      if (n <= 0) break;
      const last = offset + n === length;
      this.dataFrame(stream, n === length ? chunk : chunk.subarray(offset, offset + n), end && last);
      this.sendWindow -= n;
      stream.sendWindow -= n;
      offset += n;
    }
    if (offset < length) {
      const rest = offset === 0 ? chunk : chunk.subarray(offset);
      (stream.pendingOut ??= []).push(rest);
      stream.pendingBytes += rest.length;
      if (end) stream.pendingEnd = true;
      this.blocked.add(stream);
      return;
    }
    if (end) {
      if (length === 0) {
        // The end written apart from the last bytes (a body's write() then end()): while that
        // DATA frame is still in the queue, END_STREAM goes on it. A gRPC server would otherwise
        // read the message before its end and handle the call in two steps.
        const last = stream.lastData;
        if (last !== null && stream.lastDataFlush === this.flushes) last[4] |= FLAG_END_STREAM;
        else this.dataFrame(stream, chunk, true);
      }
      stream.localEnded = true;
      stream.lastData = null;
    }
  }

  private dataFrame(stream: ClientStream, payload: Buffer, end: boolean): void {
    const length = payload.length;
    // A small payload (a unary call's message) is copied behind its frame header: one Buffer and
    // one queue entry per frame. The queue is copied into one write anyway.
    const small = length <= SMALL_DATA;
    const h = Buffer.allocUnsafe(small ? FRAME_HEADER_SIZE + length : FRAME_HEADER_SIZE);
    writeFrameHeader(h, 0, length, DATA, end ? FLAG_END_STREAM : 0, stream.id);
    if (small) {
      payload.copy(h, FRAME_HEADER_SIZE);
      this.queue(h);
    } else {
      this.queue(h);
      this.queue(payload);
    }
    stream.lastData = h;
    stream.lastDataFlush = this.flushes;
  }

  /** The connection's window and the socket have room for more body bytes. */
  canSend(): boolean {
    return this.sendWindow > 0 && this.outBytes + this.socket.writableLength < SEND_HIGH_WATER;
  }

  /** A body waits for 'drain' on `stream`. */
  waitForDrain(stream: ClientStream): void {
    this.draining.add(stream);
    if (!this.flushScheduled && stream.writable()) queueMicrotask(this.wakeDrains);
  }

  private readonly wakeDrains = (): void => {
    if (this.draining.size === 0) return;
    for (const s of this.draining) {
      if (s.done) this.draining.delete(s);
      else if (s.writable()) {
        this.draining.delete(s);
        s.drained();
      }
    }
  };

  /** Windows grew: pending body bytes go out as far as they now may. */
  private sendPending(): void {
    for (const s of this.blocked) {
      if (this.sendWindow <= 0) break;
      if (s.sendWindow <= 0) continue;
      const chunks = s.pendingOut ?? [];
      s.pendingOut = null;
      const end = s.pendingEnd;
      s.pendingBytes = 0;
      s.pendingEnd = false;
      this.blocked.delete(s);
      for (let i = 0; i < chunks.length; i++) this.sendData(s, chunks[i], end && i === chunks.length - 1);
      if (chunks.length === 0 && end) this.sendData(s, EMPTY, true);
    }
    this.wakeDrains();
  }

  private queue(b: Buffer): void {
    this.out.push(b);
    this.outBytes += b.length;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const out = this.out;
    if (out.length === 0 || this.socket.destroyed) return;
    this.out = [];
    this.flushes++;
    const bytes = this.outBytes;
    this.outBytes = 0;
    this.socket.write(out.length === 1 ? out[0] : Buffer.concat(out, bytes));
    if (this.draining.size > 0) this.wakeDrains();
  };

  // ---- receiving ------------------------------------------------------------------------------

  private readonly onSocketData = (chunk: Buffer): void => {
    if (this.closed) return;
    try {
      this.reader.push(chunk, this.onFrame);
    } catch (err) {
      this.connectionError(err as Error);
    }
  };

  private readonly onFrame = (type: number, flags: number, id: number, buf: Buffer, start: number, end: number): void => {
    if (this.closed) return;
    if (this.blockStream !== 0 && type !== CONTINUATION) throw new H2ProtocolError('a frame inside a header block', PROTOCOL_ERROR);
    if (!this.ready && (type !== SETTINGS || (flags & FLAG_ACK) !== 0)) throw new H2ProtocolError('the first frame is not SETTINGS', PROTOCOL_ERROR);
    // HEADERS (a head, trailers: two a call) are decoded in place; other frames get their payload as a view.
    if (type === HEADERS) return this.onHeaders(flags, id, buf, start, end);
    const payload = buf.subarray(start, end);
    switch (type) {
      case DATA:
        return this.onData(flags, id, payload);
      case CONTINUATION:
        return this.onContinuation(flags, id, payload);
      case RST_STREAM:
        return this.onRstStream(id, payload);
      case SETTINGS:
        return this.onSettings(flags, id, payload);
      case PING:
        if (id !== 0) throw new H2ProtocolError('PING on a stream', PROTOCOL_ERROR);
        if (payload.length !== 8) throw new H2ProtocolError('PING not of 8 bytes', FRAME_SIZE_ERROR);
        if ((flags & FLAG_ACK) === 0) this.queue(frame(PING, FLAG_ACK, 0, payload));
        return;
      case GOAWAY:
        return this.onGoaway(id, payload);
      case WINDOW_UPDATE:
        return this.onWindowUpdate(id, payload);
      case PUSH_PROMISE:
        throw new H2ProtocolError('PUSH_PROMISE, though our SETTINGS_ENABLE_PUSH is 0', PROTOCOL_ERROR);
      case PRIORITY:
        if (id === 0) throw new H2ProtocolError('PRIORITY on stream 0', PROTOCOL_ERROR);
        if (payload.length !== 5) throw new H2ProtocolError('PRIORITY not of 5 bytes', FRAME_SIZE_ERROR);
        return;
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  };

  /** A frame for a stream we never opened (or one the target may not open: even ids are pushes). */
  private checkKnownId(id: number, what: string): void {
    if (id === 0) throw new H2ProtocolError(`${what} on stream 0`, PROTOCOL_ERROR);
    if ((id & 1) === 0 || id >= this.nextStreamId) throw new H2ProtocolError(`${what} on stream ${id}, which we did not open`, PROTOCOL_ERROR);
  }

  private onData(flags: number, id: number, payload: Buffer): void {
    this.checkKnownId(id, 'DATA');
    const length = payload.length;
    this.recvWindow -= length;
    if (this.recvWindow < 0) throw new H2ProtocolError('DATA beyond the connection window', FLOW_CONTROL_ERROR);
    const s = this.streams.get(id);
    if (!s || s.remoteEnded) {
      // A stream that ended here (reset, aborted): its bytes are only counted.
      this.creditConnection(length);
      return;
    }
    s.recvWindow -= length;
    if (s.recvWindow < 0) {
      this.creditConnection(length);
      return this.resetStream(s, FLOW_CONTROL_ERROR, violation(`${this.settings.id} sent DATA beyond the stream's window`));
    }
    let data = payload;
    if (flags & FLAG_PADDED) {
      const pad = length > 0 ? payload[0] : 0;
      if (length === 0 || pad >= length) throw new H2ProtocolError('DATA padding longer than the frame', PROTOCOL_ERROR);
      data = payload.subarray(1, length - pad);
      // Padding counts against the windows but nobody reads it: credited at once.
      this.credit(s, length - data.length);
    }
    if (!s.responded) {
      this.creditConnection(data.length);
      return this.resetStream(s, PROTOCOL_ERROR, violation(`${this.settings.id} sent DATA before the response head`));
    }
    s.receivedLength += data.length;
    if (s.expectedLength >= 0 && s.receivedLength > s.expectedLength) {
      this.creditConnection(data.length);
      return this.resetStream(s, PROTOCOL_ERROR, new H2ClientError(`${this.settings.id} sent more body than its content-length`, 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'));
    }
    const end = (flags & FLAG_END_STREAM) !== 0;
    if (end) s.remoteEnded = true;
    if (data.length > 0) this.deliver(s, data);
    if (!end || s.done) return;
    if (s.expectedLength >= 0 && s.receivedLength !== s.expectedLength) {
      return this.resetStream(s, PROTOCOL_ERROR, new H2ClientError(`${this.settings.id} sent less body than its content-length`, 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'));
    }
    this.complete(s, null);
  }

  /** Hands body bytes to the handler, or holds them while it is paused (no credit goes back for them). */
  private deliver(s: ClientStream, data: Buffer): void {
    if (s.paused || s.held !== null) {
      (s.held ??= []).push(data);
      return;
    }
    this.credit(s, data.length);
    if (this.settings.bodyTimeout > 0) s.deadline = Date.now() + this.settings.bodyTimeout;
    if (s.handler.onData?.(data) === false && !s.done) {
      s.paused = true;
      s.deadline = 0;
    }
  }

  /** The handler resumed: held bytes go to it (until it pauses again), then the held end. */
  resumed(s: ClientStream): void {
    const held = s.held;
    while (held !== null && held.length > 0 && !s.paused && !s.done) {
      const chunk = held.shift()!;
      this.credit(s, chunk.length);
      if (s.handler.onData?.(chunk) === false) s.paused = true;
    }
    if (s.done || s.paused) return;
    s.held = null;
    if (s.heldEnd !== undefined) return this.complete(s, s.heldEnd);
    if (this.settings.bodyTimeout > 0 && s.responded) {
      s.deadline = Date.now() + this.settings.bodyTimeout;
      if (this.timer === undefined) this.timer = setInterval(this.sweep, this.tick).unref();
    }
  }

  /** Returns window to the target for bytes the handler took, in halves of the window. */
  private credit(s: ClientStream, n: number): void {
    if (!s.remoteEnded) {
      s.unacked += n;
      if (s.unacked >= this.settings.streamWindow >>> 1) {
        this.queue(windowUpdateFrame(s.id, s.unacked));
        s.recvWindow += s.unacked;
        s.unacked = 0;
      }
    }
    this.creditConnection(n);
  }

  private creditConnection(n: number): void {
    this.recvUnacked += n;
    if (this.recvUnacked >= this.settings.connectionWindow >>> 1) {
      this.queue(windowUpdateFrame(0, this.recvUnacked));
      this.recvWindow += this.recvUnacked;
      this.recvUnacked = 0;
    }
  }

  /** A HEADERS frame whose payload is buf[payloadStart, payloadEnd). */
  private onHeaders(flags: number, id: number, buf: Buffer, payloadStart: number, payloadEnd: number): void {
    this.checkKnownId(id, 'HEADERS');
    const length = payloadEnd - payloadStart;
    let start = 0;
    let pad = 0;
    if (flags & FLAG_PADDED) {
      if (length === 0) throw new H2ProtocolError('HEADERS padded without a pad length', FRAME_SIZE_ERROR);
      pad = buf[payloadStart];
      start = 1;
    }
    if (flags & FLAG_PRIORITY) start += 5;
    if (start + pad > length) throw new H2ProtocolError('HEADERS padding longer than the frame', PROTOCOL_ERROR);
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    if (flags & FLAG_END_HEADERS) return this.onHeaderBlock(id, buf, payloadStart + start, payloadEnd - pad, endStream);
    const fragment = buf.subarray(payloadStart + start, payloadEnd - pad);
    this.blockStream = id;
    this.blockParts = [fragment];
    this.blockBytes = fragment.length;
    this.blockEndStream = endStream;
    this.checkBlockSize();
  }

  private onContinuation(flags: number, id: number, payload: Buffer): void {
    if (this.blockStream === 0 || id !== this.blockStream) throw new H2ProtocolError('CONTINUATION without the HEADERS before it', PROTOCOL_ERROR);
    this.blockParts.push(payload);
    this.blockBytes += payload.length;
    this.checkBlockSize();
    if ((flags & FLAG_END_HEADERS) === 0) return;
    const block = Buffer.concat(this.blockParts, this.blockBytes);
    this.blockStream = 0;
    this.blockParts = [];
    this.onHeaderBlock(id, block, 0, block.length, this.blockEndStream);
  }

  private checkBlockSize(): void {
    if (this.blockParts.length > MAX_CONTINUATIONS) throw new H2ProtocolError(`a header block in more than ${MAX_CONTINUATIONS} frames`, ENHANCE_YOUR_CALM);
    if (this.blockBytes > 2 * this.settings.maxHeaderListSize) throw new H2ProtocolError(`a header block of more than ${2 * this.settings.maxHeaderListSize} bytes`, ENHANCE_YOUR_CALM);
  }

  /** The header block in block[start, end). */
  private onHeaderBlock(id: number, block: Buffer, start: number, end: number, endStream: boolean): void {
    // Decoded even for a stream that ended here: the dynamic table follows every block.
    const fields = this.decoder.decode(block, start, end);
    const s = this.streams.get(id);
    if (!s || s.remoteEnded) return;
    if (this.decoder.oversize) {
      return this.resetStream(s, CANCEL, new H2ClientError(`${this.settings.id} sent a response header list larger than ${this.settings.maxHeaderListSize} bytes`, 'UND_ERR_HEADERS_OVERFLOW'));
    }
    if (this.decoder.invalid !== null) return this.malformed(s, `a response with ${this.decoder.invalid}`);
    if (s.responded) return this.onTrailers(s, fields, endStream);
    // :status leads the block (a pseudo-header anywhere else is malformed); the fields after it
    // are handed over as they are, in the decoder's own list.
    if (fields.length === 0 || fields[0] !== ':status') return this.malformed(s, headFlaw(fields));
    const status = statusOf(fields[1]);
    let contentLength = -1;
    for (let i = 2; i < fields.length; i += 2) {
      const name = fields[i];
      const value = fields[i + 1];
      if (name.charCodeAt(0) === 58) return this.malformed(s, `a response with the pseudo-header ${name} misplaced`);
      if (connectionSpecific(name)) return this.malformed(s, `a response with the connection-specific field ${name}`);
      if (name === 'content-length') {
        if (!/^[0-9]{1,15}$/.test(value) || (contentLength >= 0 && Number(value) !== contentLength)) return this.malformed(s, 'a response with an invalid content-length');
        contentLength = Number(value);
      }
    }
    if (status <= 0) return this.malformed(s, 'a response without a valid :status');
    // Left-trimmed in place (no new array): the handler gets the rest.
    fields.shift();
    fields.shift();
    const raw = fields;
    if (status < 200) {
      // 1xx (100 Continue, 103 Early Hints): passed on, the final response follows. 101 has no place in HTTP/2.
      if (endStream || status === 101) return this.malformed(s, `a ${status} response that ends the stream`);
      s.handler.onHeaders?.(status, raw as unknown as Buffer[], noop, '');
      return;
    }
    s.responded = true;
    if (!s.noBody && status !== 204 && status !== 304) s.expectedLength = contentLength;
    const { bodyTimeout } = this.settings;
    s.deadline = bodyTimeout > 0 ? Date.now() + bodyTimeout : 0;
    if (bodyTimeout > 0 && this.timer === undefined) this.timer = setInterval(this.sweep, this.tick).unref();
    if (endStream) s.remoteEnded = true;
    if (s.handler.onHeaders?.(status, raw as unknown as Buffer[], s.resume, '') === false && !s.done) {
      s.paused = true;
      s.deadline = 0;
    }
    if (!endStream || s.done) return;
    if (s.expectedLength > 0) return this.resetStream(s, PROTOCOL_ERROR, new H2ClientError(`${this.settings.id} sent less body than its content-length`, 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'));
    this.complete(s, null);
  }

  private onTrailers(s: ClientStream, fields: string[], endStream: boolean): void {
    if (!endStream) return this.malformed(s, 'a second header block that does not end the stream');
    s.remoteEnded = true;
    if (s.expectedLength >= 0 && s.receivedLength !== s.expectedLength) {
      return this.resetStream(s, PROTOCOL_ERROR, new H2ClientError(`${this.settings.id} sent less body than its content-length`, 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH'));
    }
    const trailers: Trailers = {};
    for (let i = 0; i < fields.length; i += 2) {
      const name = fields[i];
      if (name.charCodeAt(0) === 58) return this.malformed(s, `trailers with the pseudo-header ${name}`);
      if (connectionSpecific(name)) return this.malformed(s, `trailers with the connection-specific field ${name}`);
      const had = trailers[name];
      const value = fields[i + 1];
      trailers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
    }
    this.complete(s, trailers);
  }

  private malformed(s: ClientStream, what: string): void {
    this.resetStream(s, PROTOCOL_ERROR, violation(`${this.settings.id} sent ${what}`));
  }

  private onRstStream(id: number, payload: Buffer): void {
    this.checkKnownId(id, 'RST_STREAM');
    if (payload.length !== 4) throw new H2ProtocolError('RST_STREAM not of 4 bytes', FRAME_SIZE_ERROR);
    const s = this.streams.get(id);
    if (!s || s.done) return;
    const code = payload.readUInt32BE(0);
    if (code === NO_ERROR && s.remoteEnded) return; // the response is whole; only our request was cut short
    // A refused stream was not processed (RFC 9113 §8.7): it may go again anywhere.
    const err = code === REFUSED_STREAM ? this.unprocessed(s, `${this.settings.id} refused the stream (REFUSED_STREAM)`) : new H2ClientError(`${this.settings.id} reset the stream (RST_STREAM ${code}) before the response was complete`, 'ECONNRESET');
    this.fail(s, err);
  }

  /** The error for a request the target did not process: one sent again costs nothing when its body is still at hand. */
  private unprocessed(s: ClientStream, message: string): Error {
    return new H2ClientError(message, s.replayable ? NOT_PROCESSED : 'ECONNRESET');
  }

  private onSettings(flags: number, id: number, payload: Buffer): void {
    if (id !== 0) throw new H2ProtocolError('SETTINGS on a stream', PROTOCOL_ERROR);
    if (flags & FLAG_ACK) {
      if (payload.length !== 0) throw new H2ProtocolError('SETTINGS ACK with a payload', FRAME_SIZE_ERROR);
      this.settingsDeadline = 0;
      return;
    }
    if (payload.length % 6 !== 0) throw new H2ProtocolError('SETTINGS not a multiple of 6 bytes', FRAME_SIZE_ERROR);
    // A target whose first SETTINGS set no stream limit has none (RFC 9113 §6.5.2: unlimited
    // until set); node:http2 and grpc-js servers say nothing by default. Kept at 100, every
    // call past the hundredth opened another connection to a server that takes them all on one.
    if (!this.ready) this.peerMaxStreams = UNANNOUNCED_MAX_STREAMS;
    for (let i = 0; i < payload.length; i += 6) {
      const key = payload.readUInt16BE(i);
      const value = payload.readUInt32BE(i + 2);
      switch (key) {
        case SETTINGS_HEADER_TABLE_SIZE:
          this.encoder.setTableSize(value);
          break;
        case SETTINGS_ENABLE_PUSH:
          // A server may not enable push on its client (RFC 9113 §6.5.2).
          if (value !== 0) throw new H2ProtocolError(`SETTINGS_ENABLE_PUSH ${value} from a server`, PROTOCOL_ERROR);
          break;
        case SETTINGS_MAX_CONCURRENT_STREAMS:
          this.peerMaxStreams = value;
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new H2ProtocolError(`SETTINGS_INITIAL_WINDOW_SIZE ${value}`, FLOW_CONTROL_ERROR);
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          for (const s of this.streams.values()) {
            s.sendWindow += delta;
            if (s.sendWindow > MAX_WINDOW) throw new H2ProtocolError('SETTINGS_INITIAL_WINDOW_SIZE overflows a window', FLOW_CONTROL_ERROR);
          }
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 0xffffff) throw new H2ProtocolError(`SETTINGS_MAX_FRAME_SIZE ${value}`, PROTOCOL_ERROR);
          this.peerMaxFrame = value;
          break;
        case SETTINGS_MAX_HEADER_LIST_SIZE:
          // Advisory (RFC 9113 §6.5.2), but a target that says it would refuse a larger list: not sent to it.
          this.peerMaxHeaderList = value;
          break;
        default:
          // Unknown settings are ignored.
          break;
      }
    }
    this.queue(frame(SETTINGS, FLAG_ACK, 0));
    if (!this.ready) {
      this.ready = true;
      this.owner.ready(this);
    } else this.owner.room(this);
    this.sendPending();
  }

  private onGoaway(id: number, payload: Buffer): void {
    if (id !== 0) throw new H2ProtocolError('GOAWAY on a stream', PROTOCOL_ERROR);
    if (payload.length < 8) throw new H2ProtocolError('GOAWAY shorter than 8 bytes', FRAME_SIZE_ERROR);
    const last = payload.readUInt32BE(0) & MAX_WINDOW;
    const code = payload.readUInt32BE(4);
    const message = `${this.settings.id} is going away (GOAWAY ${code})`;
    // Streams above the last one it processed never reached its application: safe to send again.
    for (const s of [...this.streams.values()]) if (s.id > last) this.fail(s, this.unprocessed(s, `${message}: stream ${s.id} was not processed`));
    this.retire(new H2ClientError(message, 'ECONNRESET'));
  }

  private onWindowUpdate(id: number, payload: Buffer): void {
    if (payload.length !== 4) throw new H2ProtocolError('WINDOW_UPDATE not of 4 bytes', FRAME_SIZE_ERROR);
    const increment = payload.readUInt32BE(0) & MAX_WINDOW;
    if (id === 0) {
      if (increment === 0) throw new H2ProtocolError('WINDOW_UPDATE of 0', PROTOCOL_ERROR);
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new H2ProtocolError('WINDOW_UPDATE past 2^31-1', FLOW_CONTROL_ERROR);
    } else {
      this.checkKnownId(id, 'WINDOW_UPDATE');
      const s = this.streams.get(id);
      if (!s || s.done) return;
      if (increment === 0) return this.malformed(s, 'a WINDOW_UPDATE of 0');
      s.sendWindow += increment;
      if (s.sendWindow > MAX_WINDOW) return this.resetStream(s, FLOW_CONTROL_ERROR, violation(`${this.settings.id} sent a WINDOW_UPDATE past 2^31-1`));
    }
    if (this.blocked.size > 0) this.sendPending();
    else if (this.draining.size > 0) this.wakeDrains();
  }

  // ---- ending streams -------------------------------------------------------------------------

  private complete(s: ClientStream, trailers: Trailers | null): void {
    if (s.done) return;
    if (s.paused || s.held !== null) {
      // Held data goes to the handler first: the end waits for resume().
      s.heldEnd = trailers;
      s.deadline = 0;
      return;
    }
    // The answer came before the request ended: the rest of the request is not needed.
    if (!s.localEnded) this.queue(rstStreamFrame(s.id, NO_ERROR));
    this.finish(s);
    s.handler.onComplete?.(trailers as unknown as string[] | null);
  }

  /** Ends a stream with RST_STREAM `code` and tells the handler `err`. */
  resetStream(s: ClientStream, code: number, err: Error): void {
    if (s.done) return;
    if (!this.closed) this.queue(rstStreamFrame(s.id, code));
    this.fail(s, err);
  }

  private fail(s: ClientStream, err: Error): void {
    if (s.done) return;
    this.finish(s);
    s.handler.onError?.(err);
  }

  private finish(s: ClientStream): void {
    s.close();
    this.streams.delete(s.id);
    this.blocked.delete(s);
    this.draining.delete(s);
    if (this.closed) return;
    if (this.goingAway) {
      if (this.streams.size === 0) this.close();
    } else this.owner.room(this);
  }

  private readonly sweep = (): void => {
    const now = Date.now();
    if (this.settingsDeadline !== 0 && now >= this.settingsDeadline) return this.settingsTimedOut();
    if (this.streams.size === 0 && this.settingsDeadline === 0) {
      clearInterval(this.timer);
      this.timer = undefined;
      return;
    }
    for (const s of this.streams.values()) {
      if (s.deadline === 0 || now < s.deadline) continue;
      const err = s.responded
        ? new H2ClientError(`no response body bytes from ${this.settings.id} within timeouts.idle (${this.settings.bodyTimeout} ms)`, 'UND_ERR_BODY_TIMEOUT')
        : new H2ClientError(`no response head from ${this.settings.id} within timeouts.firstByte (${this.settings.headersTimeout} ms)`, 'UND_ERR_HEADERS_TIMEOUT');
      this.resetStream(s, CANCEL, err);
    }
  };

  // ---- ending the connection ------------------------------------------------------------------

  /** No new streams (GOAWAY, or stream ids used up); the connection closes when its last stream ends. */
  private retire(err: Error = new H2ClientError(`the connection to ${this.settings.id} used up its stream ids`, 'ECONNRESET')): void {
    if (!this.goingAway) {
      this.goingAway = true;
      this.owner.gone(this, err);
    }
    if (this.streams.size === 0) this.close();
  }

  /** The target broke HTTP/2: GOAWAY with the error, every stream fails. */
  private connectionError(err: Error): void {
    if (this.closed) return;
    const code = err instanceof H2ProtocolError ? err.h2Code : err instanceof HpackError ? COMPRESSION_ERROR : INTERNAL_ERROR;
    const message = this.ready ? `${this.settings.id} broke HTTP/2: ${err.message}` : `${this.settings.id} does not answer with HTTP/2: ${err.message}`;
    this.queue(goawayFrame(0, code, err.message));
    this.flush();
    this.shutDown(code === INTERNAL_ERROR ? new H2ClientError(message, 'UND_ERR_SOCKET', { cause: err }) : violation(message));
    this.socket.end();
    // A target that does not close its side is not waited for.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /**
   * Our SETTINGS went unacknowledged (RFC 9113 §6.5.3): GOAWAY SETTINGS_TIMEOUT. Frames still
   * queued are dropped, so a stream whose HEADERS were among them never reached the target and
   * fails as not processed; the others fail as a broken connection (the proxy sends them again
   * only when that is safe for a request the target may have seen).
   */
  private settingsTimedOut(): void {
    if (this.closed) return;
    const message = `${this.settings.id} did not acknowledge our SETTINGS within ${this.settings.settingsTimeout} ms`;
    const unsent = [...this.streams.values()].filter((s) => s.headersFlush === this.flushes);
    this.out = [];
    this.outBytes = 0;
    this.queue(goawayFrame(0, SETTINGS_TIMEOUT, 'no SETTINGS ACK'));
    this.flush();
    this.closed = true;
    if (!this.goingAway) {
      this.goingAway = true;
      this.owner.gone(this, new H2ClientError(message, 'ECONNRESET'));
    }
    for (const s of unsent) this.fail(s, this.unprocessed(s, `${message}: stream ${s.id} was not sent`));
    this.shutDown(new H2ClientError(message, 'ECONNRESET'));
    this.socket.end();
    // A target that does not close its side is not waited for.
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  /** The socket failed or closed. */
  private lost(err: Error): void {
    if (this.closed) return;
    const code = (err as NodeJS.ErrnoException).code;
    this.shutDown(typeof code === 'string' ? err : new H2ClientError(`the connection to ${this.settings.id} failed: ${err.message}`, 'ECONNRESET', { cause: err }));
    this.socket.destroy();
  }

  /** Closed by the pool (config replaced, yard stopping). */
  destroy(): void {
    if (this.closed) return;
    this.shutDown(new H2ClientError('the pool is closed', 'UND_ERR_DESTROYED'));
    this.socket.destroy();
  }

  private close(): void {
    if (this.closed) return;
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.flush();
    this.socket.end();
    setTimeout(() => this.socket.destroy(), 1000).unref();
  }

  private shutDown(err: Error): void {
    this.closed = true;
    if (this.timer !== undefined) clearInterval(this.timer);
    this.timer = undefined;
    if (!this.goingAway) {
      this.goingAway = true;
      this.owner.gone(this, err);
    }
    const streams = [...this.streams.values()];
    for (const s of streams) this.fail(s, err);
  }
}

/** HPACK's per-field overhead in SETTINGS_MAX_HEADER_LIST_SIZE's count (RFC 9113 §6.5.2). */
const FIELD_OVERHEAD = 32;

/** A request's header list as SETTINGS_MAX_HEADER_LIST_SIZE counts it: names and values uncompressed, 32 bytes per field, pseudo-headers included. */
function headerListSize(head: RequestHead): number {
  let size = ':method'.length + head.method.length + ':scheme'.length + head.scheme.length + ':path'.length + head.path.length + ':authority'.length + head.authority.length + 4 * FIELD_OVERHEAD;
  const h = head.headers;
  for (let i = 0; i < h.length; i += 2) size += h[i].length + h[i + 1].length + FIELD_OVERHEAD;
  return size;
}

/**
 * A field HTTP/2 forbids in any message (RFC 9113 §8.2.2): it belongs to an HTTP/1.1 connection.
 * Compared by length first: one or two string compares for most names.
 */
function connectionSpecific(name: string): boolean {
  switch (name.length) {
    case 7:
      return name === 'upgrade';
    case 10:
      return name === 'connection' || name === 'keep-alive';
    case 16:
      return name === 'proxy-connection';
    case 17:
      return name === 'transfer-encoding';
    default:
      return false;
  }
}

/** What is wrong with a response head that does not start with :status (the first flaw in order). */
function headFlaw(fields: readonly string[]): string {
  let contentLength = -1;
  for (let i = 0; i < fields.length; i += 2) {
    const name = fields[i];
    if (name.charCodeAt(0) === 58) return `a response with the pseudo-header ${name} misplaced`;
    if (connectionSpecific(name)) return `a response with the connection-specific field ${name}`;
    if (name === 'content-length') {
      const value = fields[i + 1];
      if (!/^[0-9]{1,15}$/.test(value) || (contentLength >= 0 && Number(value) !== contentLength)) return 'a response with an invalid content-length';
      contentLength = Number(value);
    }
  }
  return 'a response without a valid :status';
}

/** A :status value as a number: three digits, the first not 0; -1 otherwise. */
function statusOf(value: string): number {
  if (value.length !== 3) return -1;
  const a = value.charCodeAt(0) - 48;
  const b = value.charCodeAt(1) - 48;
  const c = value.charCodeAt(2) - 48;
  if (a < 1 || a > 9 || b < 0 || b > 9 || c < 0 || c > 9) return -1;
  return a * 100 + b * 10 + c;
}

function violation(message: string): H2ClientError {
  return new H2ClientError(message, PROTOCOL_VIOLATION);
}

const EMPTY = Buffer.alloc(0);

import type { Duplex } from 'node:stream';
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
  STREAM_CLOSED,
  WINDOW_UPDATE,
} from '../../../protocol/h2/frames.ts';
import { HpackDecoder, HpackEncoder, HpackError } from '../../../protocol/h2/hpack.ts';
import { StreamTable } from '../../../protocol/h2/stream-table.ts';
import { FrameOutput } from './output.ts';
import { checkRequestFields, checkTrailerFields, type FieldList } from './fields.ts';
import { encodeFields, type OutgoingFields } from './encode.ts';
import { H2ServerStream, SendState } from './stream.ts';
import { contentLengthOf } from './fields.ts';

// One HTTP/2 connection, server side (RFC 9113): the preface, SETTINGS, a frame loop over the
// socket's chunks, request header blocks (HPACK, CONTINUATION bounded), the stream table, flow
// control both ways, PING, GOAWAY, RST_STREAM. Everything written in one tick leaves in one socket
// write (output.ts). The HTTP semantics (what a request means) are the listener's: this file
// hands it streams with their validated header lists.

const SETTINGS_ENABLE_CONNECT_PROTOCOL = 0x8;
/** Not a frame flag: a header block whose HEADERS made its stream depend on itself. */
const SELF_DEPENDENT = 0x100;
/** The longest name or value a header block may carry (nghttp2's bound). */
const MAX_FIELD = 64 * 1024;

export interface H2SessionOptions {
  /** SETTINGS_MAX_CONCURRENT_STREAMS: streams beyond it are refused (REFUSED_STREAM). */
  readonly maxConcurrentStreams: number;
  /** SETTINGS_INITIAL_WINDOW_SIZE: what a client may send on a stream before we read it. */
  readonly initialWindowSize: number;
  /** The connection's receive window (raised from 65,535 by a WINDOW_UPDATE at the start). */
  readonly connectionWindowSize: number;
  /** SETTINGS_MAX_HEADER_LIST_SIZE (names, values and 32 per field). */
  readonly maxHeaderListSize: number;
  /** Header fields per request at most (pseudo-header fields count). */
  readonly maxHeaderFields: number;
  /** RFC 8441: SETTINGS_ENABLE_CONNECT_PROTOCOL, extended CONNECT (:protocol). */
  readonly enableConnectProtocol: boolean;
  /** CONTINUATION frames one header block may take; the next one ends the connection. */
  readonly maxContinuations: number;
  /** Refused streams (REFUSED_STREAM) and invalid frames a session may cause; past that, GOAWAY. */
  readonly maxRejectedStreams: number;
  /** Bytes of output queued (not taken by the socket) beyond which no more is made: data waits, a flood of control frames ends the session. */
  readonly maxQueuedOutput: number;
}

export const DEFAULT_SESSION_OPTIONS: H2SessionOptions = {
  maxConcurrentStreams: 100,
  initialWindowSize: DEFAULT_WINDOW,
  connectionWindowSize: DEFAULT_WINDOW,
  maxHeaderListSize: 64 * 1024,
  maxHeaderFields: 128,
  enableConnectProtocol: false,
  maxContinuations: 8,
  maxRejectedStreams: 100,
  maxQueuedOutput: 1 << 20,
};

/** What a session tells its owner. */
export interface H2SessionHandler {
  /** A new stream with its request header list (validated; [name, value, ...]). */
  onStream(stream: H2ServerStream, fields: FieldList): void;
  /** A stream closed (after its 'close' is scheduled). */
  onStreamClose?(stream: H2ServerStream): void;
  /** An RST_STREAM from the client (after the stream is closed, if it was open). */
  onPeerReset?(code: number): void;
  /** A PING from the client (not an ACK). */
  onPing?(): void;
  /** A SETTINGS frame from the client (not an ACK). */
  onSettings?(): void;
  /** The session is over: the socket is closed or being closed. */
  onClose?(): void;
  /** A connection error we detected (sent as GOAWAY) or the socket's error. */
  onError?(err: Error): void;
}

/** A connection error: GOAWAY with `code`, then the connection ends. */
export class H2ConnectionError extends Error {
  constructor(
    message: string,
    readonly h2Code: number,
  ) {
    super(message);
    this.name = 'H2ConnectionError';
  }
}

const enum Phase {
  Preface,
  Frames,
  /** GOAWAY sent for an error or destroy: input is dropped. */
  Dead,
}

export class H2ServerSession {
  readonly streams: StreamTable<H2ServerStream>;
  /** Streams counted against SETTINGS_MAX_CONCURRENT_STREAMS. */
  openStreams = 0;
  /** Highest stream id the client opened (or we refused): GOAWAY's last stream id. */
  lastStreamId = 0;
  readonly out: FrameOutput;
  private phase = Phase.Preface;
  private prefaceSeen = 0;
  /** Bytes of an incomplete frame kept from the last chunk. */
  private rest: Buffer | null = null;
  private readonly decoder: HpackDecoder;
  readonly encoder = new HpackEncoder();

  // The header block being received (HEADERS without END_HEADERS, then CONTINUATION).
  private blockStream = 0;
  private blockFlags = 0;
  private blockParts: Buffer[] = [];
  private blockBytes = 0;
  private blockContinuations = 0;

  // Flow control. Send: what the client lets us send; receive: what we let it send.
  sendWindow = DEFAULT_WINDOW;
  peerInitialWindow = DEFAULT_WINDOW;
  peerMaxFrameSize = DEFAULT_MAX_FRAME_SIZE;
  private recvWindow = DEFAULT_WINDOW;
  private recvConsumed = 0;
  private readonly recvWindowSize: number;
  /** Our SETTINGS acknowledged: the client is held to them. */
  settingsAcked = false;

  /** Streams with data (or an end) queued and a window to send it in, in turn. */
  private sendQueue: H2ServerStream[] = [];
  private inRead = false;
  private flushScheduled = false;
  /** The socket did not take the last write: no DATA is made until it drains. */
  private socketBlocked = false;
  private rejected = 0;
  goawaySent = false;
  closed = false;
  destroyed = false;
  /** The session has no more streams to open: close once the last stream closes. */
  private closing = false;
  /** When a frame last came or went (Date.now()): the listener's idle sweep reads it. */
  lastActivity = Date.now();

  constructor(
    readonly socket: Duplex,
    readonly options: H2SessionOptions,
    private readonly handler: H2SessionHandler,
  ) {
    this.streams = new StreamTable(options.maxConcurrentStreams);
    this.out = new FrameOutput(socket);
    // Lists up to 64 KiB are decoded whatever the limit (a client may send a larger one before it
    // has our SETTINGS: the listener answers 431 then); a name or value above 64 KiB ends the
    // connection (COMPRESSION_ERROR), as nghttp2 did.
    this.decoder = new HpackDecoder(4096, Math.max(options.maxHeaderListSize, MAX_FIELD), MAX_FIELD);
    this.recvWindowSize = Math.min(MAX_WINDOW, Math.max(DEFAULT_WINDOW, options.connectionWindowSize));
    this.writeSettings();
    if (this.recvWindowSize > DEFAULT_WINDOW) {
      this.out.word(WINDOW_UPDATE, 0, this.recvWindowSize - DEFAULT_WINDOW);
      this.recvWindow = this.recvWindowSize;
    }
    socket.on('data', (chunk: Buffer) => this.onData(chunk));
    socket.on('drain', () => this.onDrain());
    socket.on('error', (err: Error) => this.handler.onError?.(err));
    socket.on('close', () => this.onSocketClose());
    socket.on('end', () => this.onSocketEnd());
    this.flush();
    // A socket handed over paused (its first bytes looked at and put back) flows from here.
    socket.resume();
  }

  private writeSettings(): void {
    const o = this.options;
    const entries: [number, number][] = [
      [SETTINGS_MAX_CONCURRENT_STREAMS, o.maxConcurrentStreams],
      [SETTINGS_INITIAL_WINDOW_SIZE, o.initialWindowSize],
      [SETTINGS_MAX_HEADER_LIST_SIZE, o.maxHeaderListSize],
      [SETTINGS_ENABLE_PUSH, 0],
    ];
    if (o.enableConnectProtocol) entries.push([SETTINGS_ENABLE_CONNECT_PROTOCOL, 1]);
    this.out.header(entries.length * 6, SETTINGS, 0, 0);
    const b = this.out.reserve(entries.length * 6);
    let p = this.out.pos;
    for (const [id, value] of entries) {
      b.writeUInt16BE(id, p);
      b.writeUInt32BE(value, p + 2);
      p += 6;
    }
    this.out.pos = p;
  }

  // ---------------------------------------------------------------------------------------------
  // Input

  private onData(chunk: Buffer): void {
    if (this.phase === Phase.Dead) return;
    this.lastActivity = Date.now();
    this.inRead = true;
    try {
      this.read(chunk);
    } catch (err) {
      if (err instanceof H2ConnectionError) this.fail(err);
      else if (err instanceof HpackError) this.fail(new H2ConnectionError(err.message, COMPRESSION_ERROR));
      else {
        this.inRead = false;
        // The GOAWAY says no more than that (the error itself is thrown on, with its stack).
        this.fail(new H2ConnectionError('internal error', INTERNAL_ERROR));
        throw err;
      }
    }
    this.inRead = false;
    this.flush();
  }

  private read(chunk: Buffer): void {
    let buf = chunk;
    let pos = 0;
    if (this.phase === Phase.Preface) {
      while (this.prefaceSeen < PREFACE.length && pos < buf.length) {
        if (buf[pos] !== PREFACE[this.prefaceSeen]) throw new H2ConnectionError('not the HTTP/2 connection preface', PROTOCOL_ERROR);
        pos++;
        this.prefaceSeen++;
      }
      if (this.prefaceSeen < PREFACE.length) return;
      this.phase = Phase.Frames;
    }
    if (this.rest) {
      buf = Buffer.concat([this.rest, pos === 0 ? buf : buf.subarray(pos)]);
      this.rest = null;
      pos = 0;
    }
    const end = buf.length;
    while (end - pos >= FRAME_HEADER_SIZE && this.phase === Phase.Frames) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (length > DEFAULT_MAX_FRAME_SIZE) throw new H2ConnectionError(`a frame of ${length} bytes, above our SETTINGS_MAX_FRAME_SIZE`, FRAME_SIZE_ERROR);
      if (end - pos < FRAME_HEADER_SIZE + length) break;
      const type = buf[pos + 3];
      const flags = buf[pos + 4];
      const streamId = ((buf[pos + 5] & 0x7f) << 24) | (buf[pos + 6] << 16) | (buf[pos + 7] << 8) | buf[pos + 8];
      const start = pos + FRAME_HEADER_SIZE;
      pos = start + length;
      this.onFrame(type, flags, streamId, buf, start, pos);
    }
    if (pos < end && this.phase === Phase.Frames) this.rest = buf.subarray(pos);
  }

  private onFrame(type: number, flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (this.blockStream !== 0 && type !== CONTINUATION) throw new H2ConnectionError('a frame inside a header block', PROTOCOL_ERROR);
    switch (type) {
      case DATA:
        return this.onDataFrame(flags, id, buf, start, end);
      case HEADERS:
        return this.onHeaders(flags, id, buf, start, end);
      case CONTINUATION:
        return this.onContinuation(flags, id, buf, start, end);
      case SETTINGS:
        return this.onSettings(flags, id, buf, start, end);
      case WINDOW_UPDATE:
        return this.onWindowUpdate(id, buf, start, end);
      case RST_STREAM:
        return this.onRstStream(id, buf, start, end);
      case PING:
        return this.onPing(flags, id, buf, start, end);
      case PRIORITY:
        if (id === 0) throw new H2ConnectionError('PRIORITY on stream 0', PROTOCOL_ERROR);
        if (end - start !== 5) this.reject(id, FRAME_SIZE_ERROR);
        return;
      case GOAWAY:
        if (id !== 0) throw new H2ConnectionError('GOAWAY on a stream', PROTOCOL_ERROR);
        // The client goes away: streams it opened still get their responses; it opens no more.
        return;
      case PUSH_PROMISE:
        throw new H2ConnectionError('PUSH_PROMISE from a client', PROTOCOL_ERROR);
      default:
        // Unknown frame types are ignored (RFC 9113 §4.1).
        return;
    }
  }

  /** The payload without padding; throws on a bad pad length. */
  private unpad(flags: number, buf: Buffer, start: number, end: number): number {
    if (!(flags & FLAG_PADDED)) return end;
    if (end - start < 1) throw new H2ConnectionError('a padded frame without its pad length', FRAME_SIZE_ERROR);
    const pad = buf[start];
    if (pad >= end - start) throw new H2ConnectionError('padding as long as the frame', PROTOCOL_ERROR);
    return end - pad;
  }

  private onDataFrame(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new H2ConnectionError('DATA on stream 0', PROTOCOL_ERROR);
    const length = end - start;
    // The whole frame counts against the connection window, whatever becomes of it.
    if (length > this.recvWindow) throw new H2ConnectionError('DATA beyond the connection window', FLOW_CONTROL_ERROR);
    this.recvWindow -= length;
    this.consumeConnection(length);
    const stream = this.streams.get(id);
    if (!stream) {
      if (id > this.lastStreamId) throw new H2ConnectionError('DATA on an idle stream', PROTOCOL_ERROR);
      // Closed: most often one we reset while the client was still sending (RFC 9113 §5.4.2:
      // frames in flight are ignored). Not answered: a frame each way would let a client make
      // us write as much as it sends.
      return;
    }
    if (stream.remoteEnded) {
      this.resetStream(id, STREAM_CLOSED);
      return;
    }
    const dataEnd = this.unpad(flags, buf, start, end);
    const dataStart = flags & FLAG_PADDED ? start + 1 : start;
    if (length > stream.recvWindow) {
      this.resetStream(id, FLOW_CONTROL_ERROR);
      return;
    }
    stream.recvWindow -= length;
    // Padding is never read by anyone: credited back at once.
    const padding = length - (dataEnd - dataStart);
    if (padding > 0) stream.credit(padding);
    stream.receiveData(buf, dataStart, dataEnd, (flags & FLAG_END_STREAM) !== 0);
  }

  /** Connection-level receive credit is given back as soon as a frame is read (streams are bounded each by their own window). */
  private consumeConnection(n: number): void {
    this.recvConsumed += n;
    if (this.recvConsumed >= this.recvWindowSize >>> 1) {
      this.out.word(WINDOW_UPDATE, 0, this.recvConsumed);
      this.recvWindow += this.recvConsumed;
      this.recvConsumed = 0;
    }
  }

  /** Stream-level receive credit (called by the stream as its data is read). */
  sendStreamWindowUpdate(id: number, n: number): void {
    if (this.phase === Phase.Dead) return;
    this.out.word(WINDOW_UPDATE, id, n);
    this.scheduleFlush();
  }

  private onHeaders(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new H2ConnectionError('HEADERS on stream 0', PROTOCOL_ERROR);
    if ((id & 1) === 0) throw new H2ConnectionError('HEADERS on an even stream', PROTOCOL_ERROR);
    let blockStart = flags & FLAG_PADDED ? start + 1 : start;
    const blockEnd = this.unpad(flags, buf, start, end);
    if (flags & FLAG_PRIORITY) {
      blockStart += 5;
      if (blockStart > blockEnd) throw new H2ConnectionError('HEADERS too short for its priority', FRAME_SIZE_ERROR);
      // A stream depending on itself: a stream error (RFC 9113 §5.3.1), once the block is decoded.
      if ((buf.readUInt32BE(blockStart - 5) & MAX_WINDOW) === id) flags |= SELF_DEPENDENT;
    }
    if (flags & FLAG_END_HEADERS) {
      // Decoded in place (no view of the socket's chunk made per request).
      this.onHeaderBlock(id, flags, buf, blockStart, blockEnd);
      return;
    }
    this.blockStream = id;
    this.blockFlags = flags;
    this.blockParts = [Buffer.from(buf.subarray(blockStart, blockEnd))];
    this.blockBytes = blockEnd - blockStart;
    this.blockContinuations = 0;
  }

  private onContinuation(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (this.blockStream === 0 || id !== this.blockStream) throw new H2ConnectionError('CONTINUATION outside a header block', PROTOCOL_ERROR);
    if (++this.blockContinuations > this.options.maxContinuations) throw new H2ConnectionError('too many CONTINUATION frames in one header block', ENHANCE_YOUR_CALM);
    this.blockBytes += end - start;
    // A block's encoded size is bounded too (besides the CONTINUATION count): a list the decoder
    // takes never needs much more.
    if (this.blockBytes > Math.max(this.options.maxHeaderListSize, MAX_FIELD) + 2 * DEFAULT_MAX_FRAME_SIZE) throw new H2ConnectionError('a header block larger than the header list may be', ENHANCE_YOUR_CALM);
    this.blockParts.push(Buffer.from(buf.subarray(start, end)));
    if (!(flags & FLAG_END_HEADERS)) return;
    const block = Buffer.concat(this.blockParts);
    const blockFlags = this.blockFlags;
    this.blockStream = 0;
    this.blockParts = [];
    this.blockBytes = 0;
    this.onHeaderBlock(id, blockFlags, block, 0, block.length);
  }

  /** The header block in block[start, end). */
  private onHeaderBlock(id: number, flags: number, block: Buffer, start: number, end: number): void {
    // Decoded whatever becomes of the stream: the dynamic table must follow every block.
    const fields = this.decoder.decode(block, start, end);
    const endStream = (flags & FLAG_END_STREAM) !== 0;
    const stream = this.streams.get(id);
    if (stream) {
      // Trailers.
      if (stream.remoteEnded) {
        this.resetStream(id, STREAM_CLOSED);
        return;
      }
      if (!endStream || flags & SELF_DEPENDENT || this.decoder.invalid !== null || this.decoder.oversize || checkTrailerFields(fields) !== null) {
        this.resetStream(id, PROTOCOL_ERROR);
        return;
      }
      stream.receiveTrailers(fields);
      return;
    }
    if (id <= this.lastStreamId) {
      // A new request must have a higher id than any before (RFC 9113 §5.1.1); trailers for a
      // stream we reset or refused are ignored (frames in flight, §5.4.2).
      if (fields.length > 0 && fields[0].charCodeAt(0) === 0x3a) throw new H2ConnectionError('a request on a stream id already used', PROTOCOL_ERROR);
      return;
    }
    if (this.goawaySent || this.closing) {
      // Past our GOAWAY: not processed, and not counted in its last stream id.
      this.reject(id, REFUSED_STREAM);
      return;
    }
    if (this.openStreams >= this.options.maxConcurrentStreams && this.settingsAcked) {
      // nghttp2 holds this for a connection error once the client has acknowledged the limit.
      throw new H2ConnectionError('more streams than the SETTINGS_MAX_CONCURRENT_STREAMS acknowledged', PROTOCOL_ERROR);
    }
    this.lastStreamId = id;
    if (this.openStreams >= this.options.maxConcurrentStreams) {
      this.reject(id, REFUSED_STREAM);
      return;
    }
    if (this.decoder.oversize || (this.settingsAcked && listSize(fields) > this.options.maxHeaderListSize)) {
      // Over SETTINGS_MAX_HEADER_LIST_SIZE (or the field count): refused before anyone sees it.
      this.reject(id, ENHANCE_YOUR_CALM);
      return;
    }
    if (fields.length > this.options.maxHeaderFields * 2) {
      this.reject(id, ENHANCE_YOUR_CALM);
      return;
    }
    if (flags & SELF_DEPENDENT || this.decoder.invalid !== null || checkRequestFields(fields, this.options.enableConnectProtocol) !== null) {
      this.reject(id, PROTOCOL_ERROR);
      return;
    }
    const contentLength = contentLengthOf(fields);
    if (contentLength === -2 || (endStream && contentLength > 0)) {
      this.reject(id, PROTOCOL_ERROR);
      return;
    }
    const s = new H2ServerStream(this, id, this.recvInitialWindow());
    s.contentLength = contentLength;
    s.endAfterHeaders = endStream;
    s.headRequest = isHead(fields);
    this.streams.set(s);
    this.openStreams++;
    if (endStream) s.remoteEnded = true;
    this.handler.onStream(s, fields);
    if (endStream) s.afterRemoteEnd();
  }

  /** A refused stream: counted, RST_STREAM; too many end the session. */
  private reject(id: number, code: number): void {
    this.out.word(RST_STREAM, id, code);
    if (++this.rejected > this.options.maxRejectedStreams) throw new H2ConnectionError('too many refused streams', ENHANCE_YOUR_CALM);
  }

  /** A stream opened before the client acknowledged our SETTINGS may be sent the default window's worth. */
  private recvInitialWindow(): number {
    const ours = this.options.initialWindowSize;
    return this.settingsAcked ? ours : Math.max(ours, DEFAULT_WINDOW);
  }

  private onSettings(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) throw new H2ConnectionError('SETTINGS on a stream', PROTOCOL_ERROR);
    if (flags & FLAG_ACK) {
      if (end !== start) throw new H2ConnectionError('SETTINGS ACK with a payload', FRAME_SIZE_ERROR);
      this.settingsAcked = true;
      return;
    }
    if ((end - start) % 6 !== 0) throw new H2ConnectionError('SETTINGS not a multiple of 6 bytes', FRAME_SIZE_ERROR);
    for (let p = start; p < end; p += 6) {
      const key = (buf[p] << 8) | buf[p + 1];
      const value = buf.readUInt32BE(p + 2);
      switch (key) {
        case SETTINGS_HEADER_TABLE_SIZE:
          this.encoder.setTableSize(value);
          break;
        case SETTINGS_ENABLE_PUSH:
          if (value > 1) throw new H2ConnectionError('SETTINGS_ENABLE_PUSH not 0 or 1', PROTOCOL_ERROR);
          break;
        case SETTINGS_INITIAL_WINDOW_SIZE: {
          if (value > MAX_WINDOW) throw new H2ConnectionError('SETTINGS_INITIAL_WINDOW_SIZE above 2^31-1', FLOW_CONTROL_ERROR);
          const delta = value - this.peerInitialWindow;
          this.peerInitialWindow = value;
          if (delta !== 0) {
            for (const s of this.streams.values()) {
              s.sendWindow += delta;
              if (s.sendWindow > MAX_WINDOW) throw new H2ConnectionError('a stream window above 2^31-1', FLOW_CONTROL_ERROR);
              if (delta > 0) this.wantSend(s);
            }
          }
          break;
        }
        case SETTINGS_MAX_FRAME_SIZE:
          if (value < DEFAULT_MAX_FRAME_SIZE || value > 0xffffff) throw new H2ConnectionError('SETTINGS_MAX_FRAME_SIZE out of range', PROTOCOL_ERROR);
          this.peerMaxFrameSize = value;
          break;
        case SETTINGS_ENABLE_CONNECT_PROTOCOL:
          if (value > 1) throw new H2ConnectionError('SETTINGS_ENABLE_CONNECT_PROTOCOL not 0 or 1', PROTOCOL_ERROR);
          break;
        default:
          break;
      }
    }
    this.out.header(0, SETTINGS, FLAG_ACK, 0);
    this.handler.onSettings?.();
    this.checkQueued();
  }

  private onWindowUpdate(id: number, buf: Buffer, start: number, end: number): void {
    if (end - start !== 4) throw new H2ConnectionError('WINDOW_UPDATE not 4 bytes', FRAME_SIZE_ERROR);
    const increment = buf.readUInt32BE(start) & MAX_WINDOW;
    if (id === 0) {
      if (increment === 0) throw new H2ConnectionError('WINDOW_UPDATE of 0 on the connection', PROTOCOL_ERROR);
      this.sendWindow += increment;
      if (this.sendWindow > MAX_WINDOW) throw new H2ConnectionError('the connection window above 2^31-1', FLOW_CONTROL_ERROR);
      for (const s of this.streams.values()) if (s.hasQueued()) this.wantSend(s);
      return;
    }
    const stream = this.streams.get(id);
    if (!stream) {
      if (id > this.lastStreamId) throw new H2ConnectionError('WINDOW_UPDATE on an idle stream', PROTOCOL_ERROR);
      return;
    }
    if (increment === 0) return this.resetStream(id, PROTOCOL_ERROR);
    stream.sendWindow += increment;
    if (stream.sendWindow > MAX_WINDOW) return this.resetStream(id, FLOW_CONTROL_ERROR);
    stream.progress();
    if (stream.hasQueued()) this.wantSend(stream);
  }

  private onRstStream(id: number, buf: Buffer, start: number, end: number): void {
    if (id === 0) throw new H2ConnectionError('RST_STREAM on stream 0', PROTOCOL_ERROR);
    if (end - start !== 4) throw new H2ConnectionError('RST_STREAM not 4 bytes', FRAME_SIZE_ERROR);
    if (id > this.lastStreamId) throw new H2ConnectionError('RST_STREAM on an idle stream', PROTOCOL_ERROR);
    const code = buf.readUInt32BE(start);
    const stream = this.streams.get(id);
    if (stream) this.closeStream(stream, code, true);
    // Counted whether or not the stream was still open: a stream answered within the read that
    // brought its HEADERS is closed before its RST_STREAM is read, and a reset flood (rapid
    // reset) is made of such.
    this.handler.onPeerReset?.(code);
  }

  private onPing(flags: number, id: number, buf: Buffer, start: number, end: number): void {
    if (id !== 0) throw new H2ConnectionError('PING on a stream', PROTOCOL_ERROR);
    if (end - start !== 8) throw new H2ConnectionError('PING not 8 bytes', FRAME_SIZE_ERROR);
    if (flags & FLAG_ACK) return;
    this.out.frame(PING, FLAG_ACK, 0, buf, start, end);
    this.handler.onPing?.();
    this.checkQueued();
  }

  /** Control frames answered to a client that does not read pile up: past the bound, the session ends. */
  private checkQueued(): void {
    if (this.out.pending + this.socket.writableLength > this.options.maxQueuedOutput) {
      throw new H2ConnectionError('output not read by the client', ENHANCE_YOUR_CALM);
    }
  }

  // ---------------------------------------------------------------------------------------------
  // Output

  /** HEADERS (and CONTINUATION) for `stream`. */
  writeHeaders(id: number, fields: OutgoingFields, endStream: boolean, sendDate: boolean): void {
    encodeFields(this, id, fields, endStream, sendDate);
    this.scheduleFlush();
  }

  /** `stream` has data or an end to send: sent in turn as windows allow. */
  wantSend(stream: H2ServerStream): void {
    if (stream.inSendQueue) return;
    stream.inSendQueue = true;
    this.sendQueue.push(stream);
    this.scheduleFlush();
  }

  /** Makes DATA frames from the queued streams, as windows and the socket allow. */
  private pump(): void {
    const queue = this.sendQueue;
    if (queue.length === 0 || this.phase === Phase.Dead) return;
    const maxFrame = Math.min(this.peerMaxFrameSize, DEFAULT_MAX_FRAME_SIZE);
    const limit = this.options.maxQueuedOutput;
    // One frame per stream per round, so that one big response does not hold up the others. A
    // stream left in the queue after its turn has sent something: the rounds end.
    while (queue.length > 0) {
      let i = 0;
      while (i < queue.length) {
        if (this.socketBlocked || this.out.pending >= limit) return;
        const s = queue[i];
        if (s.sendSome(maxFrame) === SendState.More) i++;
        else {
          s.inSendQueue = false;
          queue.splice(i, 1);
        }
      }
    }
  }

  resetStream(id: number, code: number): void {
    const stream = this.streams.get(id);
    if (stream) this.closeStream(stream, code, false);
    else this.out.word(RST_STREAM, id, code);
    this.scheduleFlush();
  }

  /** Closes `stream`: RST_STREAM `code` unless it ended cleanly or the client reset it. */
  closeStream(stream: H2ServerStream, code: number, byPeer: boolean): void {
    if (stream.closed) return;
    if (!byPeer && (code !== NO_ERROR || !stream.remoteEnded || !stream.localEnded) && this.phase !== Phase.Dead) {
      this.out.word(RST_STREAM, stream.id, code);
      this.scheduleFlush();
    }
    this.streams.delete(stream.id);
    this.openStreams--;
    stream.onClosed(code, byPeer);
    this.handler.onStreamClose?.(stream);
    if (this.closing && this.openStreams === 0) this.endSocket(true);
  }

  scheduleFlush(): void {
    if (this.inRead || this.flushScheduled) return;
    this.flushScheduled = true;
    process.nextTick(flushSession, this);
  }

  flush(): void {
    this.flushScheduled = false;
    if (!this.socketBlocked) this.pump();
    if (this.out.pending === 0) return;
    this.lastActivity = Date.now();
    if (!this.out.flush()) this.socketBlocked = true;
  }

  /**
   * Gives back what a quiet session need not hold (the owner's idle sweep calls it for a session
   * with no frame for a while): the output slab unless bytes are pending, and an incomplete frame
   * kept from the last chunk is copied out of it (a few bytes of it would hold the whole chunk,
   * up to 64 KiB read at once). Returns the bytes given back.
   */
  trim(): number {
    let freed = 0;
    const held = this.out.held;
    if (this.out.release()) freed += held;
    const rest = this.rest;
    if (rest !== null && rest.buffer.byteLength > 2 * rest.length) {
      freed += rest.buffer.byteLength - rest.length;
      // Not from node's pool: a copy of its own size, never copied again.
      const copy = Buffer.allocUnsafeSlow(rest.length);
      rest.copy(copy);
      this.rest = copy;
    }
    return freed;
  }

  private onDrain(): void {
    this.socketBlocked = false;
    this.flush();
  }

  // ---------------------------------------------------------------------------------------------
  // Ending

  /** GOAWAY NO_ERROR: streams already open finish, new ones are refused; then the connection closes. */
  close(): void {
    if (this.closing || this.destroyed) return;
    this.closing = true;
    this.goaway(NO_ERROR, '');
    if (this.openStreams === 0) this.endSocket(true);
  }

  goaway(code: number, debug: string): void {
    if (this.goawaySent && code === NO_ERROR) return;
    this.goawaySent = true;
    const text = Buffer.from(debug.slice(0, 200), 'utf8');
    this.out.header(8 + text.length, GOAWAY, 0, 0);
    const b = this.out.reserve(8 + text.length);
    b.writeUInt32BE(this.lastStreamId, this.out.pos);
    b.writeUInt32BE(code, this.out.pos + 4);
    text.copy(b, this.out.pos + 8);
    this.out.pos += 8 + text.length;
    this.scheduleFlush();
  }

  /**
   * A connection error: GOAWAY with its code, every stream closed, the socket ended. Nothing more
   * is read (a flood of CONTINUATION or DATA frames stays in the kernel's buffers, not ours).
   */
  fail(err: H2ConnectionError): void {
    if (this.phase === Phase.Dead) return;
    this.handler.onError?.(err);
    this.destroy(err.h2Code, err.message, false);
  }

  /**
   * GOAWAY `code` (unless the socket is gone), every stream closed, the socket ended after the
   * GOAWAY is written, and closed a second later at the latest. `linger`: what the client still
   * sends meanwhile is read and dropped (so that unread bytes do not make the kernel reset the
   * connection over the GOAWAY); otherwise reading stops.
   */
  destroy(code = NO_ERROR, debug = '', linger = true): void {
    if (this.destroyed) return;
    if (!linger) this.socket.pause();
    this.destroyed = true;
    if (!this.socket.destroyed && !this.socket.writableEnded) this.goaway(code, debug);
    this.phase = Phase.Dead;
    this.rest = null;
    this.blockParts = [];
    for (const s of [...this.streams.values()]) this.closeStream(s, code === NO_ERROR ? CANCEL : code, true);
    this.sendQueue.length = 0;
    this.endSocket(false);
  }

  /**
   * Ends our side after what is written. A client that never closes its side is cut off a second
   * later: after a destroy at once (what it has not read is lost), after a graceful close once
   * everything written has left (a slow reader still gets the end of its last response; one that
   * does not read at all is the idle sweep's, whose destroy comes here again).
   */
  private endSocket(graceful: boolean): void {
    const socket = this.socket;
    if (this.out.pending > 0 && !socket.destroyed) this.out.flush();
    if (!socket.destroyed && !socket.writableEnded) socket.end();
    if (socket.destroyed) return;
    const cutOff = () => {
      const timer = setTimeout(() => socket.destroy(), 1000);
      timer.unref();
      socket.once('close', () => clearTimeout(timer));
    };
    if (graceful && !socket.writableFinished) socket.once('finish', cutOff);
    else cutOff();
  }

  private onSocketEnd(): void {
    // The client closed its side: nothing more arrives; open streams are over.
    if (!this.destroyed) this.destroy(NO_ERROR);
  }

  private onSocketClose(): void {
    if (this.closed) return;
    this.closed = true;
    this.destroyed = true;
    this.phase = Phase.Dead;
    for (const s of [...this.streams.values()]) this.closeStream(s, CANCEL, true);
    this.sendQueue.length = 0;
    this.handler.onClose?.();
  }
}

/** A header list's size as RFC 9113 §6.5.2 counts it: name and value octets plus 32 per field. */
function listSize(fields: FieldList): number {
  let n = 0;
  for (let i = 0; i < fields.length; i += 2) n += fields[i].length + fields[i + 1].length + 32;
  return n;
}

function isHead(fields: FieldList): boolean {
  for (let i = 0; i < fields.length; i += 2) if (fields[i] === ':method') return fields[i + 1] === 'HEAD';
  return false;
}

function flushSession(session: H2ServerSession): void {
  session.flush();
}

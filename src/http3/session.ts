import { EventEmitter } from 'node:events';
import type { QuicConnection } from '../quic/connection.ts';
import type { QuicStream } from '../quic/stream.ts';
import { H3, Http3Error } from './errors.ts';
import { encodeSettings, encodeVarintFrame, FRAME, FrameReader, parseSettings, parseVarintFrame, SETTING, STREAM_TYPE } from './frames.ts';
import { readVarint } from './varint.ts';

// The connection-wide part of HTTP/3 (RFC 9114 §6.2, §7; RFC 9204 §4.2), the same for server
// and client: our control stream with SETTINGS, the peer's unidirectional streams (its control
// stream, QPACK encoder and decoder streams; push streams refused, unknown types ignored),
// GOAWAY, and closing the connection with the RFC's error code when the peer breaks a rule.
// Request streams are the owner's (server.ts, client.ts): the 'request-stream' event.
//
// QPACK runs without a dynamic table (qpack.ts), so our own encoder and decoder streams would
// carry nothing: RFC 9204 §4.2 lets an endpoint not open them, and we do not. The peer's are
// read: on the encoder stream only "Set Dynamic Table Capacity 0" is allowed (we offered 0), on
// the decoder stream only Stream Cancellation (there is nothing to acknowledge).

/** Limits this side holds the peer to. */
export interface Http3Limits {
  /** SETTINGS_MAX_FIELD_SECTION_SIZE we advertise and enforce (name + value + 32 per field). */
  readonly maxFieldSectionSize: number;
  /** Most fields in one section. */
  readonly maxFields: number;
}

export interface Http3SessionEvents {
  /** A bidirectional stream the peer opened (server: a request). */
  'request-stream': [stream: QuicStream];
  /** The peer's SETTINGS arrived. */
  settings: [settings: ReadonlyMap<number, number>];
  /** The peer sent GOAWAY with this id (server: the first request stream it will not serve). */
  goaway: [id: number];
  /** The session ended the connection for a protocol error. */
  error: [err: Http3Error];
}

/** What is held of a peer unidirectional stream's first bytes before its type is known. */
const TYPE_BYTES_MAX = 8;
/** SETTINGS, GOAWAY and the like are small; a bigger control frame is refused. */
const CONTROL_FRAME_MAX = 4096;

export class Http3Session extends EventEmitter<Http3SessionEvents> {
  /** The peer's SETTINGS, once received. */
  peerSettings: ReadonlyMap<number, number> | undefined;
  /** GOAWAY sent (server: no new requests above goawayId). */
  goingAway = false;
  /** The highest peer bidirectional stream id taken (server: for GOAWAY). */
  private lastRequestId = -1;
  private control: QuicStream | undefined;
  private peerControl = false;
  private peerEncoder = false;
  private peerDecoder = false;
  private failed = false;

  constructor(
    readonly quic: QuicConnection,
    readonly role: 'server' | 'client',
    readonly limits: Http3Limits,
  ) {
    super();
  }

  /** Opens our control stream with SETTINGS and starts taking the peer's streams. */
  start(): void {
    this.quic.on('stream', (stream) => this.onPeerStream(stream));
    try {
      const control = this.quic.openUni();
      this.control = control;
      control.on('error', () => {});
      const settings = new Map<number, number>([
        [SETTING.QPACK_MAX_TABLE_CAPACITY, 0],
        [SETTING.QPACK_BLOCKED_STREAMS, 0],
        [SETTING.MAX_FIELD_SECTION_SIZE, this.limits.maxFieldSectionSize],
      ]);
      control.write(Buffer.concat([Buffer.from([STREAM_TYPE.CONTROL]), encodeSettings(settings)]));
    } catch (err) {
      this.fail(new Http3Error(H3.STREAM_CREATION_ERROR, `cannot open the control stream: ${(err as Error).message}`));
    }
  }

  /**
   * Server: GOAWAY with the first request stream id not served (RFC 9114 §5.2). Streams below it
   * finish; the connection closes once they have (the caller's to decide).
   */
  goaway(): void {
    if (this.goingAway || this.failed) return;
    this.goingAway = true;
    // Server: a client-initiated bidirectional stream id (a multiple of 4). Client: a push id,
    // and we allow no pushes, so 0.
    const next = this.role === 'server' && this.lastRequestId >= 0 ? this.lastRequestId + 4 : 0;
    this.control?.write(encodeVarintFrame(FRAME.GOAWAY, next));
  }

  /** Ends the connection for a protocol error, with the RFC's code. */
  fail(err: Http3Error): void {
    if (this.failed) return;
    this.failed = true;
    this.emit('error', err);
    void this.quic.close(err.code, err.message.slice(0, 200));
  }

  /** Runs `fn`; a protocol error it throws ends the connection (or, for a stream error, the caller's `onStreamError`). */
  guard(fn: () => void, onStreamError?: (err: Http3Error) => void): void {
    try {
      fn();
    } catch (err) {
      if (err instanceof Http3Error) {
        if (err.scope === 'stream' && onStreamError) onStreamError(err);
        else this.fail(err);
        return;
      }
      this.fail(new Http3Error(H3.INTERNAL_ERROR, (err as Error).message));
    }
  }

  private onPeerStream(stream: QuicStream): void {
    stream.on('error', () => {});
    if (stream.kind === 'bidi') {
      if (this.role === 'client') {
        // Servers open no bidirectional streams in HTTP/3 (§6.1).
        this.fail(new Http3Error(H3.STREAM_CREATION_ERROR, 'server-initiated bidirectional stream'));
        return;
      }
      if (this.goingAway) {
        stream.reset(H3.REQUEST_REJECTED);
        return;
      }
      this.lastRequestId = Math.max(this.lastRequestId, stream.id);
      this.emit('request-stream', stream);
      return;
    }
    this.readStreamType(stream);
  }

  /** The first varint of a peer unidirectional stream says what it is. */
  private readStreamType(stream: QuicStream): void {
    let head: Buffer = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      head = head.length === 0 ? chunk : Buffer.concat([head, chunk]);
      const type = readVarint(head, 0);
      if (!type) {
        if (head.length > TYPE_BYTES_MAX) this.fail(new Http3Error(H3.GENERAL_PROTOCOL_ERROR, 'bad stream type'));
        return;
      }
      stream.removeListener('data', onData);
      stream.removeListener('end', onEnd);
      const rest = head.subarray(type.length);
      this.guard(() => this.takeUniStream(stream, type.value, rest));
    };
    const onEnd = () => {
      stream.removeListener('data', onData);
    };
    stream.on('data', onData);
    stream.once('end', onEnd);
  }

  private takeUniStream(stream: QuicStream, type: number, rest: Buffer): void {
    switch (type) {
      case STREAM_TYPE.CONTROL:
        if (this.peerControl) throw new Http3Error(H3.STREAM_CREATION_ERROR, 'a second control stream');
        this.peerControl = true;
        return this.readControl(stream, rest);
      case STREAM_TYPE.QPACK_ENCODER:
        if (this.peerEncoder) throw new Http3Error(H3.STREAM_CREATION_ERROR, 'a second QPACK encoder stream');
        this.peerEncoder = true;
        return this.readCritical(stream, rest, (b) => this.encoderInstructions(b));
      case STREAM_TYPE.QPACK_DECODER:
        if (this.peerDecoder) throw new Http3Error(H3.STREAM_CREATION_ERROR, 'a second QPACK decoder stream');
        this.peerDecoder = true;
        return this.readCritical(stream, rest, (b) => this.decoderInstructions(b));
      case STREAM_TYPE.PUSH:
        // A client never pushes; a server may push only after MAX_PUSH_ID, which we never send.
        throw new Http3Error(this.role === 'server' ? H3.STREAM_CREATION_ERROR : H3.ID_ERROR, 'push stream without MAX_PUSH_ID');
      default:
        // Unknown (and reserved) stream types: read no further (§6.2).
        stream.stopSending(H3.STREAM_CREATION_ERROR);
        stream.resume();
    }
  }

  /** A stream that must stay open as long as the connection (§6.2.1): its end is an error. */
  private readCritical(stream: QuicStream, rest: Buffer, take: (bytes: Buffer) => void): void {
    const onData = (chunk: Buffer) => this.guard(() => take(chunk));
    stream.on('data', onData);
    const closed = () => {
      if (!this.failed && !this.quic.isClosed && !this.quic.isDraining) this.fail(new Http3Error(H3.CLOSED_CRITICAL_STREAM, `critical stream ${stream.id} closed`));
    };
    stream.once('end', closed);
    stream.once('close', closed);
    if (rest.length > 0) onData(rest);
  }

  private encoderBytes: Buffer = Buffer.alloc(0);

  /** The peer's QPACK encoder stream: only Set Dynamic Table Capacity 0 is acceptable. */
  private encoderInstructions(chunk: Buffer): void {
    let buf = this.encoderBytes.length === 0 ? chunk : Buffer.concat([this.encoderBytes, chunk]);
    while (buf.length > 0) {
      const b = buf[0];
      if ((b & 0xe0) !== 0x20) throw new Http3Error(H3.QPACK_ENCODER_STREAM_ERROR, 'insertion into a dynamic table of capacity 0');
      const v = prefixInt(buf, 5);
      if (v === undefined) break;
      if (v.value !== 0) throw new Http3Error(H3.QPACK_ENCODER_STREAM_ERROR, `dynamic table capacity ${v.value} over our maximum 0`);
      buf = buf.subarray(v.length);
    }
    if (buf.length > 16) throw new Http3Error(H3.QPACK_ENCODER_STREAM_ERROR, 'bad instruction');
    this.encoderBytes = Buffer.from(buf);
  }

  private decoderBytes: Buffer = Buffer.alloc(0);

  /** The peer's QPACK decoder stream: Stream Cancellation is fine; acknowledgements of nothing are errors. */
  private decoderInstructions(chunk: Buffer): void {
    let buf = this.decoderBytes.length === 0 ? chunk : Buffer.concat([this.decoderBytes, chunk]);
    while (buf.length > 0) {
      const b = buf[0];
      if (b & 0x80) throw new Http3Error(H3.QPACK_DECODER_STREAM_ERROR, 'Section Acknowledgment of a section without dynamic references');
      if ((b & 0xc0) === 0) throw new Http3Error(H3.QPACK_DECODER_STREAM_ERROR, 'Insert Count Increment with nothing inserted');
      const v = prefixInt(buf, 6);
      if (v === undefined) break;
      buf = buf.subarray(v.length);
    }
    if (buf.length > 16) throw new Http3Error(H3.QPACK_DECODER_STREAM_ERROR, 'bad instruction');
    this.decoderBytes = Buffer.from(buf);
  }

  private readControl(stream: QuicStream, rest: Buffer): void {
    let first = true;
    const reader = new FrameReader(
      {
        frame: (type, payload) => {
          if (first) {
            if (type !== FRAME.SETTINGS) throw new Http3Error(H3.MISSING_SETTINGS, 'the control stream does not start with SETTINGS');
            first = false;
            const settings = parseSettings(payload);
            this.peerSettings = settings;
            this.emit('settings', settings);
            return;
          }
          switch (type) {
            case FRAME.SETTINGS:
              throw new Http3Error(H3.FRAME_UNEXPECTED, 'a second SETTINGS');
            case FRAME.GOAWAY: {
              const id = parseVarintFrame(type, payload);
              if (this.role === 'client' && (id & 3) !== 0) throw new Http3Error(H3.ID_ERROR, 'GOAWAY with a stream id that is not a client bidirectional one');
              this.emit('goaway', id);
              return;
            }
            case FRAME.MAX_PUSH_ID:
              if (this.role === 'client') throw new Http3Error(H3.FRAME_UNEXPECTED, 'MAX_PUSH_ID from a server');
              parseVarintFrame(type, payload);
              return;
            case FRAME.CANCEL_PUSH:
              parseVarintFrame(type, payload);
              // We never promised a push, and as a client never allowed one.
              if (this.role === 'client') throw new Http3Error(H3.ID_ERROR, 'CANCEL_PUSH of a push never allowed');
              return;
            default:
              // HEADERS, PUSH_PROMISE (DATA comes to data()).
              throw new Http3Error(H3.FRAME_UNEXPECTED, `frame 0x${type.toString(16)} on the control stream`);
          }
        },
        data: () => {
          throw new Http3Error(H3.FRAME_UNEXPECTED, 'DATA on the control stream');
        },
        oversized: (type) => {
          throw new Http3Error(H3.EXCESSIVE_LOAD, `control frame 0x${type.toString(16)} too large`);
        },
      },
      CONTROL_FRAME_MAX,
    );
    const feed = (chunk: Buffer) => {
      // A frame that is not SETTINGS arriving first is MISSING_SETTINGS, whatever its type.
      if (first && reader.atBoundary && chunk.length > 0 && chunk[0] === FRAME.DATA) throw new Http3Error(H3.MISSING_SETTINGS, 'the control stream does not start with SETTINGS');
      reader.push(chunk);
    };
    this.readCritical(stream, rest, feed);
  }
}

/** An N-bit prefix integer (RFC 7541 §5.1) at the start of `buf`, or undefined when cut. */
function prefixInt(buf: Buffer, bits: number): { value: number; length: number } | undefined {
  const max = (1 << bits) - 1;
  let value = buf[0] & max;
  if (value < max) return { value, length: 1 };
  let shift = 0;
  for (let i = 1; i < buf.length && i < 8; i++) {
    value += (buf[i] & 0x7f) * 2 ** shift;
    shift += 7;
    if ((buf[i] & 0x80) === 0) return { value, length: i + 1 };
  }
  return undefined;
}

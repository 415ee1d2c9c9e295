import { H2ProtocolError } from './errors.ts';

// HTTP/2 framing (RFC 9113 §4, §6), shared by both ends (the upstream client, src/upstream/h2/,
// and the listener's engine, src/listeners/http/h2-engine/): the constants, the frames written,
// and a reader that cuts the peer's bytes into frames no larger than the size we advertised.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_SIZE = 9;

export const DATA = 0x0;
export const HEADERS = 0x1;
export const PRIORITY = 0x2;
export const RST_STREAM = 0x3;
export const SETTINGS = 0x4;
export const PUSH_PROMISE = 0x5;
export const PING = 0x6;
export const GOAWAY = 0x7;
export const WINDOW_UPDATE = 0x8;
export const CONTINUATION = 0x9;

export const FLAG_END_STREAM = 0x1;
export const FLAG_ACK = 0x1;
export const FLAG_END_HEADERS = 0x4;
export const FLAG_PADDED = 0x8;
export const FLAG_PRIORITY = 0x20;

export const NO_ERROR = 0x0;
export const PROTOCOL_ERROR = 0x1;
export const INTERNAL_ERROR = 0x2;
export const FLOW_CONTROL_ERROR = 0x3;
export const SETTINGS_TIMEOUT = 0x4;
export const STREAM_CLOSED = 0x5;
export const FRAME_SIZE_ERROR = 0x6;
export const REFUSED_STREAM = 0x7;
export const CANCEL = 0x8;
export const COMPRESSION_ERROR = 0x9;
export const ENHANCE_YOUR_CALM = 0xb;

export const SETTINGS_HEADER_TABLE_SIZE = 0x1;
export const SETTINGS_ENABLE_PUSH = 0x2;
export const SETTINGS_MAX_CONCURRENT_STREAMS = 0x3;
export const SETTINGS_INITIAL_WINDOW_SIZE = 0x4;
export const SETTINGS_MAX_FRAME_SIZE = 0x5;
export const SETTINGS_MAX_HEADER_LIST_SIZE = 0x6;

/** The largest flow-control window (and WINDOW_UPDATE sum) HTTP/2 allows: 2^31 - 1. */
export const MAX_WINDOW = 0x7fffffff;
/** The window every stream and the connection start with (RFC 9113 §6.9.2). */
export const DEFAULT_WINDOW = 65535;
/** SETTINGS_MAX_FRAME_SIZE's default and floor. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;

export function writeFrameHeader(out: Buffer, pos: number, length: number, type: number, flags: number, streamId: number): void {
  out[pos] = length >>> 16;
  out[pos + 1] = (length >>> 8) & 0xff;
  out[pos + 2] = length & 0xff;
  out[pos + 3] = type;
  out[pos + 4] = flags;
  out.writeUInt32BE(streamId, pos + 5);
}

export function frame(type: number, flags: number, streamId: number, payload?: Buffer): Buffer {
  const length = payload ? payload.length : 0;
  const f = Buffer.allocUnsafe(FRAME_HEADER_SIZE + length);
  writeFrameHeader(f, 0, length, type, flags, streamId);
  if (payload) payload.copy(f, FRAME_HEADER_SIZE);
  return f;
}

/** A frame whose payload is one 32-bit number (RST_STREAM's code, WINDOW_UPDATE's increment). */
function frameWithWord(type: number, streamId: number, word: number): Buffer {
  const f = Buffer.allocUnsafe(FRAME_HEADER_SIZE + 4);
  writeFrameHeader(f, 0, 4, type, 0, streamId);
  f.writeUInt32BE(word, FRAME_HEADER_SIZE);
  return f;
}

export const rstStreamFrame = (streamId: number, code: number): Buffer => frameWithWord(RST_STREAM, streamId, code);
export const windowUpdateFrame = (streamId: number, increment: number): Buffer => frameWithWord(WINDOW_UPDATE, streamId, increment);

export function settingsFrame(entries: readonly (readonly [number, number])[]): Buffer {
  const payload = Buffer.allocUnsafe(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(SETTINGS, 0, 0, payload);
}

export function goawayFrame(lastStreamId: number, code: number, debug: string): Buffer {
  const text = Buffer.from(debug.slice(0, 200), 'utf8');
  const payload = Buffer.allocUnsafe(8 + text.length);
  payload.writeUInt32BE(lastStreamId, 0);
  payload.writeUInt32BE(code, 4);
  text.copy(payload, 8);
  return frame(GOAWAY, 0, 0, payload);
}

/**
 * A frame's payload is buf[start, end) (no view made per frame: a HEADERS block is decoded in
 * place); `buf` is valid only during the call, unless kept as a view.
 */
export type FrameListener = (type: number, flags: number, streamId: number, buf: Buffer, start: number, end: number) => void;

/**
 * Cuts bytes from the socket into frames. At most one partial frame is kept between reads, and a
 * frame longer than our SETTINGS_MAX_FRAME_SIZE is refused before its payload is buffered.
 */
export class FrameReader {
  private rest: Buffer | null = null;

  constructor(private readonly maxFrameSize: number) {}

  /** Calls `onFrame` for every whole frame in what has arrived; throws H2ProtocolError on an oversize frame. */
  push(chunk: Buffer, onFrame: FrameListener): void {
    let buf = chunk;
    if (this.rest) {
      buf = Buffer.concat([this.rest, chunk]);
      this.rest = null;
    }
    let pos = 0;
    const end = buf.length;
    while (end - pos >= FRAME_HEADER_SIZE) {
      const length = (buf[pos] << 16) | (buf[pos + 1] << 8) | buf[pos + 2];
      if (length > this.maxFrameSize) throw new H2ProtocolError(`a frame of ${length} bytes, above our SETTINGS_MAX_FRAME_SIZE of ${this.maxFrameSize}`, FRAME_SIZE_ERROR);
      if (end - pos < FRAME_HEADER_SIZE + length) break;
      const streamId = buf.readUInt32BE(pos + 5) & MAX_WINDOW;
      const start = pos + FRAME_HEADER_SIZE;
      pos = start + length;
      onFrame(buf[start - 6], buf[start - 5], streamId, buf, start, pos);
    }
    if (pos < end) this.rest = buf.subarray(pos);
  }
}

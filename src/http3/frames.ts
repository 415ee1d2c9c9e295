import { H3, Http3Error } from './errors.ts';
import { readVarint, varintLength, writeVarint } from './varint.ts';

// HTTP/3 frames (RFC 9114 §7): a varint type, a varint length, the payload. FrameReader takes a
// stream's bytes in whatever chunks the transport gives and hands on whole frames, except DATA,
// whose payload is passed on piece by piece as it comes (a body is never held whole here).
// Frames of unknown types, reserved ones included (0x1f * N + 0x21), are skipped without being
// held (§9); the types HTTP/2 had and HTTP/3 reserved (0x02, 0x06, 0x08, 0x09) are an error
// (§7.2.8). Which frames may come on which stream is the reader's owner's to judge.

export const FRAME = {
  DATA: 0x00,
  HEADERS: 0x01,
  CANCEL_PUSH: 0x03,
  SETTINGS: 0x04,
  PUSH_PROMISE: 0x05,
  GOAWAY: 0x07,
  MAX_PUSH_ID: 0x0d,
} as const;

/** Frame types HTTP/2 used and HTTP/3 forbids (RFC 9114 §7.2.8): H3_FRAME_UNEXPECTED. */
const HTTP2_ONLY = new Set([0x02, 0x06, 0x08, 0x09]);

/** Stream types of unidirectional streams (RFC 9114 §6.2, RFC 9204 §4.2). */
export const STREAM_TYPE = {
  CONTROL: 0x00,
  PUSH: 0x01,
  QPACK_ENCODER: 0x02,
  QPACK_DECODER: 0x03,
} as const;

/** Settings (RFC 9114 §7.2.4.1, RFC 9204 §5). */
export const SETTING = {
  QPACK_MAX_TABLE_CAPACITY: 0x01,
  MAX_FIELD_SECTION_SIZE: 0x06,
  QPACK_BLOCKED_STREAMS: 0x07,
} as const;

/** Setting identifiers HTTP/2 used: receiving one is H3_SETTINGS_ERROR (RFC 9114 §7.2.4.1). */
const HTTP2_SETTINGS = new Set([0x02, 0x03, 0x04, 0x05]);

/** What a FrameReader hands on. */
export interface FrameSink {
  /** A whole frame other than DATA, of a known type. */
  frame(type: number, payload: Buffer): void;
  /** A piece of a DATA frame's payload (never empty). */
  data(chunk: Buffer): void;
  /** A frame of a known type other than DATA longer than the reader holds: its payload is skipped. */
  oversized(type: number, length: number): void;
}

const KNOWN = new Set<number>([FRAME.DATA, FRAME.HEADERS, FRAME.CANCEL_PUSH, FRAME.SETTINGS, FRAME.PUSH_PROMISE, FRAME.GOAWAY, FRAME.MAX_PUSH_ID]);

/** Largest payload of the small control frames (CANCEL_PUSH, GOAWAY, MAX_PUSH_ID: one varint). */
const ONE_VARINT_MAX = 8;

/**
 * Reads frames off one stream. `maxFramePayload` bounds what is held of a frame other than DATA
 * (HEADERS, SETTINGS); a longer one is reported (oversized) and skipped.
 */
export class FrameReader {
  /** Bytes of the frame head (type and length) seen so far. */
  private head: Buffer = Buffer.alloc(0);
  private type = -1;
  /** Payload bytes of the current frame still to come. */
  private remaining = 0;
  /** What is being done with the current payload. */
  private mode: 'head' | 'hold' | 'data' | 'skip' = 'head';
  private held: Buffer[] = [];
  private heldLength = 0;
  private payloadLength = 0;

  constructor(
    private readonly sink: FrameSink,
    private readonly maxFramePayload: number,
  ) {}

  /** True between frames: a stream may end here (and nowhere else, RFC 9114 §7.1). */
  get atBoundary(): boolean {
    return this.mode === 'head' && this.head.length === 0;
  }

  /** The type of the frame being read, or -1 between frames. */
  get currentType(): number {
    return this.mode === 'head' ? -1 : this.type;
  }

  push(chunk: Buffer): void {
    let at = 0;
    while (at < chunk.length) {
      if (this.mode === 'head') {
        at = this.readHead(chunk, at);
        continue;
      }
      const n = Math.min(this.remaining, chunk.length - at);
      const piece = chunk.subarray(at, at + n);
      at += n;
      this.remaining -= n;
      if (this.mode === 'data') this.sink.data(piece);
      else if (this.mode === 'hold') {
        this.held.push(piece);
        this.heldLength += n;
      }
      if (this.remaining === 0) this.endFrame();
    }
  }

  /** Takes head bytes from `chunk` at `at`; returns where it stopped. */
  private readHead(chunk: Buffer, at: number): number {
    // A head is at most 16 bytes; most come whole in one chunk.
    const take = Math.min(16 - this.head.length, chunk.length - at);
    const buf = this.head.length === 0 ? chunk.subarray(at, at + take) : Buffer.concat([this.head, chunk.subarray(at, at + take)]);
    const type = readVarint(buf, 0);
    const length = type && readVarint(buf, type.length);
    if (!type || !length) {
      this.head = Buffer.from(buf);
      return at + take;
    }
    const used = type.length + length.length - this.head.length;
    this.head = Buffer.alloc(0);
    this.begin(type.value, length.value);
    return at + used;
  }

  private begin(type: number, length: number): void {
    if (HTTP2_ONLY.has(type)) throw new Http3Error(H3.FRAME_UNEXPECTED, `frame type 0x${type.toString(16)} is HTTP/2's`);
    this.type = type;
    this.remaining = length;
    this.payloadLength = length;
    if (type === FRAME.DATA) this.mode = 'data';
    else if (!KNOWN.has(type)) this.mode = 'skip';
    else {
      const max = type === FRAME.CANCEL_PUSH || type === FRAME.GOAWAY || type === FRAME.MAX_PUSH_ID ? ONE_VARINT_MAX : this.maxFramePayload;
      if (length > max) {
        if (max === ONE_VARINT_MAX) throw new Http3Error(H3.FRAME_ERROR, `frame 0x${type.toString(16)} of ${length} bytes`);
        this.sink.oversized(type, length);
        this.mode = 'skip';
      } else this.mode = 'hold';
    }
    if (length === 0) this.endFrame();
  }

  private endFrame(): void {
    const mode = this.mode;
    this.mode = 'head';
    if (mode !== 'hold') return;
    const payload = this.held.length === 1 ? this.held[0] : Buffer.concat(this.held, this.heldLength);
    this.held = [];
    this.heldLength = 0;
    if (payload.length !== this.payloadLength) throw new Http3Error(H3.INTERNAL_ERROR, 'frame length mismatch');
    this.sink.frame(this.type, payload);
  }
}

/** A frame's bytes: head and payload. */
export function encodeFrame(type: number, payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(varintLength(type) + varintLength(payload.length) + payload.length);
  let at = writeVarint(out, 0, type);
  at = writeVarint(out, at, payload.length);
  out.set(payload, at);
  return out;
}

/** A DATA frame's head alone (the payload follows as its own write). */
export function dataFrameHead(length: number): Buffer {
  const out = Buffer.allocUnsafe(1 + varintLength(length));
  out[0] = FRAME.DATA;
  writeVarint(out, 1, length);
  return out;
}

/** A frame whose payload is one varint (GOAWAY, MAX_PUSH_ID, CANCEL_PUSH). */
export function encodeVarintFrame(type: number, value: number): Buffer {
  const payload = Buffer.allocUnsafe(varintLength(value));
  writeVarint(payload, 0, value);
  return encodeFrame(type, payload);
}

/** The single varint of a GOAWAY, MAX_PUSH_ID or CANCEL_PUSH payload. */
export function parseVarintFrame(type: number, payload: Buffer): number {
  const v = readVarint(payload, 0);
  if (!v || v.length !== payload.length) throw new Http3Error(H3.FRAME_ERROR, `malformed frame 0x${type.toString(16)}`);
  return v.value;
}

/** SETTINGS payload from identifier/value pairs. */
export function encodeSettings(settings: ReadonlyMap<number, number>): Buffer {
  let n = 0;
  for (const [id, value] of settings) n += varintLength(id) + varintLength(value);
  const payload = Buffer.allocUnsafe(n);
  let at = 0;
  for (const [id, value] of settings) {
    at = writeVarint(payload, at, id);
    at = writeVarint(payload, at, value);
  }
  return encodeFrame(FRAME.SETTINGS, payload);
}

/**
 * A SETTINGS payload as identifier -> value. A repeated identifier or one of HTTP/2's is
 * H3_SETTINGS_ERROR; unknown identifiers are kept (and ignored by the caller), as §7.2.4 says.
 */
export function parseSettings(payload: Buffer): Map<number, number> {
  const settings = new Map<number, number>();
  let at = 0;
  while (at < payload.length) {
    const id = readVarint(payload, at);
    const value = id && readVarint(payload, at + id.length);
    if (!id || !value) throw new Http3Error(H3.FRAME_ERROR, 'malformed SETTINGS');
    at += id.length + value.length;
    if (HTTP2_SETTINGS.has(id.value)) throw new Http3Error(H3.SETTINGS_ERROR, `HTTP/2 setting 0x${id.value.toString(16)} in SETTINGS`);
    if (settings.has(id.value)) throw new Http3Error(H3.SETTINGS_ERROR, `setting 0x${id.value.toString(16)} repeated`);
    settings.set(id.value, value.value);
  }
  return settings;
}

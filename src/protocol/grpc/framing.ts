import { GrpcStatus } from './status.ts';

// gRPC's length-prefixed messages (PROTOCOL-HTTP2.md, "Length-Prefixed-Message"): one flags
// byte, a u32 big-endian length, then that many bytes. Flag 0x01 says the message is compressed
// with the call's `grpc-encoding`; gRPC-Web adds 0x80 for the frame that carries the trailers
// (PROTOCOL-WEB.md). The same framing runs both ways and in both protocols.
//
// The decoder takes bytes in whatever pieces the transport delivers and holds at most one
// message: a length over `maxMessageSize` is an error as soon as its header is read, before
// any of the payload is buffered, and a message's buffer grows with the bytes that came, not
// with the length announced.

/** Bytes before each message: flags (1) and length (4). */
export const GRPC_FRAME_HEADER_SIZE = 5;
/** Flag bit: the payload is compressed with the call's grpc-encoding. */
export const GRPC_FLAG_COMPRESSED = 0x01;
/** Flag bit (gRPC-Web only): the payload is the trailers, as an HTTP/1 header block. */
export const GRPC_FLAG_TRAILERS = 0x80;
/** The largest length the header can carry. */
export const GRPC_MAX_FRAME_LENGTH = 0xffff_ffff;
/** gRPC's usual receive limit (grpc-go, grpc-java, grpc-js): 4 MiB. */
export const GRPC_DEFAULT_MAX_MESSAGE_SIZE = 4 * 1024 * 1024;

export interface GrpcFrame {
  /** The flags byte as sent. */
  readonly flags: number;
  /** Flag 0x01: compressed with the call's grpc-encoding. */
  readonly compressed: boolean;
  /** Flag 0x80 (gRPC-Web): the trailers frame; decode its payload with decodeGrpcWebTrailers. */
  readonly trailers: boolean;
  readonly payload: Buffer;
}

export type GrpcFrameErrorCode = 'SWITCHYARD_GRPC_MESSAGE_TOO_LARGE' | 'SWITCHYARD_GRPC_BAD_FLAGS' | 'SWITCHYARD_GRPC_TRUNCATED' | 'SWITCHYARD_GRPC_AFTER_TRAILERS';

/** Bad framing. `status` is what the call ends with (RESOURCE_EXHAUSTED for a message too large, INTERNAL otherwise). */
export class GrpcFrameError extends Error {
  /** Frames the same `push` completed before the error: they were good. */
  frames: GrpcFrame[] = [];
  constructor(
    readonly code: GrpcFrameErrorCode,
    readonly status: GrpcStatus,
    message: string,
  ) {
    super(message);
    this.name = 'GrpcFrameError';
  }
}

/** The 5-byte header of a message of `length` bytes. */
export function grpcFrameHeader(length: number, flags = 0): Buffer {
  if (!Number.isInteger(length) || length < 0 || length > GRPC_MAX_FRAME_LENGTH) throw new RangeError(`a gRPC message is 0 to ${GRPC_MAX_FRAME_LENGTH} bytes, not ${length}`);
  const h = Buffer.allocUnsafe(GRPC_FRAME_HEADER_SIZE);
  h.writeUInt8(flags & 0xff, 0);
  h.writeUInt32BE(length, 1);
  return h;
}

/** One message as a single buffer: header and payload. `flags` 0 (plain), 0x01 (compressed) or, in gRPC-Web, 0x80 (trailers). */
export function encodeGrpcFrame(payload: Uint8Array, flags = 0): Buffer {
  const out = Buffer.allocUnsafe(GRPC_FRAME_HEADER_SIZE + payload.byteLength);
  grpcFrameHeader(payload.byteLength, flags).copy(out, 0);
  out.set(payload, GRPC_FRAME_HEADER_SIZE);
  return out;
}

export interface GrpcFrameDecoderOptions {
  /** Largest payload accepted, in bytes; a larger length is a RESOURCE_EXHAUSTED error before its payload is read. */
  readonly maxMessageSize: number;
  /**
   * Accept gRPC-Web trailer frames (flag 0x80): for reading a gRPC-Web *response*. Requests and
   * native gRPC carry no such frame; there a flags byte other than 0 or 1 is an error.
   */
  readonly allowTrailers?: boolean;
}

const asBuffer = (chunk: Uint8Array): Buffer => (Buffer.isBuffer(chunk) ? chunk : Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength));

/**
 * Incremental decoder: `push` each chunk as it arrives and get the frames it completed; `end`
 * at the end of the stream says whether it stopped between frames. After an error the decoder
 * is spent: every later call throws the same error.
 */
export class GrpcFrameDecoder {
  readonly maxMessageSize: number;
  private readonly allowTrailers: boolean;
  private readonly header = Buffer.alloc(GRPC_FRAME_HEADER_SIZE);
  private headerFill = 0;
  /** Payload of the frame being read: its flags, length, and the parts that came so far. */
  private flags = 0;
  private need = -1;
  private parts: Buffer[] = [];
  private got = 0;
  private failed: GrpcFrameError | undefined;

  constructor(options: GrpcFrameDecoderOptions) {
    if (!Number.isInteger(options.maxMessageSize) || options.maxMessageSize < 0) throw new RangeError('maxMessageSize must be a non-negative integer');
    this.maxMessageSize = options.maxMessageSize;
    this.allowTrailers = options.allowTrailers === true;
  }

  /** Bytes held for an unfinished frame (header included). */
  get buffered(): number {
    return this.headerFill + this.got;
  }

  /** True between frames (nothing of a next frame read yet). */
  get idle(): boolean {
    return this.headerFill === 0 && this.need === -1;
  }

  /**
   * Takes the next chunk of the stream; returns the frames it completed (in order). A payload
   * that arrived whole in this chunk is a view of it (no copy). Throws GrpcFrameError.
   */
  push(chunk: Uint8Array): GrpcFrame[] {
    if (this.failed) throw this.failed;
    const buf = asBuffer(chunk);
    const out: GrpcFrame[] = [];
    let at = 0;
    while (at < buf.length) {
      if (this.need === -1) {
        const take = Math.min(GRPC_FRAME_HEADER_SIZE - this.headerFill, buf.length - at);
        buf.copy(this.header, this.headerFill, at, at + take);
        this.headerFill += take;
        at += take;
        if (this.headerFill < GRPC_FRAME_HEADER_SIZE) break;
        const flags = this.header[0];
        const length = this.header.readUInt32BE(1);
        this.headerFill = 0;
        const problem = this.check(flags, length);
        if (problem) {
          problem.frames = out;
          this.failed = problem;
          throw problem;
        }
        this.flags = flags;
        this.need = length;
        this.got = 0;
        this.parts = [];
        if (length === 0) out.push(this.complete());
        continue;
      }
      const take = Math.min(this.need - this.got, buf.length - at);
      const part = buf.subarray(at, at + take);
      this.got += take;
      at += take;
      // A part held until a later push is copied: the caller may reuse its chunk by then.
      this.parts.push(this.got === this.need ? part : Buffer.from(part));
      if (this.got === this.need) out.push(this.complete());
    }
    return out;
  }

  /** The stream ended: throws SWITCHYARD_GRPC_TRUNCATED if it stopped inside a frame. */
  end(): void {
    if (this.failed) throw this.failed;
    if (this.idle) return;
    const have = this.need === -1 ? `${this.headerFill} of ${GRPC_FRAME_HEADER_SIZE} header bytes` : `${this.got} of ${this.need} message bytes`;
    this.failed = new GrpcFrameError('SWITCHYARD_GRPC_TRUNCATED', GrpcStatus.INTERNAL, `the stream ended inside a message (${have})`);
    throw this.failed;
  }

  private check(flags: number, length: number): GrpcFrameError | undefined {
    const known = this.allowTrailers ? flags === 0 || flags === GRPC_FLAG_COMPRESSED || flags === GRPC_FLAG_TRAILERS || flags === (GRPC_FLAG_TRAILERS | GRPC_FLAG_COMPRESSED) : flags === 0 || flags === GRPC_FLAG_COMPRESSED;
    if (!known) return new GrpcFrameError('SWITCHYARD_GRPC_BAD_FLAGS', GrpcStatus.INTERNAL, `bad message flags 0x${flags.toString(16).padStart(2, '0')}`);
    if (length > this.maxMessageSize) {
      return new GrpcFrameError('SWITCHYARD_GRPC_MESSAGE_TOO_LARGE', GrpcStatus.RESOURCE_EXHAUSTED, `message of ${length} bytes is larger than the limit of ${this.maxMessageSize}`);
    }
    return undefined;
  }

  private complete(): GrpcFrame {
    const payload = this.parts.length === 1 ? this.parts[0] : Buffer.concat(this.parts, this.need);
    const flags = this.flags;
    this.need = -1;
    this.parts = [];
    this.got = 0;
    return { flags, compressed: (flags & GRPC_FLAG_COMPRESSED) !== 0, trailers: (flags & GRPC_FLAG_TRAILERS) !== 0, payload };
  }
}

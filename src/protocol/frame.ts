// Length-prefixed frames, as in the seeds (000 §7.1): a u32 big-endian length, then that many
// payload bytes. The decoder takes bytes in whatever pieces TCP delivers them (a frame split
// across reads, many frames in one read) and never holds more than one frame's worth: a length
// over `maxFrameSize` is an error before any of its payload is buffered.

export const FRAME_HEADER_SIZE = 4;

export class FrameError extends Error {
  constructor(
    readonly code: 'SWITCHYARD_FRAME_TOO_LARGE' | 'SWITCHYARD_FRAME_EMPTY' | 'SWITCHYARD_FRAME_TRUNCATED',
    message: string,
  ) {
    super(message);
    this.name = 'FrameError';
  }
}

/** The 4-byte header for a payload of `length` bytes. */
export function frameHeader(length: number): Buffer {
  const h = Buffer.allocUnsafe(FRAME_HEADER_SIZE);
  h.writeUInt32BE(length, 0);
  return h;
}

/** One frame as a single buffer (header + payload). */
export function encodeFrame(payload: Uint8Array): Buffer {
  const out = Buffer.allocUnsafe(FRAME_HEADER_SIZE + payload.byteLength);
  out.writeUInt32BE(payload.byteLength, 0);
  out.set(payload, FRAME_HEADER_SIZE);
  return out;
}

export interface FrameDecoderOptions {
  maxFrameSize: number;
  /** Zero-length frames are refused unless allowed. */
  allowEmpty?: boolean;
}

export class FrameDecoder {
  private header = Buffer.alloc(FRAME_HEADER_SIZE);
  private headerFill = 0;
  private body: Buffer | undefined;
  private bodyFill = 0;

  constructor(private readonly options: FrameDecoderOptions) {}

  /**
   * Feeds bytes; returns the frames completed by them (possibly none). Throws FrameError on a
   * length over the limit (or an empty frame when refused); the decoder is unusable after that.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    let off = 0;
    while (off < chunk.length) {
      if (this.body === undefined) {
        // Fast path: a whole frame inside this chunk, nothing partial pending: no copy.
        if (this.headerFill === 0 && chunk.length - off >= FRAME_HEADER_SIZE) {
          const len = ((chunk[off] << 24) >>> 0) + (chunk[off + 1] << 16) + (chunk[off + 2] << 8) + chunk[off + 3];
          this.check(len);
          if (chunk.length - off - FRAME_HEADER_SIZE >= len) {
            frames.push(chunk.subarray(off + FRAME_HEADER_SIZE, off + FRAME_HEADER_SIZE + len));
            off += FRAME_HEADER_SIZE + len;
            continue;
          }
          this.body = Buffer.allocUnsafe(len);
          this.bodyFill = 0;
          off += FRAME_HEADER_SIZE;
          continue;
        }
        const take = Math.min(FRAME_HEADER_SIZE - this.headerFill, chunk.length - off);
        this.header.set(chunk.subarray(off, off + take), this.headerFill);
        this.headerFill += take;
        off += take;
        if (this.headerFill < FRAME_HEADER_SIZE) break;
        const len = this.header.readUInt32BE(0);
        this.headerFill = 0;
        this.check(len);
        if (len === 0) {
          frames.push(new Uint8Array(0));
          continue;
        }
        this.body = Buffer.allocUnsafe(len);
        this.bodyFill = 0;
        continue;
      }
      const take = Math.min(this.body.length - this.bodyFill, chunk.length - off);
      this.body.set(chunk.subarray(off, off + take), this.bodyFill);
      this.bodyFill += take;
      off += take;
      if (this.bodyFill === this.body.length) {
        frames.push(this.body);
        this.body = undefined;
      }
    }
    return frames;
  }

  /** True when a frame has started but not finished (EOF now means a truncated frame). */
  get partial(): boolean {
    return this.headerFill > 0 || this.body !== undefined;
  }

  private check(len: number): void {
    if (len > this.options.maxFrameSize) throw new FrameError('SWITCHYARD_FRAME_TOO_LARGE', `frame of ${len} bytes is over the limit of ${this.options.maxFrameSize}`);
    if (len === 0 && !this.options.allowEmpty) throw new FrameError('SWITCHYARD_FRAME_EMPTY', 'empty frame');
  }
}

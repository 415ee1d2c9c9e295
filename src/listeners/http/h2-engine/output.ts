import type { Duplex } from 'node:stream';
import { FRAME_HEADER_SIZE } from '../../../protocol/h2/frames.ts';

// The session's outgoing bytes. Frames are written into a slab (no Buffer per frame) and every
// frame of one tick goes to the socket in one write: the frames of a burst of responses cost one
// TLS record set and one syscall, not one each. A flushed part of the slab is never written again
// (the socket may hold it until it is sent); the rest of the slab serves the next frames.
//
// An idle connection holds no slab: one is taken at the first frame written, dropped once it is
// mostly handed out (the next frame takes a fresh one), and given back by release() when nothing
// is pending (the listener's idle sweep calls it for sessions quiet for a sweep period). A slab
// is an ArrayBuffer of its own (never a slice of node's pool): taking one per request would cost,
// so a busy session keeps its slab between ticks. Always 64 KiB: a smaller first slab (16 KiB,
// growing) was tried and left out (docs/http2.md, "The engine").

const SLAB_SIZE = 64 * 1024;
/** No slab held: any reservation takes one. */
const NO_SLAB = Buffer.alloc(0);

export class FrameOutput {
  private slab = NO_SLAB;
  /** Start of the part not yet handed to the socket. */
  private start = 0;
  /** Where the next byte goes. */
  pos = 0;
  /** Whole slab parts waiting for the flush (a slab filled within the tick). */
  private parts: Buffer[] = [];
  private partsBytes = 0;

  constructor(private readonly socket: Duplex) {}

  /** Bytes written and not yet flushed. */
  get pending(): number {
    return this.partsBytes + this.pos - this.start;
  }

  /** Bytes of slab held (0 when idle and released). */
  get held(): number {
    return this.slab.length;
  }

  /** Makes room for `n` contiguous bytes; returns the slab to write them into at `pos`. */
  reserve(n: number): Buffer {
    if (this.pos + n > this.slab.length) {
      if (this.pos > this.start) {
        this.parts.push(this.slab.subarray(this.start, this.pos));
        this.partsBytes += this.pos - this.start;
      }
      this.slab = Buffer.allocUnsafeSlow(Math.max(SLAB_SIZE, n));
      this.start = this.pos = 0;
    }
    return this.slab;
  }

  /**
   * Gives the slab back when nothing is pending (the next frame takes a new one); false if there
   * was none to give or bytes are waiting. The socket may still hold flushed parts of it: only our
   * reference goes.
   */
  release(): boolean {
    if (this.slab === NO_SLAB || this.pending !== 0) return false;
    this.slab = NO_SLAB;
    this.start = this.pos = 0;
    return true;
  }

  header(length: number, type: number, flags: number, streamId: number): void {
    const b = this.reserve(FRAME_HEADER_SIZE);
    let p = this.pos;
    b[p++] = length >>> 16;
    b[p++] = (length >>> 8) & 0xff;
    b[p++] = length & 0xff;
    b[p++] = type;
    b[p++] = flags;
    b[p++] = streamId >>> 24;
    b[p++] = (streamId >>> 16) & 0xff;
    b[p++] = (streamId >>> 8) & 0xff;
    b[p++] = streamId & 0xff;
    this.pos = p;
  }

  /** A frame whose payload is one 32-bit word (RST_STREAM, WINDOW_UPDATE). */
  word(type: number, streamId: number, word: number): void {
    this.header(4, type, 0, streamId);
    const b = this.reserve(4);
    b.writeUInt32BE(word >>> 0, this.pos);
    this.pos += 4;
  }

  /** A whole frame with `payload`'s bytes from `from` to `to` copied in. */
  frame(type: number, flags: number, streamId: number, payload: Uint8Array | null, from = 0, to = payload ? payload.length : 0): void {
    const length = to - from;
    this.header(length, type, flags, streamId);
    if (length === 0 || !payload) return;
    const b = this.reserve(length);
    b.set(payload.subarray(from, to), this.pos);
    this.pos += length;
  }

  /** Hands everything written to the socket in one write; returns what socket.write returned. */
  flush(): boolean {
    if (this.socket.destroyed) {
      this.parts.length = 0;
      this.partsBytes = 0;
      this.start = this.pos;
      return true;
    }
    let ok = true;
    const tail = this.pos > this.start ? this.slab.subarray(this.start, this.pos) : null;
    this.start = this.pos;
    if (this.parts.length === 0) {
      if (tail) ok = this.socket.write(tail);
    } else {
      const socket = this.socket;
      socket.cork();
      for (const part of this.parts) ok = socket.write(part);
      if (tail) ok = socket.write(tail);
      socket.uncork();
      this.parts.length = 0;
      this.partsBytes = 0;
    }
    // Once the slab is mostly handed out, the next frame takes a fresh one rather than a run of
    // small tails.
    if (this.slab.length - this.pos < 1024 && this.slab !== NO_SLAB) {
      this.slab = NO_SLAB;
      this.start = this.pos = 0;
    }
    return ok;
  }
}

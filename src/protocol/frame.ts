import type { Readable, Writable } from 'node:stream';

// Length-prefixed frames, as in the seeds (000 §7.1): a u32 big-endian length, then that many
// payload bytes. The decoder takes bytes in whatever pieces TCP delivers them (a frame split
// across reads, many frames in one read) and never holds more than one frame's worth: a length
// over `maxFrameSize` is an error before any of its payload is buffered.
//
// Memory follows the bytes that arrived, not the lengths peers announce: a header alone costs at
// most EAGER_LIMIT bytes, and a large frame's buffer grows (doubling) as its payload comes in. A
// peer that sends a thousand headers announcing 1 MiB and then nothing costs 64 MiB of promises
// it never kept, not a gigabyte.

export const FRAME_HEADER_SIZE = 4;
/** The largest length a u32 header can carry. */
export const MAX_FRAME_LENGTH = 0xffff_ffff;
/** Frames up to this size get their whole buffer when their header arrives. */
const EAGER_LIMIT = 64 * 1024;
/**
 * Payloads up to this size are copied behind their header and written as one buffer (one
 * syscall, cheaper than a writev of two); larger ones go out uncopied.
 */
const COPY_LIMIT = 16 * 1024;

export type FrameErrorCode = 'SWITCHYARD_FRAME_TOO_LARGE' | 'SWITCHYARD_FRAME_EMPTY' | 'SWITCHYARD_FRAME_TRUNCATED';

export class FrameError extends Error {
  /**
   * Frames that the same `push` completed before the bad header: they were good, and a peer
   * that sent them is owed their answers before the error.
   */
  frames: Uint8Array[] = [];

  constructor(
    readonly code: FrameErrorCode,
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

/**
 * Writes one frame. A large payload is not copied: its header and the payload itself are queued
 * under cork() so that they leave in one writev. Returns what `stream.write` returns: false means
 * the stream's buffer is over its high-water mark and the caller should wait for 'drain'.
 * The payload must not be modified until it has been written.
 */
export function writeFrame(stream: Writable, payload: Uint8Array): boolean {
  if (payload.byteLength > MAX_FRAME_LENGTH) throw new RangeError(`a frame carries at most ${MAX_FRAME_LENGTH} bytes, not ${payload.byteLength}`);
  if (payload.byteLength <= COPY_LIMIT) return stream.write(encodeFrame(payload));
  stream.cork();
  stream.write(frameHeader(payload.byteLength));
  const ok = stream.write(payload);
  stream.uncork();
  return ok;
}

export interface FrameDecoderOptions {
  /** Largest payload accepted, in bytes (at most MAX_FRAME_LENGTH). */
  maxFrameSize: number;
  /** Zero-length frames are refused unless allowed. */
  allowEmpty?: boolean;
}

export class FrameDecoder {
  private header = Buffer.alloc(FRAME_HEADER_SIZE);
  private headerFill = 0;
  /** The frame being received: its announced length, and the bytes so far. */
  private body: Buffer | undefined;
  private bodyLength = 0;
  private bodyFill = 0;

  constructor(private readonly options: FrameDecoderOptions) {
    const max = options.maxFrameSize;
    if (!Number.isInteger(max) || max < 0 || max > MAX_FRAME_LENGTH) throw new RangeError(`maxFrameSize must be a whole number from 0 to ${MAX_FRAME_LENGTH}, not ${max}`);
  }

  /**
   * Feeds bytes; returns the frames completed by them (possibly none). A returned frame may be a
   * view into `chunk`. Throws FrameError on a length over the limit (or an empty frame when
   * refused), as soon as the header's four bytes are in and before anything is allocated for
   * it, with the frames completed before it in `err.frames`; the decoder is unusable after that.
   */
  push(chunk: Uint8Array): Uint8Array[] {
    const frames: Uint8Array[] = [];
    try {
      this.decode(chunk, frames);
    } catch (err) {
      if (err instanceof FrameError) err.frames = frames;
      throw err;
    }
    return frames;
  }

  private decode(chunk: Uint8Array, frames: Uint8Array[]): void {
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
          this.begin(len);
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
        this.begin(len);
        continue;
      }
      const take = Math.min(this.bodyLength - this.bodyFill, chunk.length - off);
      if (this.bodyFill + take > this.body.length) this.grow(this.bodyFill + take);
      this.body.set(chunk.subarray(off, off + take), this.bodyFill);
      this.bodyFill += take;
      off += take;
      if (this.bodyFill === this.bodyLength) {
        frames.push(this.body);
        this.body = undefined;
      }
    }
  }

  /** True when a frame has started but not finished (EOF now means a truncated frame). */
  get partial(): boolean {
    return this.headerFill > 0 || this.body !== undefined;
  }

  /** Bytes held for the frame in progress (for tests and metrics: it follows arrivals). */
  get buffered(): number {
    return this.body?.length ?? 0;
  }

  private begin(len: number): void {
    this.body = Buffer.allocUnsafe(Math.min(len, EAGER_LIMIT));
    this.bodyLength = len;
    this.bodyFill = 0;
  }

  private grow(needed: number): void {
    const next = Buffer.allocUnsafe(Math.min(this.bodyLength, Math.max(needed, this.body!.length * 2)));
    next.set(this.body!.subarray(0, this.bodyFill), 0);
    this.body = next;
  }

  private check(len: number): void {
    if (len > this.options.maxFrameSize) throw new FrameError('SWITCHYARD_FRAME_TOO_LARGE', `frame of ${len} bytes is over the limit of ${this.options.maxFrameSize}`);
    if (len === 0 && !this.options.allowEmpty) throw new FrameError('SWITCHYARD_FRAME_EMPTY', 'empty frame');
  }
}

// ---- reading frames off a stream ------------------------------------------------------------

export interface ReadFramesOptions extends FrameDecoderOptions {
  /** The stream ended cleanly, between frames, and every frame has been handled. */
  onEnd?: () => void;
}

export interface FrameReader {
  /**
   * True when nothing is in progress: no frame partly received, none decoded and waiting, no
   * onFrame promise pending. A server that wants to close between frames closes when idle.
   */
  readonly idle: boolean;
  /**
   * Stops reading: no further callbacks; frames decoded but not yet handed over are dropped.
   * The stream is left paused (call `stream.resume()` to read and drop whatever else arrives).
   */
  stop(): void;
}

/**
 * Reads frames off any byte stream (TCP, unix, TLS sockets, pipes) and hands each to `onFrame`,
 * in order. When `onFrame` returns a promise, the stream is paused until it settles, so a slow
 * consumer slows the peer instead of queueing frames. `onError` is called once, and nothing
 * after it, with a FrameError (oversize or refused empty frame; FRAME_TRUNCATED when the stream
 * ends inside a frame), the stream's own error, or what `onFrame` threw or rejected with. A
 * stream destroyed locally ends reading without a callback.
 */
export function readFrames(
  stream: Readable,
  options: ReadFramesOptions,
  onFrame: (frame: Uint8Array) => void | Promise<void>,
  onError: (err: Error) => void,
): FrameReader {
  const decoder = new FrameDecoder(options);
  let pending: Uint8Array[] = [];
  let next = 0;
  let busy = false;
  let ended = false;
  let done = false;
  /** A bad header seen after good frames: reported once those frames are handled. */
  let failure: Error | undefined;

  const detach = () => {
    done = true;
    pending = [];
    next = 0;
    stream.off('data', onData);
    stream.off('end', onEndEvent);
    stream.off('error', fail);
    stream.off('close', onClose);
  };
  function fail(err: Error): void {
    if (done) return;
    detach();
    stream.pause();
    onError(err);
  }
  const finish = () => {
    if (done) return;
    if (decoder.partial) return fail(new FrameError('SWITCHYARD_FRAME_TRUNCATED', 'stream ended in the middle of a frame'));
    detach();
    options.onEnd?.();
  };
  /** Hands over queued frames until they run out or a consumer goes asynchronous. */
  const pump = () => {
    while (!done && next < pending.length) {
      const frame = pending[next++];
      let result: void | Promise<void>;
      try {
        result = onFrame(frame);
      } catch (err) {
        return fail(err as Error);
      }
      if (result && typeof (result as Promise<void>).then === 'function') {
        busy = true;
        stream.pause();
        (result as Promise<void>).then(
          () => {
            busy = false;
            pump();
            if (busy || done) return;
            if (ended) finish();
            else stream.resume();
          },
          (err: unknown) => fail(err instanceof Error ? err : new Error(String(err))),
        );
        return;
      }
    }
    if (next >= pending.length) {
      pending = [];
      next = 0;
      if (failure) fail(failure);
    }
  };
  function onData(chunk: Buffer): void {
    if (done) return;
    let frames: Uint8Array[];
    try {
      frames = decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameError) || err.frames.length === 0) return fail(err as Error);
      failure = err;
      frames = err.frames;
      stream.pause();
    }
    if (frames.length === 0) return;
    // Paused streams deliver nothing, but a chunk already on its way may land while busy.
    if (pending.length === 0) pending = frames;
    else pending.push(...frames);
    if (!busy) pump();
  }
  function onEndEvent(): void {
    ended = true;
    if (!busy) finish();
  }
  function onClose(): void {
    if (!done && !ended) detach();
  }

  stream.on('data', onData);
  stream.on('end', onEndEvent);
  stream.on('error', fail);
  stream.on('close', onClose);
  return {
    get idle() {
      return !busy && next >= pending.length && !decoder.partial && !failure;
    },
    stop() {
      if (done) return;
      detach();
      stream.pause();
    },
  };
}

import type { Readable } from 'node:stream';
import { Base64Error, GrpcError, GrpcFrameError, GrpcStatus, type Base64StreamDecoder, type GrpcFrame, type GrpcFrameDecoder } from '../../protocol/grpc/index.ts';

// The request body as a pull source of frames. The body is read only while the call wants a
// message and none is waiting: with frames in hand the request is paused, so HTTP/2 flow
// control (or TCP, on HTTP/1.1) holds the client back. At most one chunk's frames are queued.

export class FrameReader {
  private readonly queue: GrpcFrame[] = [];
  private ended = false;
  private failure: GrpcError | undefined;
  private wake: (() => void) | undefined;
  private discarding = false;

  constructor(
    private readonly req: Readable,
    private readonly frames: GrpcFrameDecoder,
    private readonly base64: Base64StreamDecoder | undefined,
    private readonly signal: AbortSignal,
  ) {
    req.on('data', this.onData);
    req.once('end', this.onEnd);
    req.once('error', () => this.fail(new GrpcError(GrpcStatus.CANCELLED, 'the request broke off')));
    req.once('close', () => {
      if (!this.ended) this.fail(new GrpcError(GrpcStatus.CANCELLED, 'the client went away'));
    });
    req.pause();
    signal.addEventListener('abort', () => this.notify(), { once: true });
  }

  /** The next frame; undefined once the client has finished sending. Throws a GrpcError. */
  async next(): Promise<GrpcFrame | undefined> {
    for (;;) {
      if (this.signal.aborted) throw this.signal.reason;
      const frame = this.queue.shift();
      if (frame) return frame;
      if (this.failure) throw this.failure;
      if (this.ended) return undefined;
      const woken = new Promise<void>((resolve) => (this.wake = resolve));
      this.req.resume();
      await woken;
    }
  }

  /** The call is over: the rest of the body is read and dropped (so the stream can close cleanly). */
  discard(): void {
    if (this.discarding) return;
    this.discarding = true;
    this.queue.length = 0;
    this.req.removeListener('data', this.onData);
    this.req.on('data', () => {});
    this.req.resume();
  }

  private readonly onData = (chunk: Buffer): void => {
    if (this.failure) return;
    try {
      const bytes = this.base64 ? this.base64.push(chunk) : chunk;
      for (const f of this.frames.push(bytes)) this.queue.push(f);
    } catch (err) {
      if (err instanceof GrpcFrameError) for (const f of err.frames) this.queue.push(f);
      this.fail(asGrpcError(err));
    }
    if (this.queue.length > 0 || this.failure) this.req.pause();
    this.notify();
  };

  private readonly onEnd = (): void => {
    if (this.failure) return;
    try {
      if (this.base64) for (const f of this.frames.push(this.base64.end())) this.queue.push(f);
      this.frames.end();
      this.ended = true;
    } catch (err) {
      this.fail(asGrpcError(err));
    }
    this.notify();
  };

  private fail(err: GrpcError): void {
    this.failure ??= err;
    this.notify();
  }

  private notify(): void {
    const w = this.wake;
    this.wake = undefined;
    w?.();
  }
}

function asGrpcError(err: unknown): GrpcError {
  if (err instanceof GrpcFrameError) return new GrpcError(err.status, err.message);
  if (err instanceof Base64Error) return new GrpcError(GrpcStatus.INTERNAL, `gRPC-Web text body: ${err.message}`);
  return new GrpcError(GrpcStatus.INTERNAL, 'the request body could not be read');
}

import net from 'node:net';
import { Duplex } from 'node:stream';

// Two one-way fds (a pipe's or FIFO's read end and another's write end) glued into one Duplex,
// so StreamChannel can run over them as over a socket. Each fd is wrapped in a net.Socket, which
// libuv drives as a non-blocking stream (works for pipes and FIFOs). Backpressure passes through:
// a full write side holds back _write's callback until 'drain'; a reader that is not reading
// pauses the read side.

export class FdPairDuplex extends Duplex {
  private readonly reader: net.Socket;
  private readonly writer: net.Socket;
  private pendingWrite: ((err?: Error | null) => void) | undefined;

  constructor(readFd: number, writeFd: number) {
    super({ allowHalfOpen: true });
    this.reader = new net.Socket({ fd: readFd, readable: true, writable: false });
    this.writer = new net.Socket({ fd: writeFd, readable: false, writable: true });
    this.reader.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) this.reader.pause();
    });
    this.reader.on('end', () => this.push(null));
    this.reader.on('error', (err) => this.destroy(err));
    this.writer.on('error', (err) => this.destroy(err));
    this.writer.on('drain', () => {
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      cb?.();
    });
    this.writer.on('close', () => {
      // The write side went away under us (EPIPE and the like arrive as 'error' first).
      const cb = this.pendingWrite;
      this.pendingWrite = undefined;
      cb?.(new Error('write side closed'));
    });
  }

  override _read(): void {
    this.reader.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.writer.write(chunk)) callback();
    else this.pendingWrite = callback;
  }

  override _final(callback: (err?: Error | null) => void): void {
    this.writer.end(() => callback());
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    this.reader.destroy();
    this.writer.destroy();
    callback(err);
  }
}

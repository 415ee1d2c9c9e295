import type { Duplex } from 'node:stream';
import { FrameDecoder, FrameError, encodeFrame, frameHeader } from '../protocol/frame.ts';
import { DEFAULT_MAX_MESSAGE_SIZE, checkOutgoing, type Channel, type ChannelOptions, type PeerCredentials } from './channel.ts';
import { IpcError } from './errors.ts';
import { Inbox } from './inbox.ts';

// A Channel over any byte stream (unix and TCP sockets, pipes, FIFOs): length-prefixed frames
// (src/protocol/frame.ts). A zero-length frame is the goodbye a side sends when it closes on
// purpose; an end of stream without it means the peer died (a killed process's socket just ends),
// so the reader gets SWITCHYARD_IPC_PEER_GONE instead of a quiet end.
//
// Backpressure both ways: send waits for 'drain' when the kernel buffer is full; received
// messages queue up to `receiveQueue` and then the stream is paused until the reader catches up.

const GOODBYE = frameHeader(0);

export interface StreamChannelOptions extends ChannelOptions {
  /** Messages held for a reader that is not reading, before the stream is paused. */
  receiveQueue?: number;
  peer?: PeerCredentials;
}

export class StreamChannel implements Channel {
  readonly maxMessageSize: number;
  readonly peer?: PeerCredentials;
  private readonly decoder: FrameDecoder;
  private readonly inbox: Inbox;
  private readonly highWater: number;
  private closed = false; // this side closed
  private sawGoodbye = false;
  private drainWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];

  constructor(
    readonly transport: string,
    private readonly stream: Duplex,
    options: StreamChannelOptions = {},
  ) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.highWater = options.receiveQueue ?? 64;
    this.peer = options.peer;
    this.decoder = new FrameDecoder({ maxFrameSize: this.maxMessageSize, allowEmpty: true });
    this.inbox = new Inbox(() => {
      if (this.inbox.length < this.highWater / 2 && stream.isPaused()) stream.resume();
    });
    stream.on('data', (chunk: Buffer) => this.onData(chunk));
    stream.on('end', () => this.onEnd());
    stream.on('error', (err: NodeJS.ErrnoException) => this.fail(new IpcError('SWITCHYARD_IPC_PEER_GONE', `${transport} peer gone (${err.code ?? err.message})`, { cause: err })));
    stream.on('close', () => {
      if (!this.inbox.isEnded) this.onEnd();
      this.rejectDrains(this.inbox.error ?? new IpcError('SWITCHYARD_IPC_PEER_GONE', `${transport} peer gone`));
    });
    stream.on('drain', () => {
      const ws = this.drainWaiters;
      this.drainWaiters = [];
      for (const w of ws) w.resolve();
    });
  }

  async send(message: Uint8Array): Promise<void> {
    if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'channel is closed');
    checkOutgoing(message, this.maxMessageSize);
    if (this.stream.destroyed || this.stream.writableEnded) throw this.inbox.error ?? new IpcError('SWITCHYARD_IPC_PEER_GONE', `${this.transport} peer gone`);
    // Small messages go as one buffer (one syscall); large ones as header + payload, uncopied.
    const ok =
      message.byteLength <= 16 * 1024
        ? this.stream.write(encodeFrame(message))
        : (this.stream.cork(), this.stream.write(frameHeader(message.byteLength)), this.stream.write(message), this.stream.uncork(), this.stream.writableLength < this.stream.writableHighWaterMark);
    if (!ok) await new Promise<void>((resolve, reject) => this.drainWaiters.push({ resolve, reject }));
  }

  receive(): Promise<Uint8Array | undefined> {
    return this.inbox.receive();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.inbox[Symbol.asyncIterator]();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inbox.close();
    if (this.stream.destroyed) return;
    await new Promise<void>((resolve) => {
      const done = () => resolve();
      this.stream.once('close', done);
      // Goodbye, then end: the peer reads a clean close rather than a crash.
      this.stream.end(GOODBYE);
      // A peer that never reads must not keep us waiting forever.
      setTimeout(() => {
        this.stream.destroy();
        resolve();
      }, 2000).unref();
    });
  }

  private onData(chunk: Buffer): void {
    let frames: Uint8Array[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      const fe = err as FrameError;
      this.fail(
        fe.code === 'SWITCHYARD_FRAME_TOO_LARGE'
          ? new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `peer sent ${fe.message}`)
          : new IpcError('SWITCHYARD_IPC_PROTOCOL', `peer sent a bad frame: ${fe.message}`),
      );
      this.stream.destroy();
      return;
    }
    for (const f of frames) {
      if (f.byteLength === 0) {
        this.sawGoodbye = true;
        continue;
      }
      this.inbox.deliver(f);
    }
    if (this.inbox.length >= this.highWater) this.stream.pause();
  }

  private onEnd(): void {
    if (this.inbox.isEnded) return;
    if (this.sawGoodbye && !this.decoder.partial) {
      this.inbox.end();
      return;
    }
    this.fail(
      new IpcError(
        'SWITCHYARD_IPC_PEER_GONE',
        this.decoder.partial ? `${this.transport} peer gone in the middle of a message` : `${this.transport} peer gone without closing the channel`,
      ),
    );
  }

  private fail(err: IpcError): void {
    this.inbox.fail(err);
    this.rejectDrains(this.inbox.error ?? err);
  }

  private rejectDrains(err: Error): void {
    const ws = this.drainWaiters;
    this.drainWaiters = [];
    for (const w of ws) w.reject(err);
  }
}

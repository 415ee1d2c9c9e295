import type { IpcError } from './errors.ts';
import { receiveAll } from './channel.ts';

// The receiving half every message-based channel shares: messages queue until the reader asks,
// one reader waits at a time, and the end is either clean (receive resolves undefined once the
// queue is drained) or a failure (receive rejects with it once the queue is drained). Messages
// that arrived before a failure stay readable; the error comes after them.

export class Inbox {
  private readonly queue: Uint8Array[] = [];
  private waiter: { resolve: (m: Uint8Array | undefined) => void; reject: (e: Error) => void } | undefined;
  private ended = false;
  private failure: IpcError | undefined;
  private closed = false;

  /** `onTaken` runs each time a message goes to the reader (flow control: resume, return credit). */
  constructor(private readonly onTaken: () => void = () => undefined) {}

  /** Messages waiting for the reader. */
  get length(): number {
    return this.queue.length;
  }

  /** No more messages will arrive (clean end or failure). */
  get isEnded(): boolean {
    return this.ended;
  }

  /** Why receiving ended badly, if it did. */
  get error(): IpcError | undefined {
    return this.failure;
  }

  /** A message arrived: to the waiting reader, else into the queue. */
  deliver(message: Uint8Array): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      this.onTaken();
      w.resolve(message);
    } else this.queue.push(message);
  }

  /** The peer ended cleanly. */
  end(): void {
    if (this.ended) return;
    this.ended = true;
    this.settle();
  }

  /** Receiving failed; the first failure wins, and a failure after a clean end changes nothing. Returns whether it took. */
  fail(err: IpcError): boolean {
    if (this.ended) return false;
    this.ended = true;
    this.failure = err;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.reject(err);
    }
    return true;
  }

  /** This side closed: a waiting reader gets undefined. */
  close(): void {
    this.closed = true;
    this.settle();
  }

  receive(): Promise<Uint8Array | undefined> {
    const m = this.queue.shift();
    if (m !== undefined) {
      this.onTaken();
      return Promise.resolve(m);
    }
    if (this.ended || this.closed) return this.failure ? Promise.reject(this.failure) : Promise.resolve(undefined);
    if (this.waiter) return Promise.reject(new Error('receive() called again before the previous one settled'));
    return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return receiveAll(this);
  }

  private settle(): void {
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve(undefined);
    }
  }
}

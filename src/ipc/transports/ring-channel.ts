import { checkOutgoing, receiveAll, type Channel } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { Ring, ringBytes, HEAD, TAIL, CONSUMER_WAITING, PRODUCER_WAITING } from '../ring.ts';

// The Channel both shared-memory transports share: two SPSC rings (one per direction) and a small
// header in one piece of memory, with how to sleep and wake left to the transport (Atomics on a
// SharedArrayBuffer between threads, futex on an mmap'd segment between processes).
//
// Segment layout: header (256 bytes, Int32 words below), ring A (creator -> opener), ring B
// (opener -> creator), each `ringBytes(capacity)`.

export const HEADER_BYTES = 256;
export const H_MAGIC = 0;
export const H_VERSION = 1;
export const H_CAPACITY = 2;
export const H_MAX_MESSAGE = 3;
export const H_CREATOR_PID = 4;
export const H_OPENER_PID = 5;
export const H_CREATOR_CLOSED = 6;
export const H_OPENER_CLOSED = 7;
export const H_CREATOR_HEARTBEAT = 8;
export const H_OPENER_HEARTBEAT = 9;
export const MAGIC = 0x53575952; // 'SWYR'
export const VERSION = 1;

export function segmentBytes(capacity: number): number {
  return HEADER_BYTES + 2 * ringBytes(capacity);
}

export interface Layout {
  header: Int32Array;
  a: Ring;
  b: Ring;
}

export function layout(buffer: ArrayBufferLike, capacity: number, init: boolean): Layout {
  const header = new Int32Array(buffer, 0, HEADER_BYTES / 4);
  const mk = init ? Ring.init : (buf: ArrayBufferLike, off: number, cap: number) => new Ring(buf, off, cap);
  return { header, a: mk(buffer, HEADER_BYTES, capacity), b: mk(buffer, HEADER_BYTES + ringBytes(capacity), capacity) };
}

/** How one transport sleeps on a ring word and wakes the other side. */
export interface Waiter {
  /**
   * Waits while `ring.ctl[index] === expected`, for at most about `sliceMs`; may return early
   * (spuriously). Returning a promise keeps the event loop free.
   */
  wait(ring: Ring, index: number, expected: number, sliceMs: number): Promise<unknown> | void;
  /** Wakes every sleeper on `ring.ctl[index]`. */
  wake(ring: Ring, index: number): void;
  /** False for a pure busy-wait: then the waiting flags are not raised and nobody wakes us. */
  readonly sleeps: boolean;
}

export interface RingChannelParts {
  transport: string;
  tx: Ring;
  rx: Ring;
  header: Int32Array;
  myClosed: number;
  peerClosed: number;
  maxMessageSize: number;
  waiter: Waiter;
  /** Busy-wait this long before sleeping, in µs. */
  spinMicros: number;
  /** Longest single sleep before re-checking the peer, in ms. */
  sliceMs: number;
  /** False once the peer is known dead (checked while waiting). */
  peerAlive(): boolean;
  /** Whether a peer has attached at all (before that, waiting does not check liveness). */
  peerAttached(): boolean;
  /** Called once by close(), after the closed flag is set and sleepers are woken. */
  release(): void;
}

const now = (): number => performance.now();

export class RingChannel implements Channel {
  readonly transport: string;
  readonly maxMessageSize: number;
  private closed = false;
  private pendingSends = 0;
  private sendQueue: Promise<unknown> = Promise.resolve();
  private pendingReceives = 0;
  private receiveQueue: Promise<unknown> = Promise.resolve();

  constructor(private readonly p: RingChannelParts) {
    this.transport = p.transport;
    this.maxMessageSize = p.maxMessageSize;
  }

  send(message: Uint8Array): Promise<void> {
    try {
      checkOutgoing(message, this.maxMessageSize);
      if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'send on a closed channel');
      if (this.pendingSends === 0 && this.p.tx.tryWrite(message)) {
        this.afterWrite();
        return Promise.resolve();
      }
    } catch (err) {
      return Promise.reject(err);
    }
    this.pendingSends++;
    const done = this.sendQueue.then(() => this.sendSlow(message)).finally(() => this.pendingSends--);
    this.sendQueue = done.catch(() => undefined);
    return done;
  }

  receive(): Promise<Uint8Array | undefined> {
    if (this.pendingReceives === 0 && !this.closed) {
      try {
        const m = this.take();
        if (m) return Promise.resolve(m);
      } catch (err) {
        return Promise.reject(err);
      }
    }
    this.pendingReceives++;
    const done = this.receiveQueue.then(() => this.receiveSlow()).finally(() => this.pendingReceives--);
    this.receiveQueue = done.catch(() => undefined);
    return done;
  }

  /** Non-waiting send: false when the ring is full now. */
  trySend(message: Uint8Array): boolean {
    checkOutgoing(message, this.maxMessageSize);
    if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'send on a closed channel');
    if (this.pendingSends !== 0 || !this.p.tx.tryWrite(message)) return false;
    this.afterWrite();
    return true;
  }

  /** Non-waiting receive: undefined when nothing is there now. */
  tryReceive(): Uint8Array | undefined {
    if (this.closed || this.pendingReceives !== 0) return undefined;
    return this.take();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    const { header, myClosed, tx, rx, waiter } = this.p;
    Atomics.store(header, myClosed, 1);
    // Wake whoever sleeps on either ring (the peer, and our own pending calls).
    waiter.wake(tx, TAIL);
    waiter.wake(tx, HEAD);
    waiter.wake(rx, TAIL);
    waiter.wake(rx, HEAD);
    // Let pending calls observe the flag before the memory goes away.
    await Promise.allSettled([this.sendQueue, this.receiveQueue]);
    this.p.release();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return receiveAll(this);
  }

  private afterWrite(): void {
    const tx = this.p.tx;
    if (Atomics.load(tx.ctl, CONSUMER_WAITING) !== 0) this.p.waiter.wake(tx, TAIL);
  }

  private take(): Uint8Array | undefined {
    const rx = this.p.rx;
    const len = rx.peekLength();
    if (len === 0) return undefined;
    if (len > this.maxMessageSize) {
      throw new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `received a message of ${len} bytes, over the limit of ${this.maxMessageSize}`);
    }
    const m = rx.tryRead()!;
    if (Atomics.load(rx.ctl, PRODUCER_WAITING) !== 0) this.p.waiter.wake(rx, HEAD);
    return m;
  }

  private peerGone(what: string): IpcError {
    return new IpcError('SWITCHYARD_IPC_PEER_GONE', what);
  }

  private async sendSlow(message: Uint8Array): Promise<void> {
    const { tx, header, peerClosed, waiter, spinMicros, sliceMs } = this.p;
    for (;;) {
      if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'channel closed while sending');
      if (tx.tryWrite(message)) return this.afterWrite();
      const spinEnd = now() + spinMicros / 1000;
      while (now() < spinEnd) {
        if (tx.canWrite(message.byteLength)) break;
      }
      if (tx.tryWrite(message)) return this.afterWrite();
      if (Atomics.load(header, peerClosed) !== 0) throw this.peerGone('the peer closed the channel; this message cannot be delivered');
      if (this.p.peerAttached() && !this.p.peerAlive()) throw this.peerGone('the peer process is gone');
      if (waiter.sleeps) Atomics.store(tx.ctl, PRODUCER_WAITING, 1);
      const head = Atomics.load(tx.ctl, HEAD);
      if (!tx.canWrite(message.byteLength) && !this.closed) await waiter.wait(tx, HEAD, head, sliceMs);
      if (waiter.sleeps) Atomics.store(tx.ctl, PRODUCER_WAITING, 0);
    }
  }

  private async receiveSlow(): Promise<Uint8Array | undefined> {
    const { rx, header, peerClosed, waiter, spinMicros, sliceMs } = this.p;
    for (;;) {
      if (this.closed) return undefined;
      let m = this.take();
      if (m) return m;
      const spinEnd = now() + spinMicros / 1000;
      while (now() < spinEnd) {
        if (!rx.isEmpty()) break;
      }
      m = this.take();
      if (m) return m;
      if (Atomics.load(header, peerClosed) !== 0) {
        return this.take(); // drained: a clean end (undefined) unless a last message slipped in
      }
      if (this.p.peerAttached() && !this.p.peerAlive()) {
        m = this.take();
        if (m) return m;
        throw this.peerGone('the peer process is gone');
      }
      if (waiter.sleeps) Atomics.store(rx.ctl, CONSUMER_WAITING, 1);
      const tail = Atomics.load(rx.ctl, TAIL);
      if (Atomics.load(rx.ctl, HEAD) === tail && !this.closed) await waiter.wait(rx, TAIL, tail, sliceMs);
      if (waiter.sleeps) Atomics.store(rx.ctl, CONSUMER_WAITING, 0);
    }
  }
}

import { checkOutgoing, receiveAll, type Channel } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { Ring, ringBytes, HEAD, TAIL, CONSUMER_WAITING, PRODUCER_WAITING } from '../ring.ts';
import { RingSlot, RingView, type ViewOwner } from '../ring-view.ts';

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
  /**
   * Blocks this thread while `ring.ctl[index] === expected`, for at most about `ms` (futex or
   * Atomics.wait: no spinning). Used by the synchronous calls, which raise the waiting flag first
   * whatever the transport's mode, so the other side always wakes them.
   */
  waitSync(ring: Ring, index: number, expected: number, ms: number): void;
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
  /** The synchronous calls busy-wait at least this long before sleeping, in µs. */
  syncSpinMicros: number;
  /** ... and at most this long, after waits that the peer ended soon after they slept (see spinBudget). */
  syncSpinMaxMicros: number;
  /** False once the peer is known dead (checked while waiting). */
  peerAlive(): boolean;
  /** Whether a peer has attached at all (before that, waiting does not check liveness). */
  peerAttached(): boolean;
  /** Called once by close(), after the closed flag is set and sleepers are woken. */
  release(): void;
}

const now = (): number => performance.now();

/** Default busy-wait of the synchronous calls before they sleep, µs: the least and the most. */
export const DEFAULT_SYNC_SPIN_MICROS = 50;
export const DEFAULT_SYNC_SPIN_MAX_MICROS = 1000;
/** Tries before the timed spin starts (a few µs). */
const QUICK_SPINS = 512;

function held(what: string): IpcError {
  return new IpcError('SWITCHYARD_IPC_VIEW_HELD', what);
}

export class RingChannel implements Channel, ViewOwner {
  readonly transport: string;
  readonly maxMessageSize: number;
  private closed = false;
  private pendingSends = 0;
  private sendQueue: Promise<unknown> = Promise.resolve();
  private pendingReceives = 0;
  private receiveQueue: Promise<unknown> = Promise.resolve();
  /** The zero-copy view handed out and not yet released (at most one: the ring is FIFO). */
  private heldView: RingView | undefined;
  /** The slot reserved and not yet committed (at most one). */
  private heldSlot: RingSlot | undefined;
  /** Where a message that wraps around the ring's end is gathered (views) or built (slots). */
  private scratchIn: { u8: Uint8Array; dv: DataView } | undefined;
  private scratchOut: { u8: Uint8Array; dv: DataView } | undefined;
  /** Payload offset in the send ring of the slot held (where a scratch slot is copied to). */
  private slotOffset = 0;
  /**
   * How long the synchronous receive / send spin before sleeping, ms. A wait the peer ended soon
   * after we went to sleep means the spin was just too short (the peer was being woken itself, or
   * descheduled): the next spin lasts twice that wait, up to syncSpinMaxMicros. Without this, two
   * sides whose wake-up takes longer than the spin put each other to sleep on every message for
   * good. A long wait (the peer is idle) sets it back to syncSpinMicros.
   */
  private spinBudget = { receive: 0, send: 0 };

  constructor(private readonly p: RingChannelParts) {
    this.transport = p.transport;
    this.maxMessageSize = p.maxMessageSize;
    this.spinBudget.receive = this.spinBudget.send = p.syncSpinMicros / 1000;
  }

  send(message: Uint8Array): Promise<void> {
    try {
      checkOutgoing(message, this.maxMessageSize);
      if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'send on a closed channel');
      if (this.heldSlot) throw held('send() while a reserved slot is not committed yet');
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
    if (this.heldView) return Promise.reject(held('receive() while a received view is not released yet'));
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
    if (this.heldSlot) throw held('trySend() while a reserved slot is not committed yet');
    if (this.pendingSends !== 0 || !this.p.tx.tryWrite(message)) return false;
    this.afterWrite();
    return true;
  }

  /** Non-waiting receive: undefined when nothing is there now. */
  tryReceive(): Uint8Array | undefined {
    if (this.heldView) throw held('tryReceive() while a received view is not released yet');
    if (this.closed || this.pendingReceives !== 0) return undefined;
    return this.take();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // The memory is about to be unmapped: a view or slot still held must not touch it.
    this.heldView?.invalidate();
    this.heldView = undefined;
    this.heldSlot?.invalidate();
    this.heldSlot = undefined;
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

  // ---- synchronous and zero-copy ---------------------------------------------------------------
  // These block the calling thread (bounded spin, then futex / Atomics.wait in slices of sliceMs,
  // re-checking the peer between slices) instead of returning promises, and hand out the ring's
  // own memory instead of copies. Do not mix them with a pending send()/receive() on the same
  // side; they throw SWITCHYARD_IPC_VIEW_HELD instead of corrupting the order.

  /**
   * Next message in place, without waiting: a RingView, or undefined when nothing is there now.
   * Release the view before receiving again.
   */
  tryReceiveView(): RingView | undefined {
    this.checkViewReceive();
    return this.takeView();
  }

  /**
   * Next message in place, waiting up to `timeoutMs` (default: no limit): a RingView, or
   * undefined when the peer closed cleanly and everything it sent was received. Throws
   * SWITCHYARD_IPC_TIMEOUT when the time runs out, SWITCHYARD_IPC_PEER_GONE when the peer died.
   */
  receiveViewSync(timeoutMs = Infinity): RingView | undefined {
    this.checkViewReceive();
    // A short spin without the clock first: most answers of a busy peer come within it.
    for (let i = 0; i < QUICK_SPINS; i++) {
      const v = this.takeView();
      if (v) return v;
    }
    return this.receiveViewSlow(timeoutMs);
  }

  private receiveViewSlow(timeoutMs: number): RingView | undefined {
    const { rx } = this.p;
    const start = now();
    if (this.spinUntil(() => !rx.isEmpty(), this.spinBudget.receive)) {
      const w = this.takeView();
      if (w) return w;
    }
    const deadline = start + timeoutMs;
    for (;;) {
      if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'channel closed while receiving');
      const m = this.takeView();
      if (m) {
        this.spinBudget.receive = this.nextBudget(now() - start);
        return m;
      }
      if (Atomics.load(this.p.header, this.p.peerClosed) !== 0) return this.takeView();
      if (this.p.peerAttached() && !this.p.peerAlive()) {
        const last = this.takeView();
        if (last) return last;
        throw this.peerGone('the peer process is gone');
      }
      const left = deadline - now();
      if (left <= 0) throw new IpcError('SWITCHYARD_IPC_TIMEOUT', `no message within ${timeoutMs} ms`);
      Atomics.store(rx.ctl, CONSUMER_WAITING, 1);
      const tail = Atomics.load(rx.ctl, TAIL);
      if (Atomics.load(rx.ctl, HEAD) === tail) this.p.waiter.waitSync(rx, TAIL, tail, Math.min(this.p.sliceMs, left));
      Atomics.store(rx.ctl, CONSUMER_WAITING, 0);
    }
  }

  /**
   * Receives one message in place, calls `fn` with it and releases it when `fn` returns or
   * throws. Returns what `fn` returned, or undefined at the clean end. Waits as receiveViewSync.
   */
  receiveWith<T>(fn: (view: RingView) => T, timeoutMs = Infinity): T | undefined {
    const v = this.receiveViewSync(timeoutMs);
    if (!v) return undefined;
    try {
      return fn(v);
    } finally {
      if (!v.released) v.release();
    }
  }

  /** Sends a copy of `message`, waiting up to `timeoutMs` while the ring is full. */
  sendSync(message: Uint8Array, timeoutMs = Infinity): void {
    checkOutgoing(message, this.maxMessageSize);
    this.checkSlotSend();
    const { tx } = this.p;
    if (!tx.tryWrite(message)) {
      this.waitWritable(message.byteLength, timeoutMs);
      tx.tryWrite(message);
    }
    this.afterWrite();
  }

  /**
   * Reserves `length` bytes in the ring, waiting up to `timeoutMs` while it is full, to be
   * written in place and published with commit(). The peer sees nothing before commit.
   */
  reserve(length: number, timeoutMs = Infinity): RingSlot {
    this.checkReserve(length);
    let at = this.p.tx.reserveNext(length);
    if (at < 0) {
      this.waitWritable(length, timeoutMs);
      at = this.p.tx.reserveNext(length);
    }
    return this.makeSlot(at, length);
  }

  /** Reserves without waiting: undefined when the ring is too full now. */
  tryReserve(length: number): RingSlot | undefined {
    this.checkReserve(length);
    const at = this.p.tx.reserveNext(length);
    return at < 0 ? undefined : this.makeSlot(at, length);
  }

  /** @internal RingView.release() */
  releaseView(view: RingView): void {
    if (view !== this.heldView) return; // invalidated by close(): the memory is gone
    this.heldView = undefined;
    const rx = this.p.rx;
    rx.advanceRead(view.length);
    if (Atomics.load(rx.ctl, PRODUCER_WAITING) !== 0) this.p.waiter.wake(rx, HEAD);
  }

  /** @internal RingSlot.commit() */
  commitSlot(slot: RingSlot, length: number): void {
    if (slot !== this.heldSlot) return;
    this.heldSlot = undefined;
    const tx = this.p.tx;
    if (slot.scratch) tx.copyIn(this.slotOffset, slot.payload(length));
    tx.publish(length);
    this.afterWrite();
  }

  /** @internal RingSlot.cancel() */
  cancelSlot(slot: RingSlot): void {
    if (slot === this.heldSlot) this.heldSlot = undefined;
  }

  private checkViewReceive(): void {
    if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'receive on a closed channel');
    if (this.heldView) throw held('receive while the previous view is not released yet (release() it first)');
    if (this.pendingReceives !== 0) throw held('a synchronous receive while an async receive() is pending');
  }

  private checkSlotSend(): void {
    if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'send on a closed channel');
    if (this.heldSlot) throw held('send while a reserved slot is not committed yet (commit() or cancel() it first)');
    if (this.pendingSends !== 0) throw held('a synchronous send while an async send() is pending');
  }

  private checkReserve(length: number): void {
    if (!Number.isInteger(length) || length < 1) throw new IpcError('SWITCHYARD_IPC_EMPTY_MESSAGE', `reserve needs 1 or more bytes (got ${length})`);
    if (length > this.maxMessageSize) {
      throw new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `message of ${length} bytes is over the limit of ${this.maxMessageSize}`);
    }
    this.checkSlotSend();
  }

  private takeView(): RingView | undefined {
    const rx = this.p.rx;
    const len = rx.peekNext();
    if (len === 0) return undefined;
    if (len > this.maxMessageSize) {
      throw new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `received a message of ${len} bytes, over the limit of ${this.maxMessageSize}`);
    }
    const at = rx.nextOffset;
    let v: RingView;
    if (at + len <= rx.capacity) v = new RingView(this, rx.data, rx.view, at, len);
    else {
      // The payload runs over the end of the ring: gathered once into scratch, so the view is contiguous.
      const s = (this.scratchIn ??= scratch(this.maxMessageSize));
      rx.copyOut(at, len, s.u8);
      v = new RingView(this, s.u8, s.dv, 0, len);
    }
    this.heldView = v;
    return v;
  }

  private makeSlot(at: number, length: number): RingSlot {
    const tx = this.p.tx;
    this.slotOffset = at;
    let slot: RingSlot;
    if (at + length <= tx.capacity) slot = new RingSlot(this, tx.data, tx.view, at, length, false);
    else {
      const s = (this.scratchOut ??= scratch(this.maxMessageSize));
      slot = new RingSlot(this, s.u8, s.dv, 0, length, true);
    }
    this.heldSlot = slot;
    return slot;
  }

  /** The spin budget after a wait of `waitedMs` that had to sleep. */
  private nextBudget(waitedMs: number): number {
    const min = this.p.syncSpinMicros / 1000;
    const max = this.p.syncSpinMaxMicros / 1000;
    return waitedMs > max ? min : Math.min(max, Math.max(min, 2 * waitedMs));
  }

  /** Busy-waits up to `budgetMs` for `ready`; checks the clock every 64 tries. */
  private spinUntil(ready: () => boolean, budgetMs: number): boolean {
    const end = now() + budgetMs;
    for (let i = 1; ; i++) {
      if (ready()) return true;
      if ((i & 63) === 0 && now() > end) return false;
    }
  }

  /** Blocks until `length` bytes fit in the send ring; throws on timeout, close or a gone peer. */
  private waitWritable(length: number, timeoutMs: number): void {
    const { tx, header, peerClosed, waiter, sliceMs } = this.p;
    const start = now();
    if (this.spinUntil(() => tx.canWrite(length), this.spinBudget.send)) return;
    const deadline = start + timeoutMs;
    for (;;) {
      if (tx.canWrite(length)) {
        this.spinBudget.send = this.nextBudget(now() - start);
        return;
      }
      if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'channel closed while sending');
      if (Atomics.load(header, peerClosed) !== 0) throw this.peerGone('the peer closed the channel; this message cannot be delivered');
      if (this.p.peerAttached() && !this.p.peerAlive()) throw this.peerGone('the peer process is gone');
      const left = deadline - now();
      if (left <= 0) throw new IpcError('SWITCHYARD_IPC_TIMEOUT', `the ring stayed full for ${timeoutMs} ms`);
      Atomics.store(tx.ctl, PRODUCER_WAITING, 1);
      const head = Atomics.load(tx.ctl, HEAD);
      if (!tx.canWrite(length)) waiter.waitSync(tx, HEAD, head, Math.min(sliceMs, left));
      Atomics.store(tx.ctl, PRODUCER_WAITING, 0);
    }
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

function scratch(size: number): { u8: Uint8Array; dv: DataView } {
  const u8 = new Uint8Array(size);
  return { u8, dv: new DataView(u8.buffer) };
}

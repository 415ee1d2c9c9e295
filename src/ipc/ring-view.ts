import { IpcError } from './errors.ts';

// The zero-copy halves of a shared-memory channel (RingChannel): a RingView is a received
// message still lying in the ring, a RingSlot a message being written in place before it is
// published. Both are windows into memory the other process reuses, so each is valid only until
// it is released (view) or committed/cancelled (slot); after that every accessor throws
// SWITCHYARD_IPC_VIEW_RELEASED instead of reading bytes that may already belong to a later
// message. The one thing that cannot be guarded is a Uint8Array taken with bytes(): it is a plain
// window, so it must not be kept past release (copy() makes a copy that may be kept).
//
// Accessors are little-endian, bounds-checked against the message (not the ring), and allocate
// nothing, so a fixed binary layout is read and written without a Uint8Array or a DataView per
// message.

/** What hands out views and slots and takes them back. */
export interface ViewOwner {
  releaseView(view: RingView): void;
  commitSlot(slot: RingSlot, length: number): void;
  cancelSlot(slot: RingSlot): void;
}

function released(what: string): IpcError {
  return new IpcError('SWITCHYARD_IPC_VIEW_RELEASED', `${what}: its bytes belong to the ring again`);
}

function outside(offset: number, size: number, length: number): RangeError {
  return new RangeError(`offset ${offset} + ${size} is outside the message of ${length} bytes`);
}

/** A received message, in place in the ring: read it, then release() it exactly once. */
export class RingView {
  #live = true;
  #bytes: Uint8Array | undefined;

  /** @internal made by RingChannel */
  constructor(
    private readonly owner: ViewOwner,
    private readonly u8: Uint8Array,
    private readonly dv: DataView,
    private readonly base: number,
    /** The message's length in bytes. */
    readonly length: number,
  ) {}

  /** True once released (every accessor then throws). */
  get released(): boolean {
    return !this.#live;
  }

  private at(offset: number, size: number): number {
    if (!this.#live) throw released('this view was released');
    if (!(offset >= 0 && offset + size <= this.length)) throw outside(offset, size, this.length);
    return this.base + offset;
  }

  getUint8(offset: number): number {
    return this.dv.getUint8(this.at(offset, 1));
  }
  getUint16(offset: number): number {
    return this.dv.getUint16(this.at(offset, 2), true);
  }
  getUint32(offset: number): number {
    return this.dv.getUint32(this.at(offset, 4), true);
  }
  getInt32(offset: number): number {
    return this.dv.getInt32(this.at(offset, 4), true);
  }
  getFloat64(offset: number): number {
    return this.dv.getFloat64(this.at(offset, 8), true);
  }
  getBigUint64(offset: number): bigint {
    return this.dv.getBigUint64(this.at(offset, 8), true);
  }
  getBigInt64(offset: number): bigint {
    return this.dv.getBigInt64(this.at(offset, 8), true);
  }

  /**
   * The message's bytes without a copy: a window into the ring, valid only until release().
   * Its contents change once the ring reuses the space; use copy() to keep them.
   */
  bytes(): Uint8Array {
    const start = this.at(0, this.length);
    return (this.#bytes ??= this.u8.subarray(start, start + this.length));
  }

  /** A copy of the message that stays valid after release(). */
  copy(): Uint8Array {
    return this.u8.slice(this.at(0, this.length), this.base + this.length);
  }

  /** Gives the space back to the sender. A second release throws. */
  release(): void {
    if (!this.#live) throw released('this view was already released');
    this.#live = false;
    this.#bytes = undefined;
    this.owner.releaseView(this);
  }

  /** @internal the channel closed under a held view: its memory may be unmapped. */
  invalidate(): void {
    this.#live = false;
    this.#bytes = undefined;
  }
}

/**
 * Space for one message reserved in the ring: write the payload in place (setters or bytes()),
 * then commit() to publish it, or cancel() to drop it. The peer sees nothing before commit.
 */
export class RingSlot {
  #live = true;
  #bytes: Uint8Array | undefined;

  /** @internal made by RingChannel */
  constructor(
    private readonly owner: ViewOwner,
    private readonly u8: Uint8Array,
    private readonly dv: DataView,
    private readonly base: number,
    /** Bytes reserved: the most commit() may publish. */
    readonly length: number,
    /** @internal true when the slot is a scratch buffer copied into the ring on commit (the record wraps). */
    readonly scratch: boolean,
  ) {}

  /** True once committed or cancelled (every accessor then throws). */
  get released(): boolean {
    return !this.#live;
  }

  private at(offset: number, size: number): number {
    if (!this.#live) throw released('this slot was already committed or cancelled');
    if (!(offset >= 0 && offset + size <= this.length)) throw outside(offset, size, this.length);
    return this.base + offset;
  }

  setUint8(offset: number, value: number): void {
    this.dv.setUint8(this.at(offset, 1), value);
  }
  setUint16(offset: number, value: number): void {
    this.dv.setUint16(this.at(offset, 2), value, true);
  }
  setUint32(offset: number, value: number): void {
    this.dv.setUint32(this.at(offset, 4), value, true);
  }
  setInt32(offset: number, value: number): void {
    this.dv.setInt32(this.at(offset, 4), value, true);
  }
  setFloat64(offset: number, value: number): void {
    this.dv.setFloat64(this.at(offset, 8), value, true);
  }
  setBigUint64(offset: number, value: bigint): void {
    this.dv.setBigUint64(this.at(offset, 8), value, true);
  }
  setBigInt64(offset: number, value: bigint): void {
    this.dv.setBigInt64(this.at(offset, 8), value, true);
  }

  /** The reserved bytes as a window to write into (valid until commit or cancel). */
  bytes(): Uint8Array {
    const start = this.at(0, this.length);
    return (this.#bytes ??= this.u8.subarray(start, start + this.length));
  }

  /** Publishes the first `length` bytes (default: all reserved; 1 to `this.length`). */
  commit(length = this.length): void {
    if (!this.#live) throw released('this slot was already committed or cancelled');
    if (!Number.isInteger(length) || length < 1 || length > this.length) {
      throw new RangeError(`commit length must be 1 to ${this.length} (got ${length})`);
    }
    this.#live = false;
    this.owner.commitSlot(this, length);
    this.#bytes = undefined;
  }

  /** Drops the reservation: nothing is sent. */
  cancel(): void {
    if (!this.#live) throw released('this slot was already committed or cancelled');
    this.#live = false;
    this.#bytes = undefined;
    this.owner.cancelSlot(this);
  }

  /** @internal the payload's bytes, for copying a scratch slot into the ring. */
  payload(length: number): Uint8Array {
    return this.u8.subarray(this.base, this.base + length);
  }

  /** @internal the channel closed under a held slot. */
  invalidate(): void {
    this.#live = false;
    this.#bytes = undefined;
  }
}

// A single-producer single-consumer byte ring for variable-size messages (seed 003 §5.1), over any
// ArrayBuffer-like memory: a SharedArrayBuffer between threads, or an mmap'd shm segment seen
// through koffi.view (a plain ArrayBuffer on which Atomics.load/store still work) between processes.
//
// Layout at `byteOffset` (all little-endian, as the host):
//   control, 128 bytes, as Int32 words:
//     word 0  HEAD              consumer's read counter (bytes, free-running uint32)
//     word 1  CONSUMER_WAITING  1 while the consumer sleeps (futex / Atomics.wait) on TAIL
//     word 16 TAIL              producer's write counter (bytes, free-running uint32)
//     word 17 PRODUCER_WAITING  1 while the producer sleeps on HEAD
//   (HEAD and TAIL sit on different 64-byte cache lines.)
//   data, `capacity` bytes, capacity a power of two >= 64.
//
// A record is a 4-byte length (>= 1) followed by the payload, padded to a multiple of 4 bytes.
// Records start on 4-byte boundaries, so the length header never straddles the end of the data
// area; the PAYLOAD MAY SPLIT: it runs to the end of the data area and continues at offset 0
// (two copies). There is no padding marker, so any message up to capacity - 4 bytes fits.
//
// Publication: the producer copies the record in, then Atomics.store(TAIL); the consumer reads
// TAIL with Atomics.load, copies out, then Atomics.store(HEAD). Counters are free-running uint32
// (wrap modulo 2^32; used = (TAIL - HEAD) mod 2^32 <= capacity). Full: used + record > capacity.
// Empty: used == 0.

export const RING_CONTROL_BYTES = 128;
export const HEAD = 0;
export const CONSUMER_WAITING = 1;
export const TAIL = 16;
export const PRODUCER_WAITING = 17;

/** Bytes a ring of `capacity` data bytes occupies (control + data). */
export function ringBytes(capacity: number): number {
  return RING_CONTROL_BYTES + capacity;
}

/** The smallest valid capacity (power of two, >= 64) that holds one message of `maxMessage` bytes, times `messages`. */
export function ringCapacityFor(maxMessage: number, messages = 2): number {
  const need = Math.max(64, messages * (recordSize(maxMessage)));
  let c = 64;
  while (c < need) c *= 2;
  return c;
}

function recordSize(len: number): number {
  return (4 + len + 3) & ~3;
}

export class Ring {
  /** Control words; exposed so a transport can wait on TAIL/HEAD (Atomics.wait or futex). */
  readonly ctl: Int32Array;
  readonly data: Uint8Array;
  /** The data area as a DataView (little-endian access for in-place views and slots). */
  readonly view: DataView;
  readonly capacity: number;
  /** Largest payload one record can carry. */
  readonly maxMessageSize: number;
  private readonly mask: number;
  // The other side's counter as last read: HEAD for a producer, TAIL for a consumer. Each only
  // moves forward, so a stale copy under-states the free space (producer) or the bytes to read
  // (consumer), which is safe; it is re-read only when it says "full" or "empty". That keeps each
  // side off the cache line the other keeps writing, one cache miss less per message.
  private headSeen: number;
  private tailSeen: number;

  /**
   * Views the ring at `byteOffset` of `buffer` (8-byte aligned). Does not initialise it: the
   * creator calls `Ring.init` once before either side uses it (fresh shm/SAB memory is zero,
   * which is already a valid empty ring).
   */
  constructor(buffer: ArrayBufferLike, byteOffset: number, capacity: number) {
    if (!Number.isInteger(capacity) || capacity < 64 || (capacity & (capacity - 1)) !== 0 || capacity > 2 ** 30) {
      throw new RangeError(`ring capacity must be a power of two from 64 to 2^30 (got ${capacity})`);
    }
    if (byteOffset % 8 !== 0) throw new RangeError('ring offset must be 8-byte aligned');
    if (buffer.byteLength < byteOffset + ringBytes(capacity)) throw new RangeError('buffer too small for the ring');
    this.ctl = new Int32Array(buffer, byteOffset, RING_CONTROL_BYTES / 4);
    this.data = new Uint8Array(buffer, byteOffset + RING_CONTROL_BYTES, capacity);
    this.view = new DataView(buffer, byteOffset + RING_CONTROL_BYTES, capacity);
    this.capacity = capacity;
    this.mask = capacity - 1;
    this.maxMessageSize = capacity - 4;
    this.headSeen = Atomics.load(this.ctl, HEAD) >>> 0;
    this.tailSeen = Atomics.load(this.ctl, TAIL) >>> 0;
  }

  static init(buffer: ArrayBufferLike, byteOffset: number, capacity: number): Ring {
    const r = new Ring(buffer, byteOffset, capacity);
    for (let i = 0; i < r.ctl.length; i++) Atomics.store(r.ctl, i, 0);
    r.headSeen = 0;
    r.tailSeen = 0;
    return r;
  }

  /** Bytes in use (records, with headers and padding). */
  used(): number {
    return (Atomics.load(this.ctl, TAIL) - Atomics.load(this.ctl, HEAD)) >>> 0;
  }

  /** Consumer side: nothing to read now. */
  isEmpty(): boolean {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    if (head !== this.tailSeen && ((this.tailSeen - head) >>> 0) <= this.capacity) return false;
    this.tailSeen = Atomics.load(this.ctl, TAIL) >>> 0;
    return head === this.tailSeen;
  }

  /** Whether a message of `len` bytes would fit now (producer side). */
  canWrite(len: number): boolean {
    return this.fits(Atomics.load(this.ctl, TAIL) >>> 0, recordSize(len));
  }

  private fits(tail: number, rec: number): boolean {
    if (((tail - this.headSeen) >>> 0) + rec <= this.capacity) return true;
    this.headSeen = Atomics.load(this.ctl, HEAD) >>> 0;
    return ((tail - this.headSeen) >>> 0) + rec <= this.capacity;
  }

  /**
   * Producer: appends one message if it fits. Returns false when the ring is too full right now.
   * Throws RangeError for an empty message or one that can never fit (> maxMessageSize).
   */
  tryWrite(msg: Uint8Array): boolean {
    const len = msg.byteLength;
    if (len === 0) throw new RangeError('empty messages are not allowed in the ring');
    if (len > this.maxMessageSize) throw new RangeError(`message of ${len} bytes exceeds the ring's maximum of ${this.maxMessageSize}`);
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    const rec = recordSize(len);
    if (!this.fits(tail, rec)) return false;
    const pos = tail & this.mask;
    this.view.setUint32(pos, len, true);
    let p = (pos + 4) & this.mask;
    const first = Math.min(len, this.capacity - p);
    if (first === len) {
      this.data.set(msg, p);
    } else {
      this.data.set(msg.subarray(0, first), p);
      this.data.set(msg.subarray(first), 0);
    }
    Atomics.store(this.ctl, TAIL, (tail + rec) | 0);
    return true;
  }

  /** Consumer: length of the next message, or 0 when the ring is empty. */
  peekLength(): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    // Re-read TAIL when the copy says empty, or makes no sense (counters set from outside).
    if (head === this.tailSeen || ((this.tailSeen - head) >>> 0) > this.capacity) {
      this.tailSeen = Atomics.load(this.ctl, TAIL) >>> 0;
      if (head === this.tailSeen) return 0;
    }
    const len = this.view.getUint32(head & this.mask, true);
    const avail = (this.tailSeen - head) >>> 0;
    if (len === 0 || recordSize(len) > avail) throw new RangeError(`corrupt ring record (length ${len}, ${avail} bytes available)`);
    return len;
  }

  /**
   * Consumer: removes the next message and returns a copy of it, or undefined when empty.
   * `into`, when given and large enough, receives the bytes instead of a fresh array.
   */
  tryRead(into?: Uint8Array): Uint8Array | undefined {
    const len = this.peekLength();
    if (len === 0) return undefined;
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const p = (head + 4) & this.mask;
    const out = into && into.byteLength >= len ? into.subarray(0, len) : new Uint8Array(len);
    const first = Math.min(len, this.capacity - p);
    if (first === len) {
      out.set(this.data.subarray(p, p + len));
    } else {
      out.set(this.data.subarray(p, this.capacity));
      out.set(this.data.subarray(0, len - first), first);
    }
    Atomics.store(this.ctl, HEAD, (head + recordSize(len)) | 0);
    return out;
  }

  /**
   * Consumer, zero-copy: calls `fn` with the next message's bytes as one or two views into the
   * ring (two when it wraps), then frees the record. Returns the length, or 0 when empty. The
   * views are only valid during the call.
   */
  readWith(fn: (a: Uint8Array, b: Uint8Array | undefined) => void): number {
    const len = this.peekLength();
    if (len === 0) return 0;
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    const p = (head + 4) & this.mask;
    const first = Math.min(len, this.capacity - p);
    if (first === len) fn(this.data.subarray(p, p + len), undefined);
    else fn(this.data.subarray(p, this.capacity), this.data.subarray(0, len - first));
    Atomics.store(this.ctl, HEAD, (head + recordSize(len)) | 0);
    return len;
  }

  // ---- in place: the zero-copy paths of RingChannel (ring-view.ts) ----------------------------

  /** Where the record the last peekNext() found starts (the consumer alone moves HEAD). */
  private readHead = 0;
  /** Where the record the last reserveNext() made room for starts (the producer alone moves TAIL). */
  private writeTail = 0;
  /** Payload offset in `data` of the message the last peekNext() found. */
  nextOffset = 0;

  /**
   * Consumer: length of the next message (0 when empty), its payload offset left in `nextOffset`;
   * advanceRead(len) frees it once read in place. One load of HEAD, TAIL only when needed.
   */
  peekNext(): number {
    const head = Atomics.load(this.ctl, HEAD) >>> 0;
    if (head === this.tailSeen || ((this.tailSeen - head) >>> 0) > this.capacity) {
      this.tailSeen = Atomics.load(this.ctl, TAIL) >>> 0;
      if (head === this.tailSeen) return 0;
    }
    const len = this.view.getUint32(head & this.mask, true);
    const avail = (this.tailSeen - head) >>> 0;
    if (len === 0 || recordSize(len) > avail) throw new RangeError(`corrupt ring record (length ${len}, ${avail} bytes available)`);
    this.readHead = head;
    this.nextOffset = (head + 4) & this.mask;
    return len;
  }

  /** Consumer: frees the record peekNext() found, whose payload is `len` bytes. */
  advanceRead(len: number): void {
    Atomics.store(this.ctl, HEAD, (this.readHead + recordSize(len)) | 0);
  }

  /**
   * Producer: the payload offset in `data` where a message of `len` bytes can be written now,
   * or -1 when it does not fit; publish(len) then makes it visible.
   */
  reserveNext(len: number): number {
    const tail = Atomics.load(this.ctl, TAIL) >>> 0;
    if (!this.fits(tail, recordSize(len))) return -1;
    this.writeTail = tail;
    return (tail + 4) & this.mask;
  }

  /**
   * Producer: publishes the record reserveNext() made room for, with `len` payload bytes (at most
   * the reserved length) already written at its offset (split over the end as tryWrite splits).
   */
  publish(len: number): void {
    const tail = this.writeTail;
    this.view.setUint32(tail & this.mask, len, true);
    Atomics.store(this.ctl, TAIL, (tail + recordSize(len)) | 0);
  }

  /** Copies `len` bytes of payload at `offset` (wrapping at the end) into `out`. */
  copyOut(offset: number, len: number, out: Uint8Array): void {
    const first = Math.min(len, this.capacity - offset);
    out.set(this.data.subarray(offset, offset + first));
    if (first < len) out.set(this.data.subarray(0, len - first), first);
  }

  /** Copies `src` into the payload area at `offset`, wrapping at the end. */
  copyIn(offset: number, src: Uint8Array): void {
    const len = src.byteLength;
    const first = Math.min(len, this.capacity - offset);
    if (first === len) this.data.set(src, offset);
    else {
      this.data.set(src.subarray(0, first), offset);
      this.data.set(src.subarray(first), 0);
    }
  }
}

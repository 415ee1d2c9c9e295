import { QueueCore, type Store, type WaitOptions } from './core.ts';

export interface Prioritized<T> {
  value: T;
  priority: number;
}

interface Entry<T> extends Prioritized<T> {
  seq: number;
}

/** Binary max-heap on (priority desc, seq asc): higher priority first, FIFO within one priority. */
class Heap<T> implements Store<Entry<T>> {
  #a: Entry<T>[] = [];

  get size(): number {
    return this.#a.length;
  }

  #before(x: Entry<T>, y: Entry<T>): boolean {
    return x.priority !== y.priority ? x.priority > y.priority : x.seq < y.seq;
  }

  push(e: Entry<T>): void {
    const a = this.#a;
    a.push(e);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (!this.#before(a[i], a[p])) break;
      [a[i], a[p]] = [a[p], a[i]];
      i = p;
    }
  }

  shift(): Entry<T> {
    const a = this.#a;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      a[0] = last;
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        const r = l + 1;
        let m = i;
        if (l < a.length && this.#before(a[l], a[m])) m = l;
        if (r < a.length && this.#before(a[r], a[m])) m = r;
        if (m === i) break;
        [a[i], a[m]] = [a[m], a[i]];
        i = m;
      }
    }
    return top;
  }
}

/**
 * A bounded in-memory priority queue (a POSIX message queue's ordering without the kernel): `receive` returns
 * the highest priority first and, within one priority, the oldest first (a sequence number makes
 * the heap stable). Same waiting rules as MpmcChannel: `send` waits while `capacity` entries are
 * buffered, `receive` waits while empty, timeouts reject with SWITCHYARD_IPC_TIMEOUT, waiters are
 * served in arrival order, a cancelled waiter never takes or leaves a value; after `close()` the
 * buffered entries drain and then `receive` resolves `undefined`.
 *
 * A sender that waits for room gets its sequence number when it enters the heap, i.e. after
 * entries that were already buffered: order is by (priority, time of entry into the queue).
 */
export class PriorityQueue<T> {
  #core: QueueCore<Entry<T>>;
  #seq = 0;

  constructor(capacity: number) {
    if (capacity === Infinity || !Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`PriorityQueue: capacity must be a positive integer (got ${capacity})`);
    }
    this.#core = new QueueCore<Entry<T>>(capacity, new SeqHeap<T>(() => this.#seq++), 'PriorityQueue');
  }

  get capacity(): number {
    return this.#core.capacity;
  }
  get size(): number {
    return this.#core.size;
  }
  get closed(): boolean {
    return this.#core.closed;
  }

  send(value: T, priority = 0, opts: WaitOptions = {}): Promise<void> {
    return this.#core.send(entry(value, priority), opts);
  }

  trySend(value: T, priority = 0): boolean {
    return this.#core.trySend(entry(value, priority));
  }

  async receive(opts: WaitOptions = {}): Promise<Prioritized<T> | undefined> {
    const e = await this.#core.receive(opts);
    return e && { value: e.value, priority: e.priority };
  }

  tryReceive(): { ok: true; value: T; priority: number } | { ok: false } {
    const r = this.#core.tryReceive();
    return r.ok ? { ok: true, value: r.value.value, priority: r.value.priority } : r;
  }

  close(): void {
    this.#core.close();
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<Prioritized<T>, void, undefined> {
    for (;;) {
      const e = await this.receive();
      if (e === undefined) return;
      yield e;
    }
  }
}

function entry<T>(value: T, priority: number): Entry<T> {
  if (!Number.isFinite(priority)) throw new RangeError(`PriorityQueue: priority must be a finite number (got ${priority})`);
  return { value, priority, seq: 0 };
}

/** Stamps the sequence number when an entry enters the heap. */
class SeqHeap<T> extends Heap<T> {
  constructor(private readonly next: () => number) {
    super();
  }
  override push(e: Entry<T>): void {
    e.seq = this.next();
    super.push(e);
  }
}

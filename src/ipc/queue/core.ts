import { IpcError } from '../errors.ts';

// The waiting machinery shared by MpmcChannel, PriorityQueue and select().
//
// Every blocked operation is a *waiter* carrying a *token*. Whoever completes a waiter (a sender
// handing over a value, a receiver freeing a slot, close(), a timeout, an abort, or select()
// picking another case) first checks `token.done` and sets it, in the same synchronous step, before
// doing anything else. JavaScript runs one of these at a time, so that check-and-set is atomic:
// a value is only ever handed to a waiter that is still waiting, and a waiter that timed out is
// removed from the queue before anyone can see it again. That is the "no lost wake-ups, no
// swallowed values" guarantee. select() shares one token between the waiters it registers on
// several channels, so at most one of them completes.

/** Shared by every waiter of one blocked operation (several for select()). */
export interface Token {
  done: boolean;
}

export type RecvResult<E> = { ok: true; value: E } | { ok: false };

export interface RecvWaiter<E> {
  token: Token;
  /** Called at most once, after the completer set token.done. `{ ok: false }` means closed and drained. */
  deliver(r: RecvResult<E>): void;
}

export interface SendWaiter<E> {
  token: Token;
  value: E;
  /** Called at most once, after the completer set token.done: no argument = the value is in. */
  complete(err?: IpcError): void;
}

/** Where buffered elements live: a FIFO ring for channels, a heap for the priority queue. */
export interface Store<E> {
  readonly size: number;
  push(e: E): void;
  /** Removes and returns the next element; only called when size > 0. */
  shift(): E;
}

export interface WaitOptions {
  /** Give up after this many milliseconds with IpcError SWITCHYARD_IPC_TIMEOUT. 0 = do not wait at all. */
  timeoutMs?: number;
  /** Abort waiting; the promise rejects with `signal.reason`. Nothing is consumed or enqueued. */
  signal?: AbortSignal;
}

/** The surface select() uses; implemented by QueueCore (and so by MpmcChannel). */
export interface Selectable<E> {
  /** Would a receive complete now (a value, a waiting sender, or closed)? */
  readyToReceive(): boolean;
  /** Would a send complete now (a waiting receiver, free room) or fail now (closed)? */
  readyToSend(): boolean;
  /** Receive without waiting: null if it would wait, `{ ok: false }` if closed and drained. */
  receiveNow(): RecvResult<E> | null;
  /** Send without waiting: false if it would wait; throws CLOSED after close(). */
  sendNow(value: E): boolean;
  addReceiver(w: RecvWaiter<E>): void;
  removeReceiver(w: RecvWaiter<E>): void;
  addSender(w: SendWaiter<E>): void;
  removeSender(w: SendWaiter<E>): void;
}

export function closedError(what: string): IpcError {
  return new IpcError('SWITCHYARD_IPC_CLOSED', `${what}: the queue is closed`);
}

export function timeoutError(what: string, ms: number): IpcError {
  return new IpcError('SWITCHYARD_IPC_TIMEOUT', `${what} timed out after ${ms} ms`);
}

export function abortReason(signal: AbortSignal): unknown {
  return signal.reason ?? new DOMException('The operation was aborted', 'AbortError');
}

/** A growable ring buffer: O(1) push and shift. */
export class Ring<E> implements Store<E> {
  #buf: (E | undefined)[] = new Array(16);
  #head = 0;
  #size = 0;

  get size(): number {
    return this.#size;
  }

  push(e: E): void {
    if (this.#size === this.#buf.length) {
      const next: (E | undefined)[] = new Array(this.#buf.length * 2);
      for (let i = 0; i < this.#size; i++) next[i] = this.#buf[(this.#head + i) % this.#buf.length];
      this.#buf = next;
      this.#head = 0;
    }
    this.#buf[(this.#head + this.#size) % this.#buf.length] = e;
    this.#size++;
  }

  shift(): E {
    const e = this.#buf[this.#head] as E;
    this.#buf[this.#head] = undefined;
    this.#head = (this.#head + 1) % this.#buf.length;
    this.#size--;
    return e;
  }
}

/**
 * Blocks on `register` until a completer resolves it, with a timeout and an abort signal.
 * `register(token, resolve, reject)` adds the waiter(s) and returns a function that withdraws
 * them; it is called only on timeout/abort, after token.done was set here.
 */
export function waitFor<R>(
  what: string,
  opts: WaitOptions,
  register: (token: Token, resolve: (r: R) => void, reject: (e: unknown) => void) => () => void,
): Promise<R> {
  const { timeoutMs, signal } = opts;
  if (signal?.aborted) return Promise.reject(abortReason(signal));
  if (timeoutMs !== undefined && timeoutMs <= 0) return Promise.reject(timeoutError(what, 0));
  return new Promise<R>((resolve, reject) => {
    const token: Token = { done: false };
    let timer: NodeJS.Timeout | undefined;
    const cleanup = (): void => {
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const withdraw = register(
      token,
      (r) => {
        cleanup();
        resolve(r);
      },
      (e) => {
        cleanup();
        reject(e);
      },
    );
    function cancel(err: unknown): void {
      if (token.done) return;
      token.done = true;
      withdraw();
      cleanup();
      reject(err);
    }
    function onAbort(): void {
      cancel(abortReason(signal!));
    }
    if (token.done) return; // completed during registration (cannot happen today, kept for safety)
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => cancel(timeoutError(what, timeoutMs)), timeoutMs);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

/**
 * A bounded (or unbounded) multi-producer multi-consumer queue over a pluggable store.
 * Invariants: receivers wait only while the store is empty (and no sender waits); senders wait
 * only while the store is full. So a new operation never overtakes one already waiting: FIFO
 * among senders and among receivers.
 */
export class QueueCore<E> implements Selectable<E> {
  readonly capacity: number;
  #store: Store<E>;
  #receivers = new Set<RecvWaiter<E>>(); // Set keeps insertion order: FIFO with O(1) removal
  #senders = new Set<SendWaiter<E>>();
  #closed = false;
  #name: string;

  constructor(capacity: number, store: Store<E>, name: string) {
    if (!(capacity === Infinity || (Number.isInteger(capacity) && capacity >= 0))) {
      throw new RangeError(`${name}: capacity must be a non-negative integer or Infinity (got ${capacity})`);
    }
    this.capacity = capacity;
    this.#store = store;
    this.#name = name;
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Elements buffered now (not counting waiting senders). */
  get size(): number {
    return this.#store.size;
  }

  /** Receivers waiting now. */
  get waitingReceivers(): number {
    return this.#receivers.size;
  }

  /** Senders waiting now (their values are not in the buffer yet). */
  get waitingSenders(): number {
    return this.#senders.size;
  }

  readyToReceive(): boolean {
    return this.#store.size > 0 || this.#firstLive(this.#senders) !== undefined || this.#closed;
  }

  readyToSend(): boolean {
    return this.#closed || this.#firstLive(this.#receivers) !== undefined || this.#store.size < this.capacity;
  }

  sendNow(value: E): boolean {
    if (value === undefined) throw new TypeError(`${this.#name}: undefined cannot be sent (it marks the end of a closed queue)`);
    if (this.#closed) throw closedError(`${this.#name} send`);
    const r = this.#takeLive(this.#receivers);
    if (r) {
      r.deliver({ ok: true, value });
      return true;
    }
    if (this.#store.size < this.capacity) {
      this.#store.push(value);
      return true;
    }
    return false;
  }

  receiveNow(): RecvResult<E> | null {
    if (this.#store.size > 0) {
      const value = this.#store.shift();
      // A slot freed: the oldest waiting sender moves its value in.
      const s = this.#takeLive(this.#senders);
      if (s) {
        this.#store.push(s.value);
        s.complete();
      }
      return { ok: true, value };
    }
    const s = this.#takeLive(this.#senders); // capacity 0: hand over directly
    if (s) {
      s.complete();
      return { ok: true, value: s.value };
    }
    if (this.#closed) return { ok: false };
    return null;
  }

  addReceiver(w: RecvWaiter<E>): void {
    this.#receivers.add(w);
  }
  removeReceiver(w: RecvWaiter<E>): void {
    this.#receivers.delete(w);
  }
  addSender(w: SendWaiter<E>): void {
    if (this.#closed) throw closedError(`${this.#name} send`);
    this.#senders.add(w);
  }
  removeSender(w: SendWaiter<E>): void {
    this.#senders.delete(w);
  }

  /** Waits while full. Rejects with CLOSED after close() (also for a send waiting when close() came). */
  send(value: E, opts: WaitOptions = {}): Promise<void> {
    if (opts.signal?.aborted) return Promise.reject(abortReason(opts.signal));
    try {
      if (this.sendNow(value)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    return waitFor<void>(`${this.#name} send`, opts, (token, resolve, reject) => {
      const w: SendWaiter<E> = { token, value, complete: (err) => (err ? reject(err) : resolve()) };
      this.#senders.add(w);
      return () => this.#senders.delete(w);
    });
  }

  /** Waits while empty; after close() the buffered values drain, then it resolves `undefined`. */
  receive(opts: WaitOptions = {}): Promise<E | undefined> {
    if (opts.signal?.aborted) return Promise.reject(abortReason(opts.signal));
    const now = this.receiveNow();
    if (now) return Promise.resolve(now.ok ? now.value : undefined);
    return waitFor<E | undefined>(`${this.#name} receive`, opts, (token, resolve) => {
      const w: RecvWaiter<E> = { token, deliver: (r) => resolve(r.ok ? r.value : undefined) };
      this.#receivers.add(w);
      return () => this.#receivers.delete(w);
    });
  }

  /** Sends if it can without waiting. Throws CLOSED after close(). */
  trySend(value: E): boolean {
    return this.sendNow(value);
  }

  /** Receives if it can without waiting; `{ ok: false }` when empty (or closed and drained: see `closed`). */
  tryReceive(): { ok: true; value: E } | { ok: false } {
    return this.receiveNow() ?? { ok: false };
  }

  /**
   * No more sends: waiting and later sends reject with CLOSED (a waiting sender's value is not
   * enqueued); buffered values stay receivable; waiting receivers (the buffer is empty then) and
   * later receives on the drained queue get `undefined`. Idempotent.
   */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (let s = this.#takeLive(this.#senders); s; s = this.#takeLive(this.#senders)) s.complete(closedError(`${this.#name} send`));
    for (let r = this.#takeLive(this.#receivers); r; r = this.#takeLive(this.#receivers)) r.deliver({ ok: false });
  }

  async *[Symbol.asyncIterator](): AsyncGenerator<E, void, undefined> {
    for (;;) {
      const v = await this.receive();
      if (v === undefined) return;
      yield v;
    }
  }

  #firstLive<W extends { token: Token }>(set: Set<W>): W | undefined {
    for (const w of set) {
      if (!w.token.done) return w;
      set.delete(w); // stale (should not happen: cancellation removes its waiter)
    }
    return undefined;
  }

  /** Removes the first waiter still waiting and marks it done: the atomic claim. */
  #takeLive<W extends { token: Token }>(set: Set<W>): W | undefined {
    const w = this.#firstLive(set);
    if (w) {
      set.delete(w);
      w.token.done = true;
    }
    return w;
  }
}

import { QueueCore, Ring } from './core.ts';

export type { WaitOptions } from './core.ts';

/**
 * A multi-producer multi-consumer channel inside one process (like crossbeam's
 * `bounded`/`unbounded` in async TypeScript).
 *
 * - `new MpmcChannel<T>(capacity)`: bounded; `send` waits while `capacity` values are buffered.
 *   Capacity 0 is a rendezvous: a send completes only when a receiver takes the value.
 * - `new MpmcChannel<T>()` or `(Infinity)`: unbounded. `send` never waits, so nothing slows a
 *   producer that outruns its consumers: with an unbounded channel the *caller* bounds it (by
 *   design of the protocol, or by watching `size`). Prefer a bound.
 * - `send(v, { timeoutMs, signal })` waits while full; `receive({ timeoutMs, signal })` waits while
 *   empty. Timeout: IpcError SWITCHYARD_IPC_TIMEOUT; abort: rejects with `signal.reason`. A
 *   timed-out or aborted operation is withdrawn atomically: its value is not enqueued (send) and
 *   no value is ever handed to it (receive), so nothing is lost or duplicated.
 * - Waiting senders are served in arrival order, and so are waiting receivers (fairness).
 * - `close()`: later sends and sends still waiting reject with SWITCHYARD_IPC_CLOSED; buffered
 *   values still drain; then `receive()` resolves `undefined` — the end marker. That is why
 *   `undefined` itself cannot be sent (TypeError); send `null` or a wrapper instead.
 * - `trySend(v)` -> false when full (throws CLOSED after close); `tryReceive()` ->
 *   `{ ok: false }` when empty (check `closed` to tell "closed and drained" from "empty now").
 * - `for await (const v of ch)` receives until closed and drained.
 *
 * Use `select()` (./select.ts) to wait on several channels at once.
 */
export class MpmcChannel<T> extends QueueCore<T> {
  constructor(capacity: number = Infinity) {
    super(capacity, new Ring<T>(), 'MpmcChannel');
  }
}

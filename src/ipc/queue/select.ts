import { IpcError } from '../errors.ts';
import { abortReason, timeoutError, type RecvWaiter, type SendWaiter, type Selectable, type Token } from './core.ts';

// select() over several channels (seed §7.4, crossbeam's `select!` in async TypeScript).

export type SelectCase<T = unknown> =
  | { channel: Selectable<T>; op: 'receive' }
  | { channel: Selectable<T>; op: 'send'; value: T };

export interface SelectOptions {
  /** Give up after this many ms with IpcError SWITCHYARD_IPC_TIMEOUT (nothing is consumed). */
  timeoutMs?: number;
  /** Abort; rejects with `signal.reason` (nothing is consumed). */
  signal?: AbortSignal;
  /** Do not wait: if no case is ready now, resolve `{ index: -1 }` at once (Go's `default:`). */
  default?: true;
}

export interface SelectResult<T = unknown> {
  /** Which case completed; -1 only with `default: true` when none was ready. */
  index: number;
  /**
   * For a receive case: the value, or `undefined` when that channel is closed and drained (a closed
   * channel is always ready to receive, as in Go). Absent for a send case.
   */
  value?: T;
}

/**
 * Completes exactly one of the cases and tells which.
 *
 * - When several cases are ready, one of them is picked uniformly at random, so no channel is
 *   starved by its position in the list.
 * - When none is ready, a waiter is registered on every channel with one shared token; the first
 *   channel to complete one claims the token, and the others are withdrawn before anything else
 *   runs: a losing receive consumes nothing, a losing send enqueues nothing.
 * - A send case on a closed channel rejects with SWITCHYARD_IPC_CLOSED (as a plain send would).
 */
export function select<T = unknown>(cases: readonly SelectCase<T>[], opts: SelectOptions = {}): Promise<SelectResult<T>> {
  const { timeoutMs, signal } = opts;
  if (cases.length === 0 && !opts.default && timeoutMs === undefined && !signal) {
    return Promise.reject(new TypeError('select: no cases, no timeout and no signal would wait forever'));
  }
  if (signal?.aborted) return Promise.reject(abortReason(signal));

  // 1. Ready now? Pick uniformly among the ready cases.
  const ready: number[] = [];
  for (let i = 0; i < cases.length; i++) {
    const c = cases[i];
    if (c.op === 'receive' ? c.channel.readyToReceive() : c.channel.readyToSend()) ready.push(i);
  }
  while (ready.length > 0) {
    const k = Math.floor(Math.random() * ready.length);
    const i = ready[k];
    const c = cases[i];
    try {
      if (c.op === 'receive') {
        const r = c.channel.receiveNow();
        if (r) return Promise.resolve(r.ok ? { index: i, value: r.value } : { index: i, value: undefined });
      } else if (c.channel.sendNow(c.value)) {
        return Promise.resolve({ index: i });
      }
    } catch (err) {
      return Promise.reject(err);
    }
    ready.splice(k, 1); // readiness changed under us (cannot today: all of this is synchronous)
  }

  if (opts.default) return Promise.resolve({ index: -1 });
  if (timeoutMs !== undefined && timeoutMs <= 0) return Promise.reject(timeoutError('select', 0));

  // 2. Wait on all of them with one token.
  return new Promise<SelectResult<T>>((resolve, reject) => {
    const token: Token = { done: false };
    const withdrawals: (() => void)[] = [];
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      for (const w of withdrawals) w();
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    try {
      cases.forEach((c, index) => {
        if (c.op === 'receive') {
          const w: RecvWaiter<T> = {
            token,
            deliver: (r) => {
              finish();
              resolve(r.ok ? { index, value: r.value } : { index, value: undefined });
            },
          };
          c.channel.addReceiver(w);
          withdrawals.push(() => c.channel.removeReceiver(w));
        } else {
          const w: SendWaiter<T> = {
            token,
            value: c.value,
            complete: (err?: IpcError) => {
              finish();
              if (err) reject(err);
              else resolve({ index });
            },
          };
          c.channel.addSender(w);
          withdrawals.push(() => c.channel.removeSender(w));
        }
      });
    } catch (err) {
      token.done = true;
      finish();
      reject(err);
      return;
    }
    function cancel(err: unknown): void {
      if (token.done) return;
      token.done = true;
      finish();
      reject(err);
    }
    function onAbort(): void {
      cancel(abortReason(signal!));
    }
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) timer = setTimeout(() => cancel(timeoutError('select', timeoutMs)), timeoutMs);
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

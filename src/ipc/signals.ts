import { IpcError } from './errors.ts';
import { MpmcChannel } from './queue/mpmc.ts';

// Typed helpers for signal notifications (seed §6: "for sig in signals.forever()"), on plain
// Node process signals. A signal carries no data: use it to notify (reload, rotate logs, dump
// state, stop), and a channel for anything else.
//
// What cannot be caught:
// - SIGKILL and SIGSTOP: never (kernel rule); asking for them throws here.
// - SIGSEGV, SIGBUS, SIGFPE, SIGILL: when raised by a real fault the process is not in a state
//   where JavaScript may run (Node's own docs); refused here too.
// - SIGUSR1: Node reserves it to start the inspector; a listener replaces that behaviour while it
//   is installed.
// - SIGPIPE is ignored by Node by default; SIGWINCH only arrives with a TTY; SIGCHLD is delivered.
// - On Windows only SIGINT, SIGBREAK, SIGHUP (console closed) and SIGWINCH arrive at all.
// Node's signal watchers do not keep the process alive: `await nextSignal(...)` as a program's
// only pending work would end the process (exit code 13). So nextSignal and a signal stream's
// pending next() hold the event loop open while they wait (`keepAlive: false` to opt out);
// onSignals does not (plain Node behaviour).
// Installing a listener for SIGINT/SIGTERM/SIGHUP removes Node's default "exit" for it; once every
// listener is removed (unsubscribe) the default comes back.

export const UNCATCHABLE_SIGNALS = ['SIGKILL', 'SIGSTOP'] as const;
export const FAULT_SIGNALS = ['SIGSEGV', 'SIGBUS', 'SIGFPE', 'SIGILL'] as const;

/** Signals these helpers accept. */
export type CatchableSignal = Exclude<NodeJS.Signals, (typeof UNCATCHABLE_SIGNALS)[number] | (typeof FAULT_SIGNALS)[number]>;

/** Holds the event loop open until the returned function is called. */
function holdLoop(): () => void {
  const t = setInterval(() => {}, 2 ** 31 - 1);
  return () => clearInterval(t);
}

function check(signals: readonly CatchableSignal[]): void {
  if (signals.length === 0) throw new TypeError('signals: give at least one signal');
  for (const s of signals) {
    if ((UNCATCHABLE_SIGNALS as readonly string[]).includes(s)) throw new TypeError(`${s} cannot be caught (kernel rule)`);
    if ((FAULT_SIGNALS as readonly string[]).includes(s)) throw new TypeError(`${s} is a fault signal: JavaScript cannot run safely after a real one`);
  }
}

/** Calls `handler(name)` for each of `signals` until the returned function is called (idempotent). */
export function onSignals<S extends CatchableSignal>(signals: readonly S[], handler: (signal: S) => void): () => void {
  check(signals);
  const unique = [...new Set(signals)];
  const listeners = unique.map((s) => {
    const l = (): void => handler(s);
    process.on(s, l);
    return [s, l] as const;
  });
  let done = false;
  return () => {
    if (done) return;
    done = true;
    for (const [s, l] of listeners) process.off(s, l);
  };
}

/**
 * Resolves with the name of the first of `signals` to arrive. `timeoutMs`: rejects with
 * IpcError SWITCHYARD_IPC_TIMEOUT; `signal` (AbortSignal): rejects with its reason. The listeners
 * are removed in every case.
 */
export function nextSignal<S extends CatchableSignal>(
  signals: readonly S[],
  opts: { timeoutMs?: number; signal?: AbortSignal; keepAlive?: boolean } = {},
): Promise<S> {
  check(signals);
  const { timeoutMs, signal } = opts;
  if (signal?.aborted) return Promise.reject(signal.reason);
  return new Promise<S>((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const release = opts.keepAlive === false ? () => {} : holdLoop();
    const finish = (): void => {
      release();
      off();
      if (timer) clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
    };
    const off = onSignals(signals, (s) => {
      finish();
      resolve(s);
    });
    function onAbort(): void {
      finish();
      reject(signal!.reason);
    }
    if (timeoutMs !== undefined && Number.isFinite(timeoutMs)) {
      timer = setTimeout(() => {
        finish();
        reject(new IpcError('SWITCHYARD_IPC_TIMEOUT', `no ${signals.join('/')} within ${timeoutMs} ms`));
      }, timeoutMs);
    }
    signal?.addEventListener('abort', onAbort, { once: true });
  });
}

export interface SignalStream<S extends CatchableSignal> extends AsyncIterableIterator<S> {
  /** Signals that arrived while the buffer was full and were dropped (newest dropped first). */
  readonly dropped: number;
  /** Stops listening; buffered signals are still yielded, then the iteration ends. */
  close(): void;
}

/**
 * An async iterator of signals (like `signals.forever()` of Rust's signal-hook): `for await (const s of
 * signalStream(['SIGHUP', 'SIGTERM'])) ...`. Arrivals are buffered up to `bufferSize` (default
 * 16); beyond that they are counted in `dropped`, not queued without bound (the kernel itself
 * merges pending signals of one kind). Listening stops on `close()`, on `break` out of the loop,
 * or when `signal` aborts.
 */
export function signalStream<S extends CatchableSignal>(
  signals: readonly S[],
  opts: { bufferSize?: number; signal?: AbortSignal; keepAlive?: boolean } = {},
): SignalStream<S> {
  const bufferSize = opts.bufferSize ?? 16;
  if (!Number.isInteger(bufferSize) || bufferSize < 1) throw new RangeError(`signalStream: bufferSize must be a positive integer`);
  const ch = new MpmcChannel<S>(bufferSize);
  let dropped = 0;
  const off = onSignals(signals, (s) => {
    if (!ch.trySend(s)) dropped++;
  });
  const close = (): void => {
    off();
    ch.close();
    opts.signal?.removeEventListener('abort', close);
  };
  if (opts.signal?.aborted) close();
  else opts.signal?.addEventListener('abort', close, { once: true });
  const stream: SignalStream<S> = {
    get dropped() {
      return dropped;
    },
    close,
    async next(): Promise<IteratorResult<S, undefined>> {
      const release = opts.keepAlive === false || ch.size > 0 || ch.closed ? () => {} : holdLoop();
      let v: S | undefined;
      try {
        v = await ch.receive();
      } finally {
        release();
      }
      return v === undefined ? { done: true, value: undefined } : { done: false, value: v };
    },
    async return(): Promise<IteratorResult<S, undefined>> {
      close();
      return { done: true, value: undefined };
    },
    [Symbol.asyncIterator]() {
      return stream;
    },
  };
  return stream;
}

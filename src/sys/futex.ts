import { nativeLibc, nativeUnavailableReason } from './koffi.ts';

// futex(2) through syscall(202) on an address inside a MAP_SHARED mapping: the cross-process
// equivalent of Atomics.wait/notify (which refuse the non-shared ArrayBuffer koffi.view gives).
// Non-private ops (FUTEX_WAIT=0, FUTEX_WAKE=1) so waiters in other processes are found.
//
// futexWaitAsync runs on libuv's threadpool (4 threads unless UV_THREADPOOL_SIZE says more): a
// wait occupies one thread until it is woken or its timeout ends, delaying fs/dns work queued
// behind it. Keep timeouts short (tens of ms) and re-check, or raise UV_THREADPOOL_SIZE.

const SYS_futex = 202; // x86-64
const FUTEX_WAIT = 0;
const FUTEX_WAKE = 1;

export type FutexWaitResult = 'woken' | 'not-equal' | 'timed-out' | 'interrupted';

interface FutexCalls {
  wait(addr: bigint, expected: number, timeoutMs: number): FutexWaitResult;
  waitAsync(addr: bigint, expected: number, timeoutMs: number): Promise<FutexWaitResult>;
  wake(addr: bigint, count: number): number;
}

let calls: FutexCalls | undefined;

function bind(): FutexCalls {
  if (calls) return calls;
  if (process.arch !== 'x64') throw new Error(`futex is only wired for x86-64 (this is ${process.arch})`);
  const n = nativeLibc();
  if (!n) throw new Error(`futex is not available: ${nativeUnavailableReason()}`);
  const { koffi, lib } = n;
  const timespec = koffi.struct('switchyard_futex_timespec', { tv_sec: 'int64_t', tv_nsec: 'int64_t' });
  // syscall() is variadic in C; on x86-64 a fixed prototype of integer/pointer arguments passes
  // them in the same registers.
  const sys = lib.func('syscall', 'long', ['long', 'uintptr_t', 'int', 'int', koffi.pointer(timespec), 'void *', 'int']);
  const ETIMEDOUT = 110;
  const EAGAIN = 11;
  const EINTR = 4;
  const classify = (r: number, errno: number): FutexWaitResult => {
    if (r === 0) return 'woken';
    if (errno === EAGAIN) return 'not-equal';
    if (errno === ETIMEDOUT) return 'timed-out';
    if (errno === EINTR) return 'interrupted';
    throw new Error(`futex wait failed: errno ${errno}`);
  };
  const ts = (ms: number) => ({ tv_sec: Math.floor(ms / 1000), tv_nsec: Math.round((ms % 1000) * 1e6) });
  calls = {
    wait(addr, expected, timeoutMs) {
      const r = sys(SYS_futex, addr, FUTEX_WAIT, expected | 0, ts(timeoutMs), null, 0) as number;
      return classify(r, r === 0 ? 0 : koffi.errno());
    },
    waitAsync(addr, expected, timeoutMs) {
      return new Promise((resolve, reject) => {
        // errno of a threadpool call is not readable from the JS thread afterwards; the timeout
        // and the value check are told apart by the caller re-checking its condition.
        sys.async(SYS_futex, addr, FUTEX_WAIT, expected | 0, ts(timeoutMs), null, 0, (err: unknown, r: number) => {
          if (err) reject(err);
          else resolve(r === 0 ? 'woken' : 'timed-out');
        });
      });
    },
    wake(addr, count) {
      return sys(SYS_futex, addr, FUTEX_WAKE, count, null, null, 0) as number;
    },
  };
  return calls;
}

/** Sleeps while the int32 at `addr` equals `expected`, at most `timeoutMs`; blocks this thread. */
export function futexWait(addr: bigint, expected: number, timeoutMs: number): FutexWaitResult {
  return bind().wait(addr, expected, timeoutMs);
}

/**
 * Same, on libuv's threadpool; the event loop stays free. Resolves 'woken' (0 returned) or
 * 'timed-out' (any -1: timeout, value already different, or a signal): callers re-check.
 */
export function futexWaitAsync(addr: bigint, expected: number, timeoutMs: number): Promise<FutexWaitResult> {
  return bind().waitAsync(addr, expected, timeoutMs);
}

/** Wakes up to `count` waiters on `addr`; returns how many were woken. */
export function futexWake(addr: bigint, count = 1): number {
  return bind().wake(addr, count);
}

export function futexAvailable(): boolean {
  try {
    bind();
    return true;
  } catch {
    return false;
  }
}

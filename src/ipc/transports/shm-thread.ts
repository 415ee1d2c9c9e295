import { isMainThread } from 'node:worker_threads';
import { DEFAULT_MAX_MESSAGE_SIZE, type ChannelOptions } from '../channel.ts';
import { ringCapacityFor, type Ring } from '../ring.ts';
import {
  RingChannel, layout, segmentBytes, DEFAULT_SYNC_SPIN_MICROS, DEFAULT_SYNC_SPIN_MAX_MICROS, type Waiter,
  H_MAGIC, H_VERSION, H_CAPACITY, H_MAX_MESSAGE, H_CREATOR_CLOSED, H_OPENER_CLOSED, MAGIC, VERSION,
} from './ring-channel.ts';

// A Channel between worker threads over one SharedArrayBuffer holding two SPSC rings. Sleeping
// uses Atomics.waitAsync on the main thread (which must never block) and, by default, on workers
// too; `wait: 'sync'` lets a worker that does nothing else block in Atomics.wait (faster wake-up,
// but its event loop is stalled for up to `sliceMs` at a time). Spins `spinMicros` first.
//
//   const { channel, peer } = createShmThreadChannel();
//   const w = new Worker(url, { workerData: peer });            // peer is structured-cloneable
//   // in the worker: const channel = openShmThreadChannel(workerData);

export interface ShmThreadOptions extends ChannelOptions {
  /** Data bytes per direction (power of two); default fits 4 max-size messages, at least 4 MiB. */
  capacity?: number;
  /** Busy-wait before sleeping, µs (default 5). */
  spinMicros?: number;
  /** 'async' (Atomics.waitAsync, default) or 'sync' (Atomics.wait; workers only). */
  wait?: 'async' | 'sync';
  /** Longest single sleep, ms (default 50). */
  sliceMs?: number;
  /**
   * Busy-wait of the synchronous calls (receiveViewSync, sendSync, reserve) before they block in
   * Atomics.wait, µs (default 50). They block whichever thread calls them, the main thread too.
   */
  syncSpinMicros?: number;
  /**
   * The longest those calls spin, µs (default 1000): after a wait that the peer ended soon after
   * it went to sleep, the next spin lasts twice that wait, up to this (so two sides whose wake-up
   * is slower than the spin do not keep putting each other to sleep). Never unbounded.
   */
  syncSpinMaxMicros?: number;
}

/** What the other thread needs to attach; pass it in workerData or postMessage. */
export interface ShmThreadPeer {
  readonly buffer: SharedArrayBuffer;
  readonly capacity: number;
  readonly maxMessageSize: number;
}

// Atomics.waitAsync is in Node 20 (V8) but not in the ES2022 lib this project compiles against.
type WaitAsync = (a: Int32Array, i: number, v: number, t: number) => { async: boolean; value: Promise<string> | string };
const waitAsync = (Atomics as unknown as { waitAsync: WaitAsync }).waitAsync;

function atomicsWaiter(mode: 'async' | 'sync'): Waiter {
  if (mode === 'sync' && isMainThread) throw new RangeError("wait: 'sync' would block the main thread; use 'async'");
  return {
    sleeps: true,
    wait(ring: Ring, index: number, expected: number, sliceMs: number) {
      if (mode === 'sync') {
        Atomics.wait(ring.ctl, index, expected, sliceMs);
        return;
      }
      const r = waitAsync(ring.ctl, index, expected, sliceMs);
      return r.async ? (r.value as Promise<string>) : undefined;
    },
    waitSync(ring: Ring, index: number, expected: number, ms: number) {
      Atomics.wait(ring.ctl, index, expected, ms);
    },
    wake(ring: Ring, index: number) {
      Atomics.notify(ring.ctl, index);
    },
  };
}

function make(peer: ShmThreadPeer, creator: boolean, options: ShmThreadOptions) {
  const l = layout(peer.buffer, peer.capacity, false);
  return new RingChannel({
    transport: 'shm-thread',
    tx: creator ? l.a : l.b,
    rx: creator ? l.b : l.a,
    header: l.header,
    myClosed: creator ? H_CREATOR_CLOSED : H_OPENER_CLOSED,
    peerClosed: creator ? H_OPENER_CLOSED : H_CREATOR_CLOSED,
    maxMessageSize: peer.maxMessageSize,
    waiter: atomicsWaiter(options.wait ?? 'async'),
    spinMicros: options.spinMicros ?? 5,
    sliceMs: options.sliceMs ?? 50,
    syncSpinMicros: options.syncSpinMicros ?? DEFAULT_SYNC_SPIN_MICROS,
    syncSpinMaxMicros: Math.max(options.syncSpinMaxMicros ?? DEFAULT_SYNC_SPIN_MAX_MICROS, options.syncSpinMicros ?? DEFAULT_SYNC_SPIN_MICROS),
    peerAlive: () => true,
    peerAttached: () => false,
    release: () => undefined,
  });
}

export function createShmThreadChannel(options: ShmThreadOptions = {}): { channel: RingChannel; peer: ShmThreadPeer } {
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const capacity = options.capacity ?? Math.max(4 * 1024 * 1024, ringCapacityFor(maxMessageSize, 4));
  if (capacity - 4 < maxMessageSize) throw new RangeError(`capacity ${capacity} cannot hold a message of ${maxMessageSize} bytes`);
  const buffer = new SharedArrayBuffer(segmentBytes(capacity));
  const l = layout(buffer, capacity, true);
  Atomics.store(l.header, H_VERSION, VERSION);
  Atomics.store(l.header, H_CAPACITY, capacity);
  Atomics.store(l.header, H_MAX_MESSAGE, maxMessageSize);
  Atomics.store(l.header, H_MAGIC, MAGIC);
  const peer: ShmThreadPeer = { buffer, capacity, maxMessageSize };
  return { channel: make(peer, true, options), peer };
}

export function openShmThreadChannel(peer: ShmThreadPeer, options: Omit<ShmThreadOptions, 'capacity' | 'maxMessageSize'> = {}): RingChannel {
  const header = new Int32Array(peer.buffer, 0, 8);
  if (Atomics.load(header, H_MAGIC) !== MAGIC) throw new RangeError('not a Switchyard shm-thread channel buffer');
  return make(peer, false, options);
}

import { DEFAULT_MAX_MESSAGE_SIZE, type ChannelOptions } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { ringCapacityFor, type Ring } from '../ring.ts';
import { shmCreate, shmOpen, shmUnlink, ShmError, type ShmSegment } from '../../sys/shm.ts';
import { futexWait, futexWaitAsync, futexWake } from '../../sys/futex.ts';
import {
  RingChannel, layout, segmentBytes, HEADER_BYTES, DEFAULT_SYNC_SPIN_MICROS, DEFAULT_SYNC_SPIN_MAX_MICROS, type Waiter,
  H_MAGIC, H_VERSION, H_CAPACITY, H_MAX_MESSAGE, H_CREATOR_PID, H_OPENER_PID, H_CREATOR_CLOSED, H_OPENER_CLOSED,
  MAGIC, VERSION,
} from './ring-channel.ts';

// A Channel between two PROCESSES over a named POSIX shared-memory segment `/switchyard-<name>`
// (created 0600; on Linux the file /dev/shm/switchyard-<name>) holding a header and two SPSC
// rings. The creator calls createShmChannel, the other process openShmChannel with the same name.
//
// Waiting when a ring is full/empty: spin `spinMicros` (default 5), then (mode 'futex', default)
// a futex wait on the ring's TAIL/HEAD word through libuv's threadpool (the event loop stays
// free) for at most `sliceMs` (default 20), then re-check. Each sleeping send/receive holds one
// threadpool thread (4 by default) for up to sliceMs; size UV_THREADPOOL_SIZE if the process
// also does much fs work. Mode 'spin' never sleeps: it busy-waits and blocks the event loop
// while waiting (lowest latency, for benchmarks and dedicated processes; a process that both
// sends and receives concurrently on one channel must not use it).
//
// Synchronous zero-copy calls (receiveViewSync, receiveWith, reserve/commit, sendSync; see
// ring-channel.ts and ring-view.ts) block the calling thread: they spin at most `syncSpinMicros`,
// then sleep on the futex (a plain blocking syscall, no threadpool) in slices of `sliceMs`.
//
// Peer death: each side writes its pid in the header; a waiting side whose peer pid no longer
// exists (kill(pid, 0) -> ESRCH) gets IpcError SWITCHYARD_IPC_PEER_GONE (after draining what the
// peer had already sent). close() sets this side's closed flag (the peer's receive ends cleanly
// after draining), unmaps, and the creator shm_unlinks; the opener unlinks too when the creator
// is gone or closed.

export interface ShmChannelOptions extends ChannelOptions {
  /** Data bytes per direction (power of two); default fits 4 max-size messages, at least 4 MiB. Creator only. */
  capacity?: number;
  /** 'futex' (default): spin then sleep. 'spin': busy-wait only. */
  mode?: 'futex' | 'spin';
  /** Busy-wait before sleeping, µs (default 5). */
  spinMicros?: number;
  /** Longest single sleep before re-checking the peer, ms (default 20). */
  sliceMs?: number;
  /**
   * Busy-wait of the synchronous calls (receiveViewSync, sendSync, reserve) before they sleep on
   * a futex, µs (default 50). Bounded in every mode, so a waiting process gives its core back.
   */
  syncSpinMicros?: number;
  /**
   * The longest those calls spin, µs (default 1000): after a wait that the peer ended soon after
   * it went to sleep, the next spin lasts twice that wait, up to this (so two sides whose wake-up
   * is slower than the spin do not keep putting each other to sleep). Never unbounded.
   */
  syncSpinMaxMicros?: number;
}

export class ShmChannel extends RingChannel {
  constructor(
    parts: ConstructorParameters<typeof RingChannel>[0],
    /** The POSIX name, `/switchyard-<name>`. */
    readonly segmentName: string,
  ) {
    super(parts);
  }
  /** Where Linux shows the segment. */
  get path(): string {
    return `/dev/shm${this.segmentName}`;
  }
}

export function shmSegmentName(name: string): string {
  if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) throw new RangeError(`shm channel name must be 1-200 of [A-Za-z0-9._-] (got ${JSON.stringify(name)})`);
  return `/switchyard-${name}`;
}

function pidAlive(pid: number): boolean {
  if (pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code !== 'ESRCH';
  }
}

function futexWaiter(seg: ShmSegment, mode: 'futex' | 'spin'): Waiter {
  const addr = (ring: Ring, index: number) => seg.address + BigInt(ring.ctl.byteOffset + index * 4);
  return {
    sleeps: mode === 'futex',
    wait(ring, index, expected, sliceMs) {
      if (mode === 'futex') return futexWaitAsync(addr(ring, index), expected, sliceMs);
      const end = performance.now() + sliceMs;
      for (let i = 0; Atomics.load(ring.ctl, index) === expected; i++) {
        if ((i & 1023) === 0 && performance.now() > end) return;
      }
    },
    waitSync(ring, index, expected, ms) {
      futexWait(addr(ring, index), expected, ms);
    },
    wake(ring, index) {
      futexWake(addr(ring, index), 0x7fffffff);
    },
  };
}

function wrapShmError(err: unknown, name: string): never {
  if (err instanceof ShmError) {
    if (err.code === 'UNSUPPORTED') throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', err.message, { cause: err });
    if (err.code === 'EACCES') throw new IpcError('SWITCHYARD_IPC_PERMISSION', err.message, { cause: err });
    if (err.code === 'ENOENT') throw new IpcError('SWITCHYARD_IPC_PEER_GONE', `no shm channel ${name}: ${err.message}`, { cause: err });
    // Created but not sized yet: the same "not ready yet" as a header without its magic.
    if (err.code === 'ESHORT') throw new IpcError('SWITCHYARD_IPC_PROTOCOL', `${name} is not ready yet: ${err.message}`, { cause: err });
  }
  throw err;
}

function build(seg: ShmSegment, creator: boolean, capacity: number, maxMessageSize: number, options: ShmChannelOptions): ShmChannel {
  const l = layout(seg.buffer, capacity, false);
  const h = l.header;
  const peerPidWord = creator ? H_OPENER_PID : H_CREATOR_PID;
  let released = false;
  return new ShmChannel(
    {
      transport: 'shm',
      tx: creator ? l.a : l.b,
      rx: creator ? l.b : l.a,
      header: h,
      myClosed: creator ? H_CREATOR_CLOSED : H_OPENER_CLOSED,
      peerClosed: creator ? H_OPENER_CLOSED : H_CREATOR_CLOSED,
      maxMessageSize,
      waiter: futexWaiter(seg, options.mode ?? 'futex'),
      spinMicros: options.spinMicros ?? 5,
      sliceMs: options.sliceMs ?? 20,
      syncSpinMicros: options.syncSpinMicros ?? DEFAULT_SYNC_SPIN_MICROS,
      syncSpinMaxMicros: Math.max(options.syncSpinMaxMicros ?? DEFAULT_SYNC_SPIN_MAX_MICROS, options.syncSpinMicros ?? DEFAULT_SYNC_SPIN_MICROS),
      peerAttached: () => Atomics.load(h, peerPidWord) !== 0,
      peerAlive: () => pidAlive(Atomics.load(h, peerPidWord)),
      release: () => {
        if (released) return;
        released = true;
        const creatorGone = !creator && (Atomics.load(h, H_CREATOR_CLOSED) !== 0 || !pidAlive(Atomics.load(h, H_CREATOR_PID)));
        seg.unmap();
        if (creator || creatorGone) shmUnlink(seg.name);
      },
    },
    seg.name,
  );
}

/** Creates `/switchyard-<name>` (0600, fails if it exists) and returns the creator's side. */
export function createShmChannel(name: string, options: ShmChannelOptions = {}): ShmChannel {
  const segName = shmSegmentName(name);
  const maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
  const capacity = options.capacity ?? Math.max(4 * 1024 * 1024, ringCapacityFor(maxMessageSize, 4));
  if (capacity - 4 < maxMessageSize) throw new RangeError(`capacity ${capacity} cannot hold a message of ${maxMessageSize} bytes`);
  let seg: ShmSegment;
  try {
    seg = shmCreate(segName, segmentBytes(capacity), 0o600);
  } catch (err) {
    wrapShmError(err, segName);
  }
  const l = layout(seg.buffer, capacity, true);
  Atomics.store(l.header, H_VERSION, VERSION);
  Atomics.store(l.header, H_CAPACITY, capacity);
  Atomics.store(l.header, H_MAX_MESSAGE, maxMessageSize);
  Atomics.store(l.header, H_CREATOR_PID, process.pid);
  Atomics.store(l.header, H_MAGIC, MAGIC); // last: the segment is ready
  return build(seg, true, capacity, maxMessageSize, options);
}

/** Opens the channel another process created with createShmChannel(name). */
export function openShmChannel(name: string, options: Omit<ShmChannelOptions, 'capacity' | 'maxMessageSize'> = {}): ShmChannel {
  const segName = shmSegmentName(name);
  let probe: ShmSegment;
  try {
    probe = shmOpen(segName, HEADER_BYTES);
  } catch (err) {
    wrapShmError(err, segName);
  }
  const ph = new Int32Array(probe.buffer, 0, HEADER_BYTES / 4);
  const magic = Atomics.load(ph, H_MAGIC);
  const version = Atomics.load(ph, H_VERSION);
  const capacity = Atomics.load(ph, H_CAPACITY);
  const maxMessageSize = Atomics.load(ph, H_MAX_MESSAGE);
  const opener = Atomics.load(ph, H_OPENER_PID);
  probe.unmap();
  if (magic !== MAGIC || version !== VERSION) throw new IpcError('SWITCHYARD_IPC_PROTOCOL', `${segName} is not a Switchyard shm channel (or not ready yet)`);
  if (opener !== 0 && opener !== process.pid && pidAlive(opener)) {
    throw new IpcError('SWITCHYARD_IPC_PERMISSION', `${segName} is already open by process ${opener} (a channel has exactly two ends)`);
  }
  let seg: ShmSegment;
  try {
    seg = shmOpen(segName, segmentBytes(capacity));
  } catch (err) {
    wrapShmError(err, segName);
  }
  const h = new Int32Array(seg.buffer, 0, HEADER_BYTES / 4);
  Atomics.store(h, H_OPENER_PID, process.pid);
  return build(seg, false, capacity, maxMessageSize, options);
}

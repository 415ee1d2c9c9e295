import { shmCreate, shmOpen, shmUnlink, type ShmSegment } from '../../src/sys/shm.ts';

// The pipeline's control block: a few words of shared memory every stage maps, next to the
// channels. The kill switch lives here rather than in a message so it acts at once: a message
// would queue behind the orders already in the rings, while a flag is seen by the very next
// order risk checks (and by the gateway, which then holds whatever was already past risk).
//
//   Int32 word 0  STOP          1: the feed stops and the pipeline drains and exits
//   Int32 word 1  KILL          1: the kill switch is tripped (never cleared during a run)
//   Int32 word 2  KILL_SOURCE   who tripped it (KillSource)
//   Int32 word 3  reserved
//   BigInt64 at byte 16  KILL_TIME  hrtime ns when it was tripped (written before KILL)

const STOP = 0;
const KILL = 1;
const KILL_SOURCE = 2;
const KILL_TIME_BYTE = 16;
const BYTES = 64;

export const KILL_SOURCES = ['none', 'SIGUSR1', 'order count', 'kill file'] as const;
export type KillSource = (typeof KILL_SOURCES)[number];

export class Control {
  private readonly words: Int32Array;
  private readonly times: BigInt64Array;

  private constructor(
    private readonly seg: ShmSegment,
    private readonly owner: boolean,
  ) {
    this.words = new Int32Array(seg.buffer, 0, 4);
    this.times = new BigInt64Array(seg.buffer, KILL_TIME_BYTE, 1);
  }

  /** The runner makes the block (0600); `name` is a POSIX shm name, `/switchyard-...`. */
  static create(name: string): Control {
    return new Control(shmCreate(name, BYTES, 0o600), true);
  }

  static open(name: string): Control {
    return new Control(shmOpen(name, BYTES), false);
  }

  get stopped(): boolean {
    return Atomics.load(this.words, STOP) !== 0;
  }

  stop(): void {
    Atomics.store(this.words, STOP, 1);
  }

  /** Checked on every order: one atomic load. */
  get killed(): boolean {
    return Atomics.load(this.words, KILL) !== 0;
  }

  /** Trips the kill switch (the first trip wins); returns whether this call tripped it. */
  kill(source: KillSource, at: bigint): boolean {
    if (Atomics.compareExchange(this.words, KILL_SOURCE, 0, KILL_SOURCES.indexOf(source)) !== 0) return false;
    Atomics.store(this.times, 0, at);
    Atomics.store(this.words, KILL, 1);
    return true;
  }

  get killSource(): KillSource {
    return KILL_SOURCES[Atomics.load(this.words, KILL_SOURCE)] ?? 'none';
  }

  get killTime(): bigint {
    return Atomics.load(this.times, 0);
  }

  /** Removes the block's name (mappings stay valid): for a stage whose runner died. */
  unlink(): void {
    shmUnlink(this.seg.name);
  }

  close(): void {
    this.seg.unmap();
    if (this.owner) shmUnlink(this.seg.name);
  }
}

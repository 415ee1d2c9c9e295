// A fixed-rate tick loop that does not drift: tick n is due at start + n * period, whatever the
// earlier ticks cost, so a late tick makes the next one's wait shorter instead of pushing every
// later tick back (setInterval's error adds up). How late each tick started (jitter) and how
// long it ran are kept in a ring of recent samples for the stats.

/** Ticks further behind than this are skipped (and counted) rather than run back to back. */
const MAX_BEHIND_TICKS = 5;

export interface TickSample {
  /** The tick's number. */
  readonly tick: number;
  /** How late the tick started against its due time, ms (negative: early). */
  readonly jitterMs: number;
  /** How long the tick's work took, ms. */
  readonly durationMs: number;
}

export interface TickStats {
  readonly tick: number;
  readonly samples: number;
  readonly skipped: number;
  readonly durationP50Ms: number;
  readonly durationP99Ms: number;
  readonly jitterP50Ms: number;
  readonly jitterP99Ms: number;
}

function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export class FixedTicker {
  private startedAt = 0;
  private tick = 0;
  private skipped = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly ring: TickSample[] = [];
  private ringNext = 0;

  constructor(
    readonly periodMs: number,
    private readonly onTick: (tick: number) => void,
    /** Samples kept for the stats. */
    private readonly ringSize = 1024,
  ) {}

  get currentTick(): number {
    return this.tick;
  }

  start(): void {
    this.startedAt = performance.now();
    this.schedule();
  }

  stop(): void {
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /** Percentiles over the samples of ticks after `sinceTick` (all kept ones by default). */
  stats(sinceTick = 0): TickStats {
    const recent = this.ring.filter((s) => s.tick > sinceTick);
    const durations = recent.map((s) => s.durationMs).sort((a, b) => a - b);
    // Timers may also fire a fraction of a millisecond early: jitter is the distance either way.
    const jitters = recent.map((s) => Math.abs(s.jitterMs)).sort((a, b) => a - b);
    return {
      tick: this.tick,
      samples: recent.length,
      skipped: this.skipped,
      durationP50Ms: percentile(durations, 50),
      durationP99Ms: percentile(durations, 99),
      jitterP50Ms: percentile(jitters, 50),
      jitterP99Ms: percentile(jitters, 99),
    };
  }

  private schedule(): void {
    const due = this.startedAt + (this.tick + 1) * this.periodMs;
    this.timer = setTimeout(this.run, Math.max(0, due - performance.now()));
    // The listeners keep the process alive; a world left running must not.
    this.timer.unref();
  }

  private readonly run = (): void => {
    const now = performance.now();
    let due = this.startedAt + (this.tick + 1) * this.periodMs;
    const behind = Math.floor((now - due) / this.periodMs);
    if (behind > MAX_BEHIND_TICKS) {
      this.tick += behind;
      this.skipped += behind;
      due += behind * this.periodMs;
    }
    this.tick++;
    this.onTick(this.tick);
    // Sends of a tick are held (corked) and written in a process.nextTick queued during the tick;
    // this one is queued after them, so the duration includes handing every snapshot to the kernel.
    process.nextTick(this.record, this.tick, now, now - due);
    if (this.timer !== undefined) this.schedule();
  };

  private readonly record = (tick: number, startedAt: number, jitterMs: number): void => {
    const sample: TickSample = { tick, jitterMs, durationMs: performance.now() - startedAt };
    if (this.ring.length < this.ringSize) this.ring.push(sample);
    else this.ring[this.ringNext] = sample;
    this.ringNext = (this.ringNext + 1) % this.ringSize;
  };
}

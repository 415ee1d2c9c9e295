// When each request is meant to go out. Closed model (no rate): a connection sends its next
// request as soon as it has room, and its latency starts when it is written. Open model (-R):
// request i is due at start + i/rate whatever happened before, and its latency starts at that
// due time, so a server that stalls is charged for every request that should have gone out
// meanwhile (the coordinated-omission correction wrk2 makes). Both end at the request count or
// the deadline, whichever comes first.

export interface SchedulerOptions {
  /** performance.now() at the start of the run. */
  readonly startMs: number;
  /** performance.now() after which no request is started; Infinity for count-only runs. */
  readonly endMs: number;
  /** Requests in all; Infinity for duration-only runs. */
  readonly limit: number;
  /** Requests per second (open model), or undefined (closed model). */
  readonly rate: number | undefined;
}

/** What take() answers when the run sends nothing more. */
export const NO_MORE = -1;

export class Scheduler {
  private handedOut = 0;
  private stopped = false;
  private readonly intervalMs: number;

  constructor(private readonly o: SchedulerOptions) {
    this.intervalMs = o.rate === undefined ? 0 : 1000 / o.rate;
  }

  /** True in the open model: due times may lie ahead and callers wait for them. */
  get paced(): boolean {
    return this.o.rate !== undefined;
  }

  /**
   * Takes the next request: its due time (performance.now() clock; `now` itself in the closed
   * model, possibly later in the open model), or NO_MORE.
   */
  take(now: number): number {
    if (this.stopped || this.handedOut >= this.o.limit || now >= this.o.endMs) return NO_MORE;
    if (this.o.rate === undefined) {
      this.handedOut++;
      return now;
    }
    const due = this.o.startMs + this.handedOut * this.intervalMs;
    if (due >= this.o.endMs) return NO_MORE;
    this.handedOut++;
    return due;
  }

  /** No request will be handed out any more (count reached, deadline passed, or stopped). */
  exhausted(now: number): boolean {
    if (this.stopped || this.handedOut >= this.o.limit || now >= this.o.endMs) return true;
    return this.o.rate !== undefined && this.o.startMs + this.handedOut * this.intervalMs >= this.o.endMs;
  }

  /** Requests handed out so far. */
  get taken(): number {
    return this.handedOut;
  }

  stop(): void {
    this.stopped = true;
  }
}

import type { BreakerConfig } from './config.ts';

// Per-upstream circuit breaker: closed / open / half-open on a failure rate over a rolling,
// bucketed window, plus an Envoy-style cap on requests in flight that holds in every state.
// O(1) per call: the window is a fixed ring of buckets with running totals; one small ticket
// object per admitted request is the only allocation on the hot path.

export type BreakerState = 'closed' | 'open' | 'half-open';

/** What a state change is told along with the new state: enough to log it as one line. */
export interface BreakerChange {
  from: BreakerState;
  /** Requests and failures in the window when the change happened (what opened it). */
  requests: number;
  failures: number;
}

export type Admission =
  | { ok: true; release(outcome: 'success' | 'failure'): void }
  | { ok: false; reason: 'open' | 'max-requests'; retryAfterMs: number };

const BUCKETS = 10;

/** One admitted request. `release` counts once; later calls are ignored. */
class Ticket {
  readonly ok = true as const;
  private done = false;
  constructor(
    private readonly breaker: CircuitBreaker,
    /** The breaker's generation when admitted: a late answer from an older state is not counted. */
    private readonly generation: number,
    private readonly probe: boolean,
  ) {}
  release(outcome: 'success' | 'failure'): void {
    if (this.done) return;
    this.done = true;
    this.breaker.settle(this.generation, this.probe, outcome === 'success');
  }
}

export class CircuitBreaker {
  private current: BreakerState = 'closed';
  /** Bumped on every state change. */
  private generation = 0;
  private openedAt = 0;
  private inFlightCount = 0;
  private probesInFlight = 0;

  private readonly bucketMs: number;
  private readonly reqs = new Float64Array(BUCKETS);
  private readonly fails = new Float64Array(BUCKETS);
  /** Bucket number (floor(now / bucketMs)) of the newest bucket; older ones follow it in the ring. */
  private head = 0;
  private requests = 0;
  private failures = 0;

  constructor(
    private readonly config: BreakerConfig,
    private readonly now: () => number = Date.now,
    private readonly onStateChange?: (state: BreakerState, change: BreakerChange) => void,
  ) {
    this.bucketMs = Math.max(1, Math.ceil(config.window / BUCKETS));
    this.head = Math.floor(this.now() / this.bucketMs);
  }

  get state(): BreakerState {
    this.tick(this.now());
    return this.current;
  }

  get inFlight(): number {
    return this.inFlightCount;
  }

  /** `now`: the caller's clock reading when it has one (the breaker's clock otherwise). */
  admit(now: number = this.now()): Admission {
    this.tick(now);
    if (this.current === 'open') return { ok: false, reason: 'open', retryAfterMs: this.timeLeftOpen(now) };
    if (this.inFlightCount >= this.config.maxRequests) return { ok: false, reason: 'max-requests', retryAfterMs: 0 };
    let probe = false;
    if (this.current === 'half-open') {
      if (this.probesInFlight >= this.config.halfOpenRequests) return { ok: false, reason: 'open', retryAfterMs: 0 };
      this.probesInFlight++;
      probe = true;
    }
    this.inFlightCount++;
    return new Ticket(this, this.generation, probe);
  }

  snapshot(): { state: BreakerState; requests: number; failures: number; inFlight: number; retryAfterMs: number } {
    const now = this.now();
    this.tick(now);
    this.advance(now);
    return {
      state: this.current,
      requests: this.requests,
      failures: this.failures,
      inFlight: this.inFlightCount,
      retryAfterMs: this.current === 'open' ? this.timeLeftOpen(now) : 0,
    };
  }

  /** @internal Called by a ticket, once. */
  settle(generation: number, probe: boolean, success: boolean): void {
    this.inFlightCount--;
    const now = this.now();
    this.tick(now);
    if (probe && generation === this.generation) this.probesInFlight--;
    // An answer to a request admitted before the last state change says nothing about now.
    if (generation !== this.generation) return;
    if (this.current === 'half-open') {
      if (success) this.transition('closed', now);
      else this.transition('open', now);
      return;
    }
    if (this.current !== 'closed') return;
    this.advance(now);
    const i = this.head % BUCKETS;
    this.reqs[i]++;
    this.requests++;
    if (!success) {
      this.fails[i]++;
      this.failures++;
    }
    if (this.requests >= this.config.minRequests && this.failures >= this.config.failureRate * this.requests) {
      this.transition('open', now);
    }
  }

  private timeLeftOpen(now: number): number {
    return Math.max(0, this.openedAt + this.config.openFor - now);
  }

  /** Open -> half-open once openFor has passed. */
  private tick(now: number): void {
    if (this.current === 'open' && now - this.openedAt >= this.config.openFor) this.transition('half-open', now);
  }

  private transition(to: BreakerState, now: number): void {
    const change: BreakerChange = { from: this.current, requests: this.requests, failures: this.failures };
    this.current = to;
    this.generation++;
    this.probesInFlight = 0;
    if (to === 'open') this.openedAt = now;
    if (to === 'closed') this.resetWindow(now);
    this.onStateChange?.(to, change);
  }

  private resetWindow(now: number): void {
    this.reqs.fill(0);
    this.fails.fill(0);
    this.requests = 0;
    this.failures = 0;
    this.head = Math.floor(now / this.bucketMs);
  }

  /** Moves the ring forward to `now`, dropping buckets that left the window (at most BUCKETS). */
  private advance(now: number): void {
    const b = Math.floor(now / this.bucketMs);
    if (b <= this.head) return; // same bucket, or the clock went back: keep counting in the newest
    if (b - this.head >= BUCKETS) {
      this.resetWindow(now);
      return;
    }
    for (let n = this.head + 1; n <= b; n++) {
      const i = n % BUCKETS;
      this.requests -= this.reqs[i];
      this.failures -= this.fails[i];
      this.reqs[i] = 0;
      this.fails[i] = 0;
    }
    this.head = b;
  }
}

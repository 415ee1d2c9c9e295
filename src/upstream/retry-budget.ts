// Retry budget (Envoy / Finagle style): retries in a rolling window may be at most `ratio` x the
// original requests in it, but `minPerSecond` x the window's seconds are always allowed so a
// quiet group can still retry. Bucketed ring with running totals: O(1), no allocation per call.

const BUCKETS = 10;

export class RetryBudget {
  private readonly bucketMs: number;
  private readonly minRetries: number;
  private readonly reqs = new Float64Array(BUCKETS);
  private readonly rets = new Float64Array(BUCKETS);
  private head: number;
  private requests = 0;
  private retries = 0;

  constructor(
    private readonly ratio: number,
    minPerSecond: number,
    private readonly now: () => number = Date.now,
    windowMs = 10_000,
  ) {
    this.bucketMs = Math.max(1, Math.ceil(windowMs / BUCKETS));
    this.minRetries = minPerSecond * (windowMs / 1000);
    this.head = Math.floor(this.now() / this.bucketMs);
  }

  /** Counts an original request (not a retry); `now`: the caller's clock reading when it has one. */
  onRequest(now: number = this.now()): void {
    this.advance(now);
    this.reqs[this.head % BUCKETS]++;
    this.requests++;
  }

  /** True, and the retry is counted, when one more retry stays within the budget. */
  tryRetry(): boolean {
    this.advance();
    // `retries + 1 <= allowed` rather than `retries < allowed`: with a fractional allowance
    // (ratio x few requests) the budget is never overdrawn.
    if (this.retries + 1 > this.allowed()) return false;
    this.rets[this.head % BUCKETS]++;
    this.retries++;
    return true;
  }

  snapshot(): { requests: number; retries: number; allowed: number } {
    this.advance();
    return { requests: this.requests, retries: this.retries, allowed: Math.floor(this.allowed()) };
  }

  private allowed(): number {
    return Math.max(this.minRetries, this.ratio * this.requests);
  }

  private advance(now: number = this.now()): void {
    const b = Math.floor(now / this.bucketMs);
    if (b <= this.head) return;
    if (b - this.head >= BUCKETS) {
      this.reqs.fill(0);
      this.rets.fill(0);
      this.requests = 0;
      this.retries = 0;
    } else {
      for (let n = this.head + 1; n <= b; n++) {
        const i = n % BUCKETS;
        this.requests -= this.reqs[i];
        this.retries -= this.rets[i];
        this.reqs[i] = 0;
        this.rets[i] = 0;
      }
    }
    this.head = b;
  }
}

import { TokenBucket, tokenBucketPolicy } from '../protocol/token-bucket.ts';

// The scan's rate limit (--rate, connection attempts and datagrams per second), on the project's
// one token bucket. Waiters are served in turn through one promise chain; there are never more
// of them than the scan's concurrency, since each is a probe holding its slot.

export interface Pacer {
  /** Resolves when one more attempt may start. */
  wait(): Promise<void>;
}

/** No limit: every attempt starts as soon as a slot is free. */
export const UNPACED: Pacer = { wait: () => Promise.resolve() };

export class RatePacer implements Pacer {
  private readonly bucket: TokenBucket;
  private tail: Promise<void> = Promise.resolve();

  /**
   * @param perSecond attempts per second, sustained. The burst is a hundredth of a second's worth
   * (at least 1): smooth, yet not held to one attempt per timer tick at high rates.
   */
  constructor(perSecond: number) {
    this.bucket = new TokenBucket(tokenBucketPolicy({ rate: perSecond, per: 1000, burst: Math.max(1, Math.ceil(perSecond / 100)) }), performance.now());
  }

  wait(): Promise<void> {
    const turn = this.tail.then(() => this.takeOne());
    this.tail = turn;
    return turn;
  }

  private takeOne(): Promise<void> | void {
    if (this.bucket.take(performance.now())) return;
    return new Promise<void>((resolve) => {
      const retry = (): void => {
        if (this.bucket.take(performance.now())) return resolve();
        setTimeout(retry, Math.max(1, this.bucket.waitMs(performance.now())));
      };
      setTimeout(retry, Math.max(1, this.bucket.waitMs(performance.now())));
    });
  }
}

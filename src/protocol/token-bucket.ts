import { z } from 'zod';
// units.ts is a leaf (it imports only zod) that state/ and upstream/ already take their durations
// from; when units move down to their own layer, this import moves with them.
import { duration } from '../config/units.ts';

// The one token bucket behind every rate limit: the HTTP middleware (one bucket per key), the
// WebSocket endpoint (one per connection, over it: close 1008) and chat's TCP/unix sessions (one
// per connection, over it: the socket is not read for a while). What a limit does when it is
// over is its user's business; the arithmetic and the config shape are shared here.
//
// A bucket holds up to `burst` tokens and gains `rate` tokens every `per`. It is kept lazily: no
// timer, the level is brought up to date from the clock whenever it is asked. `now` is whatever
// millisecond clock the caller keeps to (Date.now, performance.now, a test's counter).

/** How a rate limit is written in a config: `{ rate: 100, per: 1s, burst: 200 }`. */
export const tokenBucketSchema = z.strictObject({
  /** Tokens added per `per`: the sustained rate. May be fractional (`rate: 0.5, per: 1s`). */
  rate: z.number().positive(),
  /** The period `rate` is counted over. */
  per: duration()
    .pipe(z.number().int().min(1, 'expected a duration of at least 1ms'))
    .default(1000),
  /** Tokens that may be spent at once after a quiet spell (default: `rate`, at least 1). */
  burst: z.number().int().min(1).optional(),
});

export type TokenBucketInput = z.input<typeof tokenBucketSchema>;
export type TokenBucketConfig = z.output<typeof tokenBucketSchema>;

/**
 * What a bucket needs to know, resolved once from a config and shared by all the buckets of one
 * limit (a store of 100k keys holds one policy, not 100k copies of it).
 */
export interface TokenBucketPolicy {
  /** Capacity: the most tokens a bucket holds. */
  readonly burst: number;
  /** Tokens gained per millisecond. */
  readonly refillPerMs: number;
}

/** The policy a parsed config describes. */
export function tokenBucketPolicy(config: TokenBucketConfig): TokenBucketPolicy {
  const burst = config.burst ?? Math.max(1, Math.floor(config.rate));
  return { burst, refillPerMs: config.rate / config.per };
}

/**
 * One token bucket. It starts full. `take` allocates nothing, so it can sit on a per-message
 * path; the other methods answer the questions a refusal needs (how long to wait, how many are
 * left, when it is full again).
 */
export class TokenBucket {
  /** Tokens now, fractional; 0 <= level <= burst. */
  private level: number;
  /** The clock reading `level` was brought up to date at. */
  private at: number;

  constructor(
    readonly policy: TokenBucketPolicy,
    now: number,
  ) {
    this.level = policy.burst;
    this.at = now;
  }

  /** Takes `n` tokens if there are that many now; otherwise takes none. */
  take(now: number, n = 1): boolean {
    this.refill(now);
    if (this.level < n) return false;
    this.level -= n;
    return true;
  }

  /** Tokens now, fractional. */
  available(now: number): number {
    this.refill(now);
    return this.level;
  }

  /** Whole tokens now: what the next requests may take without waiting. */
  remaining(now: number): number {
    this.refill(now);
    return Math.floor(this.level);
  }

  /**
   * Milliseconds, whole, until `take(now + ms, n)` succeeds (0 when it would now): the least such
   * wait on an integer clock. Infinity when it never can (`n` over `burst`, or no refill).
   */
  waitMs(now: number, n = 1): number {
    this.refill(now);
    return wholeMsUntil(this.level, n, this.policy);
  }

  /** Milliseconds, whole, until the bucket is full again (0 when it is). */
  fullInMs(now: number): number {
    this.refill(now);
    return wholeMsUntil(this.level, this.policy.burst, this.policy);
  }

  /**
   * Whether the bucket is full at `now`. A full bucket carries no information (a new one is full
   * too), so a store may forget it. Does not move the bucket's clock.
   */
  isFull(now: number): boolean {
    const { burst, refillPerMs } = this.policy;
    const elapsed = now - this.at;
    return this.level >= burst || (elapsed > 0 && this.level + elapsed * refillPerMs >= burst);
  }

  private refill(now: number): void {
    const elapsed = now - this.at;
    if (elapsed > 0) {
      const level = this.level + elapsed * this.policy.refillPerMs;
      // Also what caps a huge gap (even an infinite product) at a full bucket.
      this.level = level < this.policy.burst ? level : this.policy.burst;
      this.at = now;
    } else if (elapsed < 0) {
      // The clock went back (a wall clock being corrected). Nothing is added for it, and refilling
      // resumes from the new reading: staying anchored to the later one would starve the bucket
      // for as long as the clock went back.
      this.at = now;
    }
  }
}

/** Whole milliseconds until `level` reaches `target` at `refillPerMs` (0 if it has). */
function wholeMsUntil(level: number, target: number, { burst, refillPerMs }: TokenBucketPolicy): number {
  if (level >= target) return 0;
  if (target > burst || !(refillPerMs > 0)) return Infinity;
  let ms = Math.ceil((target - level) / refillPerMs);
  // The division rounds; refill() multiplies. Checked with refill's own expression so that waiting
  // `ms` is both enough and not a millisecond more than needed.
  if (level + ms * refillPerMs < target) ms++;
  else if (ms > 1 && level + (ms - 1) * refillPerMs >= target) ms--;
  return ms;
}

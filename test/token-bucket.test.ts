import { test } from 'node:test';
import assert from 'node:assert/strict';
import { TokenBucket, tokenBucketPolicy, tokenBucketSchema, type TokenBucketPolicy } from '../src/protocol/token-bucket.ts';
import { mulberry32 } from '../src/upstream/balancers/random.ts';

// The one token bucket behind the middleware, WebSocket and chat rate limits. The clock is always
// the test's own number: nothing here waits or measures time.

/** 2 tokens a second, burst 3. */
const TWO_A_SECOND: TokenBucketPolicy = { burst: 3, refillPerMs: 2 / 1000 };

/** Takes tokens at `now` until refused (at most 1000, so that a broken cap fails instead of hanging). */
function drain(b: TokenBucket, now: number): number {
  let n = 0;
  while (n < 1000 && b.take(now)) n++;
  return n;
}

test('starts full: the burst goes at once, then refused; a long quiet spell refills to burst, not beyond', () => {
  const b = new TokenBucket(TWO_A_SECOND, 1_000);
  assert.equal(b.remaining(1_000), 3);
  assert.deepEqual([b.take(1_000), b.take(1_000), b.take(1_000), b.take(1_000)], [true, true, true, false]);
  assert.equal(b.remaining(1_000), 0);
  assert.equal(drain(b, 1_000 + 3_600_000), 3);
});

test('refill: one token per 1/rate, counted from the last reading, fractions kept', () => {
  const b = new TokenBucket(TWO_A_SECOND, 0);
  drain(b, 0);
  // 250 ms is half a token: not enough, but not lost either.
  assert.equal(b.take(250), false);
  assert.equal(b.available(250), 0.5);
  assert.equal(b.take(499), false);
  assert.equal(b.take(500), true);
  assert.equal(b.take(500), false);
  // 1.5 s later: 3 tokens, but the bucket holds 3, so exactly 3.
  assert.equal(drain(b, 2_000), 3);
});

test('take(n) is all or nothing', () => {
  const b = new TokenBucket({ burst: 5, refillPerMs: 1 / 1000 }, 0);
  assert.equal(b.take(0, 3), true);
  assert.equal(b.take(0, 3), false);
  assert.equal(b.remaining(0), 2, 'a refused take(n) takes nothing');
  assert.equal(b.take(0, 2), true);
  assert.equal(b.take(0, 6), false);
  assert.equal(b.waitMs(0, 6), Infinity, 'more than the burst never fits');
  assert.equal(b.waitMs(0, 5), 5_000);
});

test('retry time: waitMs is 0 with a token, else the least whole wait that makes take succeed; fullInMs', () => {
  const b = new TokenBucket(TWO_A_SECOND, 0);
  assert.equal(b.waitMs(0), 0);
  assert.equal(b.fullInMs(0), 0);
  drain(b, 0);
  assert.equal(b.waitMs(0), 500);
  assert.equal(b.fullInMs(0), 1_500);
  assert.equal(b.waitMs(100), 400);
  assert.equal(b.fullInMs(100), 1_400);
  // Asking does not take or move anything: the same answers again.
  assert.equal(b.waitMs(100), 400);
  assert.equal(b.take(499), false);
  assert.equal(b.take(500), true);
});

test('isFull: only a bucket back at burst, and asking does not move its clock', () => {
  const b = new TokenBucket(TWO_A_SECOND, 0);
  assert.equal(b.isFull(0), true);
  assert.equal(b.take(0), true);
  assert.equal(b.isFull(0), false);
  assert.equal(b.isFull(499), false);
  assert.equal(b.isFull(500), true);
  // Had isFull(500) brought the bucket up to date, this backwards reading would start from 500.
  assert.equal(b.isFull(-100), false);
  assert.equal(b.available(250), 2.5);
});

test('the clock going backwards adds nothing, takes nothing, and refilling resumes from the new reading', () => {
  const b = new TokenBucket(TWO_A_SECOND, 10_000);
  drain(b, 10_000);
  assert.equal(b.take(10_200), false); // 0.4 token
  // Ten seconds back (a wall clock corrected): nothing gained, the 0.4 token not lost.
  assert.equal(b.take(200), false);
  assert.equal(b.available(200), 0.4);
  // From the new reading, 300 ms more is the rest of the token: not 10 s more.
  assert.equal(b.waitMs(200), 300);
  assert.equal(b.take(499), false);
  assert.equal(b.take(500), true);
});

test('huge gaps and odd clock readings: capped at a full bucket, never broken', () => {
  // A gap whose product overflows to Infinity still gives exactly the burst.
  const fast = new TokenBucket({ burst: 4, refillPerMs: 1e300 }, 0);
  drain(fast, 0);
  assert.equal(drain(fast, 1e10), 4);
  const b = new TokenBucket(TWO_A_SECOND, 0);
  drain(b, 0);
  assert.equal(drain(b, 2 ** 50), 3);
  // A NaN reading (a broken clock) changes nothing, and the bucket keeps working after it.
  assert.equal(b.take(Number.NaN), false);
  assert.equal(b.waitMs(Number.NaN), 500);
  assert.equal(b.take(2 ** 50 + 500), true);
  assert.equal(b.take(2 ** 50 + 500), false);
});

test('fractional rates: half a token a second; 3 a second has a wait that is not a whole number of ms', () => {
  const half = new TokenBucket(tokenBucketPolicy({ rate: 0.5, per: 1000 }), 0);
  assert.equal(half.policy.burst, 1, 'a rate under 1 still allows one at a time');
  assert.equal(half.take(0), true);
  assert.equal(half.waitMs(0), 2_000);
  assert.equal(half.take(1_999), false);
  assert.equal(half.take(2_000), true);

  const three = new TokenBucket(tokenBucketPolicy({ rate: 3, per: 1000 }), 0);
  drain(three, 0);
  assert.equal(three.waitMs(0), 334); // 333.3.. rounded up
  assert.equal(three.take(333), false);
  assert.equal(three.take(334), true);

  // Where floating point and the exact answer part ways, the wait follows the bucket's own
  // arithmetic. One per 7 ms, 2 ms in: 5/7 more is needed, 5 ms is exactly that on paper, but
  // 2/7 + 5 x 1/7 comes out a hair under 1: the wait is 6, or take() would refuse at the promised time.
  const seventh = new TokenBucket({ burst: 1, refillPerMs: 1 / 7 }, 0);
  drain(seventh, 0);
  assert.equal(seventh.waitMs(2), 6);
  assert.equal(seventh.take(7), false);
  assert.equal(seventh.take(8), true);
  // One per 3 ms, 1 ms in: (1 - 1/3) / (1/3) comes out a hair over 2, but 2 ms is enough.
  const third = new TokenBucket({ burst: 1, refillPerMs: 1 / 3 }, 0);
  drain(third, 0);
  assert.equal(third.waitMs(1), 2);
  assert.equal(third.take(3), true);
});

test('any policy, any integer clock: waitMs is exact, the level stays in [0, burst], and no window gets more than burst + rate x time', () => {
  const random = mulberry32(0x70ce4b);
  for (let round = 0; round < 300; round++) {
    const rate = round % 3 === 0 ? 1 + Math.floor(random() * 500) : random() * 50 + 0.001;
    const per = 1 + Math.floor(random() * 60_000);
    const burst = 1 + Math.floor(random() * 20);
    const policy = tokenBucketPolicy({ rate, per, burst });
    const start = Math.floor(random() * 1e12);
    const b = new TokenBucket(policy, start);
    let now = start;
    let taken = 0;
    for (let step = 0; step < 200; step++) {
      now += Math.floor(random() * random() * 2 * per);
      const n = 1 + Math.floor(random() * Math.min(burst, 3));
      const wait = b.waitMs(now, n);
      const label = `rate ${rate} per ${per} burst ${burst} at ${now - start} n ${n}`;
      assert.ok(Number.isInteger(wait) && wait >= 0, `${label}: wait ${wait}`);
      if (wait > 0) {
        // A copy, so that probing one millisecond early does not move the bucket under test.
        const early = new TokenBucket(policy, now);
        early['level'] = b.available(now);
        assert.equal(early.take(now + wait - 1, n), false, `${label}: a wait of ${wait} is not the least`);
      }
      now += wait;
      assert.equal(b.take(now, n), true, `${label}: refused after waiting ${wait}`);
      taken += n;
      const level = b.available(now);
      assert.ok(level >= 0 && level <= burst, `${label}: level ${level}`);
    }
    // The bucket's promise: from the start, at most the burst plus what the rate added.
    assert.ok(taken <= burst + ((now - start) * rate) / per + 1e-6, `rate ${rate} per ${per} burst ${burst}: ${taken} taken`);
  }
});

test('policy and schema: burst defaults to the rate (at least 1), per to 1s; bad fields are refused', () => {
  assert.deepEqual(tokenBucketPolicy({ rate: 10, per: 1000 }), { burst: 10, refillPerMs: 0.01 });
  assert.deepEqual(tokenBucketPolicy({ rate: 10, per: 1000, burst: 25 }), { burst: 25, refillPerMs: 0.01 });
  assert.deepEqual(tokenBucketPolicy({ rate: 2.7, per: 1000 }).burst, 2);
  assert.deepEqual(tokenBucketSchema.parse({ rate: 5 }), { rate: 5, per: 1000 });
  assert.deepEqual(tokenBucketSchema.parse({ rate: 5, per: '1m', burst: 9 }), { rate: 5, per: 60_000, burst: 9 });
  const refused = (input: unknown) => {
    const r = tokenBucketSchema.safeParse(input);
    return r.success ? 'accepted' : r.error.issues.map((i) => i.path.join('.') || '(object)').join(',');
  };
  assert.equal(refused({ rate: 0 }), 'rate');
  assert.equal(refused({ rate: 5, per: '0ms' }), 'per');
  assert.equal(refused({ rate: 5, per: 'soon' }), 'per');
  assert.equal(refused({ rate: 5, burst: 1.5 }), 'burst');
  assert.equal(refused({ rate: 5, burst: 0 }), 'burst');
  assert.equal(refused({ per: '1s' }), 'rate');
  assert.equal(refused({ rate: 5, messages: 5 }), '(object)');
});

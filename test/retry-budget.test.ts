import { test } from 'node:test';
import assert from 'node:assert/strict';
import { RetryBudget } from '../src/upstream/retry-budget.ts';

test('retry budget holds under an outage: 1000 failing requests', () => {
  const clock = { t: 5_000_000 };
  const ratio = 0.2;
  const minPerSecond = 10;
  const b = new RetryBudget(ratio, minPerSecond, () => clock.t, 10_000);
  let retries = 0;
  // Every request fails and every caller wants 2 retries; all within one window (1 ms apart).
  for (let i = 1; i <= 1000; i++) {
    b.onRequest();
    for (let a = 0; a < 2; a++) if (b.tryRetry()) retries++;
    clock.t += 1;
    assert.ok(retries <= Math.max(minPerSecond * 10, ratio * i), `after ${i} requests: ${retries} retries`);
  }
  assert.equal(retries, 200, 'the budget is used up, not more');
  assert.deepEqual(b.snapshot(), { requests: 1000, retries: 200, allowed: 200 });
  assert.equal(b.tryRetry(), false);
});

test('retry budget: the minimum per second lets a quiet group retry', () => {
  const clock = { t: 0 };
  const b = new RetryBudget(0.2, 1, () => clock.t, 10_000);
  b.onRequest();
  let n = 0;
  while (b.tryRetry()) n++;
  assert.equal(n, 10, '1/s over a 10 s window');
});

test('retry budget: ratio alone never overdraws with few requests', () => {
  const clock = { t: 0 };
  const b = new RetryBudget(0.2, 0, () => clock.t);
  for (let i = 1; i <= 20; i++) {
    b.onRequest();
    while (b.tryRetry());
    assert.ok(b.snapshot().retries <= 0.2 * i, `after ${i}: ${b.snapshot().retries}`);
  }
  assert.equal(b.snapshot().retries, 4);
});

test('retry budget: the window slides and the budget comes back', () => {
  const clock = { t: 0 };
  const b = new RetryBudget(0.5, 0, () => clock.t, 10_000);
  for (let i = 0; i < 10; i++) b.onRequest();
  let n = 0;
  while (b.tryRetry()) n++;
  assert.equal(n, 5);
  clock.t += 10_000;
  assert.deepEqual(b.snapshot(), { requests: 0, retries: 0, allowed: 0 });
  assert.equal(b.tryRetry(), false, 'no requests in the window, no minimum');
  b.onRequest();
  b.onRequest();
  assert.equal(b.tryRetry(), true);
});

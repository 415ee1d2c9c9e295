import { test } from 'node:test';
import assert from 'node:assert/strict';
import { CircuitBreaker, type BreakerState } from '../src/upstream/breaker.ts';
import type { BreakerConfig } from '../src/upstream/config.ts';

const base: BreakerConfig = {
  failureRate: 0.5,
  window: 10_000,
  minRequests: 10,
  openFor: 5_000,
  halfOpenRequests: 1,
  maxRequests: 1000,
  maxPending: 1000,
};

function setup(over: Partial<BreakerConfig> = {}) {
  const clock = { t: 1_000_000 };
  const changes: BreakerState[] = [];
  const b = new CircuitBreaker({ ...base, ...over }, () => clock.t, (s) => changes.push(s));
  const run = (outcome: 'success' | 'failure') => {
    const a = b.admit();
    assert.ok(a.ok, `admitted (state ${b.state})`);
    a.release(outcome);
  };
  return { clock, changes, b, run };
}

test('breaker: stays closed below minRequests, opens at the failure rate', () => {
  const { b, run, changes } = setup();
  for (let i = 0; i < 9; i++) run('failure');
  assert.equal(b.state, 'closed', '9 failures < minRequests 10');
  run('success'); // 9/10 failed
  assert.equal(b.state, 'open');
  assert.deepEqual(changes, ['open']);
  const r = b.admit();
  assert.equal(r.ok, false);
  if (!r.ok) {
    assert.equal(r.reason, 'open');
    assert.equal(r.retryAfterMs, 5_000);
  }
});

test('breaker: a failure rate below the threshold keeps it closed', () => {
  const { b, run } = setup();
  for (let i = 0; i < 100; i++) run(i % 3 === 0 ? 'failure' : 'success'); // 34% failed
  assert.equal(b.state, 'closed');
  const s = b.snapshot();
  assert.equal(s.requests, 100);
  assert.equal(s.failures, 34);
});

test('breaker: failures older than the window roll out', () => {
  const { b, run, clock } = setup();
  for (let i = 0; i < 9; i++) run('failure');
  clock.t += 11_000;
  assert.equal(b.snapshot().requests, 0);
  for (let i = 0; i < 9; i++) run('success');
  run('failure');
  assert.equal(b.state, 'closed', '1/10 in the window');
  // Half a window later those 10 still count: the breaker opens when (1 + f) / (10 + f) >= 0.5,
  // at f = 8 failures (it would take 10, minRequests, had they rolled out).
  clock.t += 5_000;
  let f = 0;
  while (b.state === 'closed') {
    run('failure');
    f++;
  }
  assert.equal(f, 8);
  assert.equal(b.snapshot().requests, 18);
});

test('breaker: extra release calls are ignored', () => {
  const { b } = setup();
  const a = b.admit();
  assert.ok(a.ok);
  assert.equal(b.inFlight, 1);
  a.release('failure');
  a.release('failure');
  a.release('success');
  assert.equal(b.inFlight, 0);
  assert.equal(b.snapshot().requests, 1);
  assert.equal(b.snapshot().failures, 1);
});

test('breaker: maxRequests caps requests in flight', () => {
  const { b } = setup({ maxRequests: 3 });
  const held = [b.admit(), b.admit(), b.admit()];
  assert.ok(held.every((a) => a.ok));
  const r = b.admit();
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.reason, 'max-requests');
  assert.equal(b.inFlight, 3);
  const first = held[0];
  if (first.ok) first.release('success');
  assert.equal(b.inFlight, 2);
  assert.ok(b.admit().ok, 'room again after one release');
});

test('breaker: open -> half-open after openFor; a success closes and resets the window', () => {
  const { b, run, clock, changes } = setup();
  for (let i = 0; i < 10; i++) run('failure');
  assert.equal(b.state, 'open');
  clock.t += 4_999;
  const early = b.admit();
  assert.equal(early.ok, false);
  if (!early.ok) assert.equal(early.retryAfterMs, 1);
  clock.t += 1;
  assert.equal(b.state, 'half-open');
  const probe = b.admit();
  assert.ok(probe.ok);
  const second = b.admit();
  assert.equal(second.ok, false, 'only halfOpenRequests (1) at once');
  if (!second.ok) assert.equal(second.reason, 'open');
  probe.release('success');
  assert.equal(b.state, 'closed');
  assert.deepEqual(changes, ['open', 'half-open', 'closed']);
  const s = b.snapshot();
  assert.equal(s.requests, 0);
  assert.equal(s.failures, 0);
  // A fresh window: 9 failures alone do not reopen it.
  for (let i = 0; i < 9; i++) run('failure');
  assert.equal(b.state, 'closed');
});

test('breaker: a failure in half-open re-opens for another openFor', () => {
  const { b, run, clock, changes } = setup({ halfOpenRequests: 2 });
  for (let i = 0; i < 10; i++) run('failure');
  clock.t += 5_000;
  const p1 = b.admit();
  const p2 = b.admit();
  assert.ok(p1.ok && p2.ok, 'two probes allowed');
  assert.equal(b.admit().ok, false);
  p1.release('failure');
  assert.equal(b.state, 'open');
  const r = b.admit();
  assert.equal(r.ok, false);
  if (!r.ok) assert.equal(r.retryAfterMs, 5_000);
  // The other probe answering late (for the old half-open) changes nothing.
  p2.release('success');
  assert.equal(b.state, 'open');
  assert.equal(b.inFlight, 0);
  assert.deepEqual(changes, ['open', 'half-open', 'open']);
  clock.t += 5_000;
  assert.equal(b.state, 'half-open');
});

test('breaker: answers to requests admitted before it opened do not count after', () => {
  const { b, run, clock } = setup();
  const late = b.admit();
  assert.ok(late.ok);
  for (let i = 0; i < 10; i++) run('failure');
  assert.equal(b.state, 'open');
  clock.t += 5_000;
  assert.equal(b.state, 'half-open');
  late.release('success'); // admitted while closed: not the probe
  assert.equal(b.state, 'half-open');
  assert.ok(b.admit().ok, 'the probe slot is still free');
});

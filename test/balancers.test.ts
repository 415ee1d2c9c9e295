import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Target } from '../src/upstream/target.ts';
import type { BalancePolicy, HashConfig } from '../src/upstream/config.ts';
import {
  createBalancer,
  HashKey,
  IpHashBalancer,
  KetamaBalancer,
  LeastConnectionsBalancer,
  MaglevBalancer,
  mulberry32,
  P2CBalancer,
  RoundRobinBalancer,
  WeightedRoundRobinBalancer,
  type Balancer,
  type PickContext,
} from '../src/upstream/balancers/index.ts';

function targets(weights: number[]): Target[] {
  return weights.map((w, i) => {
    const id = `10.0.0.${i + 1}:8080`;
    return new Target(id, `10.0.0.${i + 1}`, 8080, 'http:', `http://${id}`, w, i);
  });
}

function ctx(clientIp: string, opts: { path?: string; headers?: Record<string, string>; cookies?: Record<string, string> } = {}): PickContext {
  return {
    clientIp,
    path: opts.path ?? '',
    header: (name) => opts.headers?.[name],
    cookie: (name) => opts.cookies?.[name],
  };
}

const all = (): boolean => true;
const none = (): boolean => false;
const C = ctx('192.0.2.1');

function counts(b: Balancer, ts: Target[], picks: number, eligible: (t: Target) => boolean = all, c: PickContext = C): number[] {
  const out = ts.map(() => 0);
  for (let i = 0; i < picks; i++) {
    const t = b.pick(c, eligible);
    assert.ok(t, 'a target was picked');
    out[t.index]++;
  }
  return out;
}

const ipOf = (i: number): string => `10.${(i >>> 16) & 255}.${(i >>> 8) & 255}.${i & 255}`;

test('round-robin: exact equal shares, in turn, skipping ineligible targets', () => {
  const ts = targets([1, 1, 1, 1]);
  const b = new RoundRobinBalancer(ts);
  assert.deepEqual(counts(b, ts, 100_000), [25_000, 25_000, 25_000, 25_000]);
  const seq = [0, 1, 2, 3, 4, 5].map(() => b.pick(C, all)!.index);
  assert.deepEqual(seq, [0, 1, 2, 3, 0, 1]);
  const not1 = (t: Target): boolean => t.index !== 1;
  assert.deepEqual(counts(new RoundRobinBalancer(ts), ts, 99_999, not1), [33_333, 0, 33_333, 33_333]);
});

test('smooth weighted round-robin: nginx sequence, exact proportional shares', () => {
  const ts = targets([5, 1, 1]);
  const b = new WeightedRoundRobinBalancer(ts);
  const seq = Array.from({ length: 14 }, () => 'abc'[b.pick(C, all)!.index]).join('');
  assert.equal(seq, 'aabacaa' + 'aabacaa');

  const ts2 = targets([5, 3, 2]);
  assert.deepEqual(counts(new WeightedRoundRobinBalancer(ts2), ts2, 100_000), [50_000, 30_000, 20_000]);
  // Smooth: with 5,3,2 no target is picked more than twice in a row.
  const b2 = new WeightedRoundRobinBalancer(ts2);
  let run = 0;
  let last = -1;
  for (let i = 0; i < 1000; i++) {
    const k = b2.pick(C, all)!.index;
    run = k === last ? run + 1 : 1;
    last = k;
    assert.ok(run <= 2, `run of ${run} at pick ${i}`);
  }
  // An ineligible target leaves the others' proportions exact.
  const notC = (t: Target): boolean => t.index !== 2;
  assert.deepEqual(counts(new WeightedRoundRobinBalancer(ts2), ts2, 80_000, notC), [50_000, 30_000, 0]);
  // Taken out mid-way and back: shares over the whole run still follow weights closely.
  const b3 = new WeightedRoundRobinBalancer(ts2);
  const mixed = ts2.map(() => 0);
  for (let i = 0; i < 100_000; i++) mixed[b3.pick(C, i % 7 === 0 ? notC : all)!.index]++;
  assert.ok(mixed[2] > 15_000 && mixed[2] < 20_000, `c got ${mixed[2]}`);
});

test('least connections: lowest inFlight/weight wins; ties rotate by weight', () => {
  const ts = targets([1, 5, 1]);
  const b = new LeastConnectionsBalancer(ts);
  ts[0].inFlight = 10; // 10
  ts[1].inFlight = 10; // 2
  ts[2].inFlight = 3; // 3
  assert.equal(b.pick(C, all), ts[1]);
  ts[1].inFlight = 16; // 3.2
  assert.equal(b.pick(C, all), ts[2]);
  assert.equal(b.pick(C, (t) => t !== ts[2]), ts[1]);

  // Picks that stay in flight fill targets in proportion to weight.
  const ws = targets([1, 2, 3, 4]);
  const lc = new LeastConnectionsBalancer(ws);
  for (let i = 0; i < 1000; i++) lc.pick(C, all)!.inFlight++;
  assert.deepEqual(
    ws.map((t) => t.inFlight),
    [100, 200, 300, 400],
  );

  // Equal load: not always the first; shared equally (equal weights) or by weight.
  const eq = targets([1, 1, 1]);
  assert.deepEqual(counts(new LeastConnectionsBalancer(eq), eq, 300), [100, 100, 100]);
  const wq = targets([3, 1]);
  assert.deepEqual(counts(new LeastConnectionsBalancer(wq), wq, 400), [300, 100]);
});

test('p2c: skews to the less loaded, matching the two-choice probabilities', () => {
  const ts = targets([1, 1, 1, 1]);
  ts.forEach((t, i) => (t.inFlight = i * 10));
  const n = 100_000;
  const got = counts(new P2CBalancer(ts, mulberry32(42)), ts, n);
  // The least loaded wins whenever drawn: P = 1/2, 1/3, 1/6, 0 for 4 targets.
  const expected = [1 / 2, 1 / 3, 1 / 6, 0];
  got.forEach((c, i) => assert.ok(Math.abs(c / n - expected[i]) < 0.01, `target ${i}: ${c / n} vs ${expected[i]}`));

  // Weighted: inFlight 10 at weight 10 beats inFlight 2 at weight 1.
  const w = targets([10, 1]);
  w[0].inFlight = 10;
  w[1].inFlight = 2;
  assert.deepEqual(counts(new P2CBalancer(w, mulberry32(1)), w, 1000), [1000, 0]);

  // A live simulation (picks stay in flight, some finish) keeps the load balanced.
  const live = targets([1, 1, 1, 1, 1]);
  const r = mulberry32(7);
  const p = new P2CBalancer(live, r);
  for (let i = 0; i < 20_000; i++) {
    p.pick(C, all)!.inFlight++;
    const done = live[Math.floor(r() * live.length)];
    if (done.inFlight > 0 && r() < 0.9) done.inFlight--;
  }
  const loads = live.map((t) => t.inFlight);
  assert.ok(Math.max(...loads) - Math.min(...loads) <= 3, `loads ${loads}`);

  // Same seed, same choices.
  const a = counts(new P2CBalancer(ts, mulberry32(5)), ts, 1000);
  const b2 = counts(new P2CBalancer(ts, mulberry32(5)), ts, 1000);
  assert.deepEqual(a, b2);
});

test('ip-hash: stable per client, spread, weighted, deterministic fallback', () => {
  const ts = targets([1, 1, 1, 1]);
  const b = new IpHashBalancer(ts);
  const first = b.pick(ctx('203.0.113.9'), all);
  for (let i = 0; i < 100; i++) assert.equal(b.pick(ctx('203.0.113.9'), all), first);
  assert.equal(new IpHashBalancer(targets([1, 1, 1, 1])).pick(ctx('203.0.113.9'), all)!.index, first!.index);
  // IPv4-mapped IPv6 is the same client.
  for (let i = 0; i < 50; i++) assert.equal(b.pick(ctx(`::ffff:${ipOf(i)}`), all), b.pick(ctx(ipOf(i)), all));

  const n = 40_000;
  const home: number[] = [];
  const spread = ts.map(() => 0);
  for (let i = 0; i < n; i++) spread[(home[i] = b.pick(ctx(ipOf(i)), all)!.index)]++;
  spread.forEach((c) => assert.ok(Math.abs(c / n - 0.25) < 0.02, `spread ${spread}`));

  // Target 2 out: its clients move (deterministically, to more than one target); no one else moves.
  const not2 = (t: Target): boolean => t.index !== 2;
  const movedTo = ts.map(() => 0);
  for (let i = 0; i < n; i++) {
    const t = b.pick(ctx(ipOf(i)), not2)!;
    assert.equal(b.pick(ctx(ipOf(i)), not2), t);
    if (home[i] !== 2) assert.equal(t.index, home[i]);
    else movedTo[t.index]++;
  }
  assert.equal(movedTo[2], 0);
  assert.ok(movedTo.filter((c) => c > 0).length === 3, `moved ${movedTo}`);

  const w = targets([1, 3]);
  const wc = w.map(() => 0);
  const wb = new IpHashBalancer(w);
  for (let i = 0; i < n; i++) wc[wb.pick(ctx(ipOf(i)), all)!.index]++;
  assert.ok(Math.abs(wc[1] / n - 0.75) < 0.02, `weighted ${wc}`);
});

for (const algorithm of ['ketama', 'maglev'] as const) {
  const make = (ts: Target[], key: Partial<HashConfig> = {}): Balancer =>
    createBalancer('consistent-hash', { key: 'client-ip', algorithm, ...key }, ts);
  // Spread tolerance: ketama's 160 points per target give a few % of imbalance; Maglev is near exact.
  const tol = algorithm === 'ketama' ? 0.04 : 0.01;

  test(`consistent hash (${algorithm}): spread, weights, and removing 1 of 5 moves only its keys`, () => {
    const ts = targets([1, 1, 1, 1, 1]);
    const b = make(ts);
    assert.ok(b instanceof (algorithm === 'ketama' ? KetamaBalancer : MaglevBalancer));
    const n = 100_000;
    const home: number[] = [];
    const spread = ts.map(() => 0);
    for (let i = 0; i < n; i++) spread[(home[i] = b.pick(ctx(ipOf(i)), all)!.index)]++;
    spread.forEach((c) => assert.ok(Math.abs(c / n - 0.2) < tol, `spread ${spread}`));

    for (const removed of [0, 3]) {
      const eligible = (t: Target): boolean => t.index !== removed;
      const movedTo = ts.map(() => 0);
      let moved = 0;
      for (let i = 0; i < n; i++) {
        const t: Target = b.pick(ctx(ipOf(i)), eligible)!;
        if (home[i] === removed) {
          moved++;
          movedTo[t.index]++;
        } else assert.equal(t.index, home[i], `key ${i} moved from ${home[i]} to ${t.index}`);
      }
      assert.ok(Math.abs(moved / n - 0.2) < tol, `moved ${moved / n}`);
      assert.equal(movedTo[removed], 0);
      // The removed target's keys spread over the others, not all onto one neighbour.
      for (let i = 0; i < ts.length; i++) if (i !== removed) assert.ok(movedTo[i] > moved * 0.1, `moved to ${movedTo}`);
    }

    // Rebuilt from the same targets in another order: same mapping (keyed by id, not position).
    const rev = [...ts].reverse();
    const b2 = createBalancer('consistent-hash', { key: 'client-ip', algorithm }, rev);
    for (let i = 0; i < 1000; i++) assert.equal(b2.pick(ctx(ipOf(i)), all)!.index, home[i]);

    const w = targets([1, 1, 2]);
    const wc = w.map(() => 0);
    const wb = make(w);
    for (let i = 0; i < n; i++) wc[wb.pick(ctx(ipOf(i)), all)!.index]++;
    assert.ok(Math.abs(wc[2] / n - 0.5) < tol * 1.5, `weighted ${wc}`);
  });

  test(`consistent hash (${algorithm}): header, cookie and path keys`, () => {
    const ts = targets([1, 1, 1, 1, 1]);
    const byHeader = make(ts, { key: 'header', name: 'X-User' });
    const byIp = make(ts);
    for (let u = 0; u < 200; u++) {
      const headers = { 'x-user': `user-${u}` };
      const t = byHeader.pick(ctx('198.51.100.1', { headers }), all);
      for (let c = 2; c < 10; c++) assert.equal(byHeader.pick(ctx(`198.51.100.${c}`, { headers }), all), t);
      // Missing header: falls back to the client IP.
      assert.equal(byHeader.pick(ctx(ipOf(u)), all), byIp.pick(ctx(ipOf(u)), all));
    }
    const distinct = new Set<number>();
    for (let u = 0; u < 200; u++) distinct.add(byHeader.pick(ctx('198.51.100.1', { headers: { 'x-user': `user-${u}` } }), all)!.index);
    assert.equal(distinct.size, 5);

    const byCookie = make(ts, { key: 'cookie', name: 'sid' });
    const byPath = make(ts, { key: 'path' });
    const cookieTargets = new Set<number>();
    const pathTargets = new Set<number>();
    for (let s = 0; s < 200; s++) {
      const cookies = { sid: `session-${s}` };
      const t = byCookie.pick(ctx('198.51.100.1', { cookies }), all)!;
      assert.equal(byCookie.pick(ctx('198.51.100.77', { cookies }), all), t);
      cookieTargets.add(t.index);
      const p = byPath.pick(ctx('198.51.100.1', { path: `/items/${s}` }), all)!;
      assert.equal(byPath.pick(ctx('198.51.100.99', { path: `/items/${s}` }), all), p);
      pathTargets.add(p.index);
    }
    assert.equal(cookieTargets.size, 5);
    assert.equal(pathTargets.size, 5);
    assert.equal(byCookie.pick(ctx(ipOf(3)), all), byIp.pick(ctx(ipOf(3)), all));
  });
}

test('HashKey: header names are matched lower-case', () => {
  const k = new HashKey({ key: 'header', name: 'X-User' });
  assert.equal(k.hash(ctx('1.1.1.1', { headers: { 'x-user': 'a' } })), k.hash(ctx('2.2.2.2', { headers: { 'x-user': 'a' } })));
});

const policies: [BalancePolicy, HashConfig['algorithm']][] = [
  ['round-robin', 'ketama'],
  ['weighted-round-robin', 'ketama'],
  ['least-connections', 'ketama'],
  ['ip-hash', 'ketama'],
  ['consistent-hash', 'ketama'],
  ['consistent-hash', 'maglev'],
  ['p2c', 'ketama'],
];

for (const [policy, algorithm] of policies) {
  test(`${policy}${policy === 'consistent-hash' ? ` (${algorithm})` : ''}: never an ineligible target; undefined only when none is eligible`, () => {
    const ts = targets([1, 2, 3, 1, 5, 1]);
    const r = mulberry32(99);
    const b = createBalancer(policy, { key: 'client-ip', algorithm }, ts, r);
    for (let i = 0; i < 20_000; i++) {
      const mask = Math.floor(r() * 64);
      for (const t of ts) t.inFlight = Math.floor(r() * 5);
      let calls = 0;
      const eligible = (t: Target): boolean => {
        calls++;
        return ((mask >> t.index) & 1) === 1;
      };
      const t = b.pick(ctx(ipOf(i)), eligible);
      if (mask === 0) assert.equal(t, undefined);
      else {
        assert.ok(t, `mask ${mask}: nothing picked`);
        assert.ok(eligible(t), `mask ${mask}: picked ineligible ${t.index}`);
      }
      assert.ok(calls <= 3 * ts.length + 2, `eligible called ${calls} times`);
    }
    assert.equal(b.pick(C, none), undefined);
    for (const only of ts) {
      for (let i = 0; i < 20; i++) assert.equal(b.pick(ctx(ipOf(i)), (t) => t === only), only);
    }
    assert.equal(createBalancer(policy, { key: 'client-ip', algorithm }, [], r).pick(C, all), undefined);
  });
}

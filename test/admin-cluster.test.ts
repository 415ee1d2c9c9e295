import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mergeListeners, mergeSnapshots, mergeUpstreams, type ClusterRound, type WorkerListener, type WorkerSnapshot } from '../src/handlers/admin/cluster.ts';
import type { DashboardSnapshot, TargetSnapshot, Traffic } from '../src/handlers/admin/dashboard.ts';

// How the admin API puts the reports of several workers together (the real-process side is in
// test/workers-admin.test.ts): counts and rates added, percentiles from the histograms added
// (not from percentiles), a target's state the worst with each worker's beside it, a stale
// worker shown but left out of the sums, a slot being restarted listed without a process row.

const BOUNDS = [0.001, 0.01, 0.1];

function traffic(requests: number, rps: number | null): Traffic {
  return { requests, requestsPerSecond: rps, errorsPerSecond: rps === null ? null : 0, latencySeconds: null };
}

function target(id: string, state: TargetSnapshot['state']): TargetSnapshot {
  return { id, state, healthy: state !== 'down', ejected: state === 'ejected', ejectedForMs: 0, ejections: 0, drained: state === 'drained', weight: 1, inFlight: 1, requestsPerSecond: 2, failuresPerSecond: 0, pool: { connected: 1, pending: 0, running: 1 } };
}

/** A worker's report: `requests` on listener web, route api, all in one latency bucket. */
function report(pid: number, requests: number, bucket: number, states: [TargetSnapshot['state'], TargetSnapshot['state']]): WorkerSnapshot {
  const counts = BOUNDS.map((_, i) => (i >= bucket ? requests : 0)).concat([requests]);
  const snapshot: DashboardSnapshot = {
    version: 'x',
    at: 1,
    intervalSeconds: 1,
    windowSeconds: 10,
    processes: [{ role: 'main', pid, uptimeSeconds: 5, cpuPercent: 10, rssBytes: 100, heapUsedBytes: 10, heapTotalBytes: 20, eventLoopDelayMs: null, openFds: 10, maxFds: 1024 }],
    totals: { ...traffic(requests, requests), activeConnections: 1, inFlight: 1 },
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        url: 'http://127.0.0.1:1/',
        handlers: ['proxy'],
        inFlight: 1,
        activeConnections: 1,
        connectionsPerSecond: 1,
        bytesInPerSecond: 10,
        bytesOutPerSecond: 20,
        traffic: traffic(requests, requests),
        routes: [{ name: 'api', handler: 'proxy', traffic: traffic(requests, requests) }],
      },
    ],
    upstreams: [
      {
        name: 'api',
        kind: 'http',
        balance: 'round-robin',
        breaker: { state: states[0] === 'down' ? 'open' : 'closed', requests: 1, failures: 0, inFlight: 0, retryAfterMs: 0 },
        retryBudget: { requests: 1, retries: 0, allowed: 10 },
        waiting: 0,
        targets: [target('a', states[0]), target('b', states[1])],
      },
    ],
    rooms: [{ room: 'lobby', members: 2 }],
    roomsTruncated: false,
  };
  return { snapshot, windows: { bounds: BOUNDS, counts: { '': counts, web: counts, 'web\u0000api': counts } } };
}

test('snapshots of two workers: sums, percentiles from the summed buckets, worst states with each worker beside them', () => {
  // Worker 1: 90 requests under 1 ms; worker 2: 10 requests between 10 and 100 ms.
  const round: ClusterRound<WorkerSnapshot> = {
    at: 1000,
    primary: { pid: 1, uptimeSeconds: 9, cpuPercent: 1, rssBytes: 50, heapUsedBytes: 5, heapTotalBytes: 10, eventLoopDelayMs: null, openFds: 5, maxFds: 1024 },
    workers: [
      { worker: 1, pid: 11, state: 'up', restarts: 0, at: 1000, value: report(11, 90, 0, ['up', 'up']) },
      { worker: 2, pid: 12, state: 'up', restarts: 2, at: 1000, value: report(12, 10, 2, ['down', 'drained']) },
    ],
  };
  const s = mergeSnapshots(round);
  assert.deepEqual(s.processes.map((p) => [p.role, p.pid, p.worker, p.restarts]), [['primary', 1, undefined, undefined], ['worker', 11, 1, 0], ['worker', 12, 2, 2]]);
  assert.equal(s.totals.requests, 100);
  assert.equal(s.totals.requestsPerSecond, 100);
  assert.equal(s.totals.activeConnections, 2);
  const web = s.listeners[0];
  assert.equal(web.inFlight, 2);
  assert.equal(web.bytesOutPerSecond, 40);
  assert.equal(web.routes[0].traffic.requests, 100);
  // p50 of the summed buckets is under 1 ms (90 of 100 there); p99 is in worker 2's bucket.
  const lat = web.routes[0].traffic.latencySeconds!;
  assert.ok(lat.p50 <= 0.001, JSON.stringify(lat));
  assert.ok(lat.p99 > 0.01 && lat.p99 <= 0.1, JSON.stringify(lat));
  assert.deepEqual(s.totals.latencySeconds, lat);

  const api = s.upstreams[0];
  assert.equal(api.breaker?.state, 'open', 'the worst breaker');
  assert.deepEqual(api.breakers, [{ worker: 1, state: 'closed' }, { worker: 2, state: 'open' }]);
  const [a, b] = api.targets;
  assert.equal(a.state, 'down');
  assert.equal(a.healthy, false);
  assert.deepEqual(a.workers, [{ worker: 1, state: 'up' }, { worker: 2, state: 'down' }]);
  assert.equal(b.state, 'drained');
  assert.equal(b.drained, true);
  assert.equal(a.inFlight, 2);
  assert.deepEqual(a.pool, { connected: 2, pending: 0, running: 2 });
  assert.deepEqual(s.rooms, [{ room: 'lobby', members: 2 }]);
  assert.deepEqual(s.workers?.map((w) => w.state), ['up', 'up']);
});

test('a stale worker keeps its process row but is left out of the sums; a restarting slot has no row', () => {
  const round: ClusterRound<WorkerSnapshot> = {
    at: 5000,
    workers: [
      { worker: 1, pid: 11, state: 'up', restarts: 0, at: 5000, value: report(11, 30, 0, ['up', 'up']) },
      { worker: 2, pid: 12, state: 'stale', restarts: 0, error: 'did not answer within 2 s', at: 2000, value: report(12, 1000, 2, ['down', 'down']) },
      { worker: 3, pid: 0, state: 'starting', restarts: 1, error: 'not running (it is being started again)' },
    ],
  };
  const s = mergeSnapshots(round);
  assert.deepEqual(s.processes.map((p) => [p.pid, p.state, p.sampleAgeSeconds]), [[11, 'up', undefined], [12, 'stale', 3]]);
  assert.equal(s.totals.requests, 30);
  assert.ok(s.upstreams[0].targets.every((t) => t.state === 'up' && t.workers?.length === 1));
  assert.deepEqual(s.workers?.map((w) => [w.worker, w.pid, w.state]), [[1, 11, 'up'], [2, 12, 'stale'], [3, 0, 'starting']]);
});

test('/listeners and /upstreams of two workers', () => {
  const l = (inFlight: number): WorkerListener[] => [{ name: 'web', protocol: 'http', url: 'u', handlers: ['proxy'], tryIt: 'curl', inFlight }];
  const listeners = mergeListeners({ at: 1, workers: [{ worker: 1, pid: 11, state: 'up', restarts: 0, value: l(2) }, { worker: 2, pid: 12, state: 'up', restarts: 0, value: l(3) }] }) as {
    listeners: { inFlight: number; workers: { pid: number; inFlight: number }[] }[];
  };
  assert.equal(listeners.listeners[0].inFlight, 5);
  assert.deepEqual(listeners.listeners[0].workers.map((w) => [w.pid, w.inFlight]), [[11, 2], [12, 3]]);

  const group = (drained: boolean) => [{ name: 'api', targets: [{ id: 'a', healthy: true, drained, ejected: false }] }];
  const u = mergeUpstreams(group(true), {
    at: 1,
    workers: [
      { worker: 1, pid: 11, state: 'up', restarts: 0, value: group(true) },
      { worker: 2, pid: 12, state: 'up', restarts: 0, value: group(false) },
    ],
  }) as { upstreams: { targets: { workers: object }[] }[]; workers: { pid: number; upstreams?: unknown }[] };
  assert.deepEqual(u.upstreams[0].targets[0].workers, { of: 2, healthy: 2, drained: 1, ejected: 0 });
  assert.ok(u.workers.every((w) => Array.isArray(w.upstreams)));
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import net from 'node:net';
import type { AddressInfo } from 'node:net';
import { OutlierDetector, ActiveHealthChecker } from '../src/upstream/health/index.ts';
import { Target } from '../src/upstream/target.ts';
import type { HealthConfig, OutlierConfig } from '../src/upstream/config.ts';

function target(port: number, index = 0, protocol: 'http:' | undefined = 'http:'): Target {
  const id = `127.0.0.1:${port}`;
  return new Target(id, '127.0.0.1', port, protocol, `http://${id}`, 1, index);
}

// ---- outlier detection (fake clock) ----

const outlier: OutlierConfig = { consecutiveFailures: 3, baseEjectionTime: 30_000, maxEjectionTime: 100_000, maxEjectPercent: 50 };

test('outlier: consecutive failures eject for base x times ejected, capped', () => {
  const clock = { t: 1_000_000 };
  const ts = [target(1, 0), target(2, 1)];
  const ejected: [string, number][] = [];
  const d = new OutlierDetector(outlier, ts, () => clock.t, (t, until) => ejected.push([t.id, until]));
  const t = ts[0];
  d.onFailure(t);
  d.onFailure(t);
  d.onSuccess(t); // the run is broken
  d.onFailure(t);
  d.onFailure(t);
  assert.equal(t.ejectedUntil, 0, 'two in a row is not three');
  d.onFailure(t);
  assert.equal(t.ejections, 1);
  assert.equal(t.ejectedUntil, clock.t + 30_000);
  assert.equal(t.available(clock.t), false);
  assert.equal(t.available(clock.t + 30_000), true);
  // Late failures while ejected do not extend it.
  for (let i = 0; i < 5; i++) d.onFailure(t);
  assert.equal(t.ejections, 1);

  const expect = [60_000, 90_000, 100_000, 100_000];
  for (const dur of expect) {
    clock.t = t.ejectedUntil;
    for (let i = 0; i < 3; i++) d.onFailure(t);
    assert.equal(t.ejectedUntil - clock.t, dur);
  }
  assert.equal(t.ejections, 5);
  assert.equal(ejected.length, 5);
  assert.deepEqual(ejected[0], ['127.0.0.1:1', 1_000_000 + 30_000]);
});

test('outlier: never more than maxEjectPercent of the group ejected at once', () => {
  const clock = { t: 0 };
  const ts = [0, 1, 2, 3, 4].map((i) => target(100 + i, i));
  const d = new OutlierDetector(outlier, ts, () => clock.t);
  for (const t of ts) for (let i = 0; i < 3; i++) d.onFailure(t);
  const out = ts.filter((t) => !t.available(clock.t));
  assert.equal(out.length, 2, 'floor(5 x 50%) = 2');
  assert.deepEqual(out.map((t) => t.index), [0, 1]);
  // When the first ejections end, a target still failing is ejected on its next failure.
  clock.t = 30_000;
  d.onFailure(ts[2]);
  assert.equal(ts[2].available(clock.t), false);
  d.onFailure(ts[3]);
  assert.equal(ts[3].available(clock.t), false);
  d.onFailure(ts[4]);
  assert.equal(ts[4].available(clock.t), true, 'the cap holds again');
});

test('outlier: a group of one never ejects its only target below 100%', () => {
  const clock = { t: 0 };
  const only = target(1);
  const d = new OutlierDetector(outlier, [only], () => clock.t);
  for (let i = 0; i < 50; i++) d.onFailure(only);
  assert.equal(only.ejections, 0);
  assert.equal(only.available(clock.t), true);
  const d100 = new OutlierDetector({ ...outlier, maxEjectPercent: 100 }, [only], () => clock.t);
  for (let i = 0; i < 3; i++) d100.onFailure(only);
  assert.equal(only.ejections, 1, 'at 100% it may');
});

// ---- active checks (real servers on 127.0.0.1) ----

const health: HealthConfig = { path: '/health', expectStatus: [200, 399], interval: 60_000, timeout: 1_000, rise: 2, fall: 3, grpc: false };

const closers: (() => Promise<void>)[] = [];
after(async () => {
  for (const c of closers) await c();
});

function listen(server: http.Server | net.Server, port = 0): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => {
      server.off('error', reject);
      resolve((server.address() as AddressInfo).port);
    });
  });
}

function closeHttp(server: http.Server): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    server.closeAllConnections();
  });
}

function closeNet(server: net.Server, sockets: Set<net.Socket>): Promise<void> {
  return new Promise((resolve) => {
    server.close(() => resolve());
    for (const s of sockets) s.destroy();
  });
}

function httpServer(status: number, seen?: { paths: string[] }): http.Server {
  const server = http.createServer((req, res) => {
    seen?.paths.push(req.url ?? '');
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end('x'.repeat(10_000));
  });
  closers.push(() => (server.listening ? closeHttp(server) : Promise.resolve()));
  return server;
}

test('active http: a target that goes away is unhealthy after fall rounds, healthy after rise rounds', async () => {
  const seen = { paths: [] as string[] };
  let server = httpServer(200, seen);
  const port = await listen(server);
  const t = target(port);
  const changes: boolean[] = [];
  const failures: [string, number][] = [];
  let downReason: string | undefined;
  const checker = new ActiveHealthChecker(health, [t], 'http', {
    onChange: (_t, h, reason) => {
      changes.push(h);
      if (!h) downReason = reason;
    },
    onFailure: (_t, reason, consecutive) => failures.push([reason, consecutive]),
  });
  await checker.checkNow();
  assert.equal(t.healthy, true);
  assert.deepEqual(seen.paths, ['/health']);

  await closeHttp(server);
  await checker.checkNow();
  await checker.checkNow();
  assert.equal(t.healthy, true, 'two failures < fall 3');
  await checker.checkNow();
  assert.equal(t.healthy, false);
  assert.deepEqual(changes, [false]);
  assert.deepEqual(failures, [['ECONNREFUSED', 1], ['ECONNREFUSED', 2], ['ECONNREFUSED', 3]]);
  assert.equal(downReason, 'ECONNREFUSED');

  server = httpServer(200, seen);
  await listen(server, port);
  await checker.checkNow();
  assert.equal(t.healthy, false, 'one success < rise 2');
  await checker.checkNow();
  assert.equal(t.healthy, true);
  assert.deepEqual(changes, [false, true]);
  // Every check closed its connection: nothing is left open on the server.
  // (The server notices a close a moment after the client: poll briefly before asserting.)
  const count = () => new Promise<number>((resolve, reject) => server.getConnections((e, n) => (e ? reject(e) : resolve(n))));
  let open = await count();
  for (let i = 0; i < 100 && open > 0; i++) {
    await new Promise((r) => setTimeout(r, 10));
    open = await count();
  }
  assert.equal(open, 0);
  checker.stop();
});

test('active http: a 500 answer is unhealthy; expectStatus as one code', async () => {
  const port = await listen(httpServer(500));
  const t = target(port);
  const checker = new ActiveHealthChecker({ ...health, fall: 1 }, [t], 'http');
  await checker.checkNow();
  assert.equal(t.healthy, false);

  const port204 = await listen(httpServer(204));
  const t204 = target(port204);
  const strict = new ActiveHealthChecker({ ...health, fall: 1, expectStatus: 200 }, [t204], 'http');
  await strict.checkNow();
  assert.equal(t204.healthy, false, '204 is not 200');
  const ranged = new ActiveHealthChecker({ ...health, fall: 1 }, [t204], 'http');
  t204.healthy = true;
  await ranged.checkNow();
  assert.equal(t204.healthy, true, '204 is in [200, 399]');
});

test('active http: a target that never answers times out', async () => {
  const sockets = new Set<net.Socket>();
  const silent = net.createServer((s) => sockets.add(s.resume())); // reads, never answers
  const port = await listen(silent);
  closers.push(() => closeNet(silent, sockets));
  const t = target(port);
  const checker = new ActiveHealthChecker({ ...health, fall: 1, timeout: 200 }, [t], 'http');
  await checker.checkNow();
  assert.equal(t.healthy, false);
});

test('active tcp: connect checks follow a net server going away and coming back', async () => {
  const sockets = new Set<net.Socket>();
  const make = () =>
    net.createServer((s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    });
  let server = make();
  const port = await listen(server);
  const t = target(port, 0, undefined);
  const checker = new ActiveHealthChecker({ ...health, rise: 1, fall: 2 }, [t], 'tcp');
  await checker.checkNow();
  assert.equal(t.healthy, true);
  await closeNet(server, sockets);
  await checker.checkNow();
  assert.equal(t.healthy, true);
  await checker.checkNow();
  assert.equal(t.healthy, false);
  server = make();
  await listen(server, port);
  closers.push(() => (server.listening ? closeNet(server, sockets) : Promise.resolve()));
  await checker.checkNow();
  assert.equal(t.healthy, true);
});

test('active: start() checks at once; stop() aborts and drops checks in flight', async () => {
  const sockets = new Set<net.Socket>();
  // Reads (so it sees the client's close), never answers.
  const silent = net.createServer((s) => sockets.add(s.resume()));
  const port = await listen(silent);
  closers.push(() => closeNet(silent, sockets));
  const t = target(port);
  const checker = new ActiveHealthChecker({ ...health, fall: 1, timeout: 30_000 }, [t], 'http');
  checker.start();
  // The first check is under way: the server sees its connection.
  while (sockets.size === 0) await new Promise((r) => setTimeout(r, 5));
  const closed = new Promise((r) => [...sockets][0].once('close', r));
  checker.stop();
  await closed; // the check's socket is gone, long before its 30 s timeout
  await new Promise((r) => setImmediate(r));
  assert.equal(t.healthy, true, 'an aborted check is not a failure');
});

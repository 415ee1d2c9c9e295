import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { Writable } from 'node:stream';
import { serve, createLogger, type Yard } from '../src/index.ts';
import { Metrics } from '../src/observe/metrics.ts';
import { UpstreamGroup } from '../src/upstream/group.ts';
import { upstreamSchema } from '../src/upstream/config.ts';
import { OutageLog } from '../src/upstream/health/outage-log.ts';
import { Target } from '../src/upstream/target.ts';

// Upstream health in the log: one warn when a target goes out, one info when it is back, and
// the failures in between at debug only, whichever detector (active checks, outlier ejection)
// noticed. The same for the circuit breaker: open is a warning, closed again is info.

type LogRecord = Record<string, unknown> & { level: number; msg: string };

/** A pino logger at debug whose records are kept as objects. */
function capture(): { logger: ReturnType<typeof createLogger>; records: LogRecord[] } {
  const records: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) records.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  return { logger: createLogger('debug', sink), records };
}

const WARN = 40;
const INFO = 30;
const DEBUG = 20;

async function until<T>(what: string, probe: () => T | undefined | false, timeoutMs = 15_000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = probe();
    if (v) return v;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

const servers: http.Server[] = [];
const yards: Yard[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** An HTTP backend that counts the requests it answered (health checks included). */
function backend(body: string, port = 0): Promise<http.Server & { hits: number }> {
  const server = Object.assign(
    http.createServer((_req, res) => {
      server.hits++;
      res.end(body);
    }),
    { hits: 0 },
  );
  servers.push(server);
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, '127.0.0.1', () => resolve(server));
  });
}

function close(server: http.Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

test('a target that goes down and comes back: one warn, one info, the failed probes in between at debug', async () => {
  const a = await backend('a');
  const b = await backend('b');
  const portA = (a.address() as AddressInfo).port;
  const portB = (b.address() as AddressInfo).port;
  const idA = `127.0.0.1:${portA}`;
  const { logger, records } = capture();
  const y = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'proxy', upstream: 'api' } }] }],
      upstreams: {
        api: {
          targets: [`http://${idA}`, `http://127.0.0.1:${portB}`],
          balance: 'round-robin',
          // The active checks need three failed rounds: the requests below reach A first, so
          // outlier detection notices the outage before them, and both detectors report it.
          health: { path: '/', interval: '200ms', timeout: '1s', fall: 3, rise: 2 },
          outlier: { consecutiveFailures: 1, baseEjectionTime: '100ms', maxEjectionTime: '100ms', maxEjectPercent: 100 },
        },
      },
      logging: { accessLog: false },
    },
    { logger },
  );
  yards.push(y);
  const web = `http://127.0.0.1:${y.address('web').port}`;
  const forA = (msg: string, level: number) => records.filter((r) => r.msg === msg && r.level === level && r.target === idA);

  // Healthy: a few rounds of checks pass and nothing about A is logged above debug.
  await until('a few passing health checks', () => a.hits >= 3);
  assert.deepEqual(
    records.filter((r) => r.level > DEBUG && r.target === idA),
    [],
  );

  await close(a);
  for (let i = 0; i < 4; i++) await (await fetch(`${web}/x`)).text();
  const down = await until('the warning that A is down', () => forA('upstream target down', WARN)[0]);
  assert.equal(down.upstream, 'api');
  assert.equal(down.by, 'outlier');
  assert.equal(down.reason, 'a failed request');
  // The active checks notice the same outage: debug, not a second warning.
  const seen = await until('the health checks noticing A', () => forA('upstream target still down', DEBUG).find((r) => r.by === 'health-check'));
  assert.equal(seen.reason, 'ECONNREFUSED');
  // More failed probes while it stays down.
  await until('several failed probes', () => forA('health check failed', DEBUG).length >= 5);

  const back = await backend('a again', portA);
  const up = await until('the info that A is back', () => forA('upstream target back', INFO)[0]);
  assert.equal(up.upstream, 'api');
  assert.equal(up.reason, 'a failed request');
  assert.equal(typeof up.downForMs, 'number');
  assert.ok((up.downForMs as number) > 0);
  // A few more rounds, all passing, before the log is counted.
  const hitsWhenBack = back.hits;
  await until('more checks passing on A', () => back.hits >= hitsWhenBack + 3);

  assert.equal(forA('upstream target down', WARN).length, 1, 'one warning for the outage');
  assert.equal(forA('upstream target back', INFO).length, 1, 'one info for the recovery');
  assert.ok(forA('health check failed', DEBUG).length >= 5);
  const aboveDebug = records.filter((r) => r.level > DEBUG && r.target === idA).map((r) => r.msg);
  assert.deepEqual(aboveDebug, ['upstream target down', 'upstream target back']);
  assert.deepEqual(
    records.filter((r) => r.level > DEBUG && r.target === `127.0.0.1:${portB}`),
    [],
    'nothing about the target that stayed up',
  );
  await close(back);
});

test('the circuit breaker: opening is one warning, closing one info line, half-open probing is debug', async () => {
  const { logger, records } = capture();
  const config = upstreamSchema.parse({
    targets: ['http://127.0.0.1:1'],
    outlier: false,
    breaker: { failureRate: 0.5, minRequests: 4, window: '10s', openFor: '50ms', halfOpenRequests: 1 },
  });
  const group = new UpstreamGroup('api', config, { metrics: new Metrics({ processMetrics: false }), log: logger });
  try {
    const breaker = group.breaker!;
    const call = (outcome: 'success' | 'failure') => {
      const a = breaker.admit();
      assert.ok(a.ok, 'admitted');
      a.release(outcome);
    };
    for (let i = 0; i < 4; i++) call('failure');
    assert.equal(breaker.state, 'open');
    // Half-open, a probe fails: open again (debug); half-open, a probe passes: closed.
    await until('half-open', () => breaker.state === 'half-open');
    call('failure');
    await until('half-open again', () => breaker.state === 'half-open');
    call('success');
    assert.equal(breaker.state, 'closed');

    const above = records.filter((r) => r.level > DEBUG);
    assert.deepEqual(
      above.map((r) => [r.level, r.msg]),
      [
        [WARN, 'circuit breaker open'],
        [INFO, 'circuit breaker closed'],
      ],
    );
    assert.equal(above[0].upstream, 'api');
    assert.equal(above[0].failures, 4);
    assert.equal(above[0].requests, 4);
    assert.equal(typeof above[1].openForMs, 'number');
    const debug = records.filter((r) => r.level === DEBUG).map((r) => r.msg);
    assert.deepEqual(debug, [
      'circuit breaker half-open: letting probe requests through',
      'circuit breaker open again: a probe request failed',
      'circuit breaker half-open: letting probe requests through',
    ]);
  } finally {
    await group.close();
  }
});

test('OutageLog: a second detector, and a success while the checks still fail, say nothing above debug', () => {
  const lines: [string, string, object][] = [];
  const log = {
    debug: (o: object, m: string) => lines.push(['debug', m, o]),
    info: (o: object, m: string) => lines.push(['info', m, o]),
    warn: (o: object, m: string) => lines.push(['warn', m, o]),
  };
  const clock = { t: 1_000 };
  const outages = new OutageLog('api', log, () => clock.t);
  const t = new Target('127.0.0.1:9', '127.0.0.1', 9, 'http:', 'http://127.0.0.1:9', 1, 0);
  t.healthy = false;
  outages.down(t, 'health-check', 'status 503');
  t.ejectedUntil = clock.t + 10;
  outages.ejected(t, t.ejectedUntil, '5 failed requests in a row');
  clock.t += 20;
  outages.succeeded(t); // a request answered after the ejection, but the checks still fail
  assert.deepEqual(
    lines.map(([level, msg]) => `${level} ${msg}`),
    ['warn upstream target down', 'debug upstream target still down'],
  );
  t.healthy = true;
  clock.t += 1000;
  outages.succeeded(t);
  outages.succeeded(t); // told twice, said once
  assert.deepEqual(lines.at(-1), ['info', 'upstream target back', { upstream: 'api', target: '127.0.0.1:9', reason: 'status 503', downForMs: 1020 }]);
  assert.equal(lines.length, 3);
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, parseConfig, ConfigError, type Yard } from '../src/index.ts';

const yards: Yard[] = [];
const servers: Server[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const s of servers) s.closeAllConnections(), s.close();
});

function backend(port = 0, status = 200): Promise<Server> {
  const s = createServer((req, res) => {
    res.writeHead(status, { 'content-type': 'text/plain' });
    res.end(`from ${(s.address() as AddressInfo).port}\n`);
  });
  servers.push(s);
  return new Promise((resolve, reject) => {
    s.once('error', reject);
    s.listen(port, '127.0.0.1', () => resolve(s));
  });
}

const portOf = (s: Server) => (s.address() as AddressInfo).port;

interface TargetState {
  id: string;
  healthy: boolean;
  available: boolean;
  ejected: boolean;
  ejections: number;
  requests: { success: number; failure: number; connectFailure: number };
}

async function upstreamState(y: Yard): Promise<TargetState[]> {
  const r = await fetch(`http://127.0.0.1:${y.address('admin').port}/upstreams`);
  const j = (await r.json()) as { upstreams: { name: string; targets: TargetState[] }[] };
  return j.upstreams[0].targets;
}

/** Polls `check` every 50 ms, at most `tries` times; returns whether it became true. */
async function eventually(check: () => Promise<boolean>, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await new Promise((r) => setTimeout(r, 50));
  }
  return false;
}

test('a handler naming an upstream that does not exist is a config error at its field', () => {
  try {
    parseConfig({
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'proxy', upstream: 'ghost' } }] }],
      upstreams: { api: { targets: ['http://127.0.0.1:1'] } },
    });
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.issues[0].path, 'listeners[0].routes[0].handler.upstream');
    assert.match(err.issues[0].message, /no upstream named "ghost" \(upstreams: api\)/);
  }
  try {
    parseConfig({
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'respond' } }] }],
      upstreams: { api: { targets: [{ url: 'http://127.0.0.1:1', weight: 3 }, 'http://127.0.0.1:2'] } },
    });
    assert.fail('accepted');
  } catch (err) {
    assert.ok(err instanceof ConfigError);
    assert.equal(err.issues[0].path, 'upstreams.api.targets[0].weight');
    assert.match(err.issues[0].message, /weighted-round-robin/);
  }
});

test('active health: a target killed is marked down and gets no traffic; restarted, it is admitted again', async () => {
  const a = await backend();
  let b = await backend();
  const bPort = portOf(b);
  const y = await serve(
    {
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'proxy', upstream: 'api' } }] },
        { name: 'admin', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/upstreams' }, handler: { type: 'upstreams' } }] },
      ],
      upstreams: {
        api: {
          targets: [`http://127.0.0.1:${portOf(a)}`, `http://127.0.0.1:${bPort}`],
          health: { path: '/', interval: '100ms', timeout: '500ms', rise: 1, fall: 1 },
        },
      },
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  const web = `http://127.0.0.1:${y.address('web').port}`;
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await (await fetch(web)).text());
  assert.equal(seen.size, 2, 'both targets serve while healthy');

  b.closeAllConnections();
  await new Promise<void>((r) => b.close(() => r()));
  const down = await eventually(async () => (await upstreamState(y)).find((t) => t.id.endsWith(`:${bPort}`))?.healthy === false);
  assert.ok(down, 'the killed target is marked unhealthy');
  for (let i = 0; i < 6; i++) {
    const r = await fetch(web);
    assert.equal(r.status, 200);
    assert.equal(await r.text(), `from ${portOf(a)}\n`);
  }

  b = await backend(bPort);
  const up = await eventually(async () => (await upstreamState(y)).find((t) => t.id.endsWith(`:${bPort}`))?.healthy === true);
  assert.ok(up, 'the restarted target is healthy again');
  const again = new Set<string>();
  for (let i = 0; i < 6; i++) again.add(await (await fetch(web)).text());
  assert.ok(again.has(`from ${bPort}\n`), 'and gets traffic again');
});

test('passive outlier detection: a target answering 5xx is ejected and shown in /upstreams and metrics', async () => {
  const good = await backend();
  const bad = await backend(0, 500);
  const y = await serve(
    {
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'proxy', upstream: 'api' } }] },
        {
          name: 'admin',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/upstreams' }, handler: { type: 'upstreams' } },
            { match: { path: '/metrics' }, handler: { type: 'metrics' } },
          ],
        },
      ],
      upstreams: {
        api: {
          targets: [`http://127.0.0.1:${portOf(good)}`, `http://127.0.0.1:${portOf(bad)}`],
          outlier: { consecutiveFailures: 2, baseEjectionTime: '1m', maxEjectPercent: 50 },
          retry: { attempts: 0 },
          breaker: false,
        },
      },
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  const web = `http://127.0.0.1:${y.address('web').port}`;
  for (let i = 0; i < 6; i++) await (await fetch(web)).text();
  const state = await upstreamState(y);
  const badState = state.find((t) => t.id.endsWith(`:${portOf(bad)}`));
  assert.ok(badState?.ejected, 'the failing target is ejected');
  assert.equal(badState?.ejections, 1);
  assert.ok((badState?.requests.failure ?? 0) >= 2);
  // Ejected: every request now goes to the good target.
  for (let i = 0; i < 5; i++) {
    const r = await fetch(web);
    assert.equal(r.status, 200);
    await r.text();
  }
  const metrics = await (await fetch(`http://127.0.0.1:${y.address('admin').port}/metrics`)).text();
  assert.match(metrics, new RegExp(`switchyard_upstream_ejections_total\\{upstream="api",target="127.0.0.1:${portOf(bad)}"\\} 1`));
  assert.match(metrics, new RegExp(`switchyard_upstream_target_up\\{upstream="api",target="127.0.0.1:${portOf(bad)}"\\} 0`));
  assert.match(metrics, /switchyard_upstream_requests_total\{upstream="api",target="[^"]+",outcome="success"\} \d+/);
  assert.match(metrics, new RegExp(`switchyard_upstream_errors_total\\{upstream="api",target="127.0.0.1:${portOf(bad)}",kind="http_5xx"\\} [2-9]`));
});

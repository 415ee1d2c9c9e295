import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { serve, type Yard } from '../../src/index.ts';
import { exchange, recorder, statuses, type Recorder } from './recorder.ts';
import { run } from '../helpers/net.ts';
import { pino } from 'pino';

// Request smuggling through the Upgrade path, and upgrades taking the same phases as any
// request. The upstream records every byte it receives: a request pipelined behind an upgrade
// must never reach it unrouted.

const yards: Yard[] = [];
const recorders: Recorder[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const r of recorders) r.close();
});

async function proxied(middleware: Record<string, unknown> = {}): Promise<{ port: number; up: Recorder; yard: Yard }> {
  const up = await recorder();
  recorders.push(up);
  const yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware,
          routes: [
            { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } },
            { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
            { match: { path: '/static/*' }, handler: { type: 'respond', status: 200, body: 'static\n' } },
          ],
        },
      ],
      upstreams: { api: { targets: [up.url] } },
    },
    { logLevel: 'silent' },
  );
  yards.push(yard);
  return { port: yard.address('web').port, up, yard };
}

/** A last request that closes the connection, so the exchange need not wait for a timeout. */
const LAST = 'GET /static/last HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n';
const SMUGGLED = 'GET /admin/delete-all HTTP/1.1\r\nHost: internal.admin\r\nX-Forwarded-For: 10.0.0.1\r\nContent-Length: 0\r\n\r\n';

test('a request pipelined behind Upgrade: foo is routed like any other, never passed on raw', async () => {
  const { port, up } = await proxied();
  const raw = await exchange(port, `GET /api/innocent HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\n${SMUGGLED}${LAST}`);
  // The first is served as a plain request (Upgrade ignored); the second misses every route.
  assert.deepEqual(statuses(raw), [200, 404, 200], raw);
  assert.match(raw, /ok GET \/api\/innocent/);
  const seen = up.bytes();
  assert.doesNotMatch(seen, /delete-all|internal\.admin|10\.0\.0\.1/i, seen);
  assert.doesNotMatch(seen, /upgrade/i, 'no Upgrade header reaches the upstream');
  assert.deepEqual(up.requests.map((r) => r.url), ['/api/innocent']);
});

test('a request pipelined behind a WebSocket upgrade the upstream refuses never reaches it', async () => {
  const { port, up } = await proxied();
  const raw = await exchange(
    port,
    `GET /api/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n${SMUGGLED}`,
  );
  assert.deepEqual(statuses(raw), [400], raw);
  const seen = up.bytes();
  assert.match(seen, /GET \/api\/socket HTTP\/1\.1/);
  assert.doesNotMatch(seen, /delete-all|internal\.admin|10\.0\.0\.1/i, seen);
  assert.equal(up.requests.length, 1);
});

test('what follows an accepted upgrade reaches the upstream only after its 101', async () => {
  const { port, up } = await proxied();
  up.acceptUpgrades = true;
  const raw = await exchange(
    port,
    `GET /api/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\nframes-after-head`,
    { end: false, timeoutMs: 1500 },
  );
  assert.deepEqual(statuses(raw), [101], raw);
  // The upstream echoes the new protocol's bytes: they went through after the switch.
  assert.match(raw, /frames-after-head/);
  assert.equal(up.bytesBeforeSwitch, 0, 'nothing of the new protocol before the 101');
});

test('an upgrade request with a body is refused before anything goes upstream', async () => {
  const { port, up } = await proxied();
  const chunked = await exchange(
    port,
    `GET /api/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nTransfer-Encoding: chunked\r\n\r\n${(SMUGGLED.length).toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
  );
  assert.deepEqual(statuses(chunked), [400], chunked);
  assert.match(chunked, /upgrade request carries no body/);
  const length = await exchange(
    port,
    `GET /api/socket HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nContent-Length: ${SMUGGLED.length}\r\n\r\n${SMUGGLED}`,
  );
  assert.deepEqual(statuses(length), [400], length);
  assert.equal(up.bytes(), '', 'nothing reached the upstream');
});

test('a chunked body behind Upgrade: foo is framed and forwarded as a body, not as raw bytes', async () => {
  const { port, up } = await proxied();
  const raw = await exchange(
    port,
    `POST /api/upload HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, close\r\nUpgrade: foo\r\nTransfer-Encoding: chunked\r\n\r\n${(SMUGGLED.length).toString(16)}\r\n${SMUGGLED}\r\n0\r\n\r\n`,
  );
  assert.deepEqual(statuses(raw), [200], raw);
  assert.deepEqual(up.requests.map((r) => `${r.method} ${r.url}`), ['POST /api/upload'], 'one request upstream: the smuggled one stayed body');
});

test('h2c: curl --http2 gets HTTP/1.1 from a static route, and no h2c Upgrade goes upstream', async () => {
  const { port, up } = await proxied();
  const s = await run('curl', ['-s', '-i', '--http2', `http://127.0.0.1:${port}/static/x`]);
  assert.equal(s.code, 0, s.stderr);
  assert.match(s.stdout, /^HTTP\/1\.1 200/);
  assert.match(s.stdout, /static/);
  const p = await run('curl', ['-s', '-i', '--http2', `http://127.0.0.1:${port}/api/curl`]);
  assert.match(p.stdout, /^HTTP\/1\.1 200/);
  assert.match(p.stdout, /ok GET \/api\/curl/);
  assert.doesNotMatch(up.bytes(), /h2c|http2-settings|upgrade/i);
});

test('upgrades pass the middleware: the listener rate limit answers h2c and WebSocket upgrades 429, and metrics count the 429s', async () => {
  const { port, yard } = await proxied({ rateLimit: { rate: 5, per: '1h' } });
  const h2c = await Promise.all(
    Array.from({ length: 20 }, () => exchange(port, 'GET /static/a HTTP/1.1\r\nHost: x\r\nConnection: Upgrade, HTTP2-Settings, close\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n\r\n')),
  );
  const ws = await Promise.all(
    Array.from({ length: 20 }, () =>
      exchange(port, 'GET /ws HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', { timeoutMs: 1000 }),
    ),
  );
  const all = [...h2c, ...ws].map((r) => statuses(r)[0]);
  assert.equal(all.filter((s) => s === 429).length, 35, JSON.stringify(all));
  assert.equal(all.filter((s) => s !== 429).length, 5);
  // Every answer counted with the status the client got: 429s as 429, never as 101. A refused
  // upgrade is counted when its socket closes, which may be just after the client saw it close.
  let metrics = '';
  const count = (route: string, status: number) => Number(new RegExp(`listener="web",route="${route.replace(/[*/]/g, '\\$&')}",status="${status}"\\} (\\d+)`).exec(metrics)?.[1] ?? 0);
  for (let i = 0; i < 50; i++) {
    metrics = await yard.metrics.registry.metrics();
    if (count('/ws', 429) + count('/static/*', 429) >= 35) break;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(count('/ws', 429) + count('/static/*', 429), 35, metrics);
  assert.equal(count('/ws', 101), 0, metrics);
});

test('an upgrade is logged like a request, and its 101 carries the request id middleware set', async () => {
  const lines: Record<string, unknown>[] = [];
  const logger = pino({ level: 'info' }, { write: (line: string) => lines.push(JSON.parse(line) as Record<string, unknown>) });
  const yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', middleware: { accessLog: true }, routes: [{ match: { path: '/ws' }, handler: { type: 'ws-echo' } }] }],
    },
    { logger },
  );
  yards.push(yard);
  const raw = await exchange(
    yard.address('web').port,
    'GET /ws HTTP/1.1\r\nHost: x\r\nX-Request-Id: trace-me-42\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n',
    { timeoutMs: 500, end: false },
  );
  assert.deepEqual(statuses(raw), [101], raw);
  assert.match(raw, /\r\nx-request-id: trace-me-42\r\n/i);
  for (let i = 0; i < 50 && !lines.some((l) => l.msg === 'request'); i++) await new Promise((r) => setTimeout(r, 20));
  const entry = lines.find((l) => l.msg === 'request');
  assert.ok(entry, JSON.stringify(lines));
  assert.equal(entry.status, 101);
  assert.equal(entry.requestId, 'trace-me-42');
  assert.equal(entry.aborted, undefined);
});

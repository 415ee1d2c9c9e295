import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { serve, createLogger, type Yard } from '../src/index.ts';
import { compilePath, normalisePath } from '../src/listeners/http/router.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';

const yards: Yard[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
});

test('path patterns: exact, prefix and glob', () => {
  const exact = compilePath('/health');
  assert.equal(exact('/health'), '/health');
  assert.equal(exact('/health/x'), undefined);
  const prefix = compilePath('/static/*');
  assert.equal(prefix('/static/a/b.css'), '/a/b.css');
  assert.equal(prefix('/static'), '/');
  assert.equal(prefix('/staticky'), undefined);
  const glob = compilePath('/img/*.png');
  assert.equal(glob('/img/a.png'), '/img/a.png');
  assert.equal(glob('/img/a/b.png'), undefined);
  const deep = compilePath('/docs/**/index.html');
  assert.equal(deep('/docs/a/b/index.html'), '/docs/a/b/index.html');
  assert.equal(compilePath('/*')('/anything/at/all'), '/anything/at/all');
});

test('request paths: unreserved escapes decoded, dot segments refused', () => {
  assert.equal(normalisePath('/%61dmin?x'), '/admin');
  assert.equal(normalisePath('/a%2Fb'), '/a%2Fb');
  assert.equal(normalisePath('/a/../b'), undefined);
  assert.equal(normalisePath('/a/%2e%2e/b'), undefined);
  assert.equal(normalisePath('/.'), undefined);
  assert.equal(normalisePath('http://evil/x'), undefined);
  assert.equal(normalisePath('/a/..b'), '/a/..b');
});

async function yard(config: unknown, logger?: ReturnType<typeof createLogger>): Promise<Yard> {
  const y = await serve(config, { logLevel: 'silent', logger });
  yards.push(y);
  return y;
}

const respond = (body: string, extra: Record<string, unknown> = {}) => ({ type: 'respond', body, ...extra });

test('routes match on host, method and path, first match wins', async () => {
  const y = await yard({
    listeners: [
      {
        name: 'w',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [
          { match: { host: 'api.example.com', path: '/*' }, handler: respond('api') },
          { match: { host: '*.example.com', path: '/*' }, handler: respond('wildcard') },
          { match: { path: '/admin', method: 'POST' }, handler: respond('admin-post') },
          { match: { path: '/admin' }, handler: respond('admin-any') },
          { match: { path: '/only-get', method: ['GET'] }, handler: respond('get') },
          { match: { path: '/files/*' }, handler: respond('files') },
        ],
      },
    ],
  });
  const base = `http://127.0.0.1:${y.address('w').port}`;
  const get = async (path: string, init: RequestInit & { host?: string } = {}) => {
    const args = ['-s', '-i', '-X', init.method ?? 'GET', `${base}${path}`];
    if (init.host) args.push('-H', `host: ${init.host}`);
    const r = await run('curl', args);
    return { status: statusOf(r.stdout), body: r.stdout.split('\r\n\r\n')[1] ?? '', head: r.stdout.split('\r\n\r\n')[0] };
  };
  assert.equal((await get('/x', { host: 'api.example.com:8080' })).body, 'api');
  assert.equal((await get('/x', { host: 'www.example.com' })).body, 'wildcard');
  assert.equal((await get('/x', { host: 'example.com' })).status, 404);
  assert.equal((await get('/admin', { method: 'POST' })).body, 'admin-post');
  assert.equal((await get('/admin')).body, 'admin-any');
  assert.equal((await get('/%61dmin')).body, 'admin-any');
  assert.equal((await get('/only-get', { method: 'HEAD' })).status, 200);
  const wrong = await get('/only-get', { method: 'DELETE' });
  assert.equal(wrong.status, 405);
  assert.match(wrong.head, /allow: GET/i);
  assert.equal((await get('/files/a/b')).body, 'files');
  assert.equal((await get('/nothing')).status, 404);
  assert.equal(statusOf(await rawExchange(y.address('w').port, 'GET /files/../admin HTTP/1.1\r\nhost: a\r\n\r\n', { timeoutMs: 500 })), 400);
});

test('request id: generated when absent, kept when valid, replaced when not', async () => {
  const y = await yard({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: respond('x') }] }] });
  const url = `http://127.0.0.1:${y.address('w').port}/`;
  const a = await fetch(url);
  const b = await fetch(url);
  assert.ok(a.headers.get('x-request-id'));
  assert.notEqual(a.headers.get('x-request-id'), b.headers.get('x-request-id'));
  const kept = await fetch(url, { headers: { 'x-request-id': 'client-id-42' } });
  assert.equal(kept.headers.get('x-request-id'), 'client-id-42');
  const bad = await fetch(url, { headers: { 'x-request-id': 'evil\tid<script>' } });
  assert.notEqual(bad.headers.get('x-request-id'), 'evil\tid<script>');
  assert.match(bad.headers.get('x-request-id') ?? '', /^[A-Za-z0-9_-]+-[0-9a-z]+$/);
});

test('CORS: preflight answered with 204, simple requests get headers, other origins get none', async () => {
  const y = await yard({
    listeners: [
      {
        name: 'w',
        protocol: 'http',
        address: '127.0.0.1:0',
        middleware: { cors: { origins: ['https://app.example'], credentials: true, exposeHeaders: ['x-request-id'] } },
        routes: [{ handler: respond('data') }],
      },
    ],
  });
  const url = `http://127.0.0.1:${y.address('w').port}/api`;
  const pre = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'PUT', 'access-control-request-headers': 'content-type' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(pre.headers.get('access-control-allow-credentials'), 'true');
  assert.match(pre.headers.get('access-control-allow-methods') ?? '', /PUT/);
  assert.equal(pre.headers.get('access-control-allow-headers'), 'content-type');
  const simple = await fetch(url, { headers: { origin: 'https://app.example' } });
  assert.equal(await simple.text(), 'data');
  assert.equal(simple.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(simple.headers.get('access-control-expose-headers'), 'x-request-id');
  assert.match(simple.headers.get('vary') ?? '', /Origin/);
  const other = await fetch(url, { headers: { origin: 'https://evil.example' } });
  assert.equal(other.headers.get('access-control-allow-origin'), null);
});

test('access log: one JSON line per request with route, status and request id', async () => {
  const sink = new PassThrough();
  const lines: string[] = [];
  sink.on('data', (d: Buffer) => lines.push(...d.toString().split('\n').filter(Boolean)));
  const y = await yard(
    {
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ name: 'hello', match: { path: '/hello' }, handler: respond('hi') }] }],
    },
    createLogger('info', sink),
  );
  const port = y.address('w').port;
  await (await fetch(`http://127.0.0.1:${port}/hello`, { headers: { 'x-request-id': 'log-me' } })).text();
  await (await fetch(`http://127.0.0.1:${port}/missing`)).text();
  await new Promise((r) => setTimeout(r, 50));
  const entries = lines.map((l) => JSON.parse(l) as Record<string, unknown>).filter((e) => e.msg === 'request');
  assert.equal(entries.length, 1, 'the matched request is logged once');
  assert.equal(entries[0].route, 'hello');
  assert.equal(entries[0].status, 200);
  assert.equal(entries[0].requestId, 'log-me');
  assert.equal(entries[0].method, 'GET');
  assert.equal(typeof entries[0].durationMs, 'number');
});

test('metrics move after requests and carry the seeds\' file-server counter names', async () => {
  const y = await yard({
    listeners: [
      { name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ name: 'hello', handler: respond('hello world') }] },
      { name: 'admin', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/metrics' }, handler: { type: 'metrics' } }] },
    ],
  });
  const scrape = async () => (await fetch(`http://127.0.0.1:${y.address('admin').port}/metrics`)).text();
  const value = (text: string, series: string) => {
    const line = text.split('\n').find((l) => l.startsWith(series + ' '));
    return line ? Number(line.slice(series.length + 1)) : 0;
  };
  const before = await scrape();
  for (let i = 0; i < 3; i++) await run('curl', ['-s', `http://127.0.0.1:${y.address('w').port}/`]);
  const text = await scrape();
  for (const name of ['switchyard_total_connections', 'switchyard_active_connections', 'switchyard_total_bytes_sent', 'switchyard_total_requests']) {
    assert.match(text, new RegExp(`^# TYPE ${name} `, 'm'));
  }
  assert.equal(value(text, 'switchyard_total_requests{listener="w",route="hello",status="200"}') - value(before, 'switchyard_total_requests{listener="w",route="hello",status="200"}'), 3);
  assert.equal(value(text, 'switchyard_total_connections{listener="w"}'), 3);
  assert.ok(value(text, 'switchyard_total_bytes_sent{listener="w"}') >= 3 * 'hello world'.length);
  assert.ok(value(text, 'switchyard_total_bytes_received{listener="w"}') > 0);
  assert.equal(value(text, 'switchyard_request_duration_seconds_count{listener="w",route="hello"}'), 3);
  assert.match(text, /^switchyard_process_resident_memory_bytes /m);
});

test('rateLimit from the config: one set of buckets for the listener, 429 past the burst', async () => {
  const y = await yard({
    listeners: [
      {
        name: 'w',
        protocol: 'http',
        address: '127.0.0.1:0',
        middleware: { rateLimit: { rate: 1, per: '1h', burst: 3 } },
        routes: [
          { match: { path: '/a' }, handler: respond('a') },
          { match: { path: '/b' }, handler: respond('b') },
          { match: { path: '/free' }, handler: respond('free'), middleware: { rateLimit: { rate: 1000, burst: 1000 } } },
        ],
      },
    ],
  });
  const base = `http://127.0.0.1:${y.address('w').port}`;
  const statuses: number[] = [];
  for (const p of ['/a', '/b', '/a', '/b']) {
    const r = await fetch(base + p);
    await r.text();
    statuses.push(r.status);
    if (r.status === 429) {
      assert.ok(Number(r.headers.get('retry-after')) >= 1);
      assert.equal(r.headers.get('ratelimit-remaining'), '0');
    }
  }
  // Three tokens across both routes, then refused: the buckets are the listener's, not per route.
  assert.deepEqual(statuses, [200, 200, 200, 429]);
  const free = await fetch(base + '/free');
  assert.equal(free.status, 200, 'a route with its own limit has its own buckets');
});

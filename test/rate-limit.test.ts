import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { z } from 'zod';
import { serve, compose, registerHandler, handlerModule, type Yard, type MiddlewareContext } from '../src/index.ts';
import { MemoryRateLimitStore, rateLimit, rateLimitSchema } from '../src/middleware/rate-limit.ts';
import { tokenBucketPolicy } from '../src/protocol/token-bucket.ts';

// Token-bucket rate limiting: the bucket itself against an injected clock (no timing asserted),
// and the middleware in front of a real handler on a real yard.

test('bucket: burst, then refused; refills with the clock; never above burst', () => {
  // 2 tokens per second, burst 3.
  const store = new MemoryRateLimitStore({ burst: 3, refillPerMs: 2 / 1000 });
  const t0 = 1_000_000;
  const a = [store.take('k', t0), store.take('k', t0), store.take('k', t0), store.take('k', t0)];
  assert.deepEqual(a.map((r) => r.allowed), [true, true, true, false]);
  assert.deepEqual(a.map((r) => r.remaining), [2, 1, 0, 0]);
  // Empty: one token in 500 ms, full again in 1500 ms.
  assert.equal(a[3].retryAfterMs, 500);
  assert.equal(a[3].resetMs, 1500);
  assert.equal(store.take('k', t0 + 499).allowed, false);
  const after500 = store.take('k', t0 + 500);
  assert.equal(after500.allowed, true);
  assert.equal(after500.remaining, 0);
  // A long quiet spell refills to burst, not beyond.
  const later = t0 + 3_600_000;
  const b = [store.take('k', later), store.take('k', later), store.take('k', later), store.take('k', later)];
  assert.deepEqual(b.map((r) => r.allowed), [true, true, true, false]);
  // A clock that goes backwards adds nothing.
  assert.equal(store.take('k', later - 10_000).allowed, false);
});

test('bucket: keys are independent', () => {
  const store = new MemoryRateLimitStore({ burst: 1, refillPerMs: 1 / 1000 });
  assert.equal(store.take('a', 0).allowed, true);
  assert.equal(store.take('a', 0).allowed, false);
  assert.equal(store.take('b', 0).allowed, true);
});

test('bucket: the store never holds more than maxKeys, and a recently used key keeps its state', () => {
  const store = new MemoryRateLimitStore({ burst: 1, refillPerMs: 1 / 60_000 }, 1000);
  // A key that is kept busy (and so empty) while 200k others rotate through.
  assert.equal(store.take('victim', 0).allowed, true);
  for (let i = 0; i < 200_000; i++) {
    store.take(`10.${(i >> 16) & 255}.${(i >> 8) & 255}.${i & 255}`, 0);
    if (i % 500 === 0) assert.equal(store.take('victim', 0).allowed, false);
    assert.ok(store.size <= 1000, `size ${store.size}`);
  }
  assert.equal(store.take('victim', 0).allowed, false);
});

test('schema: defaults, durations and clear errors', () => {
  const c = rateLimitSchema.parse({ rate: 10 });
  assert.equal(c.per, 1000);
  assert.equal(c.key, 'client-ip');
  assert.equal(tokenBucketPolicy(c).burst, 10);
  assert.equal(rateLimitSchema.parse({ rate: 5, per: '1m', burst: 2, key: { header: 'X-Api-Key' } }).per, 60_000);
  assert.equal(rateLimitSchema.safeParse({ rate: 0 }).success, false);
  assert.equal(rateLimitSchema.safeParse({ rate: 1, key: 'cookie' }).success, false);
  assert.equal(rateLimitSchema.safeParse({ rate: 1, rat: 2 }).success, false);
});

// ---- on a yard ----

const yards: Yard[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
});

let clockMs = 0;
/** A test-only handler: the rate-limit middleware in front of a fixed 200 answer. */
const limitedSchema = z.strictObject({ type: z.literal('limited-test'), limit: z.unknown() });
if (handlerModule('limited-test') === undefined) {
  registerHandler({
    type: 'limited-test',
    summary: 'test: rate-limit middleware in front of a 200',
    schema: limitedSchema,
    http: (config) => {
      const run = compose([rateLimit(rateLimitSchema.parse(config.limit), { now: () => clockMs })], ({ res }) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
        res.end('ok\n');
      });
      return { handle: (ctx) => run(ctx as MiddlewareContext) };
    },
  });
}

async function start(limit: unknown): Promise<number> {
  const y = await serve(
    {
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'limited-test', limit } }] }],
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  return y.address('w').port;
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

function get(port: number, headers: Record<string, string> = {}, localAddress?: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', headers, localAddress, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

test('middleware: burst allowed with RateLimit headers, then 429 with Retry-After', async () => {
  clockMs = 0;
  const port = await start({ rate: 1, per: '10s', burst: 3 });
  const ok = [await get(port), await get(port), await get(port)];
  assert.deepEqual(ok.map((a) => a.status), [200, 200, 200]);
  assert.deepEqual(ok.map((a) => a.headers['ratelimit-limit']), ['3', '3', '3']);
  assert.deepEqual(ok.map((a) => a.headers['ratelimit-remaining']), ['2', '1', '0']);
  assert.equal(ok[0].headers['ratelimit-reset'], '10');
  const refused = await get(port);
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['retry-after'], '10');
  assert.equal(refused.headers['ratelimit-limit'], '3');
  assert.equal(refused.headers['ratelimit-remaining'], '0');
  assert.equal(refused.headers['ratelimit-reset'], '30');
  assert.match(refused.body, /429/);
  // The clock moves on by one period: one more request passes.
  clockMs += 10_000;
  assert.equal((await get(port)).status, 200);
  assert.equal((await get(port)).status, 429);
});

test('middleware: keyed by client IP, two addresses have their own buckets', async () => {
  clockMs = 0;
  const port = await start({ rate: 1, per: '1m', burst: 1 });
  assert.equal((await get(port, {}, '127.0.0.1')).status, 200);
  assert.equal((await get(port, {}, '127.0.0.1')).status, 429);
  // Linux routes all of 127/8 to lo, so another source address is another client.
  assert.equal((await get(port, {}, '127.0.0.2')).status, 200);
  assert.equal((await get(port, {}, '127.0.0.2')).status, 429);
});

test('middleware: keyed by a header; without it the client IP is the key', async () => {
  clockMs = 0;
  const port = await start({ rate: 1, per: '1m', burst: 1, key: { header: 'x-api-key' } });
  assert.equal((await get(port, { 'x-api-key': 'alice' })).status, 200);
  assert.equal((await get(port, { 'x-api-key': 'alice' })).status, 429);
  assert.equal((await get(port, { 'x-api-key': 'bob' })).status, 200);
  assert.equal((await get(port)).status, 200);
  assert.equal((await get(port)).status, 429);
});

test('middleware: keyed by route, every client shares the bucket', async () => {
  clockMs = 0;
  const port = await start({ rate: 2, per: '1m', key: 'route' });
  assert.equal((await get(port, {}, '127.0.0.1')).status, 200);
  assert.equal((await get(port, {}, '127.0.0.2')).status, 200);
  assert.equal((await get(port, {}, '127.0.0.3')).status, 429);
});

test('config: middleware.rateLimit on a route limits it (respond handler, real clock, burst only)', async () => {
  const y = await serve(
    {
      listeners: [
        {
          name: 'w',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [{ match: { path: '/limited' }, handler: { type: 'respond', body: 'ok' }, middleware: { rateLimit: { rate: 1, per: '1h', burst: 2 } } }, { handler: { type: 'respond', body: 'free' } }],
        },
      ],
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  const port = y.address('w').port;
  const at = (path: string) =>
    new Promise<Answer>((resolve, reject) => {
      const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
        res.resume();
        res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: '' }));
      });
      req.on('error', reject);
      req.end();
    });
  assert.deepEqual([(await at('/limited')).status, (await at('/limited')).status], [200, 200]);
  const refused = await at('/limited');
  assert.equal(refused.status, 429);
  assert.equal(refused.headers['ratelimit-limit'], '2');
  assert.ok(Number(refused.headers['retry-after']) > 0);
  // Another route without the middleware is not limited.
  assert.equal((await at('/other')).status, 200);
  assert.equal((await at('/other')).headers['ratelimit-limit'], undefined);
});

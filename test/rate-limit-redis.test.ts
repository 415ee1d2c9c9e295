import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { request } from 'node:http';
import { Writable } from 'node:stream';
import { Redis } from 'ioredis';
import { pino } from 'pino';
import { z } from 'zod';
import { serve, compose, registerHandler, handlerModule, type Yard, type MiddlewareContext } from '../src/index.ts';
import { MemoryRateLimitStore, RateLimits, RateLimitStoreSetupError, StoreErrorLog, rateLimit, rateLimitSchema, redisRateLimitPaths } from '../src/middleware/rate-limit.ts';
import { RedisBuckets, RateLimitStoreBusyError, TAKE_SHA } from '../src/middleware/rate-limit-redis.ts';
import { tokenBucketPolicy, type TokenBucketPolicy } from '../src/protocol/token-bucket.ts';
import { stateSchema } from '../src/state/index.ts';
import { parseConfig } from '../src/config/index.ts';
import { redisSkip, startRedis, type RedisServer } from './helpers/redis.ts';

// Rate limits shared through a real redis-server: the script against the memory store on one
// injected clock (same answers), Redis's own clock and the keys' expiry, two yards enforcing one
// limit together, and what requests get while Redis is gone or hung (allow / deny, counted, never
// hanging), then shared limiting again once Redis is back.

const skip = redisSkip();
let redis: RedisServer | undefined;
/** A plain client for looking at keys and poking Redis. */
let admin: Redis | undefined;
const yards: Yard[] = [];
const closers: (() => Promise<void> | void)[] = [];

before(async () => {
  if (skip) return;
  redis = await startRedis();
  admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  admin.on('error', () => undefined);
  await admin.connect();
});

after(async () => {
  for (const y of yards) await y.stop(100);
  for (const c of closers) await c();
  admin?.disconnect();
  await redis?.stop();
});

/** A connection of our own for the store-level tests. */
async function buckets(options: { maxPending?: number } = {}): Promise<RedisBuckets> {
  const client = new Redis(redis!.url, { lazyConnect: true, enableOfflineQueue: false, maxRetriesPerRequest: 0 });
  client.on('error', () => undefined);
  await client.connect();
  const b = new RedisBuckets(client, `t${Math.random().toString(36).slice(2, 8)}:`, options);
  closers.push(() => client.disconnect());
  return b;
}

/** A small deterministic generator (mulberry32), so a failure can be replayed. */
function random(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

test('script: the same answers as the memory store, step by step, on one clock', { skip }, async () => {
  const b = await buckets();
  const policies: TokenBucketPolicy[] = [
    { burst: 3, refillPerMs: 2 / 1000 },
    { burst: 1, refillPerMs: 1 / 60_000 },
    { burst: 7, refillPerMs: 1 / 3 },
    tokenBucketPolicy(rateLimitSchema.parse({ rate: 0.5, per: '7ms', burst: 2 })),
    tokenBucketPolicy(rateLimitSchema.parse({ rate: 100, per: '1s', burst: 10 })),
  ];
  for (const [p, policy] of policies.entries()) {
    const memory = new MemoryRateLimitStore(policy);
    const shared = b.store(policy, `cmp${p}`, { callerClock: true });
    const rnd = random(1000 + p);
    let now = 1_700_000_000_000 + rnd() * 1000;
    let refused = 0;
    for (let i = 0; i < 400; i++) {
      const key = rnd() < 0.8 ? 'k0' : `k${1 + Math.floor(rnd() * 2)}`;
      const r = rnd();
      // In units of one token's time: mostly steps shorter than it (the bucket drains), some
      // longer, a few long gaps (full again), now and then back; fractional, as performance.now.
      const token = 1 / policy.refillPerMs;
      now += r < 0.1 ? 0 : r < 0.7 ? rnd() * 0.3 * token : r < 0.93 ? rnd() * token : r < 0.97 ? rnd() * 4 * policy.burst * token : -rnd() * token;
      const want = memory.take(key, now);
      const got = await shared.take(key, now);
      assert.deepEqual(got, want, `policy ${p}, step ${i}, key ${key}, now ${now}`);
      if (!want.allowed) refused++;
    }
    // The sequence went both ways: buckets ran dry and refilled.
    assert.ok(refused > 40 && refused < 360, `policy ${p}: ${refused} of 400 refused`);
    
  }
  // The numbers of test/rate-limit.test.ts's first bucket test, through Redis.
  const s = b.store({ burst: 3, refillPerMs: 2 / 1000 }, 'classic', { callerClock: true });
  const t0 = 1_000_000;
  const a = [await s.take('k', t0), await s.take('k', t0), await s.take('k', t0), await s.take('k', t0)];
  assert.deepEqual(a.map((r) => r.allowed), [true, true, true, false]);
  assert.deepEqual(a.map((r) => r.remaining), [2, 1, 0, 0]);
  assert.equal(a[3].retryAfterMs, 500);
  assert.equal(a[3].resetMs, 1500);
  assert.equal((await s.take('k', t0 + 499)).allowed, false);
  assert.equal((await s.take('k', t0 + 500)).allowed, true);
});

test('script: Redis TIME is the clock, keys expire when their bucket would be full, NOSCRIPT falls back to EVAL', { skip }, async () => {
  const b = await buckets();
  // 1 token per 300 ms, burst 2. The caller's clock says nothing ever moves (and then jumps an
  // hour): the store counts on Redis's clock instead.
  const s = b.store({ burst: 2, refillPerMs: 1 / 300 }, 'clock');
  const first = await s.take('k', 0);
  assert.deepEqual([first.allowed, first.remaining], [true, 1]);
  const ttl = await admin!.pttl(s.keyOf('k'));
  assert.ok(ttl > 0 && ttl <= first.resetMs, `pttl ${ttl}, reset ${first.resetMs}`);
  assert.equal((await s.take('k', 0)).allowed, true);
  const refused = await s.take('k', 3_600_000);
  assert.equal(refused.allowed, false);
  assert.ok(refused.retryAfterMs > 0 && refused.retryAfterMs <= 300, `retry ${refused.retryAfterMs}`);
  // Wait out Retry-After by the wall clock: Redis's clock moved too, one token is back.
  await new Promise((r) => setTimeout(r, refused.retryAfterMs + 20));
  assert.equal((await s.take('k', 0)).allowed, true);
  // Left alone, the key goes once the bucket would be full again.
  const deadline = Date.now() + 5000;
  while ((await admin!.exists(s.keyOf('k'))) === 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 50));
  assert.equal(await admin!.exists(s.keyOf('k')), 0, 'the idle bucket expired');
  // A fresh bucket is full: what the missing key means.
  assert.equal((await s.take('k', 0)).remaining, 1);

  // Redis forgets its scripts (restart, SCRIPT FLUSH): EVALSHA gets NOSCRIPT, EVAL runs it.
  await admin!.script('FLUSH');
  assert.equal((await s.take('other', 0)).allowed, true);
  assert.deepEqual(await admin!.script('EXISTS', TAKE_SHA), [1], 'EVAL cached the script again');
});

test('store: at most maxPending decisions wait for a hung Redis; more fail at once', { skip }, async () => {
  const b = await buckets({ maxPending: 2 });
  const s = b.store({ burst: 5, refillPerMs: 1 / 1000 }, 'busy');
  await s.take('warm', 0);
  const pid = await redisPid();
  process.kill(pid, 'SIGSTOP');
  try {
    const waiting = [s.take('a', 0), s.take('b', 0)];
    for (const w of waiting) w.catch(() => undefined);
    await assert.rejects(s.take('c', 0), RateLimitStoreBusyError);
    assert.equal(b.inFlight, 2);
  } finally {
    process.kill(pid, 'SIGCONT');
  }
});

async function redisPid(): Promise<number> {
  const info = await admin!.info('server');
  const m = /process_id:(\d+)/.exec(info);
  assert.ok(m, 'redis reports its pid');
  return Number(m[1]);
}

test('config: store, storeTimeout and onStoreError; redis needs state.backend redis', { skip }, async () => {
  const c = rateLimitSchema.parse({ rate: 10 });
  assert.deepEqual([c.store, c.storeTimeout, c.onStoreError], ['memory', 50, 'allow']);
  const r = rateLimitSchema.parse({ rate: 10, store: 'redis', storeTimeout: '200ms', onStoreError: 'deny' });
  assert.deepEqual([r.store, r.storeTimeout, r.onStoreError], ['redis', 200, 'deny']);
  assert.equal(rateLimitSchema.safeParse({ rate: 1, store: 'etcd' }).success, false);
  assert.equal(rateLimitSchema.safeParse({ rate: 1, onStoreError: 'maybe' }).success, false);
  assert.equal(rateLimitSchema.safeParse({ rate: 1, storeTimeout: 0 }).success, false);
  assert.equal(rateLimitSchema.safeParse({ rate: 1, storeTimeout: '1m' }).success, false);
  // Built without the yard's Redis, a redis limit refuses to start rather than limit locally.
  assert.throws(() => rateLimit(r), /state\.backend: redis/);
  const log = pino({ level: 'silent' });
  await assert.rejects(RateLimits.open(stateSchema.parse({ backend: 'memory' }), { log }, ['listeners[0].middleware.rateLimit']), /listeners\[0\]\.middleware\.rateLimit\.store: .*state\.backend: redis/);
  await assert.rejects(
    RateLimits.open(stateSchema.parse({ backend: 'redis', url: 'redis://127.0.0.1:1', connectTimeout: '200ms' }), { log }, ['listeners[1].routes[0].middleware.rateLimit']),
    (err: RateLimitStoreSetupError) => {
      assert.equal(err.path, 'listeners[1].routes[0].middleware.rateLimit.store');
      assert.match(err.reason, /^cannot reach redis at redis:\/\/127\.0\.0\.1:1\/? for rate limits within 200 ms/);
      return true;
    },
  );
  const paths = redisRateLimitPaths({
    listeners: [
      { protocol: 'tcp' },
      { protocol: 'http', middleware: { rateLimit: r }, routes: [{ middleware: { rateLimit: c } }, { middleware: { rateLimit: r } }, {}] },
    ] as never,
  });
  assert.deepEqual(paths, ['listeners[1].middleware.rateLimit', 'listeners[1].routes[1].middleware.rateLimit']);
});

test('error log: one warn line per interval however many errors, one info line when the store answers again', () => {
  const lines: { level: number; msg: string; errorsSinceLastLine?: number }[] = [];
  const sink = new Writable({
    write(chunk, _enc, cb) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      cb();
    },
  });
  const log = pino({ level: 'info' }, sink);
  const errors = new StoreErrorLog(60_000);
  const where = { listener: 'w', route: 'r', onStoreError: 'allow' as const };
  for (let i = 0; i < 1000; i++) errors.error(log, where, new Error('down'));
  errors.ok(log);
  errors.ok(log);
  errors.error(log, where, new Error('down again'));
  return new Promise<void>((resolve) =>
    setImmediate(() => {
      assert.deepEqual(
        lines.map((l) => [l.level, l.errorsSinceLastLine]),
        [
          [40, 0],
          [30, 999],
          [40, 0],
        ],
      );
      resolve();
    }),
  );
});

// ---- two yards on one Redis ----

/**
 * A test-only handler: the yard's way of building a limit (RateLimits on the state's Redis) in
 * front of a fixed 200 answer, one RateLimits per handler, closed with the yard.
 */
const limitedSchema = z.strictObject({ type: z.literal('limited-redis-test'), limit: z.unknown(), state: z.unknown(), scope: z.string().optional() });
if (handlerModule('limited-redis-test') === undefined) {
  registerHandler({
    type: 'limited-redis-test',
    summary: 'test: a redis rate limit in front of a 200',
    schema: limitedSchema,
    http: async (config, ctx) => {
      const limit = rateLimitSchema.parse(config.limit);
      const limits = await RateLimits.open(stateSchema.parse(config.state), { metrics: ctx.metrics, log: ctx.log }, limit.store === 'redis' ? ['test'] : []);
      const run = compose([limits.middleware(limit, { listener: ctx.listener, route: config.scope })], ({ res }) => {
        res.writeHead(200, { 'content-type': 'text/plain', 'content-length': 3 });
        res.end('ok\n');
      });
      return { handle: (c) => run(c as MiddlewareContext), close: () => limits.close() };
    },
  });
}

/** A yard on the shared Redis: route /allow fails open, /deny fails closed, both burst 5 per minute. */
async function yard(): Promise<{ yard: Yard; port: number }> {
  const state = { backend: 'redis', url: redis!.url, connectTimeout: '2s' };
  const limit = (onStoreError: string) => ({ rate: 1, per: '1m', burst: 5, store: 'redis', storeTimeout: '50ms', onStoreError });
  const y = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { name: 'allow', match: { path: '/allow' }, handler: { type: 'limited-redis-test', limit: limit('allow'), state, scope: 'allow' } },
            { name: 'deny', match: { path: '/deny' }, handler: { type: 'limited-redis-test', limit: limit('deny'), state, scope: 'deny' } },
          ],
        },
      ],
      state,
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  return { yard: y, port: y.address('web').port };
}

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
}

/** GET, failing (rather than hanging the test) when no answer comes within 2 s: 40 times storeTimeout. */
function get(port: number, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false, timeout: 2000 }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers }));
    });
    req.on('timeout', () => req.destroy(new Error(`no answer to ${path} within 2 s: the request hung on the rate limit`)));
    req.on('error', reject);
    req.end();
  });
}

/** One counter's value from the yard's metrics (0 when absent). */
async function storeErrors(y: Yard, route: string): Promise<number> {
  const text = await y.metrics.text();
  const m = new RegExp(`^switchyard_rate_limit_store_errors_total\\{listener="web",route="${route}"\\} (\\d+)$`, 'm').exec(text);
  return m ? Number(m[1]) : 0;
}

test('two yards on one Redis enforce one limit; Redis gone: allow passes, deny 503, counted, nothing hangs; Redis back: shared again', { skip, timeout: 60_000 }, async () => {
  const a = await yard();
  const b = await yard();
  const ports = [a.port, b.port];

  // Burst 5 spread over both yards, then the 6th is refused on either.
  const spread = [];
  for (let i = 0; i < 5; i++) spread.push(await get(ports[i % 2], '/allow'));
  assert.deepEqual(spread.map((r) => r.status), [200, 200, 200, 200, 200]);
  assert.deepEqual(spread.map((r) => r.headers['ratelimit-remaining']), ['4', '3', '2', '1', '0']);
  assert.deepEqual(spread.map((r) => r.headers['ratelimit-limit']), ['5', '5', '5', '5', '5']);
  for (const port of ports) {
    const refused = await get(port, '/allow');
    assert.equal(refused.status, 429);
    // One token per minute: the next one comes within 60 s, and the bucket is full within 5 min.
    const retry = Number(refused.headers['retry-after']);
    assert.ok(retry >= 59 && retry <= 60, `retry-after ${retry}`);
    const reset = Number(refused.headers['ratelimit-reset']);
    assert.ok(reset >= 299 && reset <= 300, `ratelimit-reset ${reset}`);
    assert.equal(refused.headers['ratelimit-remaining'], '0');
  }
  // The other route's limit is its own (another scope in Redis).
  assert.equal((await get(a.port, '/deny')).status, 200);
  const keys = await admin!.keys('switchyard:ratelimit:*');
  assert.deepEqual(keys.sort(), ['switchyard:ratelimit:web/allow:ip:127.0.0.1', 'switchyard:ratelimit:web/deny:ip:127.0.0.1']);
  for (const k of keys) assert.ok((await admin!.pttl(k)) > 0, `${k} has a TTL`);

  // Redis hangs (SIGSTOP: the connections stay up, nothing answers): each decision gives up after
  // storeTimeout, so /allow passes (unlimited, no RateLimit headers) and /deny gets 503.
  const pid = await redisPid();
  process.kill(pid, 'SIGSTOP');
  try {
    for (const port of ports) {
      const passed = await get(port, '/allow');
      assert.equal(passed.status, 200);
      assert.equal(passed.headers['ratelimit-limit'], undefined);
      const denied = await get(port, '/deny');
      assert.equal(denied.status, 503);
      assert.equal(denied.headers['retry-after'], '1');
    }
  } finally {
    process.kill(pid, 'SIGCONT');
  }
  assert.equal(await storeErrors(a.yard, 'allow'), 1);
  assert.equal(await storeErrors(a.yard, 'deny'), 1);

  // Redis gone (SIGKILL): decisions fail at once (nothing is queued for a dead connection).
  const port = redis!.port;
  redis!.kill();
  await new Promise((r) => setTimeout(r, 200));
  for (let i = 0; i < 10; i++) {
    for (const p of ports) {
      assert.equal((await get(p, '/allow')).status, 200);
      assert.equal((await get(p, '/deny')).status, 503);
    }
  }
  assert.equal(await storeErrors(a.yard, 'allow'), 11);
  assert.equal(await storeErrors(b.yard, 'allow'), 11);
  assert.equal(await storeErrors(b.yard, 'deny'), 11);

  // The same Redis comes back (empty: a restart without persistence, and no cached scripts):
  // each yard reconnects by itself and shared limiting resumes.
  redis = await startRedis({ port });
  admin!.disconnect();
  admin = new Redis(redis.url, { lazyConnect: true, maxRetriesPerRequest: 0 });
  admin.on('error', () => undefined);
  await admin.connect();
  for (const p of ports) {
    const deadline = Date.now() + 10_000;
    // The reconnect backoff is 2 s at most; probe the deny route (a 503 until then).
    while ((await get(p, '/deny')).status === 503 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 100));
  }
  // Start from full buckets (the probes above took tokens from /deny's).
  const probed = await admin.keys('switchyard:ratelimit:*');
  if (probed.length > 0) await admin.del(...probed);
  const again = [];
  for (let i = 0; i < 6; i++) again.push(await get(ports[(i + 1) % 2], '/allow'));
  assert.deepEqual(again.map((r) => r.status), [200, 200, 200, 200, 200, 429]);
  assert.deepEqual(again.slice(0, 5).map((r) => r.headers['ratelimit-remaining']), ['4', '3', '2', '1', '0']);
  assert.equal((await get(ports[0], '/allow')).status, 429);
});

// ---- from the config file's own fields ----

/** Two routes under a listener-wide limit and one with its own, all in the shared Redis. */
function configured(): { listeners: ({ routes: unknown[] } & Record<string, unknown>)[] } & Record<string, unknown> {
  return {
    listeners: [
      {
        name: 'api',
        protocol: 'http',
        address: '127.0.0.1:0',
        middleware: { rateLimit: { rate: 1, per: '1m', burst: 4, store: 'redis' } },
        routes: [
          { name: 'a', match: { path: '/a' }, handler: { type: 'respond', body: 'a' } },
          { name: 'b', match: { path: '/b' }, handler: { type: 'respond', body: 'b' } },
          { name: 'own', match: { path: '/own' }, handler: { type: 'respond', body: 'own' }, middleware: { rateLimit: { rate: 1, per: '1m', burst: 2, store: 'redis', onStoreError: 'deny' } } },
        ],
      },
    ],
    state: { backend: 'redis', url: redis!.url },
    logging: { level: 'silent', accessLog: false },
  };
}

test('config: listener-wide and route limits with store: redis, shared by two yards, kept over a reload', { skip, timeout: 30_000 }, async () => {
  const first: Yard = await serve(configured(), { logLevel: 'silent' });
  yards.push(first);
  const second = await serve(configured(), { logLevel: 'silent' });
  yards.push(second);
  const ports = [first.address('api').port, second.address('api').port];

  // The listener's limit: one set of buckets for /a and /b, on both yards.
  const spread = [await get(ports[0], '/a'), await get(ports[1], '/b'), await get(ports[1], '/a'), await get(ports[0], '/b')];
  assert.deepEqual(spread.map((r) => r.status), [200, 200, 200, 200]);
  assert.deepEqual(spread.map((r) => r.headers['ratelimit-remaining']), ['3', '2', '1', '0']);
  assert.equal((await get(ports[1], '/a')).status, 429);
  assert.equal((await get(ports[0], '/b')).status, 429);
  // The route's own limit.
  assert.deepEqual([(await get(ports[1], '/own')).status, (await get(ports[0], '/own')).status, (await get(ports[1], '/own')).status], [200, 200, 429]);
  const keys = (await admin!.keys('switchyard:ratelimit:api*')).sort();
  assert.deepEqual(keys, ['switchyard:ratelimit:api/own:ip:127.0.0.1', 'switchyard:ratelimit:api:ip:127.0.0.1']);

  // A reload (same limits, another route added) keeps the buckets: they are in Redis.
  const next = configured();
  next.listeners[0].routes.push({ name: 'c', match: { path: '/c' }, handler: { type: 'respond', body: 'c' } });
  const result = await first.reload(parseConfig(next));
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.equal((await get(ports[0], '/c')).status, 429);
  assert.equal((await get(ports[0], '/own')).status, 429);
});

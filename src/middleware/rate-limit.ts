import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import { duration } from '../config/units.ts';
import { replyError } from '../handlers/http/reply.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { CounterCell } from '../observe/hot-metrics.ts';
import { TokenBucket, tokenBucketPolicy, tokenBucketSchema, type TokenBucketPolicy } from '../protocol/token-bucket.ts';
import type { StateConfig } from '../state/config.ts';
import type { RedisBuckets } from './rate-limit-redis.ts';
import type { Middleware, MiddlewareContext } from './types.ts';

// Rate limiting as a token bucket per key (client IP, a header's value, or the route). The bucket
// and its `{ rate, per, burst }` are protocol/token-bucket.ts's, shared with the WebSocket and
// chat limits; this adds the key and the store. A request takes one token or gets 429 with
// `Retry-After`. Every answer, allowed or not, carries the RateLimit-Limit, -Remaining and -Reset
// headers of draft-ietf-httpapi-ratelimit-headers.
//
// The buckets live behind `RateLimitStore`: in memory (one daemon's own, the default) or in
// Redis (rate-limit-redis.ts: every daemon on one Redis shares them, and one limit). The
// in-memory store is bounded: a client rotating addresses cannot grow it past `maxKeys`; the
// least recently used bucket goes first. A bucket that has refilled to full carries no
// information (a new bucket is full too), so evicting idle ones changes nothing.
//
// A shared store answers asynchronously, and may not answer: each decision waits at most
// `storeTimeout`; a store that fails or is late is counted
// (switchyard_rate_limit_store_errors_total{listener,route}), logged (a warn line at most every
// STORE_ERROR_LOG_INTERVAL), and the request is let through or refused as `onStoreError` says.
// `RateLimits` is what a yard builds its limits with: one Redis connection for all of them.

export const rateLimitSchema = tokenBucketSchema.extend({
  /** What a bucket belongs to: the client's IP, a request header's value, or the whole route. */
  key: z
    .union([z.enum(['client-ip', 'route']), z.strictObject({ header: z.string().min(1) })])
    .default('client-ip'),
  /** Buckets kept in memory at most (store: memory); beyond it the least recently used are dropped. */
  maxKeys: z.number().int().min(1).max(10_000_000).default(100_000),
  /**
   * Where the buckets live. `memory`: this daemon's own. `redis`: the Redis of the yard's `state:`
   * (which must say `backend: redis`; its url, keyPrefix and connectTimeout are used), shared by
   * every daemon on it, so N daemons behind one address enforce one limit together.
   */
  store: z.enum(['memory', 'redis']).default('memory'),
  /**
   * The longest one decision waits for a shared store (redis) before `onStoreError` decides
   * (a request never waits longer for its rate limit). The memory store does not wait.
   */
  storeTimeout: duration()
    .pipe(z.number().int().min(1, 'expected a duration of at least 1ms').max(10_000, 'expected a duration of at most 10s'))
    .default(50),
  /**
   * What a request gets when the shared store fails or does not answer in `storeTimeout`:
   * `allow` lets it through without RateLimit-* headers (fail open: Redis away means no limit,
   * not no service); `deny` answers 503 with `Retry-After: 1` (fail closed).
   */
  onStoreError: z.enum(['allow', 'deny']).default('allow'),
});

export type RateLimitInput = z.input<typeof rateLimitSchema>;
export type RateLimitConfig = z.output<typeof rateLimitSchema>;

/** The outcome of taking one token. */
export interface TakeResult {
  readonly allowed: boolean;
  /** Whole tokens left after this request. */
  readonly remaining: number;
  /** Milliseconds until the bucket is full again (the quota fully reset). */
  readonly resetMs: number;
  /** Milliseconds until one token is available (0 when one is now). */
  readonly retryAfterMs: number;
}

/** Where buckets live. `now` is in milliseconds on any monotonic clock the caller keeps to. */
export interface RateLimitStore {
  take(key: string, now: number): TakeResult | Promise<TakeResult>;
}

/** Token buckets in a Map kept in least-recently-used order, at most `maxKeys` of them. */
export class MemoryRateLimitStore implements RateLimitStore {
  private readonly buckets = new Map<string, TokenBucket>();

  constructor(
    private readonly policy: TokenBucketPolicy,
    private readonly maxKeys = 100_000,
  ) {}

  /** Buckets held now. */
  get size(): number {
    return this.buckets.size;
  }

  take(key: string, now: number): TakeResult {
    let bucket = this.buckets.get(key);
    if (bucket) {
      // Re-inserted so that Map order stays least recently used first.
      this.buckets.delete(key);
    } else {
      bucket = new TokenBucket(this.policy, now);
      this.evict(now);
    }
    this.buckets.set(key, bucket);
    const allowed = bucket.take(now);
    return { allowed, remaining: bucket.remaining(now), resetMs: bucket.fullInMs(now), retryAfterMs: bucket.waitMs(now) };
  }

  /** Makes room for one more bucket: full (idle) buckets at the old end first, then the oldest. */
  private evict(now: number): void {
    if (this.buckets.size < this.maxKeys) return;
    // A few idle buckets at the least recently used end are dropped together, so that a steady
    // stream of new keys does not pay one eviction per request.
    let dropped = 0;
    for (const [key, b] of this.buckets) {
      if (dropped > 0 && (!b.isFull(now) || dropped >= 64)) break;
      this.buckets.delete(key);
      dropped++;
    }
  }
}

/** A warn line about a failing store comes at most this often (per StoreErrorLog). */
export const STORE_ERROR_LOG_INTERVAL = 10_000;

/** A shared store did not answer within `storeTimeout`. */
export class RateLimitStoreTimeoutError extends Error {
  constructor(ms: number) {
    super(`rate-limit store did not answer within ${ms} ms`);
    this.name = 'RateLimitStoreTimeoutError';
  }
}

/**
 * Tells of a failing store without flooding the log: the first error gets a warn line, later
 * ones one line per `intervalMs` with the count in between; the first success after errors an
 * info line. One per store, shared by the limits on it.
 */
export class StoreErrorLog {
  private last = -Infinity;
  private unlogged = 0;
  private failing = false;

  constructor(private readonly intervalMs = STORE_ERROR_LOG_INTERVAL) {}

  error(log: Logger, fields: { listener: string; route: string; onStoreError: 'allow' | 'deny' }, err: unknown): void {
    this.failing = true;
    const t = performance.now();
    if (t - this.last < this.intervalMs) {
      this.unlogged++;
      return;
    }
    const message = err instanceof Error ? err.message : String(err);
    log.warn(
      { ...fields, err: message, errorsSinceLastLine: this.unlogged },
      fields.onStoreError === 'allow' ? 'rate limit store failed: requests pass unlimited (onStoreError: allow)' : 'rate limit store failed: requests refused with 503 (onStoreError: deny)',
    );
    this.last = t;
    this.unlogged = 0;
  }

  ok(log: Logger): void {
    if (!this.failing) return;
    this.failing = false;
    log.info({ errorsSinceLastLine: this.unlogged }, 'rate limit store answering again');
    this.unlogged = 0;
    this.last = -Infinity;
  }
}

export interface RateLimitOptions {
  /**
   * Where the buckets live; by default an in-memory store of `maxKeys` buckets. Required for
   * `store: redis` (RateLimits makes it); any store given is used whatever `store:` says.
   */
  store?: RateLimitStore;
  /** Milliseconds on a monotonic clock (tests inject one). Redis counts on its own (TIME). */
  now?: () => number;
  /** Where store errors are counted: switchyard_rate_limit_store_errors_total{listener,route}. */
  metrics?: Metrics;
  /** Shared by the limits on one store, so that they log its failures once per interval together. */
  errors?: StoreErrorLog;
}

/** The counter of store errors, by listener and route. */
function storeErrorCounter(metrics: Metrics): (listener: string, route: string) => CounterCell {
  const family = metrics.counter(
    'switchyard_rate_limit_store_errors_total',
    'Rate-limit decisions the shared store (redis) failed or did not answer within storeTimeout, by listener and route; each request then passed or got 503 as onStoreError says.',
    ['listener', 'route'],
  );
  const cells = new Map<string, CounterCell>();
  return (listener, route) => {
    const k = `${listener}\0${route}`;
    let c = cells.get(k);
    if (!c) {
      c = family.labels(listener, route);
      cells.set(k, c);
    }
    return c;
  };
}

/** A rate-limit middleware. `config` may be raw (it is validated) or already parsed. */
export function rateLimit(input: RateLimitInput | RateLimitConfig, options: RateLimitOptions = {}): Middleware {
  const config = rateLimitSchema.parse(input);
  const policy = tokenBucketPolicy(config);
  if (config.store === 'redis' && !options.store) {
    throw new Error('rateLimit.store: redis needs the yard\'s redis (state.backend: redis); this limit was built without it');
  }
  const store = options.store ?? new MemoryRateLimitStore(policy, config.maxKeys);
  const now = options.now ?? (() => performance.now());
  const keyOf = keyFunction(config.key);
  const limit = String(policy.burst);
  const timeout = config.storeTimeout;
  const errors = options.errors ?? new StoreErrorLog();
  // Only a shared store can fail; the memory store adds no (empty) family to the metrics.
  const counter = options.metrics && options.store ? storeErrorCounter(options.metrics) : undefined;
  const onStoreError = config.onStoreError;

  const apply = (ctx: MiddlewareContext, r: TakeResult): boolean => {
    const { res } = ctx;
    res.setHeader('ratelimit-limit', limit);
    res.setHeader('ratelimit-remaining', String(r.remaining));
    res.setHeader('ratelimit-reset', String(Math.ceil(r.resetMs / 1000)));
    if (r.allowed) return true;
    const retryAfter = Math.max(1, Math.ceil(r.retryAfterMs / 1000));
    ctx.log.debug({ listener: ctx.listener, route: ctx.route, retryAfter }, 'rate limited');
    replyError(res, 429, 'too many requests', { headers: { 'retry-after': String(retryAfter) } });
    return false;
  };

  /** The store failed or was late: counted, logged now and then, and `onStoreError` decides. */
  const failed = (ctx: MiddlewareContext, next: () => void | Promise<void>, err: unknown): void | Promise<void> => {
    counter?.(ctx.listener, ctx.route).inc();
    errors.error(ctx.log, { listener: ctx.listener, route: ctx.route, onStoreError }, err);
    if (onStoreError === 'allow') return next();
    replyError(ctx.res, 503, 'rate limit unavailable', { headers: { 'retry-after': '1' } });
  };

  return (ctx, next) => {
    let result: TakeResult | Promise<TakeResult>;
    try {
      result = store.take(keyOf(ctx), now());
    } catch (err) {
      return failed(ctx, next, err);
    }
    if (result instanceof Promise) {
      return within(result, timeout).then(
        (r) => {
          errors.ok(ctx.log);
          return apply(ctx, r) ? next() : undefined;
        },
        (err: unknown) => failed(ctx, next, err),
      );
    }
    return apply(ctx, result) ? next() : undefined;
  };
}

/** `p`, or a RateLimitStoreTimeoutError once `ms` have passed without it settling. */
function within<T>(p: Promise<T>, ms: number): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    const timer = setTimeout(() => reject(new RateLimitStoreTimeoutError(ms)), ms);
    p.then(
      (v) => {
        clearTimeout(timer);
        resolve(v);
      },
      (e: unknown) => {
        clearTimeout(timer);
        reject(e);
      },
    );
  });
}

function keyFunction(key: RateLimitConfig['key']): (ctx: MiddlewareContext) => string {
  if (key === 'route') return (ctx) => `route:${ctx.listener}\0${ctx.route}`;
  const ip = (ctx: MiddlewareContext) => `ip:${ctx.req.socket.remoteAddress ?? ''}`;
  if (key === 'client-ip') return ip;
  const name = key.header.toLowerCase();
  // A request without the header is limited by its client's IP instead, so leaving the header
  // out is not a way around the limit, and clients without it do not share one bucket.
  return (ctx) => {
    const v = ctx.req.headers[name];
    const value = Array.isArray(v) ? v.join(', ') : v;
    if (value === undefined) return ip(ctx);
    // Long values are hashed, so that 100k keys cannot each hold a 16 KiB header.
    return value.length <= 128 ? `h:${value}` : `H:${createHash('sha256').update(value).digest('base64url')}`;
  };
}

/** Where a limit is set: the listener (a listener-wide limit) or one of its routes. */
export interface RateLimitScope {
  listener: string;
  /** The route's name, for a limit set on the route itself; absent for the listener's. */
  route?: string;
}

/**
 * The config paths of the limits that say `store: redis`
 * (`listeners[0].middleware.rateLimit`, `listeners[0].routes[2].middleware.rateLimit`).
 */
export function redisRateLimitPaths(config: Pick<Config, 'listeners'>): string[] {
  const paths: string[] = [];
  for (const [i, l] of config.listeners.entries()) {
    if (l.protocol !== 'http') continue;
    if (l.middleware.rateLimit?.store === 'redis') paths.push(`listeners[${i}].middleware.rateLimit`);
    for (const [j, r] of l.routes.entries()) {
      if (r.middleware?.rateLimit?.store === 'redis') paths.push(`listeners[${i}].routes[${j}].middleware.rateLimit`);
    }
  }
  return paths;
}

/** A limit's shared store cannot be had: `path` is the limit's `store` field, `reason` why. */
export class RateLimitStoreSetupError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${path}: ${reason}`, options);
    this.name = 'RateLimitStoreSetupError';
  }
}

/**
 * The rate limits of one yard: memory ones as before, redis ones on one connection to the Redis
 * of `state:`, opened when the first limit that needs it is prepared (at start, or by a reload
 * that adds one) and kept for the yard's life, so a reload keeps the shared buckets. Closed with
 * the yard.
 */
export class RateLimits {
  private readonly errors = new StoreErrorLog();
  private buckets: Promise<RedisBuckets> | undefined;
  private connected: RedisBuckets | undefined;

  constructor(
    private readonly state: StateConfig,
    private readonly deps: { metrics?: Metrics; log: Logger },
  ) {}

  /** A RateLimits prepared for the limits at `redisAt` (see prepare). */
  static async open(state: StateConfig, deps: { metrics?: Metrics; log: Logger }, redisAt: readonly string[] = []): Promise<RateLimits> {
    const limits = new RateLimits(state, deps);
    await limits.prepare(redisAt);
    return limits;
  }

  /**
   * Makes ready for the limits at `redisAt`, the config paths of those with `store: redis`
   * (redisRateLimitPaths): when there are any, `state` must be redis and is connected to (once,
   * within its connectTimeout), or this fails with a RateLimitStoreSetupError naming the first
   * one. Call before middleware().
   */
  async prepare(redisAt: readonly string[]): Promise<void> {
    if (redisAt.length === 0 || this.connected) return;
    const state = this.state;
    if (state.backend !== 'redis') {
      throw new RateLimitStoreSetupError(`${redisAt[0]}.store`, 'redis keeps the buckets in the yard\'s shared state; set state.backend: redis (and its url)');
    }
    this.buckets ??= (async () => {
      // Loaded only when asked for, so that a yard without shared limits never loads ioredis.
      const { RedisBuckets } = await import('./rate-limit-redis.ts');
      return RedisBuckets.connect(state, this.deps.log);
    })();
    try {
      this.connected = await this.buckets;
    } catch (err) {
      // The next prepare (a reload) tries again.
      this.buckets = undefined;
      throw new RateLimitStoreSetupError(`${redisAt[0]}.store`, err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  /** The middleware of one limit, `scope` saying where it is set (its buckets' name in Redis). */
  middleware(config: RateLimitConfig, scope: RateLimitScope): Middleware {
    if (config.store !== 'redis') return rateLimit(config, { metrics: this.deps.metrics });
    if (!this.connected) throw new Error('rateLimit.store: redis, but the yard has not connected its limits to redis (RateLimits.prepare with this limit\'s path)');
    const name = scope.route === undefined ? encodeURIComponent(scope.listener) : `${encodeURIComponent(scope.listener)}/${encodeURIComponent(scope.route)}`;
    const store = this.connected.store(tokenBucketPolicy(config), name);
    return rateLimit(config, { store, metrics: this.deps.metrics, errors: this.errors });
  }

  async close(): Promise<void> {
    const buckets = this.buckets;
    this.buckets = undefined;
    this.connected = undefined;
    await (await buckets?.catch(() => undefined))?.close();
  }
}

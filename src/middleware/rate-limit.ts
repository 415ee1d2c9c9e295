import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { replyError } from '../handlers/http/reply.ts';
import { TokenBucket, tokenBucketPolicy, tokenBucketSchema, type TokenBucketPolicy } from '../protocol/token-bucket.ts';
import type { Middleware, MiddlewareContext } from './types.ts';

// Rate limiting as a token bucket per key (client IP, a header's value, or the route). The bucket
// and its `{ rate, per, burst }` are protocol/token-bucket.ts's, shared with the WebSocket and
// chat limits; this adds the key and the store. A request takes one token or gets 429 with
// `Retry-After`. Every answer, allowed or not, carries the RateLimit-Limit, -Remaining and -Reset
// headers of draft-ietf-httpapi-ratelimit-headers.
//
// The buckets live behind `RateLimitStore` so that a shared store (Redis) can replace the
// in-memory one. The in-memory store is bounded: a client rotating addresses cannot grow it
// past `maxKeys`; the least recently used bucket goes first. A bucket that has refilled to full
// carries no information (a new bucket is full too), so evicting idle ones changes nothing.

export const rateLimitSchema = tokenBucketSchema.extend({
  /** What a bucket belongs to: the client's IP, a request header's value, or the whole route. */
  key: z
    .union([z.enum(['client-ip', 'route']), z.strictObject({ header: z.string().min(1) })])
    .default('client-ip'),
  /** Buckets kept in memory at most; beyond it the least recently used are dropped. */
  maxKeys: z.number().int().min(1).max(10_000_000).default(100_000),
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

export interface RateLimitOptions {
  /** A shared store; by default an in-memory one of `maxKeys` buckets. */
  store?: RateLimitStore;
  /** Milliseconds on a monotonic clock (tests inject one). */
  now?: () => number;
}

/** A rate-limit middleware. `config` may be raw (it is validated) or already parsed. */
export function rateLimit(input: RateLimitInput | RateLimitConfig, options: RateLimitOptions = {}): Middleware {
  const config = rateLimitSchema.parse(input);
  const policy = tokenBucketPolicy(config);
  const store = options.store ?? new MemoryRateLimitStore(policy, config.maxKeys);
  const now = options.now ?? (() => performance.now());
  const keyOf = keyFunction(config.key);
  const limit = String(policy.burst);

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

  return (ctx, next) => {
    const result = store.take(keyOf(ctx), now());
    if (result instanceof Promise) {
      return result.then((r) => (apply(ctx, r) ? next() : undefined));
    }
    return apply(ctx, result) ? next() : undefined;
  };
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

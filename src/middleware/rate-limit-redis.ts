import { createHash } from 'node:crypto';
import { Redis } from 'ioredis';
import type { Logger } from 'pino';
import type { RedisStateConfig } from '../state/config.ts';
import { redactRedisUrl, redisClientOptions } from '../state/redis.ts';
import type { TokenBucketPolicy } from '../protocol/token-bucket.ts';
import type { RateLimitStore, TakeResult } from './rate-limit.ts';

// Rate-limit buckets in Redis, so that every daemon on one Redis enforces one limit together
// (`rateLimit: { store: redis }` with `state: { backend: redis }`; docs/rate-limit.md).
//
// One key per bucket (P = the state's keyPrefix, S = where the limit is set, B = the bucket key
// of rate-limit.ts: `ip:ADDR`, `h:VALUE`, `H:HASH` or `route:...`):
//   P ratelimit:S:B   string  "LEVEL AT": tokens now (fractional) and the clock reading (ms)
//                             they were brought up to date at, both as %.17g (exact doubles)
// S is the listener's name for a listener-wide limit, LISTENER/ROUTE for a route's own, each
// percent-encoded (so S holds no ':' or '/' of its own and no two limits can meet).
//
// Every decision is one script (EVALSHA, EVAL when Redis lost its script cache), so it is atomic
// across daemons, and reads the time from Redis (TIME), so every daemon counts on one clock
// whatever its own says. The script does the arithmetic of protocol/token-bucket.ts step by step
// (same IEEE doubles in Lua as in JavaScript), so a limit answers as the memory store would:
// same `allowed`, remaining, Retry-After and RateLimit-Reset. The key expires when the bucket
// would be full again (PEXPIRE of the reset time): a full bucket is what a missing key means, so
// an idle client costs Redis nothing after that.
//
// What it never does: wait. Commands are not queued while Redis is away (they fail at once), the
// middleware gives each decision `storeTimeout` (rate-limit.ts), and past MAX_PENDING
// decisions without a reply (a Redis that hangs while the connection stays up) new ones fail at
// once rather than growing the client's queue.

/** Decisions sent and not yet answered, at most; past it a decision fails at once. */
export const MAX_PENDING = 4096;

/**
 * KEYS bucket. ARGV burst, refill per ms, now (ms; empty: Redis TIME), 1 to set the key's expiry.
 * Returns {allowed 0|1, remaining, reset ms, retry ms}; -1 for a wait that never ends.
 */
const TAKE = `
local burst = tonumber(ARGV[1])
local rate = tonumber(ARGV[2])
local now
if ARGV[3] == '' then
  local t = redis.call('TIME')
  now = tonumber(t[1]) * 1000 + tonumber(t[2]) / 1000
else
  now = tonumber(ARGV[3])
end
local level, at = burst, now
local held = redis.call('GET', KEYS[1])
if held then
  local l, a = string.match(held, '^(%S+) (%S+)$')
  level, at = tonumber(l), tonumber(a)
  if level == nil or at == nil then
    level, at = burst, now
  end
  -- Only when limits of different burst met on one key (a rollout): never above this one's.
  if level > burst then level = burst end
end
-- TokenBucket.refill
local elapsed = now - at
if elapsed > 0 then
  local l = level + elapsed * rate
  if l < burst then level = l else level = burst end
  at = now
elseif elapsed < 0 then
  at = now
end
-- TokenBucket.take
local allowed = 0
if level >= 1 then
  level = level - 1
  allowed = 1
end
-- wholeMsUntil
local function until_level(target)
  if level >= target then return 0 end
  if target > burst or not (rate > 0) then return -1 end
  local ms = math.ceil((target - level) / rate)
  if level + ms * rate < target then
    ms = ms + 1
  elseif ms > 1 and level + (ms - 1) * rate >= target then
    ms = ms - 1
  end
  return ms
end
local reset = until_level(burst)
local retry = until_level(1)
local value = string.format('%.17g %.17g', level, at)
if ARGV[4] == '1' and reset > 0 then
  redis.call('SET', KEYS[1], value, 'PX', reset)
else
  redis.call('SET', KEYS[1], value)
end
return {allowed, math.floor(level), reset, retry}
`;

/** The script's SHA1, as EVALSHA names it. */
export const TAKE_SHA = createHash('sha1').update(TAKE).digest('hex');

/** The shared store is overloaded: too many decisions are waiting for Redis already. */
export class RateLimitStoreBusyError extends Error {
  constructor() {
    super(`${MAX_PENDING} rate-limit decisions are waiting for redis already`);
    this.name = 'RateLimitStoreBusyError';
  }
}

export interface RedisBucketsOptions {
  /** close() ends the connection (it was opened by connect()). */
  owned?: boolean;
  /** Decisions without a reply, at most (default MAX_PENDING). */
  maxPending?: number;
}

export interface RedisStoreOptions {
  /**
   * Count on the `now` passed to take() instead of Redis TIME, and set no expiry: for tests that
   * hold this store's answers against the memory store's on one injected clock. Never for
   * several daemons, whose clocks differ.
   */
  callerClock?: boolean;
}

/** One connection to Redis carrying the buckets of every limit of a yard that says `store: redis`. */
export class RedisBuckets {
  private pending = 0;
  private readonly maxPending: number;
  private closing = false;

  /** close() was called. */
  get closed(): boolean {
    return this.closing;
  }

  constructor(
    readonly redis: Redis,
    /** Put before every key (the state config's keyPrefix). */
    readonly keyPrefix: string,
    private readonly options: RedisBucketsOptions = {},
  ) {
    this.maxPending = options.maxPending ?? MAX_PENDING;
  }

  /**
   * Its own connection to the Redis of `config` (url and connectTimeout), failing within
   * connectTimeout with one line naming the (redacted) URL. Once up it reconnects forever, with
   * the state store's backoff (2 s at most); meanwhile decisions fail at once.
   */
  static async connect(config: RedisStateConfig, log: Logger): Promise<RedisBuckets> {
    const where = redactRedisUrl(config.url);
    let buckets: RedisBuckets | undefined;
    // Reconnects (with backoff) only once connected, and never after close().
    const client = new Redis(config.url, { ...redisClientOptions(config, () => buckets !== undefined && !buckets.closed), connectionName: 'switchyard-ratelimit', keepAlive: 10_000 });
    let last = 'no answer';
    const onError = (err: Error) => (last = err.message);
    client.on('error', onError);
    let timer: NodeJS.Timeout | undefined;
    try {
      const late = new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error('timed out')), config.connectTimeout);
      });
      await Promise.race([client.connect(), late]);
      await Promise.race([client.ping(), late]);
    } catch {
      client.disconnect();
      throw new Error(`cannot reach redis at ${where} for rate limits within ${config.connectTimeout} ms: ${last}`);
    } finally {
      clearTimeout(timer);
      client.off('error', onError);
    }
    const opened = new RedisBuckets(client, config.keyPrefix, { owned: true });
    buckets = opened;
    watch(client, log.child({ component: 'rate-limit', redis: where }), () => opened.closed);
    return opened;
  }

  /** The store of one limit: its policy, and `scope` (where it is set; see the key layout above). */
  store(policy: TokenBucketPolicy, scope: string, options: RedisStoreOptions = {}): RedisRateLimitStore {
    return new RedisRateLimitStore(this, policy, `${this.keyPrefix}ratelimit:${scope}:`, options);
  }

  /** Decisions waiting for Redis now. */
  get inFlight(): number {
    return this.pending;
  }

  /** One decision: the script on `key`, with its arguments. */
  async take(key: string, args: readonly string[]): Promise<TakeResult> {
    if (this.closing) throw new Error('rate-limit store closed');
    if (this.pending >= this.maxPending) throw new RateLimitStoreBusyError();
    this.pending++;
    try {
      let reply: unknown;
      try {
        reply = await this.redis.evalsha(TAKE_SHA, 1, key, ...args);
      } catch (err) {
        if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
        reply = await this.redis.eval(TAKE, 1, key, ...args);
      }
      return takeResult(reply);
    } finally {
      this.pending--;
    }
  }

  async close(): Promise<void> {
    this.closing = true;
    if (!this.options.owned) return;
    const client = this.redis;
    if (client.status === 'ready') {
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([client.quit().catch(() => undefined), new Promise((r) => (timer = setTimeout(r, 1000)))]);
      clearTimeout(timer);
    }
    client.disconnect();
  }
}

/** The buckets of one limit in Redis. `take`'s `now` is not used (Redis TIME is) unless callerClock. */
export class RedisRateLimitStore implements RateLimitStore {
  private readonly burst: string;
  private readonly refill: string;

  constructor(
    private readonly buckets: RedisBuckets,
    private readonly policy: TokenBucketPolicy,
    /** Every key of this limit starts with it. */
    readonly keyPrefix: string,
    private readonly options: RedisStoreOptions = {},
  ) {
    // String() gives the shortest text that reads back as the same double, so the script counts
    // with exactly the policy the memory store would.
    this.burst = String(policy.burst);
    this.refill = String(policy.refillPerMs);
  }

  /** The Redis key of bucket `key`. */
  keyOf(key: string): string {
    return this.keyPrefix + key;
  }

  take(key: string, now: number): Promise<TakeResult> {
    const caller = this.options.callerClock === true;
    return this.buckets.take(this.keyPrefix + key, [this.burst, this.refill, caller ? String(now) : '', caller ? '0' : '1']);
  }
}

function takeResult(reply: unknown): TakeResult {
  if (!Array.isArray(reply) || reply.length !== 4 || !reply.every((v) => typeof v === 'number')) {
    throw new Error(`unexpected rate-limit script reply: ${JSON.stringify(reply)}`);
  }
  const [allowed, remaining, reset, retry] = reply as number[];
  return {
    allowed: allowed === 1,
    remaining,
    resetMs: reset < 0 ? Infinity : reset,
    retryAfterMs: retry < 0 ? Infinity : retry,
  };
}

/** Logs the connection going away once (not every retry) and coming back. */
function watch(client: Redis, log: Logger, closing: () => boolean): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (down || closing()) return;
    down = true;
    log.warn({ err: err.message }, 'rate limit: redis connection lost; reconnecting');
  });
  client.on('close', () => {
    if (down || closing()) return;
    down = true;
    log.warn('rate limit: redis connection closed; reconnecting');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    log.info('rate limit: redis connection back');
  });
}

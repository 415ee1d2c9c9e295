import { createHash } from 'node:crypto';
import { Redis, type RedisOptions } from 'ioredis';
import type { Logger } from 'pino';
import { maxRoomHistoryBytes, type RedisStateConfig } from './config.ts';
import type { ClaimLostListener, LeaveReason, PublishOptions, RoomEvent, RoomEventInput, RoomListener, RoomStore } from './types.ts';

// Chat rooms shared by every daemon on one Redis.
//
// Keys of room R (P = keyPrefix; {R} is a hash tag, so one room's keys share a cluster slot and
// every script below but publish's history budget touches a single slot):
//   P room:{R}:seq      string  INCR'd for every event: the room's sequence
//   P room:{R}:history  list    stamped message JSON, newest first, trimmed to historyLimit
//                               and to the history budget (below)
//   P room:{R}:nicks    zset    nick -> expiry (ms, Redis clock)
//   P room:{R}:owners   hash    nick -> owner (the session id)
// Channel of room R: P room:R, carrying the stamped event JSON.
// Bookkeeping of the history budget, one of each for all rooms:
//   P history:bytes     string  bytes reckoned for every room's history together
//   P history:rooms     zset    room -> when its history was last written (ms): who is trimmed first
//   P history:sizes     hash    room -> bytes reckoned for its history
//
// History budget: the publish script that keeps a message also keeps the count, in the same
// script, so the bound holds atomically across daemons. The reckoning (next to
// REDIS_ENTRY_OVERHEAD) errs on the side of Redis's real memory for these keys. One room holds at
// most maxHistoryBytes/16 (else its oldest messages go); all rooms together at most
// maxHistoryBytes (else the room written least recently loses its oldest messages, then the
// next). That script reaches the keys of the room it trims by name, beyond the keys it declares:
// fine on one Redis (with replicas), not on Redis Cluster, which this store does not speak
// anyway (one ioredis connection, not a Cluster client).
//
// Every change is one Lua script, so it is atomic across daemons, and every script reads the
// time from Redis (TIME), so expiry and `ts` follow one clock whatever the daemons' clocks say.
// Whatever publishes an event (publish, and the presence scripts that make members leave)
// INCRs the sequence and PUBLISHes inside the same script: Redis runs scripts one at a time and
// delivers one connection's messages in order, so every subscriber on every node sees a room's
// events in sequence order.
//
// Presence: a claim lives until its expiry; this node pushes the expiry of every claim it holds
// presenceTtl ahead every presenceTtl/3. When a node dies its claims run out: members() stops
// listing them at once, and the sweep (run by every node for the rooms it has subscribers in)
// removes them and publishes their `leave` (reason `expired`) in the same script, so exactly one
// node publishes each expiry however many sweep.
//
// Failure policy, chosen so that a dead or hung Redis never grows memory nor hangs a session:
// no offline queue (a command while disconnected fails at once), no replay of in-flight commands
// after a reconnect (a replayed publish would be published twice), and every command bounded by
// connectTimeout. The connections reconnect forever with a capped backoff; meanwhile the handlers
// get errors, local sessions stay up, and the refresh takes the claims back when Redis returns.

// The history budget's reckoning, set so that it is not below what MEMORY USAGE reports for the
// history lists and the bookkeeping (measured on Redis 7.0 with 20 to 4000-byte messages, 1 to 50
// per room): a message costs its JSON bytes, a quarter more for the allocator's rounding of the
// list's nodes (jemalloc's size classes waste at most a quarter), and REDIS_ENTRY_OVERHEAD; a room
// holding history costs REDIS_ROOM_OVERHEAD (its key, list, and entries in the bookkeeping) plus
// the bytes of its history key's name and twice its name (the zset member and the hash field).
export const REDIS_ENTRY_OVERHEAD = 16;
export const REDIS_ROOM_OVERHEAD = 320;

const LUA_PRELUDE = `
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
-- Stamps body (the event's JSON without seq and ts) and publishes it; returns seq and the JSON.
-- The seq and ts go first so that the rest of the JSON is the caller's own bytes.
local function stamp(seq_key, channel, body, now)
  local seq = redis.call('INCR', seq_key)
  local json = '{"seq":' .. string.format('%d', seq) .. ',"ts":' .. string.format('%d', now) .. ',' .. string.sub(body, 2)
  redis.call('PUBLISH', channel, json)
  return seq, json
end
local function presence_event(kind, room, nick, reason)
  local body = '{"type":"' .. kind .. '","room":' .. cjson.encode(room) .. ',"nick":' .. cjson.encode(nick)
  if reason then body = body .. ',"reason":"' .. reason .. '"' end
  return body .. '}'
end
`;

/** The history budget (see "History budget" above and the reckoning next to REDIS_ENTRY_OVERHEAD). */
const LUA_HISTORY = `
local ENTRY_OVERHEAD = ${REDIS_ENTRY_OVERHEAD}
local ROOM_OVERHEAD = ${REDIS_ROOM_OVERHEAD}
local function entry_cost(json)
  return #json + math.floor(#json / 4) + ENTRY_OVERHEAD
end
local function history_key(prefix, room)
  return prefix .. 'room:{' .. room .. '}:history'
end
-- Drops the oldest kept message of room. A room left with none (or whose list vanished, say
-- deleted by hand) leaves the bookkeeping with whatever it was still reckoned to hold, so the
-- total heals from any drift. False when there was nothing to drop.
local function drop_oldest(total_key, rooms_key, sizes_key, hkey, room)
  local old = redis.call('RPOP', hkey)
  if old then
    local cost = entry_cost(old)
    redis.call('HINCRBY', sizes_key, room, -cost)
    redis.call('DECRBY', total_key, cost)
  end
  if not old or redis.call('LLEN', hkey) == 0 then
    local left = tonumber(redis.call('HGET', sizes_key, room) or '0')
    redis.call('HDEL', sizes_key, room)
    redis.call('ZREM', rooms_key, room)
    redis.call('DECRBY', total_key, left)
  end
  return old
end
-- Keeps json in room's history (newest first), then trims: the room to keep messages and to
-- room_cap bytes, then every room together to budget bytes, the oldest messages of the room
-- written least recently first. Each message is pushed once and popped at most once.
local function keep_history(hkey, total_key, rooms_key, sizes_key, room, json, keep, budget, room_cap, prefix, now)
  local cost = entry_cost(json)
  local room_cost = ROOM_OVERHEAD + #hkey + 2 * #room
  -- Could never fit: not kept (the history shows a gap in seq) rather than emptying the room.
  if cost + room_cost > room_cap then return end
  if not redis.call('HGET', sizes_key, room) then
    -- First message of the room under this bookkeeping; a list written before it (an older
    -- Switchyard) is counted now, once.
    local held = room_cost
    for _, e in ipairs(redis.call('LRANGE', hkey, 0, -1)) do held = held + entry_cost(e) end
    redis.call('HSET', sizes_key, room, held)
    redis.call('INCRBY', total_key, held)
  end
  redis.call('LPUSH', hkey, json)
  local size = redis.call('HINCRBY', sizes_key, room, cost)
  redis.call('INCRBY', total_key, cost)
  redis.call('ZADD', rooms_key, now, room)
  while size > room_cap or redis.call('LLEN', hkey) > keep do
    if not drop_oldest(total_key, rooms_key, sizes_key, hkey, room) then break end
    size = tonumber(redis.call('HGET', sizes_key, room) or '0')
  end
  local total = tonumber(redis.call('GET', total_key) or '0')
  while total > budget do
    -- Rooms written in the same millisecond tie; then another room goes before this one.
    local first = redis.call('ZRANGE', rooms_key, 0, 1)
    local oldest = first[1]
    if oldest == room and first[2] then oldest = first[2] end
    if not oldest then
      -- Bytes reckoned without any room to hold them: drift (keys deleted by hand).
      redis.call('SET', total_key, 0)
      break
    end
    drop_oldest(total_key, rooms_key, sizes_key, history_key(prefix, oldest), oldest)
    total = tonumber(redis.call('GET', total_key) or '0')
  end
end
`;

/**
 * KEYS seq, history, history bytes, history rooms, history sizes. ARGV channel, body, keep (0
 * unless a message kept in history), room, budget, room cap, key prefix. Returns {seq, ts}.
 */
const PUBLISH = `
local now = now_ms()
local seq, json = stamp(KEYS[1], ARGV[1], ARGV[2], now)
local keep = tonumber(ARGV[3])
if keep > 0 then
  keep_history(KEYS[2], KEYS[3], KEYS[4], KEYS[5], ARGV[4], json, keep, tonumber(ARGV[5]), tonumber(ARGV[6]), ARGV[7], now)
end
return {seq, now}
`;

/**
 * KEYS seq, history, nicks, owners. ARGV channel, room, nick, owner, ttl. 1 when claimed, 0 when
 * another owner's live claim holds the nick. Taking over an expired claim of another owner
 * publishes its `leave` first, so that nobody sees a nick join that never left.
 */
const CLAIM = `
local now = now_ms()
local nick, owner = ARGV[3], ARGV[4]
local score = redis.call('ZSCORE', KEYS[3], nick)
local holder = redis.call('HGET', KEYS[4], nick)
if holder ~= owner then
  if score and tonumber(score) > now then return 0 end
  if score and holder then
    stamp(KEYS[1], ARGV[1], presence_event('leave', ARGV[2], nick, 'expired'), now)
  end
end
redis.call('ZADD', KEYS[3], now + tonumber(ARGV[5]), nick)
redis.call('HSET', KEYS[4], nick, owner)
return 1
`;

/** KEYS nicks, owners. ARGV nick, owner. Removes the claim only if owner holds it. */
const RELEASE = `
if redis.call('HGET', KEYS[2], ARGV[1]) == ARGV[2] then
  redis.call('ZREM', KEYS[1], ARGV[1])
  redis.call('HDEL', KEYS[2], ARGV[1])
  return 1
end
return 0
`;

/** KEYS nicks. The live nicks, any order. */
const MEMBERS = `
return redis.call('ZRANGEBYSCORE', KEYS[1], '(' .. string.format('%d', now_ms()), '+inf')
`;

/**
 * KEYS seq, history, nicks, owners. ARGV channel, room, ttl, then nick, owner pairs: the claims
 * this node holds in the room. Per pair: 0 still held (expiry pushed on); 1 it had been swept or
 * had run out and nobody else took it, so it is taken back and its `join` published (the room
 * saw it leave); 2 another owner holds it now: lost.
 */
const REFRESH = `
local now = now_ms()
local expiry = now + tonumber(ARGV[3])
local out = {}
for i = 4, #ARGV, 2 do
  local nick, owner = ARGV[i], ARGV[i + 1]
  local holder = redis.call('HGET', KEYS[4], nick)
  local score = redis.call('ZSCORE', KEYS[3], nick)
  if holder == owner and score then
    redis.call('ZADD', KEYS[3], expiry, nick)
    out[#out + 1] = 0
  elseif holder and holder ~= owner and score and tonumber(score) > now then
    out[#out + 1] = 2
  else
    if holder and holder ~= owner and score then
      stamp(KEYS[1], ARGV[1], presence_event('leave', ARGV[2], nick, 'expired'), now)
    end
    redis.call('ZADD', KEYS[3], expiry, nick)
    redis.call('HSET', KEYS[4], nick, owner)
    stamp(KEYS[1], ARGV[1], presence_event('join', ARGV[2], nick, nil), now)
    out[#out + 1] = 1
  end
end
return out
`;

/**
 * KEYS seq, history, nicks, owners. ARGV channel, room. Removes the claims that ran out and
 * publishes a `leave` (expired) for each; returns how many.
 */
const SWEEP = `
local now = now_ms()
local gone = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', string.format('%d', now))
for _, nick in ipairs(gone) do
  redis.call('ZREM', KEYS[3], nick)
  redis.call('HDEL', KEYS[4], nick)
  stamp(KEYS[1], ARGV[1], presence_event('leave', ARGV[2], nick, 'expired'), now)
end
return #gone
`;

/**
 * KEYS seq, history, nicks, owners. ARGV channel, room, reason, then nick, owner pairs. Removes
 * each claim the owner still holds and publishes its `leave`; a claim already released (the
 * handler said goodbye itself) publishes nothing, so nobody leaves twice.
 */
const DROP = `
local now = now_ms()
local n = 0
for i = 4, #ARGV, 2 do
  local nick, owner = ARGV[i], ARGV[i + 1]
  if redis.call('HGET', KEYS[4], nick) == owner then
    redis.call('ZREM', KEYS[3], nick)
    redis.call('HDEL', KEYS[4], nick)
    stamp(KEYS[1], ARGV[1], presence_event('leave', ARGV[2], nick, ARGV[3]), now)
    n = n + 1
  end
end
return n
`;

class Script {
  readonly lua: string;
  readonly sha: string;
  constructor(
    readonly name: string,
    body: string,
  ) {
    this.lua = LUA_PRELUDE + body;
    this.sha = createHash('sha1').update(this.lua).digest('hex');
  }

  /** EVALSHA, falling back to EVAL when Redis lost its script cache (a restart, SCRIPT FLUSH). */
  async run(redis: Redis, keys: string[], args: (string | number)[]): Promise<unknown> {
    try {
      return await redis.evalsha(this.sha, keys.length, ...keys, ...args);
    } catch (err) {
      if (!(err instanceof Error) || !err.message.startsWith('NOSCRIPT')) throw err;
      return await redis.eval(this.lua, keys.length, ...keys, ...args);
    }
  }
}

const scripts = {
  publish: new Script('publish', LUA_HISTORY + PUBLISH),
  claim: new Script('claim', CLAIM),
  release: new Script('release', RELEASE),
  members: new Script('members', MEMBERS),
  refresh: new Script('refresh', REFRESH),
  sweep: new Script('sweep', SWEEP),
  drop: new Script('drop', DROP),
};

/** The URL with its password replaced, for logs and errors. */
export function redactRedisUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return url.replace(/\/\/([^@/]*?):[^@/]*@/, '//$1:***@');
  }
}

interface Subscription {
  readonly room: string;
  readonly listeners: Set<RoomListener>;
  /** Settles when Redis acknowledged the SUBSCRIBE. */
  readonly ready: Promise<void>;
}

const EVENT_TYPES = new Set(['message', 'join', 'leave', 'nick']);

function parseEvent(json: string): RoomEvent | undefined {
  let v: unknown;
  try {
    v = JSON.parse(json);
  } catch {
    return undefined;
  }
  if (typeof v !== 'object' || v === null) return undefined;
  const e = v as Record<string, unknown>;
  if (typeof e.type !== 'string' || !EVENT_TYPES.has(e.type)) return undefined;
  if (typeof e.room !== 'string' || typeof e.nick !== 'string') return undefined;
  if (!Number.isSafeInteger(e.seq) || typeof e.ts !== 'number') return undefined;
  return v as RoomEvent;
}

/**
 * How every connection of the daemon to the shared Redis behaves: no command waits longer than
 * connectTimeout, nothing is queued or resent while it is away (callers fail fast and retry on
 * their own terms), and once `connected()` it reconnects forever with a capped backoff.
 */
export function redisClientOptions(config: RedisStateConfig, connected: () => boolean): RedisOptions {
  return {
    lazyConnect: true,
    connectTimeout: config.connectTimeout,
    commandTimeout: config.connectTimeout,
    enableOfflineQueue: false,
    maxRetriesPerRequest: 0,
    autoResendUnfulfilledCommands: false,
    retryStrategy: (times) => (connected() ? Math.min(50 * 2 ** Math.min(times, 6), 2000) : null),
  };
}

export class RedisRoomStore implements RoomStore {
  readonly backend = 'redis';
  private readonly log: Logger;
  private readonly prefix: string;
  private readonly ttl: number;
  /** room -> nick -> owner: the claims this node holds and keeps alive. */
  private readonly held = new Map<string, Map<string, string>>();
  private readonly claimLostListeners = new Set<ClaimLostListener>();
  /** channel -> local subscription */
  private readonly subs = new Map<string, Subscription>();
  private timer: NodeJS.Timeout | undefined;
  private ticking = false;
  /** The presence upkeep is failing (Redis away); logged once when it starts and once when it ends. */
  private upkeepFailing = false;
  private malformedLogged = false;
  private closing: Promise<void> | undefined;

  private constructor(
    private readonly cmd: Redis,
    private readonly sub: Redis,
    private readonly config: RedisStateConfig,
    log: Logger,
  ) {
    this.log = log;
    const closing = () => this.closing !== undefined;
    watch(cmd, 'command', log, closing);
    watch(sub, 'subscriber', log, closing);
    this.prefix = config.keyPrefix;
    this.ttl = config.presenceTtl;
    sub.on('message', (channel: string, message: string) => this.deliver(channel, message));
    this.timer = setInterval(() => void this.upkeep(), Math.max(1, Math.floor(this.ttl / 3)));
    this.timer.unref();
  }

  /**
   * Connects both connections, trying again until `connectTimeout` runs out; then fails with
   * one line naming the (redacted) URL and the last error.
   */
  static async connect(config: RedisStateConfig, log: Logger): Promise<RedisRoomStore> {
    const where = redactRedisUrl(config.url);
    const deadline = Date.now() + config.connectTimeout;
    let connected = false;
    // Startup retries in connectWithin(), against its deadline; once up, reconnect forever.
    const options = redisClientOptions(config, () => connected);
    let cmd: Redis;
    let sub: Redis;
    try {
      cmd = new Redis(config.url, { ...options, connectionName: 'switchyard-state' });
      sub = new Redis(config.url, { ...options, connectionName: 'switchyard-state-sub' });
    } catch (err) {
      throw new Error(`cannot use redis URL ${where}: ${err instanceof Error ? err.message : String(err)}`);
    }
    const logger = log.child({ component: 'state', backend: 'redis', redis: where });
    try {
      await connectWithin(cmd, deadline, where);
      await connectWithin(sub, deadline, where);
    } catch (err) {
      cmd.disconnect();
      sub.disconnect();
      throw err;
    }
    connected = true;
    logger.info({ presenceTtlMs: config.presenceTtl, keyPrefix: config.keyPrefix }, 'connected to redis');
    return new RedisRoomStore(cmd, sub, config, logger);
  }

  private keys(room: string): [seq: string, history: string, nicks: string, owners: string] {
    const base = `${this.prefix}room:{${room}}`;
    return [`${base}:seq`, `${base}:history`, `${base}:nicks`, `${base}:owners`];
  }

  /** The history budget's bookkeeping: total bytes, rooms by last write, bytes per room. */
  private historyKeys(): [bytes: string, rooms: string, sizes: string] {
    return [`${this.prefix}history:bytes`, `${this.prefix}history:rooms`, `${this.prefix}history:sizes`];
  }

  private channel(room: string): string {
    return `${this.prefix}room:${room}`;
  }

  async claim(room: string, nick: string, owner: string): Promise<boolean> {
    const ok = (await scripts.claim.run(this.cmd, this.keys(room), [this.channel(room), room, nick, owner, this.ttl])) === 1;
    if (ok && !this.closing) {
      let nicks = this.held.get(room);
      if (!nicks) this.held.set(room, (nicks = new Map()));
      nicks.set(nick, owner);
    }
    return ok;
  }

  async release(room: string, nick: string, owner: string): Promise<void> {
    // Forget it before asking Redis, so that a refresh sent after this cannot take it back.
    this.forget(room, nick, owner);
    const [, , nicks, owners] = this.keys(room);
    await scripts.release.run(this.cmd, [nicks, owners], [nick, owner]);
  }

  private forget(room: string, nick: string, owner: string): void {
    const nicks = this.held.get(room);
    if (nicks?.get(nick) !== owner) return;
    nicks.delete(nick);
    if (nicks.size === 0) this.held.delete(room);
  }

  async list(limit: number): Promise<{ room: string; members: number }[]> {
    // Every room with presence or history has a :seq key; names come from the hash tag.
    const found = new Set<string>();
    let cursor = '0';
    const pattern = `${this.prefix}room:{*}:seq`;
    do {
      const [next, keys] = await this.cmd.scan(cursor, 'MATCH', pattern, 'COUNT', 500);
      cursor = next;
      for (const key of keys) {
        const m = /room:\{(.*)\}:seq$/.exec(key);
        if (m) found.add(m[1]);
        if (found.size >= limit) break;
      }
    } while (cursor !== '0' && found.size < limit);
    const out: { room: string; members: number }[] = [];
    for (const room of [...found].sort()) out.push({ room, members: (await this.members(room)).length });
    return out;
  }

  async members(room: string): Promise<string[]> {
    const live = (await scripts.members.run(this.cmd, [this.keys(room)[2]], [])) as string[];
    return live.sort();
  }

  async history(room: string, limit: number): Promise<RoomEvent[]> {
    if (limit <= 0) return [];
    const raw = await this.cmd.lrange(this.keys(room)[1], 0, Math.floor(limit) - 1);
    const events: RoomEvent[] = [];
    for (let i = raw.length - 1; i >= 0; i--) {
      const e = parseEvent(raw[i]);
      if (e) events.push(e);
    }
    return events;
  }

  async publish(input: RoomEventInput, options: PublishOptions): Promise<RoomEvent> {
    // A seq or ts the caller left in would come after ours in the JSON and win when parsed.
    const { seq: _seq, ts: _ts, ...rest } = input as RoomEventInput & { seq?: unknown; ts?: unknown };
    const keep = input.type === 'message' && options.historyLimit >= 1 ? Math.floor(options.historyLimit) : 0;
    const [seqKey, historyKey] = this.keys(input.room);
    const budget = this.config.maxHistoryBytes;
    const [seq, ts] = (await scripts.publish.run(
      this.cmd,
      [seqKey, historyKey, ...this.historyKeys()],
      [this.channel(input.room), JSON.stringify(rest), keep, input.room, budget, maxRoomHistoryBytes(budget), this.prefix],
    )) as [number, number];
    return { ...rest, seq, ts } as RoomEvent;
  }

  async subscribe(room: string, listener: RoomListener): Promise<() => void> {
    if (this.closing) throw new Error('the redis room store is closed');
    const channel = this.channel(room);
    let s = this.subs.get(channel);
    if (!s) {
      const created: Subscription = { room, listeners: new Set(), ready: this.sub.subscribe(channel).then(() => undefined) };
      created.ready.catch(() => {
        if (this.subs.get(channel) === created) this.subs.delete(channel);
      });
      this.subs.set(channel, created);
      s = created;
    }
    const sub = s;
    // A wrapper per subscription, so that one listener function may subscribe twice.
    const entry: RoomListener = (e) => listener(e);
    sub.listeners.add(entry);
    try {
      await sub.ready;
    } catch (err) {
      sub.listeners.delete(entry);
      throw new Error(`cannot subscribe to room ${room}: ${err instanceof Error ? err.message : String(err)}`, { cause: err });
    }
    return () => {
      if (!sub.listeners.delete(entry) || sub.listeners.size > 0) return;
      if (this.subs.get(channel) !== sub) return;
      this.subs.delete(channel);
      // A subscribe of the same room after this one is sent after it on the same connection,
      // so Redis ends up subscribed.
      if (!this.closing) this.sub.unsubscribe(channel).catch((err) => this.log.debug({ err, room }, 'unsubscribe failed'));
    };
  }

  private deliver(channel: string, message: string): void {
    const s = this.subs.get(channel);
    if (!s) return;
    const event = parseEvent(message);
    if (!event) {
      if (!this.malformedLogged) {
        this.malformedLogged = true;
        this.log.warn({ channel, sample: message.slice(0, 200) }, 'ignoring a malformed event on a room channel (logged once)');
      }
      return;
    }
    for (const l of [...s.listeners]) {
      try {
        l(event);
      } catch (err) {
        this.log.error({ err, room: s.room }, 'room listener failed');
      }
    }
  }

  /** Every presenceTtl/3: keep this node's claims alive and sweep out the expired ones. */
  private async upkeep(): Promise<void> {
    if (this.ticking || this.closing) return;
    this.ticking = true;
    try {
      // Sent back to back without waiting in between: ioredis writes each at once, so the whole
      // round is pipelined on the connection.
      const refreshes = [...this.held].map(([room, nicks]) => this.refresh(room, [...nicks]));
      const sweeps = [...new Set([...this.subs.values()].map((s) => s.room))].map((room) => this.sweep(room));
      const results = await Promise.allSettled([...refreshes, ...sweeps]);
      const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
      if (failed && !this.upkeepFailing) {
        this.upkeepFailing = true;
        this.log.warn({ err: failed.reason }, 'redis unreachable: presence refresh failing; local sessions go on, claims are taken back when it returns');
      } else if (!failed && this.upkeepFailing) {
        this.upkeepFailing = false;
        this.log.info('redis reachable again: presence refreshed');
      }
    } finally {
      this.ticking = false;
    }
  }

  onClaimLost(listener: ClaimLostListener): () => void {
    // A wrapper per registration, so that one function may register twice.
    const entry: ClaimLostListener = (room, nick, owner) => listener(room, nick, owner);
    this.claimLostListeners.add(entry);
    return () => this.claimLostListeners.delete(entry);
  }

  private async refresh(room: string, nicks: [string, string][]): Promise<void> {
    const args: (string | number)[] = [this.channel(room), room, this.ttl];
    for (const [nick, owner] of nicks) args.push(nick, owner);
    const out = (await scripts.refresh.run(this.cmd, this.keys(room), args)) as number[];
    out.forEach((status, i) => {
      const [nick, owner] = nicks[i];
      if (status === 1) this.log.info({ room, nick }, 'presence had expired (redis was away); claimed again');
      if (status === 2) {
        this.forget(room, nick, owner);
        this.log.warn({ room, nick }, 'presence had expired (redis was away) and another member took the nick meanwhile');
        for (const l of this.claimLostListeners) {
          try {
            l(room, nick, owner);
          } catch (err) {
            this.log.error({ err, room, nick }, 'claim-lost listener failed');
          }
        }
      }
    });
  }

  private async sweep(room: string): Promise<void> {
    await scripts.sweep.run(this.cmd, this.keys(room), [this.channel(room), room]);
  }

  /**
   * Stops the upkeep, makes the claims this node still holds leave (reason `disconnected`; the
   * chat handler normally released them already, and a released claim publishes nothing), and
   * closes both connections. Bounded by connectTimeout even when Redis is gone.
   */
  close(): Promise<void> {
    this.closing ??= this.shutdown();
    return this.closing;
  }

  private async shutdown(): Promise<void> {
    clearInterval(this.timer);
    this.timer = undefined;
    const held = [...this.held];
    this.held.clear();
    this.subs.clear();
    const reason: LeaveReason = 'disconnected';
    const goodbyes = Promise.allSettled(
      held.map(([room, nicks]) => {
        const args: (string | number)[] = [this.channel(room), room, reason];
        for (const [nick, owner] of nicks) args.push(nick, owner);
        return scripts.drop.run(this.cmd, this.keys(room), args);
      }),
    ).then((results) => {
      const failed = results.filter((r) => r.status === 'rejected').length;
      if (failed > 0) this.log.warn({ rooms: failed }, 'could not release claims on close; they expire after presenceTtl');
    });
    await withDeadline(goodbyes, this.config.connectTimeout);
    await Promise.all([quit(this.cmd, this.config.connectTimeout), quit(this.sub, this.config.connectTimeout)]);
  }
}

/**
 * Errors that trying again will not cure: a refused password or permission, a bad db index.
 * Startup stops at the first of them instead of spending connectTimeout on retries.
 */
const PERMANENT = /^(WRONGPASS|NOAUTH|NOPERM|ERR DB index|ERR invalid DB index|ERR AUTH)/;

/** Connects `client`, retrying until `deadline`; throws one line naming `where` and the last error. */
async function connectWithin(client: Redis, deadline: number, where: string): Promise<void> {
  let last = 'no answer';
  let permanent = false;
  const onError = (err: Error) => {
    last = err.message;
    if (PERMANENT.test(err.message)) permanent = true;
  };
  client.on('error', onError);
  const fail = () => new Error(`cannot ${permanent ? 'use' : 'reach'} redis at ${where}${permanent ? '' : ` within ${client.options.connectTimeout} ms`}: ${last}`);
  try {
    while (!permanent) {
      const left = deadline - Date.now();
      if (left <= 0) break;
      const attempt = client.connect();
      const outcome = await withDeadline(
        attempt.then(
          () => true,
          () => false,
        ),
        left,
      );
      // ioredis reports a refused SELECT as an error event and connects anyway, on db 0: refuse.
      if (outcome === true && !permanent) return;
      if (outcome !== false) {
        client.disconnect();
        break;
      }
      await new Promise((r) => setTimeout(r, Math.min(100, Math.max(0, deadline - Date.now()))));
    }
    throw fail();
  } finally {
    client.off('error', onError);
  }
}

/** Logs a connection going away once (not every retry) and coming back. */
function watch(client: Redis, role: string, log: Logger, closing: () => boolean): void {
  let down = false;
  client.on('error', (err: Error) => {
    if (down || closing()) return;
    down = true;
    log.warn({ role, err: err.message }, 'redis connection lost; reconnecting');
  });
  client.on('close', () => {
    if (down || closing()) return;
    down = true;
    log.warn({ role }, 'redis connection closed; reconnecting');
  });
  client.on('ready', () => {
    if (!down) return;
    down = false;
    if (role === 'subscriber') log.warn({ role }, 'redis connection back; room events published while it was away did not reach this node');
    else log.info({ role }, 'redis connection back');
  });
}

/** `p`'s value, or undefined when it has not settled within `ms`. */
async function withDeadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: NodeJS.Timeout | undefined;
  const expired = new Promise<undefined>((resolve) => {
    timer = setTimeout(() => resolve(undefined), ms);
  });
  try {
    return await Promise.race([p, expired]);
  } finally {
    clearTimeout(timer);
  }
}

/** QUIT politely if Redis answers in time, then drop the connection whatever happened. */
async function quit(client: Redis, ms: number): Promise<void> {
  if (client.status === 'ready') await withDeadline(client.quit().catch(() => undefined), ms);
  client.disconnect();
}

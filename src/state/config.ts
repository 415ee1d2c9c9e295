import { z } from 'zod';
import { duration, size } from '../config/units.ts';

// `state:` in the config: where chat rooms (and later other shared state) live.

function parsesAsUrl(v: string): boolean {
  try {
    new URL(v);
    return true;
  } catch {
    return false;
  }
}

/** The default of `maxHistoryBytes`: thousands of busy rooms' worth of chat, a bounded share of a daemon's heap. */
export const DEFAULT_MAX_HISTORY_BYTES = 64 * 1024 * 1024;

/**
 * One room keeps at most this share of `maxHistoryBytes` (1/16: 4 MiB of the default), so that
 * one busy room cannot push every other room's history out. The chat handler's own limits
 * (history <= 1000 messages of maxMessageLength) usually bound a room well below it.
 */
export const ROOM_HISTORY_SHARE = 16;

/** The most history bytes one room may hold under a store budget of `maxHistoryBytes`. */
export function maxRoomHistoryBytes(maxHistoryBytes: number): number {
  return Math.floor(maxHistoryBytes / ROOM_HISTORY_SHARE);
}

/**
 * Bytes of chat history the whole store may hold, over every room, in use or idle: past it the
 * history of the room written least recently loses its oldest messages first. One room holds at
 * most 1/16 of it. 0 keeps no history. How bytes are counted differs by backend (docs/state.md):
 * memory reckons the heap of each kept event, redis the stored JSON plus its keys' overhead.
 */
const maxHistoryBytes = () => size().pipe(z.number().int().min(0)).default(DEFAULT_MAX_HISTORY_BYTES);

const memory = z.strictObject({
  backend: z.literal('memory'),
  /**
   * Rooms nobody is in that are kept for their history and sequence; past this, the least
   * recently left is forgotten (so visiting ever new room names cannot grow memory).
   */
  maxIdleRooms: z.int().min(0).max(1_000_000).default(1000),
  maxHistoryBytes: maxHistoryBytes(),
});

const redis = z.strictObject({
  backend: z.literal('redis'),
  /** redis://[user:password@]host:port[/db], or rediss:// for TLS. */
  url: z
    .string()
    .regex(/^rediss?:\/\/[^\s]+$/, { message: 'expected a redis:// or rediss:// URL', abort: true })
    .refine(parsesAsUrl, 'expected a redis:// or rediss:// URL (host, numeric port, /db)'),
  /** Prefix of every key and channel, so several deployments can share one Redis. */
  keyPrefix: z.string().max(128).default('switchyard:'),
  /**
   * How long a member's presence outlives its daemon: each daemon refreshes its members every
   * third of this; when a daemon dies its members leave the rooms after at most this long.
   */
  presenceTtl: duration()
    .pipe(z.number().min(1000, 'presenceTtl must be at least 1s'))
    .default(15_000),
  /**
   * How long startup waits for Redis before giving up with an error. Also the longest any one
   * command waits for its reply, so that a Redis that hangs cannot hang a chat session.
   */
  connectTimeout: duration()
    .pipe(z.number().min(1, 'connectTimeout must be at least 1ms'))
    .default(5_000),
  /** As for memory; every daemon on the Redis enforces its own value, so give them all the same. */
  maxHistoryBytes: maxHistoryBytes(),
});

export const stateSchema = z
  .discriminatedUnion('backend', [memory, redis], { error: () => 'expected backend one of: memory, redis' })
  .default({ backend: 'memory', maxIdleRooms: 1000, maxHistoryBytes: DEFAULT_MAX_HISTORY_BYTES });

export type StateConfig = z.output<typeof stateSchema>;
export type RedisStateConfig = z.output<typeof redis>;

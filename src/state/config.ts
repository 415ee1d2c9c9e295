import { z } from 'zod';
import { duration } from '../config/units.ts';

// `state:` in the config: where chat rooms (and later other shared state) live.

function parsesAsUrl(v: string): boolean {
  try {
    new URL(v);
    return true;
  } catch {
    return false;
  }
}

const memory = z.strictObject({
  backend: z.literal('memory'),
  /**
   * Rooms nobody is in that are kept for their history and sequence; past this, the least
   * recently left is forgotten (so visiting ever new room names cannot grow memory).
   */
  maxIdleRooms: z.int().min(0).max(1_000_000).default(1000),
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
});

export const stateSchema = z
  .discriminatedUnion('backend', [memory, redis], { error: () => 'expected backend one of: memory, redis' })
  .default({ backend: 'memory', maxIdleRooms: 1000 });

export type StateConfig = z.output<typeof stateSchema>;
export type RedisStateConfig = z.output<typeof redis>;

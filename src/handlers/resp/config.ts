import { z } from 'zod';
import { duration, size } from '../../config/units.ts';

// The `resp` handler's config: a Redis-compatible cache behind a tcp or unix listener
// (docs/resp.md). Every buffer a client can make us hold has a limit here.

/** What happens when a write would take the keyspace over `maxmemory`. */
export const EVICTION_POLICIES = ['noeviction', 'allkeys-lru', 'volatile-lru', 'allkeys-random'] as const;
export type EvictionPolicy = (typeof EVICTION_POLICIES)[number];

const snapshotSchema = z.strictObject({
  /** File the keyspace is saved to and loaded from at start (relative to the config's folder). */
  file: z.string().min(1),
  /** How often the keyspace is saved when it changed since the last save. */
  interval: duration().default(60_000),
});

export const respSchema = z.strictObject({
  type: z.literal('resp'),
  /** Password clients must give with AUTH (or HELLO ... AUTH) before other commands (Redis `requirepass`); none when left out. */
  password: z.string().min(1).optional(),
  /** Largest bulk string (one argument) accepted; a larger announced length is refused and the connection closed before anything is allocated. */
  maxBulkSize: size().pipe(z.number().int().min(1024).max(512 * 1024 * 1024)).default(64 * 1024 * 1024),
  /** Most arguments in one command (the `*N` count); more is refused and the connection closed. */
  maxArgs: z.number().int().min(1).max(16 * 1024 * 1024).default(1024 * 1024),
  /** Longest inline (telnet-style) command line, and longest `*`/`$` header line. */
  maxInlineSize: size().pipe(z.number().int().min(256).max(16 * 1024 * 1024)).default(64 * 1024),
  /** Most clients connected at once; one more gets `ERR max number of clients reached` and is closed. */
  maxClients: z.number().int().min(1).max(1_000_000).default(10_000),
  /** Replies a client has not read yet, in bytes, above which we stop reading its commands until it catches up. */
  outputHighWaterMark: size().pipe(z.number().int().min(1024)).default(1024 * 1024),
  /** Unread pub/sub messages (bytes) a subscriber may have queued before it is disconnected (Redis `client-output-buffer-limit pubsub`). */
  maxPubsubBacklog: size().pipe(z.number().int().min(1024)).default(32 * 1024 * 1024),
  /** Memory the keyspace may use, approximated as key + value + per-entry overhead; 0 means no limit. */
  maxmemory: size().default(0),
  /** What a write does when the keyspace is over `maxmemory`: refuse with OOM (`noeviction`) or evict keys first. */
  maxmemoryPolicy: z.enum(EVICTION_POLICIES).default('noeviction'),
  /** Keys sampled per eviction; the least recently used of the sample goes (Redis `maxmemory-samples`). */
  maxmemorySamples: z.number().int().min(1).max(64).default(5),
  /** How often the active expiry sweep runs; each run samples keys with a TTL and deletes the expired ones. */
  expireSweepInterval: duration().pipe(z.number().int().min(1)).default(100),
  /** Most keys the sweep looks at per run, so that one run never blocks for long. */
  expireSweepBudget: z.number().int().min(1).max(100_000).default(200),
  /** Save the keyspace to a file now and then and load it at start; none when left out. */
  snapshot: snapshotSchema.optional(),
});

export type RespConfig = z.output<typeof respSchema>;

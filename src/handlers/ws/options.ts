import { z } from 'zod';
import { duration, size } from '../../config/units.ts';
import { tokenBucketSchema, type TokenBucketConfig } from '../../protocol/token-bucket.ts';

// The limits every WebSocket endpoint runs under, as a handler's `websocket:` config block.
// Defaults are safe for a public endpoint: 1 MiB messages, 1 MiB queued toward each client,
// 200 messages a second, dead peers found within 40 s, compression off (it costs CPU and
// ~300 KiB of zlib state per connection, so it is something to opt into).

const deflateSchema = z.strictObject({
  /** Messages smaller than this are sent uncompressed (compressing them costs more than it saves). */
  threshold: size().default(1024),
  /**
   * How many zlib operations may run at once (ws's `concurrencyLimit`); the rest wait in line.
   * This is the cap that keeps zlib's memory bounded under load. ws keeps one such queue per
   * process, sized by the first connection that negotiates compression, so with several
   * endpoints the first one's value holds for all.
   */
  concurrency: z.number().int().min(1).max(1024).default(4),
  /** zlib compression level for outgoing messages: 0 (store) to 9 (smallest, slowest). */
  level: z.number().int().min(0).max(9).default(1),
});

/**
 * `false`, or an object for `schema` (`true` meaning the object's defaults when `trueMeansDefaults`).
 * A zod union would answer a half-right object with a bare "Invalid input"; this names the field.
 */
function falseOr<T extends z.ZodType>(schema: T, expected: string, trueMeansDefaults = false) {
  return z.unknown().transform((value, ctx): false | z.output<T> => {
    if (value === false) return false;
    const input = value === true && trueMeansDefaults ? {} : value;
    if (typeof input !== 'object' || input === null || Array.isArray(input)) {
      ctx.addIssue({ code: 'custom', message: `expected ${expected}` });
      return z.NEVER;
    }
    const parsed = schema.safeParse(input);
    if (parsed.success) return parsed.data;
    for (const issue of parsed.error.issues) ctx.addIssue(issue as never);
    return z.NEVER;
  });
}

/**
 * The shape every rate limit shares (protocol/token-bucket.ts). These per-connection limits were
 * `{ messages, per }` before; a config still saying `messages` is told what to write instead of
 * only that the key is unknown and `rate` missing.
 */
const connectionRateSchema = z
  .unknown()
  .transform((value, ctx) => {
    if (typeof value === 'object' && value !== null && 'messages' in value) {
      ctx.addIssue({ code: 'custom', path: ['messages'], message: '`messages` is now `rate` (per `per`; `burst` defaults to it): write e.g. { rate: 200, per: 1s }' });
      return z.NEVER;
    }
    return value;
  })
  .pipe(tokenBucketSchema);

/**
 * A per-connection message rate limit: `{ rate, per, burst }` or false, by default 200 a second
 * with a burst of 200. The WebSocket endpoint closes a client over it (1008); chat's TCP/unix
 * sessions stop reading one for a while.
 */
export function connectionRateLimit() {
  return falseOr(connectionRateSchema, 'false or { rate, per, burst }').default((): TokenBucketConfig => ({ rate: 200, per: 1000 }));
}

/** `http://host:port`-style origins (scheme and authority, no path) or `*` for any. */
const ORIGIN = /^(\*|null|[a-z][a-z0-9+.-]*:\/\/[^/\s?#]+)$/i;

const optionsSchema = z.strictObject({
  /**
   * Largest message accepted from a client, after inflating when compression is on; a larger one
   * closes the connection with 1009 (message too big).
   */
  maxMessageSize: size().pipe(z.number().int().min(1)).default(1024 * 1024),
  /**
   * Bytes that may wait toward one client (what it has not read yet); a send past this applies
   * `slowConsumer`. Memory per connection stays under this plus one message.
   */
  sendQueueLimit: size().pipe(z.number().int().min(1)).default(1024 * 1024),
  /**
   * What happens to a client whose send queue is over `sendQueueLimit`: `close` closes it with
   * 1013 (try again later), destroying the socket if the close frame cannot get out within a
   * second; `drop` drops the message (counted in switchyard_ws_dropped_total) and keeps the client.
   */
  slowConsumer: z.enum(['close', 'drop']).default('close'),
  /**
   * Token bucket per connection: `{ rate, per, burst }`, or false for none. A client over it is
   * closed with 1008 'message rate over limit'.
   */
  rateLimit: connectionRateLimit(),
  /** How often every open connection is pinged; 0 turns pings (and dead-peer detection) off. */
  pingInterval: duration().default(30_000),
  /** A peer that has not answered a ping within this is taken for dead and its socket destroyed. */
  pongTimeout: duration().pipe(z.number().min(1, 'expected a duration of at least 1ms')).default(10_000),
  /** Open connections this endpoint takes; upgrades past it are answered 503. */
  maxConnections: z.number().int().min(1).default(10_000),
  /**
   * Allowed values of the Origin header, exact (`http://127.0.0.1:8080`); `*` allows any.
   * Absent: any origin. When set, an upgrade with another Origin, or none, is answered 403.
   */
  origins: z.array(z.string().regex(ORIGIN, 'expected an origin such as "https://example.com" or "*"')).min(1).optional(),
  /**
   * permessage-deflate: false (default), true for the defaults below, or
   * `{ threshold, concurrency, level }`. Only used when the client offers it.
   */
  deflate: falseOr(deflateSchema, 'false, true or { threshold, concurrency, level }', true).default(false),
  /** How long a closing handshake may take before the socket is destroyed. */
  closeTimeout: duration().pipe(z.number().min(1, 'expected a duration of at least 1ms')).default(5_000),
});

/** The `websocket:` block of a handler that takes WebSocket upgrades; absent means all defaults. */
export const websocketOptionsSchema = optionsSchema.default(() => optionsSchema.parse({}));

export type WebSocketOptions = z.output<typeof websocketOptionsSchema>;

import { z } from 'zod';
import { duration, size } from '../config/units.ts';
import { parseTargetAddress } from './target.ts';
import { upstreamTlsSchema } from './tls.ts';
import { upstreamSocketSchema } from '../config/socket-options.ts';
import { balancePolicies } from '../config/balance-policies.ts';

// The `upstreams:` section: named groups of backends with how to balance, check, break, retry
// and time out. Every option has a default; every object is strict.

const TARGET_FORMS = 'expected "http://host:port", "https://host:port", "h2c://host:port", "tls://host:port" or "host:port"';

const targetSchema = z.union([
  z.string().refine((v) => parseTargetAddress(v) !== undefined, { message: TARGET_FORMS }),
  z.strictObject({
    url: z.string().refine((v) => parseTargetAddress(v) !== undefined, { message: TARGET_FORMS }),
    /** Relative share of traffic for weighted policies. */
    weight: z.number().int().min(1).max(1000).default(1),
  }),
]);

// The names live apart from the schema so that the command line can offer them without loading zod.
export { balancePolicies };

const hashSchema = z.strictObject({
  /** What to hash: a request header, a cookie, the path, or the client's IP. */
  key: z.enum(['header', 'cookie', 'path', 'client-ip']).default('client-ip'),
  /** Header or cookie name (for key header / cookie). */
  name: z.string().min(1).optional(),
  /** ketama: a ring of virtual nodes; maglev: Google's lookup table (more even, same ~1/N remap). */
  algorithm: z.enum(['ketama', 'maglev']).default('ketama'),
});

const healthSchema = z.strictObject({
  /** HTTP groups: path requested on each target; L4 groups (no http:// targets) only connect. */
  path: z.string().startsWith('/').default('/health'),
  /** Statuses that count as healthy: one code, or [low, high] inclusive. */
  expectStatus: z.union([z.number().int().min(100).max(599), z.tuple([z.number().int(), z.number().int()])]).default([200, 399]),
  interval: duration().default(5_000),
  timeout: duration().default(2_000),
  /** Consecutive successes that make an unhealthy target healthy again. */
  rise: z.number().int().min(1).default(2),
  /** Consecutive failures that make a healthy target unhealthy. */
  fall: z.number().int().min(1).default(3),
  /**
   * Check with gRPC's health protocol instead of a GET: grpc.health.v1.Health/Check for this
   * service ('' asks about the server as a whole) over HTTP/2; healthy when it answers SERVING.
   * For h2c:// and https:// targets (the latter with `http2: true`).
   */
  grpc: z.union([z.literal(false), z.strictObject({ service: z.string().default('') })]).default(false),
});

const outlierSchema = z.strictObject({
  /** Consecutive 5xx answers or connect failures that eject a target. */
  consecutiveFailures: z.number().int().min(1).default(5),
  /**
   * Ejection time is baseEjectionTime x times ejected, capped at maxEjectionTime; the count goes
   * down by one for each baseEjectionTime the target spends back in service.
   */
  baseEjectionTime: duration().default(30_000),
  maxEjectionTime: duration().default(300_000),
  /** Never eject more than this share of the group's targets (at least one stays). */
  maxEjectPercent: z.number().min(0).max(100).default(50),
});

const breakerSchema = z.strictObject({
  /** Open when this share of requests in the window failed... */
  failureRate: z.number().gt(0).max(1).default(0.5),
  /** ...over a rolling window this long... */
  window: duration().default(10_000),
  /** ...and at least this many requests were seen in it. */
  minRequests: z.number().int().min(1).default(20),
  /** Time open before one probe is let through (half-open). */
  openFor: duration().default(10_000),
  /** Requests let through at once while half-open. */
  halfOpenRequests: z.number().int().min(1).default(1),
  /**
   * Envoy-style caps: calls in flight to the group (HTTP requests, streams, WebSockets, tcp-proxy
   * connections, udp-proxy sessions), and tries waiting for a connection.
   */
  maxRequests: z.number().int().min(1).default(1024),
  maxPending: z.number().int().min(0).default(1024),
});

const retrySchema = z.strictObject({
  /** Retries after the first try (0: none). */
  attempts: z.number().int().min(0).max(10).default(2),
  /** Upstream statuses retried for idempotent methods (or a buffered body). */
  statuses: z.array(z.number().int().min(500).max(599)).default([502, 503, 504]),
  /** A non-idempotent request is retried (after a sent body) only when its body fits this buffer. */
  bufferBody: size().default(64 * 1024),
  /**
   * gRPC calls: statuses of a trailers-only answer that are retried like a 502, when the call
   * can be replayed (its request body ended within bufferBody). Names as in gRPC's docs.
   */
  grpcStatuses: z.array(z.enum(['CANCELLED', 'UNKNOWN', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'ABORTED', 'INTERNAL', 'UNAVAILABLE'])).default(['UNAVAILABLE']),
  /** Each try's own time limit (0: only the total timeout). */
  perTryTimeout: duration().default(0),
  /** Retry budget: retries may be at most this share of requests... */
  budgetRatio: z.number().min(0).max(1).default(0.2),
  /** ...but this many per second are always allowed (so a quiet group can still retry). */
  budgetMinPerSecond: z.number().min(0).default(10),
});

const timeoutsSchema = z.strictObject({
  connect: duration().default(5_000),
  /** From the request being sent to the response head arriving. */
  firstByte: duration().default(30_000),
  /** No bytes either way for this long while streaming. */
  idle: duration().default(60_000),
  /** The whole exchange (0: no limit). */
  total: duration().default(0),
});

const poolSchema = z.strictObject({
  /** Connections per target. */
  connections: z.number().int().min(1).max(10_000).default(128),
  /** Requests in flight per connection (1: no pipelining). */
  pipelining: z.number().int().min(1).max(100).default(1),
  /**
   * HTTP/2 targets: streams (calls) one connection carries before the next request opens another
   * connection to the target (up to `connections`), so that calls are spread over a few
   * connections, as Envoy's max_concurrent_streams does. 0: one connection until the target's
   * own SETTINGS_MAX_CONCURRENT_STREAMS is reached.
   */
  maxStreamsPerConnection: z.number().int().min(0).max(1_000_000).default(0),
  /** Idle keep-alive connections are closed after this long. */
  keepAlive: duration().default(60_000),
});

export const upstreamSchema = z
  .strictObject({
    targets: z.array(targetSchema).min(1, 'an upstream needs at least one target'),
    balance: z.enum(balancePolicies).default('round-robin'),
    hash: hashSchema.prefault({}),
    /** Active health checks: off unless set (`health: {}` for the defaults), as backends may have no /health. */
    health: z.union([z.literal(false), healthSchema]).default(false),
    /** Passive outlier detection; `false` turns it off. */
    outlier: z.union([z.literal(false), outlierSchema]).prefault({}),
    breaker: z.union([z.literal(false), breakerSchema]).prefault({}),
    retry: retrySchema.prefault({}),
    timeouts: timeoutsSchema.prefault({}),
    pool: poolSchema.prefault({}),
    /**
     * https:// targets: offer HTTP/2 in ALPN (and use it when the target picks it), so one pooled
     * connection carries many requests at once. h2c:// targets always speak HTTP/2; http://
     * targets always HTTP/1.1.
     */
    http2: z.boolean().default(false),
    /** How to speak TLS to https:// and tls:// targets (src/upstream/tls.ts, docs/tls.md). */
    tls: upstreamTlsSchema.optional(),
    /**
     * Socket options of every connection to a target (HTTP/1.1 and HTTP/2 pools, WebSocket,
     * tcp-proxy), set once it is connected: noDelay, keepAlive { idle, interval, count },
     * receiveBufferSize, sendBufferSize (upstreamSocketSchema in src/config/socket-options.ts,
     * docs/socket-options.md). Unset: Node's and the pools' own (undici: keepalive after 60s).
     */
    socket: upstreamSocketSchema.optional(),
  })
  .superRefine((u, ctx) => {
    if (u.balance === 'round-robin') {
      u.targets.forEach((t, i) => {
        if (typeof t !== 'string' && t.weight !== 1) {
          ctx.addIssue({ code: 'custom', path: ['targets', i, 'weight'], message: 'balance round-robin ignores weights; use balance: weighted-round-robin (or another weighted policy)' });
        }
      });
    }
    const addresses = u.targets.map((t) => parseTargetAddress(typeof t === 'string' ? t : t.url));
    if (u.tls !== undefined && !addresses.some((a) => a?.protocol === 'https:' || a?.protocol === 'tls:')) {
      ctx.addIssue({ code: 'custom', path: ['tls'], message: 'tls applies to https:// and tls:// targets, and this group has none' });
    }
    if (u.health !== false && u.health.grpc !== false && !addresses.every((a) => a?.protocol === 'h2c:' || (a?.protocol === 'https:' && u.http2))) {
      ctx.addIssue({ code: 'custom', path: ['health', 'grpc'], message: 'gRPC health checks need HTTP/2 targets: h2c://host:port, or https:// with http2: true' });
    }
    if (u.balance === 'consistent-hash' && (u.hash.key === 'header' || u.hash.key === 'cookie') && !u.hash.name) {
      ctx.addIssue({ code: 'custom', path: ['hash', 'name'], message: `hash key "${u.hash.key}" needs a name` });
    }
  });

export type UpstreamConfig = z.output<typeof upstreamSchema>;
export type HealthConfig = z.output<typeof healthSchema>;
export type OutlierConfig = z.output<typeof outlierSchema>;
export type BreakerConfig = z.output<typeof breakerSchema>;
export type RetryConfig = z.output<typeof retrySchema>;
export type TimeoutsConfig = z.output<typeof timeoutsSchema>;
export type PoolConfig = z.output<typeof poolSchema>;
export type HashConfig = z.output<typeof hashSchema>;
export type BalancePolicy = (typeof balancePolicies)[number];

/** Normalised target list: address plus weight. */
export function targetsOf(u: UpstreamConfig): { address: string; weight: number }[] {
  return u.targets.map((t) => (typeof t === 'string' ? { address: t, weight: 1 } : { address: t.url, weight: t.weight }));
}

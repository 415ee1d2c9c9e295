import { z } from 'zod';
import { http3Schema } from '../http3/config.ts';
import { duration, size } from './units.ts';
import { parseHostPort } from './address.ts';
import { handlerModule, handlerModules } from '../handlers/registry.ts';
import { isFunction } from '../handlers/inline.ts';
import type { HandlerConfig } from '../handlers/configs.ts';
import type { Middleware } from '../middleware/types.ts';
import { closestName, explainIssue, humanError } from './errors.ts';
import { crossFieldIssues } from './cross-checks.ts';
import { upstreamSchema } from '../upstream/config.ts';
import { rateLimitSchema } from '../middleware/rate-limit.ts';
import { multicastBindIssues, multicastSchema } from '../listeners/multicast.ts';
import { accessLogSchema } from '../middleware/access-log.ts';
import { headerRulesSchema } from '../middleware/headers.ts';
import { errorPagesSchema } from '../middleware/error-pages.ts';
import { basicAuthSchema } from '../middleware/auth/basic.ts';
import { jwtSchema } from '../middleware/auth/jwt.ts';
import { forwardAuthSchema } from '../middleware/auth/forward.ts';
import { compressSchema } from '../middleware/compress.ts';
import { inspectSchema } from '../inspect/http.ts';
import { stateSchema } from '../state/config.ts';
import { listenerTlsSchema } from './tls.ts';
import { tokenBucketSchema } from '../protocol/token-bucket.ts';
import { pathPatternProblem } from '../listeners/http/router.ts';
import { rewritesSchema } from '../listeners/http/rewrite.ts';
import { quicListenerSchema } from './quic-listener.ts';
import { socketAddressIssues, tcpListenerSocketSchema, udpListenerSocketSchema, unixListenerSocketSchema } from './socket-options.ts';

// The config model. Every object is strict: an unknown field is an error, so a typo never passes
// silently. Defaults are ones a production user would accept; each field says what it means.

const address = () =>
  z.string().refine((v) => parseHostPort(v) !== undefined, {
    message: 'expected "host:port" (e.g. "127.0.0.1:8080" or "[::1]:8080"; port 0 picks a free port)',
  });

/** Limits of a connection-oriented listener. */
const streamLimitsSchema = z.strictObject({
  /** Connections open at once; further ones are refused at accept. */
  maxConnections: z.number().int().positive().default(10_000),
  /** A connection with no bytes either way for this long is closed. */
  idleTimeout: duration().default(60_000),
});

/** Limits of an HTTP listener. */
const httpLimitsSchema = z.strictObject({
  maxConnections: z.number().int().positive().default(10_000),
  /** Time to receive the complete request headers (slowloris defence); then 408 and close. */
  headerTimeout: duration().default(10_000),
  /** Time to receive the complete request, body included; then 408 and close. */
  requestTimeout: duration().default(60_000),
  /** A connection with no bytes either way for this long during a request is closed. */
  idleTimeout: duration().default(60_000),
  /** How long an idle keep-alive connection is kept between requests. */
  keepAliveTimeout: duration().default(5_000),
  /** Largest request head (request line plus headers); larger gets 431. */
  maxHeaderSize: size().default(16 * 1024),
  /** Largest request body; larger gets 413. */
  maxBodySize: size().default(1024 * 1024),
  /** Requests served on one keep-alive connection before it is closed (0: no limit). */
  maxRequestsPerConnection: z.number().int().min(0).default(0),
  /**
   * Pipelined requests of one connection handled at once. Their responses must leave in order, so
   * more would only queue up responses in memory for a client that may never read them; the
   * connection is not read further until one finishes (and what it has read is parsed 4 KB at a
   * time, so no more than a few dozen requests wait parsed).
   */
  maxPipelinedRequests: z.number().int().min(1).max(1024).default(8),
});

/**
 * HTTP/2 on an http listener (docs/http2.md). The routes, middleware and handlers are the same
 * as for HTTP/1.1; these are the protocol's own settings and its defences.
 */
const http2Schema = z.strictObject({
  /** HTTPS listeners: offer `h2` in ALPN, preferred to `http/1.1`. `false`: HTTP/1.1 only. */
  enabled: z.boolean().default(true),
  /**
   * Plain-text listeners: HTTP/2 without TLS (h2c), both with prior knowledge (the client starts
   * with the HTTP/2 preface) and through `Upgrade: h2c`. Off by default: browsers never speak it;
   * gRPC clients, service meshes and `curl --http2-prior-knowledge` do.
   */
  h2c: z.boolean().default(false),
  /** Streams one connection may have open at once (SETTINGS_MAX_CONCURRENT_STREAMS); more are refused with REFUSED_STREAM. */
  maxConcurrentStreams: z.number().int().min(1).max(10_000).default(128),
  /**
   * Per-stream flow-control window we advertise (SETTINGS_INITIAL_WINDOW_SIZE): how much of a
   * request body a client may send before we read it.
   */
  initialWindowSize: size().pipe(z.number().int().min(1024).max(2 ** 31 - 1)).default(64 * 1024),
  /** Connection-wide flow-control window we advertise: all of one connection's unread request bodies together. */
  connectionWindowSize: size().pipe(z.number().int().min(64 * 1024).max(2 ** 31 - 1)).default(1024 * 1024),
  /**
   * Streams a client may reset (RST_STREAM), as a token bucket per connection (streams refused
   * past maxConcurrentStreams count toward node's own cap of 100 invalid frames instead).
   * Over it the connection gets GOAWAY ENHANCE_YOUR_CALM: the rapid-reset attack
   * (CVE-2023-44487) opens and cancels streams faster than any work on them can be cancelled.
   */
  maxResets: tokenBucketSchema.default({ rate: 100, per: 1000, burst: 200 }),
  /** PING frames a client may send, per connection; over it: GOAWAY ENHANCE_YOUR_CALM (ping flood). */
  maxPings: tokenBucketSchema.default({ rate: 10, per: 1000, burst: 20 }),
  /** SETTINGS frames a client may send, per connection; over it: GOAWAY ENHANCE_YOUR_CALM (settings flood). */
  maxSettings: tokenBucketSchema.default({ rate: 10, per: 1000, burst: 20 }),
});

export type Http2Config = z.output<typeof http2Schema>;

const datagramLimitsSchema = z.strictObject({
  /** Largest datagram handled; larger ones are dropped and counted. */
  maxDatagramSize: size().default(64 * 1024),
});

const corsSchema = z.strictObject({
  /** Allowed origins: exact origins, or "*" for any. */
  origins: z.array(z.string().min(1)).min(1).default(['*']),
  methods: z.array(z.string().min(1)).default(['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE']),
  /** Request headers a preflight may ask for; empty reflects what the browser asked. */
  allowHeaders: z.array(z.string()).default([]),
  exposeHeaders: z.array(z.string()).default([]),
  credentials: z.boolean().default(false),
  /** How long a browser may cache a preflight answer. */
  maxAge: duration().default(600_000),
});

const middlewareSchema = z.strictObject({
  /**
   * One line per request: `true` is a JSON record in the daemon's log; an object picks the
   * format (json, common, combined), an optional `file` and its `maxBuffer` (accessLogSchema in
   * src/middleware/access-log.ts, docs/logging.md). `false` turns it off here.
   */
  accessLog: z.union([z.boolean(), accessLogSchema]).optional(),
  /** Give each request an id (kept from the client when valid) and echo it in the response. */
  requestId: z
    .union([
      z.boolean(),
      z.strictObject({
        header: z.string().min(1).default('x-request-id'),
        /** Keep a valid id the client sent instead of making a new one. */
        trustIncoming: z.boolean().default(true),
      }),
    ])
    .optional(),
  /** Cross-origin resource sharing; off unless set. `true` means the defaults (any origin). */
  cors: z.union([z.boolean(), corsSchema]).optional(),
  /**
   * HTTP Basic authentication against users with password hashes (bcrypt or scrypt, never plain
   * passwords); off unless set. Fields (realm, users, userHeader, stripAuthorization, cacheTtl,
   * cacheSize) at basicAuthSchema (src/middleware/auth/basic.ts) and in docs/auth.md. `false`
   * on a route turns off its listener's.
   */
  basicAuth: z.union([z.literal(false), basicAuthSchema]).optional(),
  /**
   * JWT bearer tokens checked against a key set (URL or file) with pinned algorithms; off unless
   * set. Fields (jwks, algorithms, issuer, audience, clockTolerance, requiredClaims, from,
   * claimsToHeaders, realm) at jwtSchema (src/middleware/auth/jwt.ts) and in docs/auth.md.
   * `false` on a route turns off its listener's.
   */
  jwt: z.union([z.literal(false), jwtSchema]).optional(),
  /**
   * Forward auth: an authentication service answers for every request (2xx passes, anything else
   * goes back to the client); off unless set. Fields (url, method, timeout, copyRequestHeaders,
   * copyResponseHeaders, trustForwardHeader, maxBodySize, maxConnections) at forwardAuthSchema
   * (src/middleware/auth/forward.ts) and in docs/auth.md. `false` on a route turns off its
   * listener's.
   */
  forwardAuth: z.union([z.literal(false), forwardAuthSchema]).optional(),
  /**
   * Token-bucket rate limit (429 with Retry-After and RateLimit-* headers); off unless set. Its
   * fields (rate, per, burst, key, maxKeys, store, storeTimeout, onStoreError) are documented at
   * rateLimitSchema (src/middleware/rate-limit.ts) and in docs/rate-limit.md; `store: redis`
   * shares the buckets of every daemon on the Redis of `state:`.
   */
  rateLimit: rateLimitSchema.optional(),
  /**
   * Header rules: `request` and `response`, each with `remove` (names), `set` and `add` (name:
   * value); values take placeholders ({client_ip}, {request_id}, {header.NAME}, {params.NAME}...).
   * Request rules run before the handler (a proxy forwards the result); response rules when the
   * head goes out, refusals included. At headerRulesSchema (src/middleware/headers.ts) and in
   * docs/headers.md.
   */
  headers: headerRulesSchema.optional(),
  /**
   * Pages for the errors the daemon answers itself (404, 413, 429, 502, 503, 504...), by status
   * (`404`), class (`5xx`) or `default`: `{ file }` or `{ template }` with placeholders ({status},
   * {reason}, {request_id}...). Not for an upstream's own error responses. At errorPagesSchema
   * (src/middleware/error-pages.ts) and in docs/error-pages.md.
   */
  errorPages: errorPagesSchema.optional(),
  /**
   * On-the-fly response compression (gzip, brotli, zstd where Node has it); off unless set.
   * `true` means the defaults; its fields (encodings, minSize, types, level) are documented at
   * compressSchema (src/middleware/compress.ts) and in docs/compression.md.
   */
  compress: compressSchema.optional(),
  /**
   * Traffic inspection: literal-pattern rules over the request line, path, query (decoded as
   * well), headers and the first bodyLimit bytes of the body; each rule logs, tags (a request
   * header for the upstream) or blocks (403). `true`: the default rules (path traversal, SQL and
   * shell injection probes, scanner user agents, log4shell); `false` on a route turns off its
   * listener's. Fields (defaultRules, disable, defaultAction, rules, bodyLimit, bodyWait,
   * tagHeader, logPerSecond) at inspectSchema (src/inspect/http.ts) and in docs/inspect.md.
   */
  inspect: inspectSchema.optional(),
  /**
   * Middleware written as functions `(ctx, next) => ...`, in a config built in code (a config file
   * cannot hold one). They run in order after the built-in steps above, right before the
   * handler; a route's `use` replaces its listener's, like every other field here. They belong to
   * the program that passed them (the same function may serve several yards or reloads): the yard
   * never calls a `close` on them; close what they hold after `yard.stop()`.
   */
  use: z
    .array(z.custom<Middleware>(isFunction, { message: 'expected a function (ctx, next) => void; middleware in `use` is given in code, through the library, not in a config file' }))
    .optional(),
});

/** A handler type no module has: the nearest one when it looks like a typo, else every type. */
function unknownHandlerType(type: string, types: string[]): string {
  const near = closestName(type, types);
  return `unknown handler type ${JSON.stringify(type)}; ${near ? `did you mean "${near}"? ` : ''}expected one of: ${types.join(', ')}`;
}

/**
 * The handler object: `{ type: NAME, ...that module's fields }`, validated by the module's own
 * schema; or, in a config built in code, a function `(ctx) => ...` that answers the request
 * itself (an inline handler, src/handlers/inline.ts). Typed for programs as HandlerConfig
 * (src/handlers/configs.ts): an unknown type or a misspelt field is a compile error there.
 */
function handlerSchema(): z.ZodType<HandlerConfigOutput, HandlerConfig> {
  const mods = handlerModules();
  const types = mods.map((m) => m.type);
  const inline = (value: unknown) => (isFunction(value) ? { type: 'inline', handle: value } : value);
  return z.preprocess(inline, z.looseObject({ type: z.string() }).transform((value, ctx) => {
    const mod = handlerModule(value.type);
    if (!mod) {
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: unknownHandlerType(value.type, types),
      });
      return z.NEVER;
    }
    const parsed = mod.schema.safeParse(value, { error: humanError });
    if (!parsed.success) {
      // Re-raised as custom issues: zod cannot carry another schema's issue kinds through a transform.
      for (const issue of parsed.error.issues.flatMap(explainIssue)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      return z.NEVER;
    }
    return parsed.data as HandlerConfigOutput;
  })) as unknown as z.ZodType<HandlerConfigOutput, HandlerConfig>;
}

/** A handler config once parsed: its module's own output type, which only the module reads. */
export type HandlerConfigOutput = { type: string };

const oneOrMore = () => z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);
const FINGERPRINT = /^(?:[0-9A-Fa-f]{64}|(?:[0-9A-Fa-f]{2}:){31}[0-9A-Fa-f]{2})$/;

/**
 * The connection's client certificate (tls.clientAuth on the listener; docs/tls.md). Every field
 * given must match. With subject, fingerprint, uri or dns, only a verified certificate matches;
 * `verified: true` alone matches any verified one; `verified: false`, a request without one
 * (none sent, or one that did not verify in clientAuth mode `request`).
 */
const clientCertMatchSchema = z
  .strictObject({
    /** The subject in RFC 2253 form, most specific first, exactly: `CN=alice,O=Example`. */
    subject: oneOrMore().optional(),
    /** SHA-256 of the certificate: 64 hex digits, with or without colons, any case. */
    fingerprint: z.union([z.string().regex(FINGERPRINT, 'expected a SHA-256 fingerprint (64 hex digits, colons allowed)'), z.array(z.string().regex(FINGERPRINT, 'expected a SHA-256 fingerprint (64 hex digits, colons allowed)')).min(1)]).optional(),
    /** A URI subjectAltName (e.g. a SPIFFE ID) the certificate carries. */
    uri: oneOrMore().optional(),
    /** A DNS subjectAltName the certificate carries (exact, case-insensitive). */
    dns: oneOrMore().optional(),
    verified: z.boolean().optional(),
  })
  .superRefine((m, ctx) => {
    if (m.verified === false && (m.subject ?? m.fingerprint ?? m.uri ?? m.dns) !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['verified'], message: 'subject, fingerprint, uri and dns match only verified certificates; verified: false cannot go with them' });
    }
  });

const matchSchema = z.strictObject({
  /** Host header to match (without port); `*.example.com` matches one or more labels. */
  host: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /** Methods to match, e.g. GET or [GET, HEAD]. */
  method: z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]).optional(),
  /**
   * Path pattern (docs/routing.md): exact (`/health`), prefix (`/static/*`: `/static` and
   * everything below), a glob where `*` matches within one segment and `**` across segments
   * (`/img/*.png`), or with named parameters: `:name` is one non-empty segment (`/users/:id`),
   * `*name` as the last segment is the rest of the path, slashes included (`/files/*path`).
   * Handlers get the values, percent-decoded, as `params`.
   */
  path: z
    .string()
    .startsWith('/', 'a path pattern starts with "/"')
    .superRefine((pattern, ctx) => {
      const problem = pattern.startsWith('/') ? pathPatternProblem(pattern) : undefined;
      if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
    })
    .default('/*'),
  /** The client certificate (mTLS): subject, fingerprint, SANs, verified. */
  clientCert: clientCertMatchSchema.optional(),
});

const routeSchema = () =>
  z.strictObject({
    /** Name used in logs and metrics; defaults to the path pattern. */
    name: z.string().min(1).optional(),
    match: matchSchema.default({ path: '/*' }),
    handler: handlerSchema(),
    middleware: middlewareSchema.optional(),
  });

const httpListenerSchema = () =>
  z.strictObject({
    name: z.string().min(1),
    protocol: z.literal('http'),
    address: address(),
    limits: httpLimitsSchema.default(httpLimitsSchema.parse({})),
    /**
     * Merge runs of slashes in the request path (`/a//b` -> `/a/b`) before routing, and forward
     * the merged path, as nginx does by default; otherwise `/admin//x` would miss a route for
     * `/admin/*` and reach a backend that merges them itself. `false` keeps paths as sent.
     */
    mergeSlashes: z.boolean().default(true),
    /**
     * Rewrites of the request path before routing (docs/routing.md, "Rewrites"): the first rule
     * whose `from` (a regular expression starting with `^`, or a path pattern) matches replaces
     * the path with `to`; routes match the new path, handlers see it in req.url and a proxy
     * forwards it. The result is checked as a request path again: dot segments get 400.
     */
    rewrites: rewritesSchema.optional(),
    /** HTTPS: certificates from files, the local CA or ACME (docs/tls.md). */
    tls: listenerTlsSchema().optional(),
    /** HTTP/2: on by default over TLS (ALPN), opt-in as h2c on plain text (docs/http2.md). */
    http2: http2Schema.default(http2Schema.parse({})),
    /** HTTP/3 over QUIC on the same host and port (UDP), needs tls: http3Schema in src/http3/config.ts (docs/http3.md). */
    http3: http3Schema,
    middleware: middlewareSchema.default({}),
    routes: z.array(routeSchema()).min(1, 'an http listener needs at least one route'),
    /**
     * Plain http listeners: answer every request with a redirect to the same URL on https
     * (308 by default), except ACME HTTP-01 challenge paths, which are routed as usual.
     */
    redirectToHttps: z
      .union([
        z.boolean(),
        z.strictObject({
          /** Port of the https URL (default 443, left out of the URL). */
          port: z.number().int().min(1).max(65535).optional(),
          status: z.union([z.literal(301), z.literal(302), z.literal(307), z.literal(308)]).default(308),
        }),
      ])
      .optional(),
    /**
     * Socket options (docs/socket-options.md): noDelay, keepAlive { idle, interval, count },
     * receiveBufferSize, sendBufferSize, backlog, ipv6Only, fastOpen; tcpListenerSocketSchema in
     * src/listeners/socket-options.ts. Unset ones keep the kernel's (and Node's) defaults.
     */
    socket: tcpListenerSocketSchema.optional(),
    /** HTTPS listeners: Strict-Transport-Security on every response; `true`: max-age one year. */
    hsts: z
      .union([
        z.boolean(),
        z.strictObject({
          /** Seconds (as in the header itself); default one year. */
          maxAge: z.number().int().min(0).default(31_536_000),
          includeSubDomains: z.boolean().default(false),
          preload: z.boolean().default(false),
        }),
      ])
      .optional(),
  })
  .superRefine((l, ctx) => {
    if (l.redirectToHttps && l.tls) ctx.addIssue({ code: 'custom', path: ['redirectToHttps'], message: 'redirects plain http to https; this listener is https already (tls is set)' });
    if (l.http3 && !l.tls) ctx.addIssue({ code: 'custom', path: ['http3'], message: 'HTTP/3 runs over QUIC, which is always encrypted: set tls on this listener' });
    if (l.http2.h2c && l.tls) ctx.addIssue({ code: 'custom', path: ['http2', 'h2c'], message: 'h2c is HTTP/2 over plain text; this listener has tls, where HTTP/2 is offered through ALPN (http2.enabled)' });
    const hp = parseHostPort(l.address);
    if (hp) for (const issue of socketAddressIssues(hp.host, l.socket)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    if (l.hsts && !l.tls) ctx.addIssue({ code: 'custom', path: ['hsts'], message: 'HSTS is sent on https only (browsers ignore it over plain http); set tls on this listener' });
    if (typeof l.hsts === 'object' && l.hsts.preload && (!l.hsts.includeSubDomains || l.hsts.maxAge < 31_536_000)) {
      ctx.addIssue({ code: 'custom', path: ['hsts', 'preload'], message: 'preload lists require includeSubDomains and a maxAge of at least 31536000 (one year)' });
    }
  });

const tcpListenerSchema = () =>
  z
    .strictObject({
      name: z.string().min(1),
      protocol: z.literal('tcp'),
      address: address(),
      limits: streamLimitsSchema.default(streamLimitsSchema.parse({})),
      /** TLS in front of the handler: it gets the clear stream (docs/tls.md). */
      tls: listenerTlsSchema().optional(),
      /** Socket options, as on http listeners (docs/socket-options.md; tcpListenerSocketSchema). */
      socket: tcpListenerSocketSchema.optional(),
      handler: handlerSchema(),
    })
    .superRefine((l, ctx) => {
      const hp = parseHostPort(l.address);
      if (hp) for (const issue of socketAddressIssues(hp.host, l.socket)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    });

const unixListenerSchema = () =>
  z.strictObject({
    name: z.string().min(1),
    protocol: z.literal('unix'),
    /** Socket file path, or `@name` for Linux's abstract namespace (no file at all). */
    path: z.string().min(1),
    /** Permission bits of the socket file (octal string). Owner only by default. */
    mode: z
      .string()
      .regex(/^0?[0-7]{3}$/, 'expected octal permission bits like "0600"')
      .default('0600'),
    limits: streamLimitsSchema.default(streamLimitsSchema.parse({})),
    /** TLS in front of the handler: it gets the clear stream (docs/tls.md). */
    tls: listenerTlsSchema().optional(),
    /** Socket options of a unix listener: backlog, receiveBufferSize, sendBufferSize (docs/socket-options.md). */
    socket: unixListenerSocketSchema.optional(),
    handler: handlerSchema(),
  });

const udpListenerSchema = () =>
  z
    .strictObject({
      name: z.string().min(1),
      protocol: z.literal('udp'),
      /** With `multicast`, `0.0.0.0:port` (`[::]:port` for IPv6 groups) or the one group's own address (docs/multicast.md). */
      address: address(),
      limits: datagramLimitsSchema.default(datagramLimitsSchema.parse({})),
      /** Groups to join (one, or a list): multicastSchema in src/listeners/multicast.ts and docs/multicast.md. */
      multicast: multicastSchema.optional(),
      /** SO_BROADCAST: the handler may send to broadcast addresses (255.255.255.255, a subnet's). Receiving broadcasts needs only a `0.0.0.0:port` address. */
      broadcast: z.boolean().default(false),
      /** SO_REUSEADDR: other sockets (other daemons, receivers) may bind the same port too, each getting every group or broadcast datagram. Fixed at bind: a reload that changes it rebinds. */
      reuseAddr: z.boolean().default(false),
      /** Socket options of a udp listener: receiveBufferSize, sendBufferSize (docs/socket-options.md). */
      socket: udpListenerSocketSchema.optional(),
      handler: handlerSchema(),
    })
    .superRefine((l, ctx) => {
      const hp = parseHostPort(l.address);
      // Runs on the raw value too when a field failed: only well-formed groups are compared.
      if (!hp || !Array.isArray(l.multicast)) return;
      for (const issue of multicastBindIssues(hp.host, l.multicast)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    });

/** Builds the schema from the handler modules registered now. */
export function configSchema() {
  const listener = z.discriminatedUnion(
    'protocol',
    [httpListenerSchema(), tcpListenerSchema(), unixListenerSchema(), udpListenerSchema(), quicListenerSchema(handlerSchema())],
    { error: () => 'expected protocol one of: http, tcp, unix, udp, quic' },
  );
  return z
    .strictObject({
      listeners: z.array(listener).min(1, 'at least one listener is needed'),
      /** Named groups of backends for proxy, tcp-proxy and udp-proxy handlers. */
      upstreams: z.record(z.string().regex(/^[A-Za-z0-9_.-]+$/, 'upstream names use letters, digits, "_", "." and "-"'), upstreamSchema).default({}),
      /** Where chat rooms live: this process (memory, the default) or a Redis shared by many daemons. */
      state: stateSchema,
      /**
       * Worker processes (docs/operations.md, "Workers"): 1 (the default) runs everything in this
       * process; N > 1 or `auto` (one per core, os.availableParallelism()) makes `serve` a primary
       * that binds every listener once and runs N workers accepting on those same sockets, each a
       * whole daemon, restarted with backoff when one dies. Chat rooms and rate limits are then
       * shared only through Redis: chat needs `state.backend: redis`, a rate limit `store: redis`
       * (memory ones are refused). A reload cannot change it; restart for that.
       */
      workers: z.union([z.number().int().min(1).max(256), z.literal('auto')], { error: () => 'expected a whole number of worker processes (1 to 256) or "auto"' }).default(1),
      shutdown: z
        .strictObject({
          /** How long in-flight requests and transfers may run after a stop signal. */
          grace: duration().default(10_000),
        })
        .default({ grace: 10_000 }),
      logging: z
        .strictObject({
          level: z.enum(['trace', 'debug', 'info', 'warn', 'error', 'fatal', 'silent']).default('info'),
          /** Access log default for every http listener (a listener's middleware may override it). */
          accessLog: z.boolean().default(true),
        })
        .default({ level: 'info', accessLog: true }),
    })
    .superRefine((config, ctx) => {
      // Also run on the raw config when fields fail (parseConfig), so both kinds come in one report.
      for (const issue of crossFieldIssues(config)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
    });
}

export type Config = z.output<ReturnType<typeof configSchema>>;
export type ConfigInput = z.input<ReturnType<typeof configSchema>>;
export type ListenerConfig = Config['listeners'][number];
export type HttpListenerConfig = Extract<ListenerConfig, { protocol: 'http' }>;
export type TcpListenerConfig = Extract<ListenerConfig, { protocol: 'tcp' }>;
export type UnixListenerConfig = Extract<ListenerConfig, { protocol: 'unix' }>;
export type UdpListenerConfig = Extract<ListenerConfig, { protocol: 'udp' }>;
export type QuicListenerConfig = Extract<ListenerConfig, { protocol: 'quic' }>;
export type RouteConfig = HttpListenerConfig['routes'][number];
export type MiddlewareConfig = z.output<typeof middlewareSchema>;
export type CorsConfig = z.output<typeof corsSchema>;
export type HttpLimitsConfig = z.output<typeof httpLimitsSchema>;
export type StreamLimitsConfig = z.output<typeof streamLimitsSchema>;

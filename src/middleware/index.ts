import type { CorsConfig, MiddlewareConfig } from '../config/schema.ts';
import { accessLog } from './access-log.ts';
import { cors } from './cors.ts';
import { requestId } from './request-id.ts';
import { headerRules } from './headers.ts';
import { errorPages } from './error-pages.ts';
import { rateLimit, type RateLimits } from './rate-limit.ts';
import { compress } from './compress.ts';
import { authMiddleware } from './auth/index.ts';
import { inspect } from '../inspect/http.ts';
import { ownMiddleware } from './lifecycle.ts';
import type { Middleware } from './types.ts';
import type { Metrics } from '../observe/metrics.ts';

export { compose, type Middleware, type MiddlewareContext, type Next } from './types.ts';
export { closeMiddleware, ownMiddleware } from './lifecycle.ts';
export { newRequestId } from './request-id.ts';
export { headerRules, headerRulesSchema, type HeaderRulesConfig } from './headers.ts';
export { errorPages, errorPagesSchema, errorPagesBeforeRouting, prepareErrorPages, ErrorPageFileError, type ErrorPagesConfig } from './error-pages.ts';
export { compileTemplate, KNOWN_PLACEHOLDERS, type Template, type PlaceholderContext } from './placeholders.ts';
export { hsts, hstsValue, redirectToHttps, HSTS_DEFAULTS, type HstsOptions, type RedirectOptions } from './https.ts';
export { authMiddleware, basicAuth, basicAuthSchema, jwtAuth, jwtSchema, forwardAuth, forwardAuthSchema, hashPassword, type AuthSettings, type BasicAuthConfig, type JwtConfig, type ForwardAuthConfig } from './auth/index.ts';
export { rateLimit, rateLimitSchema, MemoryRateLimitStore, RateLimits, redisRateLimitPaths, type RateLimitStore, type RateLimitConfig } from './rate-limit.ts';
export { compress, compressSchema, ZSTD_AVAILABLE, type CompressConfig, type CompressInput } from './compress.ts';

/** What a listener gives every chain it builds, besides the settings themselves. */
export interface ChainOptions {
  /** Access log when neither the listener nor the route says (the config's `logging.accessLog`). */
  accessLogDefault: boolean;
  /** One middleware per settings object across the routes of a listener (see buildMiddleware). */
  shared?: Map<object, Middleware>;
  /** The yard's rate limits, with the names their buckets have in a shared store. */
  limits?: { limits: RateLimits; listener: string; route: string };
  /** Where relative paths in middleware settings (a JWKS file) resolve: the config file's folder. */
  baseDir?: string;
  /** The yard's metrics, for middleware that counts (inspect's matches). */
  metrics?: Metrics;
  /**
   * What the chain lives as long as (a listener's config generation): its middleware that hold
   * resources are closed by closeMiddleware(owner) (lifecycle.ts). Without it, the caller closes
   * them itself (`close` on each).
   */
  owner?: object;
}

const CORS_DEFAULTS: CorsConfig = {
  origins: ['*'],
  methods: ['GET', 'HEAD', 'POST', 'PUT', 'PATCH', 'DELETE'],
  allowHeaders: [],
  exposeHeaders: [],
  credentials: false,
  maxAge: 600_000,
};

/**
 * The middleware chain for one route: the listener's settings, overridden field by field by the
 * route's. Order: request id (so every later step can log it), error pages (docs/error-pages.md;
 * so every later refusal gets them), access log (so refusals are logged), header rules
 * (docs/headers.md; before every step that may answer, so their refusals get the response
 * rules), inspection (docs/inspect.md; an attack is refused before CORS or auth look at it),
 * CORS (preflights are answered before anything is counted), authentication (basic,
 * jwt, forwardAuth: docs/auth.md; before the rate limit, which may key on the user it found),
 * rate limit, compression (last, so that only what the handler sends is compressed, not the
 * refusals before it).
 *
 * `options.shared` keeps one instance per settings object across the routes of a listener, so
 * that a listener-wide rate limit is one set of buckets, not one per route.
 */
export function buildMiddleware(listener: MiddlewareConfig, route: MiddlewareConfig | undefined, options: ChainOptions): Middleware[] {
  const { accessLogDefault, shared = new Map<object, Middleware>(), limits, baseDir, metrics, owner } = options;
  const merged: MiddlewareConfig = { ...listener, ...route };
  const chain: Middleware[] = [];
  const rid = merged.requestId ?? true;
  if (rid !== false) chain.push(requestId(rid === true ? { header: 'x-request-id', trustIncoming: true } : rid));
  // Right after the id: every later refusal (auth, rate limit, the handler's) gets the pages.
  if (merged.errorPages) chain.push(errorPages(merged.errorPages));
  const log = merged.accessLog ?? accessLogDefault;
  if (log !== false) chain.push(accessLog(log === true ? undefined : log));
  // Before everything that may answer: response rules reach their refusals too.
  if (merged.headers) chain.push(headerRules(merged.headers));
  // Before CORS and auth: an attack is refused before anything else looks at it (docs/inspect.md).
  if (merged.inspect) {
    // One per settings object (`true`: one for the defaults), so routes share its compiled rules.
    const key: object = merged.inspect === true ? inspect : merged.inspect;
    let inspector = shared.get(key);
    if (!inspector) {
      inspector = inspect(merged.inspect, { metrics });
      shared.set(key, inspector);
    }
    chain.push(inspector);
  }
  if (merged.cors) chain.push(cors(merged.cors === true ? CORS_DEFAULTS : merged.cors));
  chain.push(...authMiddleware(merged, shared, { baseDir }));
  if (merged.rateLimit) {
    let limiter = shared.get(merged.rateLimit);
    if (!limiter) {
      limiter = limits
        ? limits.limits.middleware(merged.rateLimit, { listener: limits.listener, route: route?.rateLimit ? limits.route : undefined })
        : rateLimit(merged.rateLimit);
      shared.set(merged.rateLimit, limiter);
    }
    chain.push(limiter);
  }
  if (merged.compress) chain.push(compress(merged.compress));
  if (owner) ownMiddleware(owner, chain);
  return chain;
}

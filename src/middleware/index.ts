import type { CorsConfig, MiddlewareConfig } from '../config/schema.ts';
import { accessLog } from './access-log.ts';
import { cors } from './cors.ts';
import { requestId } from './request-id.ts';
import { rateLimit, type RateLimits } from './rate-limit.ts';
import type { Middleware } from './types.ts';

export { compose, type Middleware, type MiddlewareContext, type Next } from './types.ts';
export { newRequestId } from './request-id.ts';
export { hsts, hstsValue, redirectToHttps, HSTS_DEFAULTS, type HstsOptions, type RedirectOptions } from './https.ts';
export { rateLimit, rateLimitSchema, MemoryRateLimitStore, RateLimits, redisRateLimitPaths, type RateLimitStore, type RateLimitConfig } from './rate-limit.ts';

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
 * route's. Order: request id (so every later step can log it), access log (so refusals are
 * logged), CORS (preflights are answered before anything is counted), rate limit.
 *
 * `shared` keeps one instance per settings object across the routes of a listener, so that a
 * listener-wide rate limit is one set of buckets, not one per route. `limits` (the yard's) builds
 * the rate limits, with the names their buckets have in a shared store.
 */
export function buildMiddleware(
  listener: MiddlewareConfig,
  route: MiddlewareConfig | undefined,
  accessLogDefault: boolean,
  shared: Map<object, Middleware> = new Map(),
  limits?: { limits: RateLimits; listener: string; route: string },
): Middleware[] {
  const merged: MiddlewareConfig = { ...listener, ...route };
  const chain: Middleware[] = [];
  const rid = merged.requestId ?? true;
  if (rid !== false) chain.push(requestId(rid === true ? { header: 'x-request-id', trustIncoming: true } : rid));
  if (merged.accessLog ?? accessLogDefault) chain.push(accessLog());
  if (merged.cors) chain.push(cors(merged.cors === true ? CORS_DEFAULTS : merged.cors));
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
  return chain;
}

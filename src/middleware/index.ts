import type { CorsConfig, MiddlewareConfig } from '../config/schema.ts';
import { accessLog } from './access-log.ts';
import { cors } from './cors.ts';
import { requestId } from './request-id.ts';
import type { Middleware } from './types.ts';

export { compose, type Middleware, type MiddlewareContext, type Next } from './types.ts';
export { newRequestId } from './request-id.ts';

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
 * route's. Order: request id (so every later step can log it), access log, CORS.
 */
export function buildMiddleware(listener: MiddlewareConfig, route: MiddlewareConfig | undefined, accessLogDefault: boolean): Middleware[] {
  const merged: MiddlewareConfig = { ...listener, ...route };
  const chain: Middleware[] = [];
  const rid = merged.requestId ?? true;
  if (rid !== false) chain.push(requestId(rid === true ? { header: 'x-request-id', trustIncoming: true } : rid));
  if (merged.accessLog ?? accessLogDefault) chain.push(accessLog());
  if (merged.cors) chain.push(cors(merged.cors === true ? CORS_DEFAULTS : merged.cors));
  return chain;
}

import type { HttpHandler, UpgradeContext } from '../handlers/types.ts';
import { compose, type Middleware, type MiddlewareContext } from '../middleware/index.ts';

// `middleware.use` (functions given in code): they run after the built-in steps of the route's
// chain (request id, access log, CORS, rate limit, ...), right before the handler, so they see
// the request id and only requests the built-in steps let through. Put in front of the handler
// here, where the yard provisions it, the listener's chain stays as it is.

/** `handler` with `use` run before it, for requests and upgrades alike. */
export function withInlineMiddleware(handler: HttpHandler, use: readonly Middleware[]): HttpHandler {
  if (use.length === 0) return handler;
  const handle = compose([...use], (ctx) => handler.handle(ctx));
  const upgrade = handler.upgrade;
  const upgradeThrough = upgrade && compose([...use], (ctx) => upgrade.call(handler, ctx as UpgradeContext));
  return {
    // The listener's context is a MiddlewareContext (src/listeners/http/context.ts).
    handle: (ctx) => handle(ctx as MiddlewareContext),
    upgrades: handler.upgrades,
    upgrade: upgradeThrough && ((ctx) => upgradeThrough(ctx as UpgradeContext & MiddlewareContext)),
    // drain and close stay with the handler itself, which the yard keeps and closes.
  };
}

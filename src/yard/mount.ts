import type { IncomingMessage, ServerResponse } from 'node:http';
import type { ConfigInput, MiddlewareConfig } from '../config/schema.ts';
import { parseConfig } from '../config/load.ts';
import { ConfigError } from '../config/errors.ts';
import type { HttpContext } from '../handlers/types.ts';
import { replyError } from '../handlers/http/reply.ts';
import { ProvisionError } from './errors.ts';
import { Yard, type YardOptions } from './yard.ts';

// A yard's HTTP routes inside a server of one's own: `http.createServer(app.handle)`, express
// middleware (`app.use(routes.handle)`), or fastify (src/yard/fastify.ts). Underneath is a yard
// started with `bind: false` and one http listener that binds nothing: requests are handed to it
// (Yard.requestListener), so route matching, middleware, handlers, upstream groups with their
// health checks, limits and metrics are the daemon's own, not a second router.
//
// A request no route takes goes to `next` (express's convention) when one is given: two last
// routes catch every path and method and hand the request back, with every middleware turned
// off for them (no request id header, no access log line, no rate limit) so that whatever
// answers it next sees it untouched. Without `next` it is a 404, as in the daemon.

type HttpListenerInput = Extract<ConfigInput['listeners'][number], { protocol: 'http' }>;

/** The routes to mount, with what they need: the fields of an http listener, the yard's upstreams. */
export interface RoutesConfig {
  /** Routes, as on an http listener (match, handler, middleware), first match wins. */
  routes: HttpListenerInput['routes'];
  /** Middleware for every route (a route's own fields replace these one by one). */
  middleware?: HttpListenerInput['middleware'];
  /** maxBodySize applies (413); connection limits and timeouts are the host server's own. */
  limits?: HttpListenerInput['limits'];
  /** Merge runs of slashes in the path before routing (default true). */
  mergeSlashes?: HttpListenerInput['mergeSlashes'];
  /** Upstream groups for proxy handlers, as the config's `upstreams:`; their health checks run until close(). */
  upstreams?: ConfigInput['upstreams'];
  /** Shared state (chat rooms, Redis-backed rate limits), as the config's `state:`. */
  state?: ConfigInput['state'];
  logging?: ConfigInput['logging'];
}

export interface MountOptions extends Pick<YardOptions, 'baseDir' | 'logger' | 'logLevel' | 'metrics' | 'dataDir'> {
  /** The listener name logs and metrics give these routes. Default "mounted". */
  name?: string;
}

/** What a request no route takes is handed to (express's and connect's `next`). */
export type NextFunction = (err?: unknown) => void;

export interface MountedRoutes {
  /**
   * Serves one request (a bound function: `http.createServer(routes.handle)`). With `next`, a
   * request no route takes is handed to it untouched; without, it gets a 404.
   */
  readonly handle: (req: IncomingMessage, res: ServerResponse, next?: NextFunction) => void;
  /** The yard underneath (metrics, upstream groups, its logger). */
  readonly yard: Yard;
  /**
   * Stops the routes: handlers and upstream groups are closed, health checks stop. Requests
   * arriving afterwards go to `next`, or get a 503.
   */
  close(): Promise<void>;
}

/** Route name of the catch-all routes that hand a request back (metrics label). */
const FALLTHROUGH_ROUTE = '(next)';

/** Validates `config`, provisions its handlers and upstreams, and returns the routes to mount. */
export async function createRoutes(config: RoutesConfig, options: MountOptions = {}): Promise<MountedRoutes> {
  const name = options.name ?? 'mounted';
  const nexts = new WeakMap<IncomingMessage, NextFunction>();
  const handBack = (ctx: HttpContext): void => {
    const next = nexts.get(ctx.req as IncomingMessage);
    if (next) {
      nexts.delete(ctx.req as IncomingMessage);
      next();
    } else replyError(ctx.res, 404, 'not found');
  };
  const listener: HttpListenerInput = {
    name,
    protocol: 'http',
    // Never bound (bind: false); the schema wants an address all the same.
    address: '127.0.0.1:0',
    routes: [
      ...config.routes,
      // Every path and every method: the first takes all but TRACE (which no route takes unless
      // it names it), the second TRACE.
      { name: FALLTHROUGH_ROUTE, match: { path: '/**' }, handler: handBack },
      { name: FALLTHROUGH_ROUTE, match: { path: '/**', method: 'TRACE' }, handler: handBack },
    ],
    middleware: config.middleware,
    limits: config.limits,
    mergeSlashes: config.mergeSlashes,
  };
  const input: ConfigInput = { listeners: [listener], upstreams: config.upstreams, state: config.state, logging: config.logging };
  let parsed;
  try {
    parsed = parseConfig(input, 'routes');
  } catch (err) {
    // Paths as the caller wrote them: `routes[0].handler.root`, not `listeners[0].routes[0]...`.
    if (err instanceof ConfigError) throw new ConfigError(err.source, err.issues.map((i) => ({ ...i, path: unlisten(i.path) })));
    throw err;
  }
  const http = parsed.listeners[0];
  if (http.protocol !== 'http') throw new Error('unreachable: the mounted listener is http');
  // The catch-all routes run no middleware at all: every field of the listener's is overridden.
  const off: Record<string, unknown> = Object.fromEntries(Object.keys(http.middleware).map((k) => [k, undefined]));
  const neutral = { ...off, requestId: false, accessLog: false } as MiddlewareConfig;
  for (const r of http.routes.slice(-2)) r.middleware = neutral;

  let yard: Yard;
  try {
    yard = await Yard.start(parsed, { ...options, bind: false });
  } catch (err) {
    if (err instanceof ProvisionError) throw new ProvisionError(unlisten(err.path), err.handlerType, err.message.slice(err.message.indexOf(': ') + 2), { cause: err.cause });
    throw err;
  }
  const sink = yard.requestListener(name);
  let closed: Promise<void> | undefined;
  const handle = (req: IncomingMessage, res: ServerResponse, next?: NextFunction): void => {
    if (closed) {
      if (next) next();
      else replyError(res, 503, 'shutting down');
      return;
    }
    if (next) nexts.set(req, next);
    sink(req, res);
  };
  return {
    handle,
    yard,
    close: () => (closed ??= yard.stop().then(() => undefined)),
  };
}

/** `listeners[0].routes[1].handler` -> `routes[1].handler`. */
function unlisten(path: string): string {
  return path.replace(/^listeners\[0\]\.?/, '');
}

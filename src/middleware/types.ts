import type { HttpContext } from '../handlers/types.ts';

/** A request's context as middleware sees it: the handler's context, plus the id it may set. */
export interface MiddlewareContext extends HttpContext {
  requestId: string;
}

/** Calls the rest of the chain; its result is a promise only when something down the chain is async. */
export type Next = () => void | Promise<void>;

/**
 * Runs around the handler: do something, `await next()`, maybe do something after. One that
 * holds something beyond a request (a connection pool) has `close`, which the listener calls once
 * the config generation it was built for has retired and its requests have finished, or when the
 * listener stops (lifecycle.ts); after it, the middleware is not called again. (Functions given
 * in `middleware.use` run as part of their route's handler: their resources are the program's.)
 */
export type Middleware = ((ctx: MiddlewareContext, next: Next) => void | Promise<void>) & {
  close?: () => void | Promise<void>;
};

/**
 * Runs middleware in order, then `last`. Synchronous all the way when every step is: no promise
 * is made per request unless a step is async (this is the hot path of every request).
 */
export function compose(
  middleware: Middleware[],
  last: (ctx: MiddlewareContext) => void | Promise<void>,
): (ctx: MiddlewareContext) => void | Promise<void> {
  if (middleware.length === 0) return last;
  return (ctx) => {
    const dispatch = (i: number): void | Promise<void> => (i === middleware.length ? last(ctx) : middleware[i](ctx, () => dispatch(i + 1)));
    return dispatch(0);
  };
}

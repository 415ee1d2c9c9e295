import type { HttpContext } from '../handlers/types.ts';

/** A request's context as middleware sees it: the handler's context, plus the id it may set. */
export interface MiddlewareContext extends HttpContext {
  requestId: string;
}

export type Next = () => Promise<void>;

/** Runs around the handler: do something, `await next()`, maybe do something after. */
export type Middleware = (ctx: MiddlewareContext, next: Next) => void | Promise<void>;

/** Runs middleware in order, then `last`. */
export function compose(middleware: Middleware[], last: (ctx: MiddlewareContext) => void | Promise<void>): (ctx: MiddlewareContext) => Promise<void> {
  if (middleware.length === 0) return async (ctx) => last(ctx);
  return (ctx) => {
    const dispatch = async (i: number): Promise<void> => {
      if (i === middleware.length) return last(ctx);
      await middleware[i](ctx, () => dispatch(i + 1));
    };
    return dispatch(0);
  };
}

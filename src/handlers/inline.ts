import { z } from 'zod';
import type { HandlerModule, HttpContext } from './types.ts';

// Inline handlers: in a config built in code, `handler: async (ctx) => { ... }` answers the
// request itself. The config schema turns such a function into `{ type: 'inline', handle }`
// (src/config/schema.ts, handlerSchema), so the rest of the daemon sees one more handler module.
// A function cannot come from YAML or JSON: `type: inline` in a file fails on `handle`.
// What a thrown error or a rejected promise becomes is the listener's business, as for every
// handler: a 500 (replyError), logged with the request id; the daemon keeps serving.

/** A request handler written as a function: answers through `ctx.res` (or throws, for a 500). */
export type InlineHandler = (ctx: HttpContext) => void | Promise<void>;

export function isFunction(value: unknown): value is (...args: never[]) => unknown {
  return typeof value === 'function';
}

/** How a function is shown where the config is printed (admin API GET /config, logs). */
export function describeFunction(fn: (...args: never[]) => unknown): string {
  return fn.name ? `[function ${fn.name}]` : '[function]';
}

export const inlineSchema = z.strictObject({
  type: z.literal('inline'),
  /** The function that answers each request (given in code; a config file cannot hold one). */
  handle: z.custom<InlineHandler>(isFunction, {
    message: 'expected a function (ctx) => void; inline handlers are given in code, through the library, not in a config file',
  }),
});

export type InlineHandlerConfig = z.input<typeof inlineSchema>;

export const inlineHandler: HandlerModule<z.output<typeof inlineSchema>> = {
  type: 'inline',
  summary: 'a function given in code answers the request (library only)',
  schema: inlineSchema,
  http: (config) => ({ handle: config.handle }),
};

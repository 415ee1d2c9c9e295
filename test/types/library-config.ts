// Type-level test, checked by `npx tsc --noEmit` (tsconfig.json includes test/): every
// `@ts-expect-error` below must stay an error, or tsc fails on the unused directive. Nothing
// here runs; test/library-typed.test.ts runs tsc over this file.

import { createRoutes, defineConfig, untypedHandler, type ConfigInput, type HandlerConfig, type RoutesConfig } from '../../src/index.ts';

// Third-party modules register their config type by augmenting HandlerConfigs.
declare module '../../src/index.ts' {
  interface HandlerConfigs {
    hello: { type: 'hello'; greeting?: string };
  }
}

const good = defineConfig({
  listeners: [
    {
      name: 'web',
      protocol: 'http',
      address: '127.0.0.1:0',
      routes: [
        { match: { path: '/static/*' }, handler: { type: 'static', root: './public', cache: { revalidate: '1s', maxFileSize: '1mb' } } },
        { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api', stripPrefix: true } },
        { match: { path: '/health' }, handler: { type: 'respond', status: 200, body: 'ok' } },
        { match: { path: '/hi' }, handler: async (ctx) => void ctx.res.end(`hi ${ctx.requestId}`) },
        { match: { path: '/hello' }, handler: { type: 'hello', greeting: 'hey' } },
        { match: { path: '/other' }, handler: untypedHandler({ type: 'registered-at-run-time', anything: 1 }) },
      ],
      middleware: { cors: true, use: [async (ctx, next) => { ctx.res.setHeader('x-seen', ctx.requestId); await next(); }] },
    },
    { name: 'echo', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } },
  ],
  upstreams: { api: { targets: ['http://127.0.0.1:9001'] } },
});
void good;

const handlers: HandlerConfig[] = [
  // @ts-expect-error an unknown handler type
  { type: 'nope', whatever: 1 },
  // @ts-expect-error a misspelt field of a built-in module (static has `root`)
  { type: 'static', roots: './public' },
  // @ts-expect-error a field of the wrong kind
  { type: 'respond', status: 'ok' },
  // @ts-expect-error a required field left out (proxy needs `upstream`)
  { type: 'proxy' },
  // @ts-expect-error an augmented module's fields are checked too
  { type: 'hello', greeting: 3 },
  // @ts-expect-error an inline handler takes the request's context, not something else
  (ctx: number) => void ctx,
];
void handlers;

const bad: ConfigInput = {
  listeners: [
    {
      name: 'web',
      protocol: 'http',
      address: '127.0.0.1:0',
      // @ts-expect-error a handler of an unknown type inside a whole config
      routes: [{ match: { path: '/' }, handler: { type: 'nope', whatever: 1 } }],
    },
  ],
};
void bad;

const mounted: RoutesConfig = {
  routes: [{ match: { path: '/x' }, handler: { type: 'echo' } }],
  // @ts-expect-error middleware in `use` are functions
  middleware: { use: ['not a function'] },
};
void createRoutes(mounted);

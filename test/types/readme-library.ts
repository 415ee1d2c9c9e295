// The README's "As a library" example, type-checked by `tsc --noEmit` (the project's tsconfig
// includes test/): if the API it shows changes, this stops compiling.
import http from 'node:http';
import { serve, defineConfig, createRoutes } from '../../src/index.ts';

export async function readmeExample(): Promise<void> {
  await serve(defineConfig({
    listeners: [{
      name: 'api', protocol: 'http', address: '127.0.0.1:8080',
      middleware: { use: [async (ctx, next) => { ctx.res.setHeader('x-powered-by', 'me'); await next(); }] },
      routes: [{ match: { path: '/users/:id' }, handler: async (ctx) => { ctx.res.end(`user ${ctx.params.id}\n`); } }],
    }],
  }));
  const routes = await createRoutes({ routes: [{ match: { path: '/static/*' }, handler: { type: 'static', root: './public' } }] });
  http.createServer((req, res) => routes.handle(req, res, () => { res.statusCode = 404; res.end(); })).listen(3000);
}

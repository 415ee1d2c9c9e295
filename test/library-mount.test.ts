import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import { request } from 'undici';
import Fastify from 'fastify';
import { createRoutes, switchyardFastify, ConfigError, readBody, type RoutesConfig } from '../src/index.ts';

// A yard's routes mounted into a server of one's own: node:http (with express-style `next`)
// and fastify, on 127.0.0.1:0, with real clients.

function listen(server: Server): Promise<string> {
  return new Promise((resolve) => server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)));
}

function closeServer(server: Server): Promise<void> {
  server.closeAllConnections();
  return new Promise((resolve) => server.close(() => resolve()));
}

/** A backend for the proxy route that counts its health probes. */
async function backend(): Promise<{ server: Server; url: string; probes: () => number }> {
  let probes = 0;
  const server = createServer((req, res) => {
    if (req.url === '/health') {
      probes++;
      res.end('ok');
      return;
    }
    res.setHeader('content-type', 'text/plain');
    res.end(`backend saw ${req.method} ${req.url}`);
  });
  return { server, url: await listen(server), probes: () => probes };
}

async function until(cond: () => boolean, what: string, limitMs = 10_000): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

test('routes mounted into node:http: static, respond, proxy with health checks; no match goes to next; close stops the health checks', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-mount-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'hello.txt'), 'hello from a file\n');
  const up = await backend();
  t.after(() => closeServer(up.server));

  const config: RoutesConfig = {
    routes: [
      { match: { path: '/files/*' }, handler: { type: 'static', root: dir } },
      { match: { path: '/health' }, handler: { type: 'respond', body: 'mounted ok\n' } },
      { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api', stripPrefix: true } },
      { match: { path: '/only-get', method: 'GET' }, handler: { type: 'respond', body: 'got\n' } },
    ],
    middleware: { accessLog: false },
    upstreams: { api: { targets: [up.url], health: { interval: '50ms' } } },
  };
  const routes = await createRoutes(config, { logLevel: 'silent' });
  let closed = false;
  t.after(() => (closed ? undefined : routes.close()));

  const host = createServer((req, res) => routes.handle(req, res, () => res.end(`next got ${req.method} ${req.url}, request id header: ${String(res.getHeader('x-request-id'))}`)));
  const base = await listen(host);
  t.after(() => closeServer(host));
  const bare = createServer(routes.handle);
  const bareBase = await listen(bare);
  t.after(() => closeServer(bare));

  const file = await request(`${base}/files/hello.txt`);
  assert.equal(file.statusCode, 200);
  assert.equal(await file.body.text(), 'hello from a file\n');
  assert.ok(file.headers['x-request-id'], 'the mounted routes run their middleware');

  const health = await request(`${base}/health`);
  assert.equal(await health.body.text(), 'mounted ok\n');

  await until(() => up.probes() > 0, 'a health probe of the upstream group');
  const proxied = await request(`${base}/api/things?x=1`);
  assert.equal(proxied.statusCode, 200);
  assert.equal(await proxied.body.text(), 'backend saw GET /things?x=1');

  // No route takes these: handed to next untouched (no request id set on the way).
  const other = await request(`${base}/elsewhere`);
  assert.equal(await other.body.text(), 'next got GET /elsewhere, request id header: undefined');
  const wrongMethod = await request(`${base}/only-get`, { method: 'DELETE' });
  assert.equal(await wrongMethod.body.text(), 'next got DELETE /only-get, request id header: undefined');

  // Without next: the daemon's own 404.
  const missing = await request(`${bareBase}/elsewhere`);
  assert.equal(missing.statusCode, 404);
  await missing.body.dump();

  await routes.close();
  closed = true;
  const probesAtClose = up.probes();
  // Ten intervals of the health check: none may come once the routes are closed.
  await new Promise((r) => setTimeout(r, 500));
  assert.equal(up.probes(), probesAtClose, 'health checks stopped');
  const after = await request(`${base}/health`);
  assert.equal(await after.body.text(), 'next got GET /health, request id header: undefined');
  const afterBare = await request(`${bareBase}/health`);
  assert.equal(afterBare.statusCode, 503);
  await afterBare.body.dump();
});

test('a bad mounted config names the field as the caller wrote it', async () => {
  await assert.rejects(
    createRoutes({ routes: [{ match: { path: '/x' }, handler: { type: 'proxy', upstream: 'nowhere' } }] }, { logLevel: 'silent' }),
    (err: unknown) => err instanceof ConfigError && err.issues.some((i) => i.path === 'routes[0].handler.upstream' && /no upstream named "nowhere"/.test(i.message)),
  );
});

test('routes mounted into fastify: a fastify route lives beside them, and fastify answers what they hand back', async (t) => {
  const app = Fastify();
  t.after(() => app.close());
  app.get('/from-fastify', async () => ({ from: 'fastify' }));
  const plugin = switchyardFastify(
    {
      routes: [
        { match: { path: '/hi' }, handler: (ctx) => void ctx.res.end(`hi from ${ctx.listener}`) },
        // The raw request body is still unread when the routes get it.
        {
          match: { path: '/upload', method: 'POST' },
          handler: async (ctx) => {
            const body = await readBody(ctx.req, ctx.limits.maxBodySize);
            ctx.res.end(`got ${body.length} bytes: ${body.toString('utf8')}`);
          },
        },
      ],
      middleware: { accessLog: false },
    },
    { name: 'in-fastify', logLevel: 'silent' },
  );
  await app.register(plugin);
  app.get('/also-fastify', async () => 'registered after the plugin');
  await app.listen({ host: '127.0.0.1', port: 0 });
  const base = `http://127.0.0.1:${(app.server.address() as AddressInfo).port}`;

  const hi = await request(`${base}/hi`);
  assert.equal(hi.statusCode, 200);
  assert.equal(await hi.body.text(), 'hi from in-fastify');

  const upload = await request(`${base}/upload`, { method: 'POST', body: '{"a":1}', headers: { 'content-type': 'application/json' } });
  assert.equal(await upload.body.text(), 'got 7 bytes: {"a":1}');

  const own = await request(`${base}/from-fastify`);
  assert.equal(own.statusCode, 200);
  assert.deepEqual(await own.body.json(), { from: 'fastify' });
  const later = await request(`${base}/also-fastify`);
  assert.equal(await later.body.text(), 'registered after the plugin');

  const missing = await request(`${base}/nowhere`);
  assert.equal(missing.statusCode, 404);
  assert.match(await missing.body.text(), /Route GET:\/nowhere not found/, 'fastify\'s own 404');

  assert.ok(plugin.routes, 'the plugin keeps its routes');
  await app.close();
  // fastify's close closed the mounted routes: a request handed to them goes to next.
  let handedBack = false;
  const res = { headersSent: false } as never;
  plugin.routes.handle({} as never, res, () => {
    handedBack = true;
  });
  assert.ok(handedBack);
});

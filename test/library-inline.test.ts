import { test } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { request } from 'undici';
import pino from 'pino';
import { serve, defineConfig, parseConfig, parseConfigText, ConfigError, type Middleware } from '../src/index.ts';

// Inline handlers and middleware (functions in a config built in code), over real HTTP.

/** A logger whose JSON lines are kept for the test to read. */
function capturedLogger(): { logger: pino.Logger; lines: Record<string, unknown>[] } {
  const lines: Record<string, unknown>[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString('utf8').split('\n')) if (line) lines.push(JSON.parse(line) as Record<string, unknown>);
      done();
    },
  });
  return { logger: pino({ level: 'info' }, sink), lines };
}

test('an inline handler answers; one that throws or rejects is a 500 logged with the request id, and the daemon keeps serving', async () => {
  const { logger, lines } = capturedLogger();
  const yard = await serve(
    defineConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware: { accessLog: false },
          routes: [
            { match: { path: '/hi' }, handler: async (ctx) => void ctx.res.end(`hi from ${ctx.route}`) },
            {
              match: { path: '/throws' },
              handler: () => {
                throw new Error('thrown on purpose');
              },
            },
            { match: { path: '/rejects' }, handler: async () => Promise.reject(new Error('rejected on purpose')) },
          ],
        },
      ],
    }),
    { logger },
  );
  try {
    const base = `http://127.0.0.1:${yard.address('web').port}`;
    const hi = await request(`${base}/hi`);
    assert.equal(hi.statusCode, 200);
    assert.equal(await hi.body.text(), 'hi from /hi');

    for (const [path, message] of [['/throws', 'thrown on purpose'], ['/rejects', 'rejected on purpose']] as const) {
      const res = await request(`${base}${path}`, { headers: { 'x-request-id': `req-${path.slice(1)}` } });
      assert.equal(res.statusCode, 500, path);
      assert.match(await res.body.text(), /internal error/);
      const logged = lines.find((l) => (l.err as { message?: string } | undefined)?.message === message);
      assert.ok(logged, `the failure of ${path} is logged`);
      assert.equal(logged.requestId, `req-${path.slice(1)}`);
      assert.equal(logged.level, 50);
      // Still serving.
      const again = await request(`${base}/hi`);
      assert.equal(again.statusCode, 200);
      await again.body.dump();
    }
  } finally {
    await yard.stop(1000);
  }
});

test('inline middleware: adds a header before the handler, or answers itself without calling next', async () => {
  const calls: string[] = [];
  const stamp: Middleware = async (ctx, next) => {
    ctx.res.setHeader('x-stamped', ctx.requestId);
    calls.push(`stamp ${ctx.route}`);
    await next();
  };
  const gate: Middleware = (ctx, next) => {
    if (ctx.req.headers['x-key'] !== 'open sesame') {
      ctx.res.statusCode = 401;
      ctx.res.end('no key\n');
      return;
    }
    return next();
  };
  const yard = await serve(
    defineConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware: { accessLog: false, use: [stamp] },
          routes: [
            { match: { path: '/open' }, handler: (ctx) => void ctx.res.end('open\n') },
            // A route's `use` replaces the listener's.
            { match: { path: '/guarded' }, middleware: { use: [stamp, gate] }, handler: { type: 'respond', body: 'inside\n' } },
          ],
        },
      ],
    }),
    { logLevel: 'silent' },
  );
  try {
    const base = `http://127.0.0.1:${yard.address('web').port}`;
    const open = await request(`${base}/open`, { headers: { 'x-request-id': 'abc-123' } });
    assert.equal(open.statusCode, 200);
    assert.equal(open.headers['x-stamped'], 'abc-123');
    assert.equal(await open.body.text(), 'open\n');

    const refused = await request(`${base}/guarded`);
    assert.equal(refused.statusCode, 401);
    assert.equal(await refused.body.text(), 'no key\n');
    assert.ok(refused.headers['x-stamped'], 'the first middleware ran before the gate');

    const let_in = await request(`${base}/guarded`, { headers: { 'x-key': 'open sesame' } });
    assert.equal(let_in.statusCode, 200);
    assert.equal(await let_in.body.text(), 'inside\n');
    assert.deepEqual(calls, ['stamp /open', 'stamp /guarded', 'stamp /guarded']);
  } finally {
    await yard.stop(1000);
  }
});

test('an inline handler that never answers is cut off by the idle timeout; the daemon keeps serving', async () => {
  const yard = await serve(
    defineConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          limits: { idleTimeout: '300ms' },
          routes: [
            { match: { path: '/never' }, handler: () => undefined },
            { match: { path: '/ok' }, handler: (ctx) => void ctx.res.end('ok') },
          ],
        },
      ],
    }),
    { logLevel: 'silent' },
  );
  try {
    const base = `http://127.0.0.1:${yard.address('web').port}`;
    // undici's own timeouts are far longer than the listener's: the listener is what closes it.
    await assert.rejects(request(`${base}/never`, { headersTimeout: 20_000, bodyTimeout: 20_000 }), (err: Error) => /closed|socket/i.test(err.message));
    const ok = await request(`${base}/ok`);
    assert.equal(await ok.body.text(), 'ok');
  } finally {
    await yard.stop(1000);
  }
});

test('the admin API shows inline functions by name in GET /config', async () => {
  const hello = (ctx: { res: { end(body: string): void } }) => ctx.res.end('hello');
  const yard = await serve(
    defineConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/hello' }, handler: hello },
            { match: { path: '/*' }, middleware: { use: [async (_ctx, next) => next()] }, handler: { type: 'admin' } },
          ],
        },
      ],
    }),
    { logLevel: 'silent' },
  );
  try {
    const base = `http://127.0.0.1:${yard.address('web').port}`;
    const res = await request(`${base}/config`);
    assert.equal(res.statusCode, 200);
    const shown = (await res.body.json()) as { listeners: { routes: { handler: { type: string; handle: string }; middleware?: { use?: string[] } }[] }[] };
    const routes = shown.listeners[0].routes;
    assert.deepEqual(routes[0].handler, { type: 'inline', handle: '[function hello]' });
    assert.deepEqual(routes[1].middleware?.use, ['[function]']);
  } finally {
    await yard.stop(1000);
  }
});

test('a config file cannot hold an inline handler or middleware: clear errors naming the field', () => {
  const yaml = `
listeners:
  - name: web
    protocol: http
    address: 127.0.0.1:0
    middleware: { use: [log] }
    routes:
      - handler: { type: inline, handle: "ctx => ctx.res.end()" }
`;
  assert.throws(
    () => parseConfig(parseConfigText(yaml, 'app.yaml'), 'app.yaml'),
    (err: unknown) => {
      assert.ok(err instanceof ConfigError);
      const byPath = new Map(err.issues.map((i) => [i.path, i.message]));
      assert.match(byPath.get('listeners[0].routes[0].handler.handle') ?? '', /expected a function.*given in code/);
      assert.match(byPath.get('listeners[0].middleware.use[0]') ?? '', /expected a function.*given in code/);
      return true;
    },
  );
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { z } from 'zod';
import { serve, parseConfig, ConfigError, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { replyJson } from '../src/handlers/http/reply.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';

// A listener's `rewrites:` with real clients: curl over HTTP/1.1 and h2c against a yard whose
// routes answer with what their handler saw, and a real backend behind a proxy route that
// records the path it was sent.

const contextSchema = z.strictObject({ type: z.literal('rewrite-context-test'), tag: z.string() });
if (handlerModule('rewrite-context-test') === undefined) {
  registerHandler({
    type: 'rewrite-context-test',
    summary: 'test: answers with its context as JSON',
    schema: contextSchema,
    http: (config) => ({
      handle(ctx) {
        replyJson(ctx.res, 200, { tag: config.tag, params: ctx.params, pathRest: ctx.pathRest, url: ctx.req.url });
      },
    }),
  });
}

const at = (path: string, tag: string) => ({ match: { path }, handler: { type: 'rewrite-context-test', tag } });

let yard: Yard;
let backend: Server;
/** Request targets the backend was sent, in order. */
const forwarded: string[] = [];

before(async () => {
  backend = createServer((req, res) => {
    forwarded.push(req.url ?? '');
    res.end('backend');
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.0.1', resolve));
  const port = (backend.address() as AddressInfo).port;
  yard = await serve(
    {
      listeners: [
        {
          name: 'w',
          protocol: 'http',
          address: '127.0.0.1:0',
          http2: { h2c: true },
          rewrites: [
            { from: '^/old/(\\d+)$', to: '/users/$1' },
            { from: '/v1/*rest', to: '/api/*rest' },
            { from: '^/search/(?<term>[^/]+)$', to: '/find?q=$<term>' },
            { from: '^/keep/([^/]+)$', to: '/find?q=$1', query: 'keep' },
            { from: '^/drop/([^/]+)$', to: '/find/$1', query: 'replace' },
            { from: '^/p/([^/]*)-([^/]*)$', to: '/files/$1$2' },
            { from: '/dup/:x', to: '/first' },
            { from: '/dup/:x', to: '/second' },
            { from: '/admin/*rest', to: '/closed' },
            { from: '^/legacy/(.*)$', to: '/backend/$1' },
          ],
          routes: [
            at('/users/:id', 'user'),
            at('/api/*', 'api'),
            at('/find', 'find'),
            at('/find/:term', 'find-term'),
            at('/files/*rest', 'files'),
            at('/first', 'first'),
            at('/second', 'second'),
            at('/closed', 'closed'),
            { match: { path: '/backend/*' }, handler: { type: 'proxy', upstream: 'b' } },
            at('/*', 'fallback'),
          ],
        },
      ],
      upstreams: { b: { targets: [`http://127.0.0.1:${port}`] } },
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent' },
  );
});

after(async () => {
  await yard?.stop(100);
  await new Promise<void>((resolve) => (backend ? backend.close(() => resolve()) : resolve()));
});

interface Seen {
  status: number;
  version: string;
  text: string;
  body: { tag?: string; params?: Record<string, string>; pathRest?: string; url?: string };
}

async function get(path: string, http: '1.1' | '2' = '1.1'): Promise<Seen> {
  const url = `http://127.0.0.1:${yard.address('w').port}${path}`;
  const r = await run('curl', ['-sS', '--path-as-is', http === '2' ? '--http2-prior-knowledge' : '--http1.1', '-w', '\n%{http_code} %{http_version}', url], { timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.stderr);
  const cut = r.stdout.lastIndexOf('\n');
  const [status, version] = r.stdout.slice(cut + 1).split(' ');
  const text = Buffer.from(r.stdout.slice(0, cut), 'latin1').toString('utf8');
  let body: Seen['body'] = {};
  try {
    body = JSON.parse(text) as Seen['body'];
  } catch {
    body = {};
  }
  return { status: Number(status), version, text, body };
}

test('a regex rule with a capture routes to another route; the query is kept', async () => {
  const r = await get('/old/42?x=1&y=2');
  assert.equal(r.status, 200);
  assert.equal(r.body.tag, 'user');
  assert.deepEqual(r.body.params, { id: '42' });
  assert.equal(r.body.url, '/users/42?x=1&y=2');
  // Not matching the rule (`\d+`): routed as sent.
  assert.equal((await get('/old/abc')).body.tag, 'fallback');
});

test('a path-pattern rule carries its parameters over; pathRest is that of the new path', async () => {
  const r = await get('/v1/a/b%20c?z');
  assert.equal(r.body.tag, 'api');
  assert.equal(r.body.url, '/api/a/b%20c?z');
  assert.equal(r.body.pathRest, '/a/b%20c');
  assert.equal((await get('/v1')).body.url, '/api/');
});

test('query: replaced by a target with its own, kept (appended) on request, dropped on request', async () => {
  const own = await get('/search/cats?page=2');
  assert.equal(own.body.tag, 'find');
  assert.equal(own.body.url, '/find?q=cats');
  const kept = await get('/keep/cats?page=2');
  assert.equal(kept.body.url, '/find?q=cats&page=2');
  const dropped = await get('/drop/cats?page=2');
  assert.equal(dropped.body.tag, 'find-term');
  assert.equal(dropped.body.url, '/find/cats');
  assert.deepEqual(dropped.body.params, { term: 'cats' });
});

test('the first matching rule wins', async () => {
  assert.equal((await get('/dup/x')).body.tag, 'first');
});

test('a rewrite to a dot-segment path is refused', async () => {
  const r = await get('/p/.-.');
  assert.equal(r.status, 400);
  assert.match(r.text, /rewritten path/);
  // The same rule with a harmless result is served.
  const ok = await get('/p/a-b');
  assert.equal(ok.body.tag, 'files');
  assert.deepEqual(ok.body.params, { rest: 'ab' });
});

test('a path whose lenient reading takes another rule is refused', async () => {
  assert.equal((await get('/admin/x')).body.tag, 'closed');
  // Read as /admin/x by an upstream that decodes %2F, it would have been rewritten.
  assert.equal((await get('/admin%2Fx')).status, 400);
});

test('the proxy forwards the rewritten path and query', async () => {
  forwarded.length = 0;
  const r = await get('/legacy/a/b?z=1');
  assert.equal(r.status, 200);
  assert.equal(r.text, 'backend');
  assert.deepEqual(forwarded, ['/backend/a/b?z=1']);
});

test('rewrites over HTTP/2 (h2c) and on an Upgrade request served as a plain one', async () => {
  const r = await get('/old/7?q', '2');
  assert.equal(r.version, '2');
  assert.equal(r.body.tag, 'user');
  assert.equal(r.body.url, '/users/7?q');
  // The route's handler takes no upgrades: served as a plain request, rewritten once.
  const raw = await rawExchange(yard.address('w').port, 'GET /old/8 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade, close\r\nUpgrade: websocket\r\n\r\n', { timeoutMs: 5000 });
  assert.equal(statusOf(raw), 200);
  const body = JSON.parse(raw.toString('utf8').split('\r\n\r\n')[1]) as Seen['body'];
  assert.equal(body.url, '/users/8');
});

test('bad rules are config errors naming rewrites[i].from or .to', () => {
  const cases: [unknown, string, RegExp][] = [
    [{ from: '^/a(', to: '/b' }, 'from', /not a valid regular expression/],
    [{ from: 'old', to: '/b' }, 'from', /path pattern .* or a regular expression/],
    [{ from: '/a/:x/:x', to: '/b' }, 'from', /appears twice/],
    [{ from: '^/a/(.*)$', to: '/b/$2' }, 'to', /"\$2": "from" has groups \$1 to \$1/],
    [{ from: '^/a/(.*)$', to: '/b/$<nope>' }, 'to', /no group of that name/],
    [{ from: '^/a/(.*)$', to: '/b/$x' }, 'to', /write \$\$/],
    [{ from: '/a/:id', to: '/b/:nope' }, 'to', /no parameter "nope" \(it has: id\)/],
    [{ from: '/a', to: 'b' }, 'to', /starts with "\/"/],
    [{ from: '/a', to: '/b#c' }, 'to', /without "#"/],
  ];
  for (const [rule, field, message] of cases) {
    let issues: { path: string; message: string }[] = [];
    try {
      parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', rewrites: [{ from: '/ok', to: '/fine' }, rule], routes: [{ handler: { type: 'echo' } }] }] });
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      issues = err.issues;
    }
    assert.equal(issues.length, 1, `${JSON.stringify(rule)}: ${JSON.stringify(issues)}`);
    assert.equal(issues[0].path, `listeners[0].rewrites[1].${field}`);
    assert.match(issues[0].message, message);
  }
});

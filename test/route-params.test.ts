import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { z } from 'zod';
import { serve, parseConfig, ConfigError, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { replyJson } from '../src/handlers/http/reply.ts';
import { compilePattern, NO_PARAMS } from '../src/listeners/http/router.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';

// Named path parameters (`/users/:id`, `/files/*rest`) with real clients: curl over HTTP/1.1 and
// h2c, and an Upgrade request on a raw socket. A test-only handler answers with what its context
// holds, so each assertion reads what a handler would see.

/** Every params object the test handler was given, in order (same process as the yard). */
const seen: object[] = [];

const contextSchema = z.strictObject({ type: z.literal('context-test'), tag: z.string() });
if (handlerModule('context-test') === undefined) {
  registerHandler({
    type: 'context-test',
    summary: 'test: answers with its context as JSON',
    schema: contextSchema,
    http: (config) => ({
      upgrades: ['websocket'],
      handle(ctx) {
        seen.push(ctx.params);
        replyJson(ctx.res, 200, { tag: config.tag, params: ctx.params, pathRest: ctx.pathRest, url: ctx.req.url, frozen: Object.isFrozen(ctx.params), noProto: Object.getPrototypeOf(ctx.params) === null });
      },
      upgrade(ctx) {
        // Answered without switching: what matters is what the upgrade's context holds.
        replyJson(ctx.res, 200, { tag: config.tag, upgrade: ctx.protocol, params: ctx.params, pathRest: ctx.pathRest });
      },
    }),
  });
}

const at = (path: string, tag: string) => ({ match: { path }, handler: { type: 'context-test', tag } });

let yard: Yard;
before(async () => {
  yard = await serve(
    {
      listeners: [
        {
          name: 'w',
          protocol: 'http',
          address: '127.0.0.1:0',
          http2: { h2c: true },
          routes: [
            at('/users/me', 'me'),
            at('/users/:id', 'user'),
            at('/users/:id/posts/:post', 'post'),
            at('/things/:id', 'thing'),
            at('/things/new', 'new-thing'),
            at('/files/*rest', 'files'),
            at('/repos/:repo/*path', 'repo'),
            at('/tenants/:tenant/*', 'tenant'),
            at('/static/*', 'static'),
            at('/img/*.png', 'glob'),
            at('/*', 'fallback'),
          ],
        },
      ],
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent' },
  );
});

after(async () => {
  await yard?.stop(100);
});

interface Seen {
  status: number;
  version: string;
  body: { tag?: string; params?: Record<string, string>; pathRest?: string; url?: string; frozen?: boolean; noProto?: boolean; upgrade?: string; error?: string };
}

/** curl over HTTP/1.1, or h2c with prior knowledge; the path is sent as written (`--path-as-is`). */
async function get(path: string, http: '1.1' | '2' = '1.1'): Promise<Seen> {
  const url = `http://127.0.0.1:${yard.address('w').port}${path}`;
  const r = await run('curl', ['-sS', '--path-as-is', http === '2' ? '--http2-prior-knowledge' : '--http1.1', '-w', '\n%{http_code} %{http_version}', url], { timeoutMs: 10_000 });
  assert.equal(r.code, 0, r.stderr);
  const cut = r.stdout.lastIndexOf('\n');
  const [status, version] = r.stdout.slice(cut + 1).split(' ');
  // run() reads curl's output as latin1; the JSON is UTF-8.
  const text = Buffer.from(r.stdout.slice(0, cut), 'latin1').toString('utf8');
  let body: Seen['body'] = {};
  try {
    body = JSON.parse(text) as Seen['body'];
  } catch {
    body = { error: text };
  }
  return { status: Number(status), version, body };
}

test('patterns: parameters match one non-empty segment, *name the rest; old patterns unchanged', () => {
  const user = compilePattern('/users/:id/posts/:post');
  assert.deepEqual(user.names, ['id', 'post']);
  assert.equal(user.match('/users/1/posts/2'), '/users/1/posts/2');
  assert.deepEqual({ ...user.params('/users/1/posts/a%20b') }, { id: '1', post: 'a b' });
  assert.equal(user.match('/users//posts/2'), undefined);
  assert.equal(user.match('/users/1/posts/2/3'), undefined);
  const files = compilePattern('/files/*rest');
  assert.equal(files.match('/files/a/b'), '/a/b');
  assert.equal(files.match('/files'), '/');
  assert.equal(files.match('/filesx'), undefined);
  assert.equal(files.params('/files/x%ZZ'), undefined, 'a malformed escape has no decoded value');
  // Without parameters: the shared empty object, and the exact/prefix/glob behaviour as before.
  assert.equal(compilePattern('/health').params('/health'), NO_PARAMS);
  assert.equal(compilePattern('/static/*').match('/static/a'), '/a');
  assert.equal(compilePattern('/img/*.png').match('/img/a.png'), '/img/a.png');
  assert.equal(compilePattern('/a/*/b').match('/a/x/b'), '/a/x/b');
});

test('params reach the handler, decoded; pathRest stays encoded', async () => {
  const user = await get('/users/42');
  assert.equal(user.status, 200);
  assert.equal(user.body.tag, 'user');
  assert.deepEqual(user.body.params, { id: '42' });
  assert.equal(user.body.pathRest, '/users/42');
  assert.equal(user.body.frozen, true);
  assert.equal(user.body.noProto, true);

  const post = await get('/users/caf%C3%A9%20x/posts/what%3Fnow?q=1');
  assert.equal(post.body.tag, 'post');
  assert.deepEqual(post.body.params, { id: 'café x', post: 'what?now' });
  assert.equal(post.body.url, '/users/caf%C3%A9%20x/posts/what%3Fnow?q=1');

  const files = await get('/files/a%20b/c/d.txt');
  assert.equal(files.body.tag, 'files');
  assert.deepEqual(files.body.params, { rest: 'a b/c/d.txt' });
  assert.equal(files.body.pathRest, '/a%20b/c/d.txt');
  const top = await get('/files');
  assert.equal(top.body.tag, 'files');
  assert.deepEqual(top.body.params, { rest: '' });
  assert.equal(top.body.pathRest, '/');

  const tenant = await get('/tenants/acme/x/y');
  assert.equal(tenant.body.tag, 'tenant');
  assert.deepEqual(tenant.body.params, { tenant: 'acme' });
  assert.equal(tenant.body.pathRest, '/x/y');
});

test('an empty segment is no value: /users/ is not /users/:id', async () => {
  const r = await get('/users/');
  assert.equal(r.body.tag, 'fallback');
  assert.equal((await get('/users//posts/1')).body.tag, 'fallback');
});

test('routes keep config order: exact before a parameter, a parameter before a later exact', async () => {
  assert.equal((await get('/users/me')).body.tag, 'me');
  assert.deepEqual((await get('/users/me')).body.params, {});
  assert.equal((await get('/things/new')).body.tag, 'thing');
  assert.deepEqual((await get('/things/new')).body.params, { id: 'new' });
});

test('a malformed escape in a parameter is 400', async () => {
  assert.equal((await get('/users/%ZZ')).status, 400);
  assert.equal((await get('/users/%C3')).status, 400, 'not UTF-8');
  assert.equal((await get('/files/ok/%E0%A4')).status, 400);
  // The same escape on a route without parameters is the handler's to judge.
  assert.equal((await get('/static/%ZZ')).status, 200);
});

test('%2F in a value: decoded to "/" when both readings of the path pick the route, 400 when not', async () => {
  const repo = await get('/repos/group%2Fproject/src/main.ts');
  assert.equal(repo.status, 200);
  assert.equal(repo.body.tag, 'repo');
  assert.deepEqual(repo.body.params, { repo: 'group/project', path: 'src/main.ts' });
  // Read as /users/a/b (as an upstream decoding %2F would), it is another route: refused.
  assert.equal((await get('/users/a%2Fb')).status, 400);
  // Dot segments hidden behind %2F are refused as before.
  assert.equal((await get('/repos/x/%2F..%2Fsecret')).status, 400);
});

test('routes without parameters share one frozen empty params object', async () => {
  seen.length = 0;
  await get('/static/a');
  await get('/img/b.png');
  await get('/anything');
  assert.equal(seen.length, 3);
  assert.ok(seen[0] === seen[1] && seen[1] === seen[2], 'the same object every time');
  assert.equal(seen[0], NO_PARAMS);
  assert.deepEqual(Object.keys(seen[0]), []);
});

test('params over HTTP/2 (h2c)', async () => {
  const r = await get('/users/7/posts/%E2%9C%93', '2');
  assert.equal(r.version, '2');
  assert.equal(r.body.tag, 'post');
  assert.deepEqual(r.body.params, { id: '7', post: '✓' });
  assert.equal((await get('/users/%ZZ', '2')).status, 400);
  assert.deepEqual((await get('/files/x/y', '2')).body.params, { rest: 'x/y' });
});

test('params on an Upgrade request', async () => {
  const raw = await rawExchange(yard.address('w').port, 'GET /users/9/posts/hi%21 HTTP/1.1\r\nHost: a\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n', { timeoutMs: 5000 });
  assert.equal(statusOf(raw), 200);
  const body = JSON.parse(raw.toString('utf8').split('\r\n\r\n')[1]) as Seen['body'];
  assert.equal(body.upgrade, 'websocket');
  assert.deepEqual(body.params, { id: '9', post: 'hi!' });
  assert.equal(body.pathRest, '/users/9/posts/hi%21');
});

test('bad patterns are config errors naming match.path', () => {
  const cases: [string, RegExp][] = [
    ['/users/:', /a parameter is a whole segment/],
    ['/users/:1d', /a parameter is a whole segment/],
    ['/users/:id.json', /a parameter is a whole segment/],
    ['/a/:id/b/:id', /parameter "id" appears twice/],
    ['/a/:id/*id', /parameter "id" appears twice/],
    ['/files/*rest/x', /must be the last segment/],
  ];
  for (const [path, message] of cases) {
    let issues: { path: string; message: string }[] = [];
    try {
      parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path }, handler: { type: 'echo' } }] }] });
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      issues = err.issues;
    }
    assert.equal(issues.length, 1, `${path}: ${JSON.stringify(issues)}`);
    assert.equal(issues[0].path, 'listeners[0].routes[0].match.path');
    assert.match(issues[0].message, message);
  }
});

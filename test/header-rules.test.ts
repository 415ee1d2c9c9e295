import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect as connectH2 } from 'node:http2';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { serve, parseConfig, type Yard } from '../src/index.ts';
import { ConfigError } from '../src/config/errors.ts';
import { compileTemplate, TemplateError } from '../src/middleware/placeholders.ts';

// Header rules on a real yard: request rules seen by an echo handler and by a proxied upstream,
// response rules on handler answers, on the daemon's own refusals (404 of static, 502 of a proxy
// to a closed port) over HTTP/1.1 and HTTP/2, placeholders, and config errors.

let yard: Yard;
let base: string;
let port: number;
let upstream: Server;
let root: string;
/** What the upstream last received. */
let seenUpstream: IncomingHttpHeaders = {};
/** The raw header lines the upstream last received, to count repeats. */
let seenRaw: string[] = [];

async function deadPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

before(async () => {
  root = mkdtempSync(join(tmpdir(), 'sy-headers-'));
  writeFileSync(join(root, 'a.txt'), 'hello\n');
  upstream = createServer((req, res) => {
    seenUpstream = req.headers;
    seenRaw = req.rawHeaders;
    res.writeHead(200, { server: 'upstream/1.0', 'x-upstream': 'yes', 'content-type': 'text/plain' });
    res.end('from upstream\n');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = (upstream.address() as { port: number }).port;
  const dead = await deadPort();
  yard = await serve(
    parseConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          http2: { h2c: true },
          middleware: { headers: { response: { set: { 'X-Served-By': 'switchyard {listener}' } } } },
          routes: [
            {
              name: 'echo',
              match: { path: '/echo/*' },
              handler: { type: 'echo' },
              middleware: {
                headers: {
                  request: {
                    set: { 'X-Client': '{client_ip}', 'X-Rid': '{request_id}', 'X-Where': '{method} {path} {path_rest} {query} {route}', 'X-Copy': '{header.x-source}' },
                    add: { 'X-Multi': 'added', Cookie: 'b=2' },
                    remove: ['x-drop'],
                  },
                  response: { set: { 'X-Rid-Out': 'id={request_id}' }, add: { 'X-Multi-Out': 'two' }, remove: ['x-request-id'] },
                },
              },
            },
            {
              name: 'users',
              match: { path: '/users/:id' },
              handler: { type: 'echo' },
              middleware: { headers: { request: { set: { 'X-User-Id': '{params.id}' } } } },
            },
            {
              name: 'proxy',
              match: { path: '/up/*' },
              handler: { type: 'proxy', upstream: 'up' },
              middleware: {
                headers: {
                  request: { set: { 'X-Forwarded-Extra': '{client_ip} {request_id}', 'User-Agent': 'rules/1' }, remove: ['x-secret'], add: { 'X-Added': 'one' } },
                  response: { remove: ['server'], set: { 'X-Rid-Out': '{request_id}' } },
                },
              },
            },
            {
              name: 'dead',
              match: { path: '/dead/*' },
              handler: { type: 'proxy', upstream: 'dead' },
              middleware: { headers: { response: { set: { 'X-Refusal': 'rules {route}' } } } },
            },
            { name: 'files', match: { path: '/files/*' }, handler: { type: 'static', root } },
          ],
        },
      ],
      upstreams: {
        up: { targets: [`http://127.0.0.1:${up}`] },
        dead: { targets: [`http://127.0.0.1:${dead}`], outlier: false, retry: { attempts: 0 } },
      },
      logging: { level: 'silent', accessLog: false },
    }),
    { logLevel: 'silent' },
  );
  port = yard.address('web').port;
  base = `http://127.0.0.1:${port}`;
});

after(async () => {
  await yard?.stop(100);
  await new Promise((r) => upstream?.close(r));
  rmSync(root, { recursive: true, force: true });
});

interface Echo {
  headers: Record<string, string | string[]>;
  requestId?: string;
}

test('request rules: set, add and remove reach the handler, with placeholders', async () => {
  const r = await request(`${base}/echo/a/b?x=1&y=2`, { headers: { 'x-drop': 'secret', 'x-multi': 'client', cookie: 'a=1', 'x-source': 'copied', 'x-client': 'forged' } });
  assert.equal(r.statusCode, 200);
  const echo = (await r.body.json()) as Echo;
  assert.equal(echo.headers['x-drop'], undefined);
  assert.equal(echo.headers['x-client'], '127.0.0.1', 'set replaces what the client sent');
  assert.ok(echo.requestId);
  assert.equal(echo.headers['x-rid'], echo.requestId);
  assert.equal(echo.headers['x-where'], 'GET /echo/a/b /a/b x=1&y=2 echo');
  assert.equal(echo.headers['x-copy'], 'copied');
  assert.equal(echo.headers['x-multi'], 'client, added');
  assert.equal(echo.headers.cookie, 'a=1; b=2');
});

test('request rules: a value that comes out empty is not sent', async () => {
  const r = await request(`${base}/echo/`);
  const echo = (await r.body.json()) as Echo;
  assert.equal(echo.headers['x-copy'], undefined);
  assert.equal(echo.headers['x-multi'], 'added');
});

test('response rules: set, add and remove on a handler answer; the listener rules are replaced by the route', async () => {
  const r = await request(`${base}/echo/x`);
  await r.body.dump();
  assert.equal(r.headers['x-request-id'], undefined, 'removed');
  assert.match(String(r.headers['x-rid-out']), /^id=\S+$/);
  assert.equal(r.headers['x-multi-out'], 'two');
  // The route's `headers` replaces the listener's (merged field by field, like every middleware).
  assert.equal(r.headers['x-served-by'], undefined);
  // A route without its own rules has the listener's.
  const s = await request(`${base}/files/a.txt`);
  assert.equal(await s.body.text(), 'hello\n');
  assert.equal(s.headers['x-served-by'], 'switchyard web');
});

test('{params.NAME}: the route parameter', async () => {
  const r = await request(`${base}/users/42`);
  const echo = (await r.body.json()) as Echo;
  assert.equal(echo.headers['x-user-id'], '42');
  // A decoded parameter cannot put a line break into a header: it is percent-encoded.
  const evil = await request(`${base}/users/a%0d%0aX-Evil:%201`);
  const body = (await evil.body.json()) as Echo;
  assert.equal(body.headers['x-evil'], undefined);
  assert.equal(body.headers['x-user-id'], 'a%0D%0AX-Evil: 1');
});

test('proxy: request rules reach the upstream; response rules apply to its answer', async () => {
  const r = await request(`${base}/up/thing`, { headers: { 'x-secret': 'no', 'user-agent': 'client/9', 'x-added': 'zero' } });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'from upstream\n');
  assert.equal(seenUpstream['x-secret'], undefined);
  assert.equal(seenUpstream['user-agent'], 'rules/1');
  assert.equal(seenRaw.filter((h) => h.toLowerCase() === 'user-agent').length, 1, 'set leaves one field');
  assert.match(String(seenUpstream['x-forwarded-extra']), /^127\.0\.0\.1 \S+$/);
  assert.equal(seenUpstream['x-added'], 'zero, one');
  assert.equal(r.headers.server, undefined, "the upstream's Server is removed");
  assert.equal(r.headers['x-upstream'], 'yes');
  assert.equal(r.headers['x-rid-out'], r.headers['x-request-id']);
});

test("response rules reach the daemon's refusals: 502 of a proxy to a closed port, 404 of static", async () => {
  const r = await request(`${base}/dead/x`);
  assert.equal(r.statusCode, 502);
  await r.body.dump();
  assert.equal(r.headers['x-refusal'], 'rules dead');
  const s = await request(`${base}/files/missing.txt`);
  assert.equal(s.statusCode, 404);
  await s.body.dump();
  assert.equal(s.headers['x-served-by'], 'switchyard web');
});

test('HTTP/2: response rules on an answer and on a refusal; request rules seen by the handler', async () => {
  const session = connectH2(base);
  try {
    const get = (path: string) =>
      new Promise<{ headers: Record<string, unknown>; body: string }>((resolve, reject) => {
        const s = session.request({ ':path': path, 'x-drop': 'no' });
        let body = '';
        let headers: Record<string, unknown> = {};
        s.setEncoding('utf8');
        s.on('response', (h) => (headers = h));
        s.on('data', (d) => (body += d));
        s.on('end', () => resolve({ headers, body }));
        s.on('error', reject);
        s.end();
      });
    const a = await get('/files/a.txt');
    assert.equal(a.headers[':status'], 200);
    assert.equal(a.headers['x-served-by'], 'switchyard web');
    const b = await get('/files/none');
    assert.equal(b.headers[':status'], 404);
    assert.equal(b.headers['x-served-by'], 'switchyard web');
    const c = await get('/echo/h2');
    assert.equal(c.headers['x-request-id'], undefined);
    assert.equal(c.headers['x-multi-out'], 'two');
    const echo = JSON.parse(c.body) as Echo;
    assert.equal(echo.headers['x-drop'], undefined);
    assert.equal(echo.headers['x-client'], '127.0.0.1');
    const d = await get('/dead/h2');
    assert.equal(d.headers[':status'], 502);
    assert.equal(d.headers['x-refusal'], 'rules dead');
  } finally {
    session.close();
  }
});

test('placeholders: {{ and }} are literal braces; unknown ones are errors listing the known', () => {
  const t = compileTemplate('{{x}} {method}}');
  assert.equal(t.constant, false);
  assert.throws(() => compileTemplate('{nope}'), (err: unknown) => err instanceof TemplateError && /unknown placeholder \{nope\}.*\{client_ip\}.*\{request_id\}/.test(err.message));
  assert.throws(() => compileTemplate('{method'), /unclosed/);
  assert.equal(compileTemplate('a {{b}}')(undefined as never), 'a {b}');
});

function configError(headers: unknown): string {
  try {
    parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', middleware: { headers }, routes: [{ handler: { type: 'echo' } }] }] });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('the config was accepted');
}

test('config errors name the field: unknown placeholder, hop-by-hop, pseudo-header, bad name, line break', () => {
  assert.match(configError({ request: { set: { 'X-A': '{clientip}' } } }), /middleware\.headers\.request\.set\.X-A: unknown placeholder \{clientip\}.*known: \{client_ip\}/);
  assert.match(configError({ response: { set: { Connection: 'close' } } }), /response\.set\.Connection: "Connection" cannot be changed by a rule: a hop-by-hop field/);
  assert.match(configError({ request: { remove: ['transfer-encoding'] } }), /request\.remove\[0\]: .*hop-by-hop/);
  assert.match(configError({ request: { set: { ':path': '/x' } } }), /pseudo-header/);
  assert.match(configError({ response: { add: { 'bad name': 'x' } } }), /"bad name" is not a valid header name/);
  assert.match(configError({ response: { set: { 'X-A': 'a\r\nX-B: b' } } }), /cannot hold line breaks/);
  assert.match(configError({ request: { set: { Host: 'example.com' } } }), /"Host" cannot be changed by a rule.*`host` option/);
  assert.match(configError({ response: { set: { 'Content-Length': '1' } } }), /frames the body/);
  assert.match(configError({ response: { set: { 'X-A': '1' }, remove: ['x-a'] } }), /also in remove/);
});

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import type { IncomingHttpHeaders, ServerResponse } from 'node:http';
import { parseConfig } from '../src/config/index.ts';
import { redact } from '../src/handlers/admin/redact.ts';
import type { Yard } from '../src/index.ts';
import { curl, echoed, localServer, startYard } from './helpers/auth-client.ts';

// Forward auth: a real authentication service on 127.0.0.1 decides each request; curl is the
// client, the echo handler shows what reached it.

const yards: Yard[] = [];
const closers: (() => Promise<void>)[] = [];
/** Requests the slow service holds; answered at the end so nothing is left open. */
const held: ServerResponse[] = [];
after(async () => {
  for (const r of held) r.destroy();
  for (const y of yards) await y.stop(100);
  for (const c of closers) await c();
});

let seen: IncomingHttpHeaders[] = [];
let base = '';

before(async () => {
  const service = await localServer((req, res) => {
    seen.push(req.headers);
    switch (req.headers.authorization) {
      case 'Bearer good':
        res.writeHead(200, { 'x-user': 'ann', 'x-groups': 'admins', 'x-not-copied': 'secret' });
        return res.end('fine');
      case 'Bearer redirect':
        res.writeHead(302, { location: 'https://login.example/?rd=back', 'set-cookie': 'state=xyz; HttpOnly' });
        return res.end();
      case 'Bearer big':
        res.writeHead(403, { 'content-type': 'text/plain' });
        return res.end('x'.repeat(200 * 1024));
      case 'Bearer slow':
        held.push(res);
        return;
      default:
        res.writeHead(401, { 'www-authenticate': 'Basic realm="auth-svc"', 'content-type': 'text/plain' });
        return res.end('who are you?\n');
    }
  });
  closers.push(service.close);
  const forward = { url: `${service.url}/verify`, copyResponseHeaders: ['x-user', 'x-groups'], timeout: '500ms' };
  base = await startYard(yards, [
    { match: { path: '/app/*' }, handler: { type: 'echo' }, middleware: { forwardAuth: forward } },
    { match: { path: '/trusting' }, handler: { type: 'echo' }, middleware: { forwardAuth: { ...forward, trustForwardHeader: true } } },
    // Port 9 on loopback: nothing listens there.
    { match: { path: '/down' }, handler: { type: 'echo' }, middleware: { forwardAuth: { url: 'http://127.0.0.1:9/verify' } } },
  ]);
});

test('schema: defaults and bounds', () => {
  const config = parseConfig(
    { listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'echo' }, middleware: { forwardAuth: { url: 'http://auth:secret@127.0.0.1:1/v' } } }] }] },
    'test',
  );
  const fa = (config.listeners[0] as { routes: { middleware?: { forwardAuth?: Record<string, unknown> } }[] }).routes[0].middleware?.forwardAuth;
  assert.deepEqual(fa?.copyRequestHeaders, ['authorization', 'cookie']);
  assert.equal(fa?.timeout, 5000);
  assert.equal(fa?.method, 'GET');
  // GET /config of the admin API does not show the URL's password.
  const shown = JSON.stringify(redact(config));
  assert.doesNotMatch(shown, /secret/);
  assert.match(shown, /http:\/\/auth:\[redacted\]@127\.0\.0\.1:1\/v/);
  const bad = (forwardAuth: unknown) => () =>
    parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'echo' }, middleware: { forwardAuth } }] }] }, 'test');
  assert.throws(bad({ url: 'file:///etc/passwd' }), /forwardAuth\.url/);
  assert.throws(bad({ url: 'http://127.0.0.1:1/', timeout: '2m' }), /forwardAuth\.timeout/);
  assert.throws(bad({ url: 'http://127.0.0.1:1/', copyResponseHeaders: ['content-length'] }), /copyResponseHeaders\[0\]/);
});

test('allowed: the request goes on with the service\'s headers; the client\'s own of those names are removed', async () => {
  seen = [];
  const a = await curl(['-H', 'Authorization: Bearer good', '-H', 'X-User: root', '-H', 'X-Groups: everyone', '-H', 'Cookie: sid=1', '-H', 'X-Other: no', `${base}/app/page?q=1`]);
  assert.equal(a.status, 200, a.body);
  const h = echoed(a);
  assert.equal(h['x-user'], 'ann');
  assert.equal(h['x-groups'], 'admins');
  assert.equal(h['x-not-copied'], undefined);
  // What the service was told.
  assert.equal(seen.length, 1);
  const s = seen[0];
  assert.equal(s.authorization, 'Bearer good');
  assert.equal(s.cookie, 'sid=1');
  assert.equal(s['x-other'], undefined);
  assert.equal(s['x-forwarded-method'], 'GET');
  assert.equal(s['x-forwarded-proto'], 'http');
  assert.equal(s['x-forwarded-host'], new URL(base).host);
  assert.equal(s['x-forwarded-uri'], '/app/page?q=1');
  assert.equal(s['x-forwarded-for'], '127.0.0.1');
  assert.match(String(s['x-request-id']), /./);
});

test('denied: the service\'s 401 with WWW-Authenticate and body goes back as it is; the handler is not reached', async () => {
  seen = [];
  const a = await curl(['-X', 'POST', '-d', 'payload', '-H', 'X-Forwarded-For: 10.0.0.1', `${base}/app/x`]);
  assert.equal(a.status, 401);
  assert.equal(a.headers['www-authenticate'], 'Basic realm="auth-svc"');
  assert.equal(a.body, 'who are you?\n');
  assert.equal(seen[0]['x-forwarded-method'], 'POST');
  // Not trusted: the client's X-Forwarded-For is not what the service hears.
  assert.equal(seen[0]['x-forwarded-for'], '127.0.0.1');
});

test('trustForwardHeader: the client\'s X-Forwarded-* go to the service, the address appended', async () => {
  seen = [];
  const a = await curl(['-H', 'Authorization: Bearer good', '-H', 'X-Forwarded-For: 10.0.0.1', '-H', 'X-Forwarded-Proto: https', '-H', 'X-Forwarded-Host: app.example', `${base}/trusting`]);
  assert.equal(a.status, 200);
  assert.equal(seen[0]['x-forwarded-for'], '10.0.0.1, 127.0.0.1');
  assert.equal(seen[0]['x-forwarded-proto'], 'https');
  assert.equal(seen[0]['x-forwarded-host'], 'app.example');
});

test('redirect: the service\'s 302 with Location and Set-Cookie goes back to the client', async () => {
  const a = await curl(['-H', 'Authorization: Bearer redirect', `${base}/app/x`]);
  assert.equal(a.status, 302);
  assert.equal(a.headers.location, 'https://login.example/?rd=back');
  assert.equal(a.headers['set-cookie'], 'state=xyz; HttpOnly');
});

test('a refusal body past maxBodySize is 502, not passed on', async () => {
  const a = await curl(['-H', 'Authorization: Bearer big', `${base}/app/x`]);
  assert.equal(a.status, 502);
  assert.match(a.body, /answer too large/);
});

test('service down: 502; service silent: 504 once the timeout has passed; never the handler', async () => {
  const down = await curl(['-H', 'Authorization: Bearer good', `${base}/down`]);
  assert.equal(down.status, 502);
  assert.match(down.body, /authentication service unreachable/);
  const slow = await curl(['-H', 'Authorization: Bearer slow', `${base}/app/x`]);
  assert.equal(slow.status, 504);
  assert.match(slow.body, /did not answer in time/);
  // The yard still serves the next request.
  assert.equal((await curl(['-H', 'Authorization: Bearer good', `${base}/app/x`])).status, 200);
});

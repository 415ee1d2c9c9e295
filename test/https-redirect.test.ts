import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Yard } from '../src/index.ts';
import { makeLeaf, makeTestCa, type Files } from './helpers/tls-fixtures.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';

// redirectToHttps on a plain http listener (status, Location with host, port, path and query; a
// body left unread and the connection closed; ACME HTTP-01 paths routed, not redirected;
// upgrades redirected too), and hsts on an https listener (on every response, 404 included;
// never on plain http), with curl and raw sockets.

const dir = mkdtempSync(join(tmpdir(), 'sy-https-redirect-'));
const yards: Yard[] = [];
let ca: Files;

before(async () => {
  ca = await makeTestCa(dir);
  await makeLeaf(dir, ca, 'site', ['localhost', '127.0.0.1']);
});
after(async () => {
  for (const y of yards) await y.stop(100);
});

async function yard(listeners: unknown[]): Promise<Yard> {
  const y = await serve({ listeners }, { logLevel: 'silent', baseDir: dir });
  yards.push(y);
  return y;
}

const ROUTES = [
  { match: { path: '/.well-known/acme-challenge/*' }, handler: { type: 'respond', body: 'acme route' } },
  { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
  { handler: { type: 'respond', body: 'plain' } },
];

function plain(name: string, redirectToHttps: unknown) {
  return { name, protocol: 'http', address: '127.0.0.1:0', redirectToHttps, routes: ROUTES };
}

/** Status and Location (curl, not following) of `url` sent to 127.0.0.1:port with `host`. */
async function redirectOf(port: number, host: string, path: string, extra: string[] = []): Promise<{ status: number; location: string; body: string }> {
  const r = await run('curl', ['-s', '-o', '-', '-w', '\n%{http_code} %{redirect_url}', '-H', `Host: ${host}`, ...extra, `http://127.0.0.1:${port}${path}`]);
  assert.equal(r.code, 0, r.stderr);
  const nl = r.stdout.lastIndexOf('\n');
  const [status, location] = r.stdout.slice(nl + 1).split(' ');
  return { status: Number(status), location, body: r.stdout.slice(0, nl) };
}

test('redirectToHttps: every request gets 308 to https://host/path?query, ACME challenge paths are routed', async () => {
  const y = await yard([plain('web', true), plain('custom', { port: 8443, status: 301 }), plain('p443', { port: 443 })]);
  const web = y.address('web').port;
  const custom = y.address('custom').port;

  const r = await redirectOf(web, `example.test:${web}`, '/a/b?x=1&y=%20z');
  assert.equal(r.status, 308);
  assert.equal(r.location, 'https://example.test/a/b?x=1&y=%20z');
  assert.equal((await redirectOf(web, 'example.test', '/')).location, 'https://example.test/');
  assert.equal((await redirectOf(web, '[::1]:80', '/v6')).location, 'https://[::1]/v6');
  assert.equal((await redirectOf(y.address('p443').port, 'example.test', '/x')).location, 'https://example.test/x', 'port 443 left out');

  const c = await redirectOf(custom, 'example.test:80', '/q?a=b');
  assert.equal(c.status, 301);
  assert.equal(c.location, 'https://example.test:8443/q?a=b');

  // The ACME HTTP-01 path is left to routing (plain http, the route's answer).
  const acme = await redirectOf(web, 'example.test', '/.well-known/acme-challenge/token123');
  assert.equal(acme.status, 200);
  assert.equal(acme.body, 'acme route');
  assert.equal(acme.location, '');

  // Absolute-form target: its authority is the host redirected to.
  const abs = (await rawExchange(web, 'GET http://other.test/abs?k=v HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n')).toString('latin1');
  assert.equal(statusOf(abs), 308);
  assert.match(abs, /\r\nlocation: https:\/\/other\.test\/abs\?k=v\r\n/i);

  // A request with a body: redirected (308 keeps the method), not read, the connection closed.
  const post = (await rawExchange(web, 'POST /form HTTP/1.1\r\nHost: example.test\r\nContent-Length: 5\r\n\r\nhello')).toString('latin1');
  assert.equal(statusOf(post), 308);
  assert.match(post, /\r\nconnection: close\r\n/i);

  // HTTP/1.0 without Host: nothing to redirect to.
  assert.equal(statusOf(await rawExchange(web, 'GET / HTTP/1.0\r\n\r\n')), 400);
  // A bad request is still refused by the checks, not redirected.
  assert.equal(statusOf(await rawExchange(web, 'GET /a/../b HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n')), 400);
  // A WebSocket upgrade to a ws route is redirected as well, not switched.
  const ws = (await rawExchange(web, 'GET /ws HTTP/1.1\r\nHost: example.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n', { timeoutMs: 1000 })).toString('latin1');
  assert.equal(statusOf(ws), 308);
  assert.match(ws, /\r\nlocation: https:\/\/example\.test\/ws\r\n/i);
});

test('without redirectToHttps a plain listener serves as before', async () => {
  const y = await yard([{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: ROUTES }]);
  const r = await redirectOf(y.address('web').port, 'example.test', '/x');
  assert.deepEqual(r, { status: 200, location: '', body: 'plain' });
});

async function headersOf(url: string): Promise<string> {
  const r = await run('curl', ['-s', '-D', '-', '-o', '/dev/null', '--cacert', ca.cert, url]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout;
}

test('hsts: Strict-Transport-Security on every https response (routed and 404), absent on plain http', async () => {
  const tls = { certificates: [{ cert: 'site.crt', key: 'site.key' }] };
  const routes = [{ match: { path: '/' }, handler: { type: 'respond', body: 'ok' } }];
  const y = await yard([
    { name: 'defaults', protocol: 'http', address: '127.0.0.1:0', tls, hsts: true, routes },
    { name: 'custom', protocol: 'http', address: '127.0.0.1:0', tls, hsts: { maxAge: 600, includeSubDomains: true }, routes },
    { name: 'preload', protocol: 'http', address: '127.0.0.1:0', tls, hsts: { includeSubDomains: true, preload: true }, routes },
    { name: 'none', protocol: 'http', address: '127.0.0.1:0', tls, routes },
    { name: 'plain', protocol: 'http', address: '127.0.0.1:0', routes },
  ]);
  const https = (name: string, path: string) => headersOf(`https://127.0.0.1:${y.address(name).port}${path}`);
  const sts = /\r\nstrict-transport-security: ([^\r]*)\r\n/i;
  assert.equal(sts.exec(await https('defaults', '/'))?.[1], 'max-age=31536000');
  const notFound = await https('defaults', '/missing');
  assert.equal(statusOf(notFound), 404);
  assert.equal(sts.exec(notFound)?.[1], 'max-age=31536000', 'a 404 carries it too');
  assert.equal(sts.exec(await https('custom', '/'))?.[1], 'max-age=600; includeSubDomains');
  assert.equal(sts.exec(await https('preload', '/'))?.[1], 'max-age=31536000; includeSubDomains; preload');
  assert.doesNotMatch(await https('none', '/'), /strict-transport-security/i);
  assert.doesNotMatch(await headersOf(`http://127.0.0.1:${y.address('plain').port}/`), /strict-transport-security/i);
});

test('config errors: hsts without tls, redirectToHttps with tls, preload without includeSubDomains, a bad status', async () => {
  const tls = { certificates: [{ cert: 'site.crt', key: 'site.key' }] };
  const routes = [{ handler: { type: 'respond' } }];
  await assert.rejects(yard([{ name: 'a', protocol: 'http', address: '127.0.0.1:0', hsts: true, routes }]), /listeners\[0\]\.hsts/);
  await assert.rejects(yard([{ name: 'a', protocol: 'http', address: '127.0.0.1:0', tls, redirectToHttps: true, routes }]), /listeners\[0\]\.redirectToHttps/);
  await assert.rejects(yard([{ name: 'a', protocol: 'http', address: '127.0.0.1:0', tls, hsts: { preload: true }, routes }]), /listeners\[0\]\.hsts\.preload/);
  await assert.rejects(yard([{ name: 'a', protocol: 'http', address: '127.0.0.1:0', redirectToHttps: { status: 303 }, routes }]), /listeners\[0\]\.redirectToHttps/);
});

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { serve, type Yard } from '../../src/index.ts';
import { exchange, recorder, statuses, type Recorder } from './recorder.ts';
import { killDaemon, startDaemon } from '../helpers/daemon.ts';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// A second corpus, from a pass against a running daemon with nginx as the upstream: what each
// case sends is the exact bytes of the finding, over a raw socket. See the commit messages for
// what each one did before.

let yard: Yard;
let up: Recorder;
let port: number;

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';
const wsHead = (path: string, version = '1.1', host = 'Host: a\r\n') =>
  `GET ${path} HTTP/${version}\r\n${host}Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;

before(async () => {
  up = await recorder();
  yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          limits: { maxBodySize: 1000 },
          routes: [
            { match: { host: 'admin.example', path: '/*' }, handler: { type: 'respond', status: 403, body: 'admin is internal\n' } },
            { match: { path: '/ngx/admin/*' }, handler: { type: 'respond', status: 403, body: 'denied\n' } },
            { match: { path: '/ngx/*' }, handler: { type: 'proxy', upstream: 'api' } },
            { match: { path: '/echo' }, handler: { type: 'echo' } },
            { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
            { match: { path: '/*' }, handler: { type: 'respond', body: 'public\n' } },
          ],
        },
      ],
      upstreams: { api: { targets: [up.url] } },
    },
    { logLevel: 'silent' },
  );
  port = yard.address('web').port;
});
after(async () => {
  await yard.stop(100);
  up.close();
});

test('a refused request with more than one read slice behind it is answered, and the daemon lives', async () => {
  // The bytes after a parse error were put back into a flowing socket, which gave them straight
  // back: unbounded recursion, RangeError, the process gone. A daemon of its own, so that its
  // exit is what the test sees.
  const dir = mkdtempSync(join(tmpdir(), 'switchyard-corpus-'));
  const file = join(dir, 'yard.json');
  const config = { listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'echo' } }] }] };
  writeFileSync(file, JSON.stringify(config));
  const daemon = await startDaemon([file]);
  try {
    const web = daemon.port('web');
    const raw = await exchange(web, `BAD\r\n${'x'.repeat(5000)}`);
    assert.deepEqual(statuses(raw), [400], raw);
    const overflow = await exchange(web, `GET / HTTP/1.1\r\nHost: a\r\nX: ${'x'.repeat(100_000)}\r\n\r\n`);
    assert.deepEqual(statuses(overflow), [431], overflow.slice(0, 200));
    const next = await exchange(web, 'GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
    assert.deepEqual(statuses(next), [200], `${next}\n${daemon.stderr()}`);
    assert.equal(daemon.child.exitCode, null, daemon.stderr());
  } finally {
    await killDaemon(daemon);
  }
});

test('requests after `Connection: close` are not read: the closing request gets its answer, not a 400', async () => {
  const before = up.requests.length;
  const raw = await exchange(port, 'GET /echo HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n' + 'GET /ngx/y HTTP/1.1\r\nHost: a\r\n\r\n'.repeat(300));
  assert.deepEqual(statuses(raw), [200], raw.slice(0, 300));
  assert.equal(up.requests.length, before);
});

test('a malformed request pipelined behind good ones is refused after their answers, in order', async () => {
  const raw = await exchange(port, 'GET /ngx/a HTTP/1.1\r\nHost: a\r\n\r\nGET /echo HTTP/1.1\r\nHost: a\r\n\r\nBAD GARBAGE\r\n\r\n');
  assert.deepEqual(statuses(raw), [200, 200, 400], raw);
  assert.match(raw, /ok GET \/ngx\/a/);
});

test('an encoded slash, a backslash or a ";" cannot take a path past a deny route to an upstream that reads it differently', async () => {
  const before = up.requests.length;
  for (const path of ['/ngx/%2fadmin/x', '/ngx/admin%2Fx', '/ngx/admin%2f', '/ngx/admin%5cx', '/ngx/admin\\x', '/ngx/admin;/x', '/ngx/admin;v=1/x']) {
    const raw = await exchange(port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(statuses(raw), [400], `${path}: ${raw}`);
  }
  for (const path of ['/ngx/x/..%2fadmin/x', '/ngx/x/%2e%2e%2fadmin/x', '/ngx/x/..;/admin/x', '/ngx/x\\..\\admin\\x', '/ngx/x/..%5cadmin']) {
    const raw = await exchange(port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(statuses(raw), [400], `${path}: ${raw}`);
    assert.match(raw, /bad request path/);
  }
  assert.equal(up.requests.length, before, up.bytes());
  // Where both readings take the same route, the path goes upstream as the client wrote it.
  for (const path of ['/ngx/projects/group%2Fproject', '/ngx/cars;color=red', '/ngx/a\\b']) {
    const raw = await exchange(port, `GET ${path} HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(statuses(raw), [200], `${path}: ${raw}`);
    assert.equal(up.requests.at(-1)?.url, path);
  }
});

test('a fragment in the request target is refused', async () => {
  const raw = await exchange(port, 'GET /ngx/admin#/x HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(raw), [400], raw);
  assert.match(raw, /fragment/);
});

test('HTTP/1.1 without Host is refused with a reason, upgrades included; HTTP/1.0 without Host is served', async () => {
  const plain = await exchange(port, 'GET /echo HTTP/1.1\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(plain), [400], plain);
  assert.match(plain, /no Host header/);
  const upgrade = await exchange(port, wsHead('/ws', '1.1', ''));
  assert.deepEqual(statuses(upgrade), [400], upgrade);
  const old = await exchange(port, 'GET /echo HTTP/1.0\r\n\r\n');
  assert.deepEqual(statuses(old), [200], old);
});

test('an Upgrade in an HTTP/1.0 request is ignored (RFC 9110 §7.8)', async () => {
  const raw = await exchange(port, wsHead('/ws', '1.0').replace('Connection: Upgrade', 'Connection: close, Upgrade'));
  assert.doesNotMatch(raw, /101 Switching/);
  assert.deepEqual(statuses(raw), [426], raw);
});

test('a fully qualified Host (trailing dot) matches the route for its name', async () => {
  for (const host of ['admin.example.', 'ADMIN.example.:80']) {
    const raw = await exchange(port, `GET /ngx/x HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.deepEqual(statuses(raw), [403], `${host}: ${raw}`);
    assert.match(raw, /admin is internal/);
  }
});

test('more header fields than node keeps are refused (431), not cut with the framing headers past the cut', async () => {
  const fields = Array.from({ length: 2000 }, (_, i) => `X${i}: v\r\n`).join('');
  const raw = await exchange(port, `POST /echo HTTP/1.1\r\nHost: a\r\n${fields}Content-Length: 5000000\r\nConnection: close\r\n\r\nAAAA`);
  assert.deepEqual(statuses(raw), [431], raw);
  const fewer = Array.from({ length: 1990 }, (_, i) => `X${i}: v\r\n`).join('');
  const ok = await exchange(port, `GET /echo HTTP/1.1\r\nHost: a\r\n${fewer}Connection: close\r\n\r\n`);
  assert.deepEqual(statuses(ok), [200], ok.slice(0, 200));
});

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { serve, type Yard } from '../../src/index.ts';
import { exchange, recorder, statuses, type Recorder } from './recorder.ts';
import { runCli } from '../helpers/daemon.ts';
import { writeFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

// RFC 9110/9112 strictness at the edge: Host, request-target forms, versions, methods, Expect,
// and path rules that a doubled slash must not get around. Raw sockets, so nothing is tidied
// by a client library on the way.

let yard: Yard;
let up: Recorder;
let port: number;

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
            { match: { path: '/trace', method: ['GET', 'TRACE'] }, handler: { type: 'respond', body: 'trace allowed here\n' } },
            { match: { path: '/*' }, handler: { type: 'respond', body: 'public\n' } },
          ],
        },
        {
          name: 'keep',
          protocol: 'http',
          address: '127.0.0.1:0',
          mergeSlashes: false,
          routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'api' } }],
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

test('a second Host header is refused, not routed on one value and forwarded with the other', async () => {
  const raw = await exchange(port, 'GET /ngx/x HTTP/1.1\r\nHost: public.example\r\nHost: admin.example\r\n\r\n');
  assert.deepEqual(statuses(raw), [400], raw);
  assert.match(raw, /more than one Host header/);
  const mixedCase = await exchange(port, 'GET / HTTP/1.1\r\nhost: a\r\nHOST: b\r\n\r\n');
  assert.deepEqual(statuses(mixedCase), [400], mixedCase);
  assert.equal(up.requests.length, 0);
});

test('Host values outside the URI grammar are refused', async () => {
  for (const host of ['a.example/@evil', 'a b', 'evil.example\\x', 'a@b', 'x"y', '[::1']) {
    const raw = await exchange(port, `GET /ngx/x HTTP/1.1\r\nHost: ${host}\r\n\r\n`);
    assert.deepEqual(statuses(raw), [400], `${host}: ${raw}`);
  }
  for (const host of ['admin.example:8080', '127.0.0.1', '[::1]:80', 'xn--bcher-kva.example', 'under_score.local']) {
    const raw = await exchange(port, `GET /echo HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`);
    assert.notEqual(statuses(raw)[0], 400, `${host}: ${raw}`);
  }
  assert.equal(up.requests.length, 0);
});

test('each Host is checked: a bad one right after a good one on the same connection is refused', async () => {
  // The check remembers the last valid Host (request-target.ts): a value that differs from it
  // by a character is checked in full.
  const raw = await exchange(port, 'GET /echo HTTP/1.1\r\nHost: same.example\r\n\r\nGET /echo HTTP/1.1\r\nHost: same.example/@evil\r\n\r\n');
  assert.deepEqual(statuses(raw), [200, 400], raw);
  assert.match(raw, /bad Host header/);
  const again = await exchange(port, 'GET /echo HTTP/1.1\r\nHost: same.example\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(again), [200], again);
});

test('absolute-form targets are served, and their authority wins over Host', async () => {
  const raw = await exchange(port, 'GET http://admin.example/anything HTTP/1.1\r\nHost: public.example\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(raw), [403], raw);
  assert.match(raw, /admin is internal/);
  const proxied = await exchange(port, 'GET http://Upstream.Example:8080/ngx/p?q=1 HTTP/1.1\r\nHost: other\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(proxied), [200], proxied);
  const seen = up.requests.at(-1);
  assert.equal(seen?.url, '/ngx/p?q=1');
  assert.equal(seen?.host, 'Upstream.Example:8080');
  const userinfo = await exchange(port, 'GET http://user@admin.example/ HTTP/1.1\r\nHost: x\r\n\r\n');
  assert.deepEqual(statuses(userinfo), [400], userinfo);
});

test('a doubled slash cannot get past a path rule: merged before routing and forwarded merged', async () => {
  const denied = await exchange(port, 'GET /ngx//admin/x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(denied), [403], denied);
  const also = await exchange(port, 'GET //ngx///admin//x HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(also), [403], also);
  const before = up.requests.length;
  const ok = await exchange(port, 'GET /ngx//a///b?x=//y HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(ok), [200], ok);
  assert.equal(up.requests.length, before + 1);
  assert.equal(up.requests.at(-1)?.url, '/ngx/a/b?x=//y', 'the query is left alone');
  // mergeSlashes: false keeps them, for backends that give `//` a meaning.
  const kept = await exchange(yard.address('keep').port, 'GET /a//b HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(kept), [200], kept);
  assert.equal(up.requests.at(-1)?.url, '/a//b');
});

test('an HTTP/2.0 request line on HTTP/1 gets 505', async () => {
  const raw = await exchange(port, 'GET / HTTP/2.0\r\nHost: x\r\n\r\n');
  assert.deepEqual(statuses(raw), [505], raw);
});

test('HTTP/1.0 with Transfer-Encoding is answered, then the connection is closed', async () => {
  const raw = await exchange(port, 'POST /echo HTTP/1.0\r\nHost: x\r\nConnection: keep-alive\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n', { end: false });
  assert.equal(statuses(raw)[0], 200, raw);
  assert.match(raw, /connection: close/i);
  assert.equal(statuses(raw).length, 1, `nothing more is read from the connection: ${raw}`);
});

test('Expect: 100-continue with a declared length over the limit gets 413 and no 100', async () => {
  const raw = await exchange(port, 'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 5000\r\n\r\n', { end: false, timeoutMs: 1500 });
  assert.deepEqual(statuses(raw), [413], raw);
  const fine = await exchange(port, 'POST /echo HTTP/1.1\r\nHost: x\r\nExpect: 100-continue\r\nContent-Length: 3\r\nConnection: close\r\n\r\n', { end: false, timeoutMs: 300 });
  assert.deepEqual(statuses(fine), [100], fine);
});

test('TRACE is refused with 405 unless a route names it; CONNECT gets 501', async () => {
  const trace = await exchange(port, 'TRACE /ngx/x HTTP/1.1\r\nHost: x\r\nCookie: secret=1\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(trace), [405], trace);
  assert.match(trace, /allow: GET, HEAD, POST/i);
  assert.doesNotMatch(trace, /secret/);
  const named = await exchange(port, 'TRACE /trace HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(named), [200], named);
  const connect = await exchange(port, 'CONNECT internal.example:443 HTTP/1.1\r\nHost: internal.example:443\r\n\r\n');
  assert.deepEqual(statuses(connect), [501], connect);
  assert.match(connect, /not a forward proxy/);
  assert.ok(!up.requests.some((r) => r.method === 'TRACE' || r.method === 'CONNECT'));
});

test('switchyard check refuses two listeners on one port before serve would fail to bind', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-strict-'));
  const file = join(dir, 'two.yaml');
  writeFileSync(
    file,
    'listeners:\n  - { name: a, protocol: http, address: "127.0.0.1:18080", routes: [{ handler: { type: respond } }] }\n  - { name: b, protocol: tcp, address: "127.0.0.1:18080", handler: { type: echo } }\n',
  );
  const r = await runCli(['check', file]);
  assert.notEqual(r.code, 0);
  assert.match(r.stderr + r.stdout, /listeners\[1\]\.address/);
});

test('framing the parser refuses (docs/security.md): 400 and nothing reaches a handler', async () => {
  const before = up.requests.length;
  const cases: Record<string, string> = {
    'CL and TE': 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n',
    'two Content-Length': 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcd',
    'signed Content-Length': 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nContent-Length: +4\r\n\r\nabcd',
    xchunked: 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: xchunked\r\n\r\n0\r\n\r\n',
    'chunked, identity': 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n',
    'space before colon': 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding : chunked\r\n\r\n0\r\n\r\n',
    'bare LF': 'GET /ngx/a HTTP/1.1\nHost: x\n\n',
    'bare CR': 'GET /ngx/a HTTP/1.1\rHost: x\r\n\r\n',
    'obs-fold': 'GET /ngx/a HTTP/1.1\r\nHost: x\r\nX-A: a\r\n b\r\n\r\n',
    NUL: 'GET /ngx/a HTTP/1.1\r\nHost: x\r\nX-A: a\x00b\r\n\r\n',
    'bad chunk size': 'POST /ngx/a HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n',
    'unknown method': 'FOO /ngx/a HTTP/1.1\r\nHost: x\r\n\r\n',
    'HTTP/1.1 without Host': 'GET /ngx/a HTTP/1.1\r\n\r\n',
  };
  for (const [name, bytes] of Object.entries(cases)) {
    const raw = await exchange(port, bytes, { timeoutMs: 1000 });
    assert.deepEqual(statuses(raw), [400], `${name}: ${raw}`);
  }
  const expect = await exchange(port, 'GET /ngx/a HTTP/1.1\r\nHost: x\r\nExpect: something-else\r\nConnection: close\r\n\r\n');
  assert.deepEqual(statuses(expect), [417], expect);
  assert.equal(up.requests.length, before, 'nothing was forwarded');
});

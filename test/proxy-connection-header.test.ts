import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connectionNamed } from '../src/handlers/proxy/connection-header.ts';
import { responseHeaders } from '../src/handlers/proxy/response-headers.ts';
import { requestHeaders } from '../src/handlers/proxy/request-headers.ts';
import type { HttpRequest } from '../src/handlers/types.ts';

test('a Connection value names the headers it lists besides its standard options, in any case and spacing', () => {
  for (const v of ['keep-alive', 'Keep-Alive', 'close', 'CLOSE', 'upgrade', 'keep-alive, close', ' keep-alive ', '', ',']) {
    assert.equal(connectionNamed(v), undefined, v);
  }
  assert.deepEqual(connectionNamed('X-Secret'), new Set(['x-secret']));
  assert.deepEqual(connectionNamed('keep-alive, X-Secret'), new Set(['x-secret']));
  assert.deepEqual(connectionNamed('Keep-Alive,X-A , x-b'), new Set(['x-a', 'x-b']));
  // As long as a standard option but not one: a name.
  assert.deepEqual(connectionNamed('keep-alivX'), new Set(['keep-alivx']));
});

test('response headers: a header the Connection header names is dropped, keep-alive alone drops nothing else', () => {
  const raw = (pairs: string[]) => pairs.map((s) => Buffer.from(s, 'latin1'));
  const kept = responseHeaders(raw(['Content-Type', 'text/plain', 'Connection', 'Keep-Alive', 'X-Up', '1']), '1.1 switchyard');
  assert.deepEqual(kept, ['Content-Type', 'text/plain', 'X-Up', '1', 'via', '1.1 switchyard']);
  const dropped = responseHeaders(raw(['Content-Type', 'text/plain', 'Connection', 'keep-alive, X-Up', 'X-Up', '1']), '1.1 switchyard');
  assert.deepEqual(dropped, ['Content-Type', 'text/plain', 'via', '1.1 switchyard']);
});

test('request headers: a header the client names in Connection is not sent upstream, nor is Connection', () => {
  const req = (rawHeaders: string[]) =>
    ({ rawHeaders, httpVersionMajor: 1, socket: { remoteAddress: '127.0.0.1', encrypted: false } }) as unknown as HttpRequest;
  const policy = { host: 'preserve', trustForwarded: false, via: '1.1 switchyard' };
  const names = (flat: string[]) => flat.filter((_, i) => i % 2 === 0);
  const plain = requestHeaders(req(['Host', 'a.test', 'Connection', 'keep-alive', 'X-Hop', '1']), '', policy);
  assert.ok(names(plain).includes('X-Hop'));
  assert.ok(!names(plain).some((n) => n.toLowerCase() === 'connection'));
  const named = requestHeaders(req(['Host', 'a.test', 'Connection', 'Keep-Alive, X-Hop', 'X-Hop', '1']), '', policy);
  assert.ok(!names(named).includes('X-Hop'));
});

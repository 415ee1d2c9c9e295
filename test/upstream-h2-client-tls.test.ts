import assert from 'node:assert/strict';
import { once } from 'node:events';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createSecureServer } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, test } from 'node:test';
import { createServer as createTlsServer } from 'node:tls';
import type { Dispatcher } from 'undici';
import { classify } from '../src/handlers/proxy/errors.ts';
import { Http2Dispatcher } from '../src/upstream/h2-dispatcher.ts';
import { makeLeaf, makeTestCa, type Files } from './helpers/tls-fixtures.ts';

// The HTTP/2 upstream client over TLS against a real node:http2 server: ALPN h2, the group's CA
// and server name, a streamed request body both ways with trailers; and a TLS target that does
// not offer h2 is refused with an error that says so.

let dir: string;
let ca: Files;
let leaf: Files;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-h2-client-tls-'));
  ca = await makeTestCa(dir);
  leaf = await makeLeaf(dir, ca, 'target', ['target.test']);
});
after(() => rm(dir, { recursive: true, force: true }));

function collect(d: Http2Dispatcher, body: Buffer | AsyncIterable<Buffer> | null) {
  return new Promise<{ status: number; headers: string[]; body: Buffer; trailers: unknown }>((resolve, reject) => {
    let status = 0;
    let headers: string[] = [];
    const chunks: Buffer[] = [];
    const handler: Dispatcher.DispatchHandler = {
      onConnect() {},
      onHeaders(s: number, raw: Buffer[]) {
        status = s;
        headers = raw as unknown as string[];
        return true;
      },
      onData(c: Buffer) {
        chunks.push(c);
        return true;
      },
      onComplete(trailers: unknown) {
        resolve({ status, headers, body: Buffer.concat(chunks), trailers });
      },
      onError: reject,
    };
    d.dispatch({ method: 'POST', path: '/echo?x=1', headers: ['content-type', 'application/octet-stream', 'te', 'trailers'], body } as unknown as Dispatcher.DispatchOptions, handler);
  });
}

/** A pool of one TLS connection to the target on `port`, trusting the test CA, closed after the tests. */
async function tlsPool(port: number): Promise<Http2Dispatcher> {
  const d = new Http2Dispatcher({
    protocol: 'https:',
    host: '127.0.0.1',
    port,
    id: `127.0.0.1:${port}`,
    tls: { ca: await readFile(ca.cert), servername: 'target.test' },
    connectTimeout: 5000,
    headersTimeout: 5000,
    bodyTimeout: 5000,
    maxSessions: 1,
  });
  after(() => d.destroy());
  return d;
}

test('h2 over TLS with ALPN against node:http2: the CA and server name verify, a large body streams both ways, trailers arrive', async () => {
  const server = createSecureServer({ cert: await readFile(leaf.cert), key: await readFile(leaf.key) });
  let seenAlpn: string | false | undefined;
  server.on('stream', (stream, headers) => {
    seenAlpn = (stream.session?.socket as { alpnProtocol?: string | false } | undefined)?.alpnProtocol;
    const parts: Buffer[] = [];
    stream.on('data', (c: Buffer) => parts.push(c));
    stream.on('end', () => {
      const body = Buffer.concat(parts);
      stream.respond({ ':status': 200, 'x-path': String(headers[':path']), 'x-authority': String(headers[':authority']) }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'x-length': String(body.length) }));
      stream.end(body);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => server.close());
  const port = (server.address() as { port: number }).port;
  const d = await tlsPool(port);
  // 3 MiB: more than node:http2's windows, so both sides wait for WINDOW_UPDATEs on the way.
  const size = 3 << 20;
  async function* body(): AsyncGenerator<Buffer> {
    for (let sent = 0; sent < size; sent += 65536) yield Buffer.alloc(65536, sent / 65536);
  }
  const answer = await collect(d, body());
  assert.equal(seenAlpn, 'h2');
  assert.equal(answer.status, 200);
  const h = new Map<string, string>();
  for (let i = 0; i < answer.headers.length; i += 2) h.set(answer.headers[i], answer.headers[i + 1]);
  assert.equal(h.get('x-path'), '/echo?x=1');
  assert.equal(h.get('x-authority'), `127.0.0.1:${port}`);
  assert.equal(answer.body.length, size);
  assert.equal(answer.body[size - 1], size / 65536 - 1);
  assert.deepEqual(answer.trailers, { 'x-length': String(size) });
  // A second call reuses the connection.
  const again = await collect(d, Buffer.from('small'));
  assert.equal(again.body.toString(), 'small');
  assert.equal(d.stats.connected, 1);
});

for (const [what, alpn] of [
  ['offers only http/1.1', ['http/1.1']],
  ['speaks no ALPN', undefined],
] as const) {
  test(`a TLS target that ${what} is refused: the error names ALPN h2`, async () => {
    const server = createTlsServer({ cert: await readFile(leaf.cert), key: await readFile(leaf.key), ALPNProtocols: alpn ? [...alpn] : undefined }, (s) => s.on('error', () => {}));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    after(() => server.close());
    const port = (server.address() as { port: number }).port;
    const d = await tlsPool(port);
    const err = await collect(d, null).then(
      () => assert.fail('a target without h2 answered'),
      (e: Error) => e,
    );
    assert.match(err.message, /ALPN h2/);
    assert.equal(classify(err, false).kind, 'UPSTREAM_PROTOCOL');
  });
}

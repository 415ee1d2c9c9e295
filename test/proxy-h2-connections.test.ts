import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, constants, createServer as createH2Server, type ServerHttp2Stream } from 'node:http2';
import * as grpc from '@grpc/grpc-js';
import { serve } from '../src/index.ts';

// How the proxy spreads gRPC calls over its HTTP/2 connections to one target: by default every
// call rides one connection (up to the target's SETTINGS_MAX_CONCURRENT_STREAMS); with
// pool.maxStreamsPerConnection the calls past that many open more connections, never more than
// pool.connections, and every call is still answered. The backend is a bare node:http2 server
// that counts its sessions and holds every answer until all the calls of a round have arrived,
// so that they are all in flight at once. Last, a call the client resets while its body is still
// coming is cancelled upstream too (the proxy reads a call's body from its HTTP/2 stream itself).

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const identity = (b: Buffer): Buffer => b;
const EchoClient = grpc.makeGenericClientConstructor(
  { Unary: { path: '/bench.Echo/Unary', requestStream: false, responseStream: false, requestSerialize: identity, requestDeserialize: identity, responseSerialize: identity, responseDeserialize: identity } } as unknown as grpc.ServiceDefinition,
  'Echo',
);
type Client = grpc.Client & { Unary(msg: Buffer, cb: (err: grpc.ServiceError | null, res: Buffer) => void): void };

interface Backend {
  port: number;
  sessions: number;
  /** Told of every stream as it arrives. */
  onStream?: (stream: ServerHttp2Stream) => void;
  /** Answers are held until this many calls are open (or a second passed). */
  hold: number;
}

async function backend(): Promise<Backend> {
  const b: Backend = { port: 0, sessions: 0, hold: 0 };
  const waiting: (() => void)[] = [];
  let timer: NodeJS.Timeout | undefined;
  const release = () => {
    clearTimeout(timer);
    timer = undefined;
    for (const answer of waiting.splice(0)) answer();
  };
  const server = createH2Server();
  server.on('session', () => b.sessions++);
  server.on('stream', (stream: ServerHttp2Stream) => {
    b.onStream?.(stream);
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      waiting.push(() => {
        if (stream.destroyed) return;
        stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
        stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
        stream.end(Buffer.concat(chunks));
      });
      if (waiting.length >= b.hold) release();
      else timer ??= setTimeout(release, 1000);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  b.port = (server.address() as { port: number }).port;
  closers.push(() => {
    release();
    return new Promise((r) => server.close(r));
  });
  return b;
}

async function gateway(b: Backend, pool: Record<string, unknown>): Promise<number> {
  const yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }] }],
      upstreams: { u: { targets: [`h2c://127.0.0.1:${b.port}`], health: false, pool } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  return yard.address('web').port;
}

/** `n` unary calls at once on one client connection; resolves with the echoed messages. */
function calls(port: number, n: number): Promise<string[]> {
  const c = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as Client;
  closers.push(() => c.close());
  return Promise.all(
    Array.from({ length: n }, (_, i) => new Promise<string>((resolve, reject) => c.Unary(Buffer.from(`call ${i}`), (err, res) => (err ? reject(err) : resolve(res.toString()))))),
  );
}

const N = 16;
const expected = Array.from({ length: N }, (_, i) => `call ${i}`);

test('by default all calls to a target ride one HTTP/2 connection', async () => {
  const b = await backend();
  b.hold = N;
  const port = await gateway(b, {});
  assert.deepEqual(await calls(port, N), expected);
  assert.equal(b.sessions, 1);
});

test('a target that sets no stream limit takes more than 100 calls at once on the one connection', async () => {
  // node:http2 (like grpc-js) sends no SETTINGS_MAX_CONCURRENT_STREAMS: no limit (RFC 9113
  // §6.5.2). 120 calls held open together (under the listener's 128 streams per client
  // connection): past the hundredth, a client that kept 100 as the limit opens a second connection.
  const b = await backend();
  const n = 120;
  b.hold = n;
  const port = await gateway(b, {});
  assert.deepEqual(await calls(port, n), Array.from({ length: n }, (_, i) => `call ${i}`));
  assert.equal(b.sessions, 1);
});

test('pool.maxStreamsPerConnection spreads calls over more connections, at most pool.connections', async () => {
  const b = await backend();
  b.hold = N;
  const port = await gateway(b, { maxStreamsPerConnection: 2, connections: 3 });
  // First round: all calls in flight at once; past two streams a second connection opens (the
  // calls that do not fit wait on the least busy connection meanwhile).
  assert.deepEqual(await calls(port, N), expected);
  assert.ok(b.sessions >= 2, `${b.sessions} connection(s): calls past maxStreamsPerConnection open another`);
  // More rounds: never more than pool.connections.
  for (let round = 0; round < 3; round++) assert.deepEqual(await calls(port, N), expected);
  assert.ok(b.sessions <= 3, `${b.sessions} connections: pool.connections is 3`);
  assert.ok(b.sessions >= 3, `${b.sessions} connections: later rounds fill up to pool.connections`);
});

test('pool.maxStreamsPerConnection is checked: a negative count is a config error naming the field', async () => {
  await assert.rejects(
    serve(
      {
        listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }] }],
        upstreams: { u: { targets: ['h2c://127.0.0.1:1'], pool: { maxStreamsPerConnection: -1 } } },
      },
      { logLevel: 'silent' },
    ),
    /maxStreamsPerConnection/,
  );
});

test('a call the client resets mid-body is reset upstream too, and the next call on the connection is answered', async () => {
  const b = await backend();
  b.hold = 1;
  const upstream: { stream: ServerHttp2Stream; got: number }[] = [];
  const seen = new Promise<void>((resolve) => {
    b.onStream = (stream) => {
      const entry = { stream, got: 0 };
      upstream.push(entry);
      stream.on('data', (c: Buffer) => {
        entry.got += c.length;
        resolve();
      });
    };
  });
  const port = await gateway(b, {});
  const session = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => session.destroy());
  session.on('error', () => {});
  const call = session.request({ ':method': 'POST', ':path': '/bench.Echo/Stream', 'content-type': 'application/grpc', te: 'trailers' });
  call.on('error', () => {});
  // Half a message: the 5-byte prefix says 100 bytes, 10 follow; the stream stays open.
  call.write(Buffer.concat([Buffer.from([0, 0, 0, 0, 100]), Buffer.alloc(10, 1)]));
  await seen;
  assert.equal(upstream.length, 1);
  const closed = new Promise<number>((resolve) => upstream[0].stream.once('close', () => resolve(upstream[0].stream.rstCode)));
  call.close(constants.NGHTTP2_CANCEL);
  const code = await Promise.race([closed, new Promise<string>((r) => setTimeout(() => r('still open after 5 s'), 5000).unref())]);
  assert.equal(code, constants.NGHTTP2_CANCEL, 'the upstream stream is reset with CANCEL');
  assert.equal(upstream[0].got, 15);

  // The connection and the proxy go on: a whole call on the same client session is answered.
  const frame = Buffer.concat([Buffer.from([0, 0, 0, 0, 3]), Buffer.from('abc')]);
  const answer = await new Promise<{ status: string; body: Buffer }>((resolve, reject) => {
    const req = session.request({ ':method': 'POST', ':path': '/bench.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('trailers', (t) => resolve({ status: String(t['grpc-status']), body: Buffer.concat(chunks) }));
    req.on('error', reject);
    req.end(frame);
  });
  assert.deepEqual(answer, { status: '0', body: frame });
});

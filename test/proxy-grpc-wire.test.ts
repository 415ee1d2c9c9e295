import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer as createTcpServer, connect as tcpConnect, type Socket } from 'node:net';
import { connect as h2connect, createServer as createH2Server, type ServerHttp2Stream } from 'node:http2';
import { serve } from '../src/index.ts';

// What a proxied gRPC unary call looks like on the wire to the target: the client sends its one
// message in a DATA frame that ends the stream, and the proxy must send it on the same way (one
// DATA frame with END_STREAM), not the message and then an empty DATA frame for the end: a gRPC
// server would read and handle every call twice. A TCP relay between the proxy and a node:http2
// backend records the bytes the proxy sends; the test parses their frames.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const DATA = 0;
const HEADERS = 1;
const END_STREAM = 1;

interface Frame {
  type: number;
  flags: number;
  stream: number;
  length: number;
}

/** The frames in `bytes` from offset `from` (a frame boundary). */
function framesOf(bytes: Buffer, from: number): Frame[] {
  const frames: Frame[] = [];
  let pos = from;
  for (let i = 0; i < 100_000 && pos + 9 <= bytes.length; i++) {
    const length = bytes.readUIntBE(pos, 3);
    if (pos + 9 + length > bytes.length) break;
    frames.push({ length, type: bytes[pos + 3], flags: bytes[pos + 4], stream: bytes.readUInt32BE(pos + 5) & 0x7fffffff });
    pos += 9 + length;
  }
  return frames;
}

/** A node:http2 echo backend behind a TCP relay that keeps what the proxy sent. */
async function relayedBackend(): Promise<{ port: number; sent: () => Buffer }> {
  const h2 = createH2Server();
  h2.on('stream', (stream: ServerHttp2Stream) => {
    stream.on('error', () => {});
    const chunks: Buffer[] = [];
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.once('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.concat(chunks));
    });
  });
  await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r));
  const backendPort = (h2.address() as { port: number }).port;
  const recorded: Buffer[] = [];
  let total = 0;
  const sockets: Socket[] = [];
  const relay = createTcpServer((down) => {
    const up = tcpConnect(backendPort, '127.0.0.1');
    sockets.push(down, up);
    down.on('data', (c: Buffer) => {
      // Bounded: the test sends a few calls.
      if (total < 1 << 20) {
        recorded.push(c);
        total += c.length;
      }
      up.write(c);
    });
    up.pipe(down);
    down.on('error', () => up.destroy());
    up.on('error', () => down.destroy());
    down.on('close', () => up.destroy());
  });
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r));
  closers.push(
    () =>
      new Promise<void>((r) => {
        for (const s of sockets) s.destroy();
        relay.close(() => h2.close(() => r()));
      }),
  );
  return { port: (relay.address() as { port: number }).port, sent: () => Buffer.concat(recorded) };
}

function grpcMessage(text: string): Buffer {
  const payload = Buffer.from(text);
  const header = Buffer.alloc(5);
  header.writeUInt32BE(payload.length, 1);
  return Buffer.concat([header, payload]);
}

test('a unary call goes upstream as HEADERS and one DATA frame with END_STREAM, as the client sent it', async () => {
  const backend = await relayedBackend();
  const yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }] }],
      upstreams: { u: { targets: [`h2c://127.0.0.1:${backend.port}`], health: false } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  const client = h2connect(`http://127.0.0.1:${yard.address('web').port}`);
  closers.push(() => client.close());
  const N = 8;
  const call = (i: number) =>
        new Promise<{ status: number; body: Buffer; grpcStatus: unknown }>((resolve, reject) => {
          const stream = client.request({ ':method': 'POST', ':path': '/bench.Echo/Unary', 'content-type': 'application/grpc', te: 'trailers' });
          const chunks: Buffer[] = [];
          let status = 0;
          let grpcStatus: unknown;
          stream.on('response', (h) => (status = Number(h[':status'])));
          stream.on('trailers', (t) => (grpcStatus = t['grpc-status']));
          stream.on('data', (c: Buffer) => chunks.push(c));
          stream.on('end', () => resolve({ status, body: Buffer.concat(chunks), grpcStatus }));
          stream.on('error', reject);
          // The message and the end of the stream together: one DATA frame with END_STREAM.
          stream.end(grpcMessage(`call ${i}`));
        });
  // The first call opens the connection to the target (its body has ended by then); the calls
  // measured find it open and are forwarded as their frames arrive.
  await call(-1);
  const before = backend.sent().length;
  const answers = await Promise.all(Array.from({ length: N }, (_, i) => call(i)));
  for (let i = 0; i < N; i++) {
    assert.equal(answers[i].status, 200);
    assert.equal(answers[i].grpcStatus, '0');
    assert.deepEqual(answers[i].body, grpcMessage(`call ${i}`));
  }
  const frames = framesOf(backend.sent(), before);
  const calls = new Set(frames.filter((f) => f.type === HEADERS).map((f) => f.stream));
  assert.equal(calls.size, N, 'one upstream stream per call');
  for (const id of calls) {
    const data = frames.filter((f) => f.type === DATA && f.stream === id);
    assert.equal(data.length, 1, `stream ${id}: ${data.map((f) => `DATA(${f.length}${f.flags & END_STREAM ? ', END_STREAM' : ''})`).join(' ')}`);
    assert.equal(data[0].flags & END_STREAM, END_STREAM, `stream ${id}: the message's DATA frame ends the stream`);
    assert.equal(data[0].length, grpcMessage('call 0').length);
  }
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import http2 from 'node:http2';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { serve, type Yard } from '../src/index.ts';
import {
  decodeGrpcMessage,
  encodeGrpcFrame,
  grpcFrameHeader,
  GrpcStatus,
  GrpcWebResponseDecoder,
} from '../src/protocol/grpc/index.ts';
import { makeLeaf, makeTestCa } from './helpers/tls-fixtures.ts';
import { repoRoot } from './helpers/daemon.ts';

// The grpc handler on real listeners: @grpc/grpc-js clients over h2c and TLS, raw node:http2
// requests for what a well-behaved client never sends (bad timeouts, bad protobuf, a 4 GiB
// length), and gRPC-Web through fetch (undici, HTTP/1.1) with hand-encoded frames.

type Client = grpc.Client & Record<string, (...args: unknown[]) => unknown>;
type AnyCall = grpc.ClientReadableStream<Record<string, unknown>>;

let dir: string;
let yard: Yard;
let caPem: Buffer;
const clients: grpc.Client[] = [];
let pkg: {
  helloworld: { Greeter: grpc.ServiceClientConstructor };
  grpc: { health: { v1: { Health: grpc.ServiceClientConstructor } } };
};

const port = (name: string) => yard.address(name).port;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-grpc-'));
  const ca = await makeTestCa(dir);
  const leaf = await makeLeaf(dir, ca, 'server', ['127.0.0.1', 'localhost']);
  caPem = await readFile(ca.cert);
  const greeter = {
    match: { path: '/helloworld.Greeter/*' },
    handler: { type: 'grpc', maxReceiveMessageSize: '4KiB', greeter: { maxReplies: 1_000_000 }, grpcWeb: { origins: ['https://app.example'] } },
  };
  const health = { match: { path: '/grpc.health.v1.Health/*' }, handler: { type: 'grpc' } };
  yard = await serve(
    {
      listeners: [
        { name: 'h2c', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [greeter, health] },
        { name: 'tls', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: leaf.cert, key: leaf.key }] }, routes: [greeter, health] },
        // Calls here may run 150 ms at most, whatever the client asks.
        { name: 'capped', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/*' }, handler: { type: 'grpc', maxTimeout: '150ms', grpcWeb: false } }] },
      ],
    } as never,
    { logLevel: 'silent' },
  );
  const def = protoLoader.loadSync(['helloworld.proto', 'grpc/health/v1/health.proto'], { includeDirs: [join(repoRoot, 'proto')], keepCase: true, defaults: true, enums: String });
  pkg = grpc.loadPackageDefinition(def) as never;
});

after(async () => {
  for (const c of clients) c.close();
  await yard?.stop(100);
  if (dir) await rm(dir, { recursive: true, force: true });
});

function client(kind: 'Greeter' | 'Health', listener = 'h2c', options: grpc.ChannelOptions = {}): Client {
  const Ctor = kind === 'Greeter' ? pkg.helloworld.Greeter : pkg.grpc.health.v1.Health;
  const creds = listener === 'tls' ? grpc.credentials.createSsl(caPem) : grpc.credentials.createInsecure();
  // The certificate names localhost too: SNI takes a name, not an IP address.
  const tlsName = listener === 'tls' ? { 'grpc.ssl_target_name_override': 'localhost', 'grpc.default_authority': 'localhost' } : {};
  const c = new Ctor(`127.0.0.1:${port(listener)}`, creds, { ...tlsName, ...options }) as unknown as Client;
  clients.push(c);
  return c;
}

function unary(c: Client, method: string, request: Record<string, unknown>, options: grpc.CallOptions = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    (c[method] as unknown as (r: unknown, o: grpc.CallOptions, cb: (e: grpc.ServiceError | null, v: Record<string, unknown>) => void) => void)(request, options, (err, value) => (err ? reject(err) : resolve(value)));
  });
}

async function statusOf(p: Promise<unknown>): Promise<grpc.ServiceError> {
  try {
    await p;
  } catch (err) {
    return err as grpc.ServiceError;
  }
  throw new Error('the call succeeded');
}

/** One counter's value from the yard's metrics (0 when absent). */
async function metric(name: string, labels: Record<string, string>): Promise<number> {
  const text = await yard.metrics.text();
  const want = Object.entries(labels).map(([k, v]) => `${k}="${v}"`);
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    if (want.every((w) => line.includes(w))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

const wait = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface RawAnswer {
  status: number;
  headers: http2.IncomingHttpHeaders;
  trailers: http2.IncomingHttpHeaders;
  body: Buffer;
  endStreamOnHeaders: boolean;
}

/** A request over h2c by hand: the headers given, then `body` (or the stream left open when `body` is a function that gets it). */
function rawCall(listener: string, path: string, body: Buffer | ((s: http2.ClientHttp2Stream) => void), headers: http2.OutgoingHttpHeaders = {}): Promise<RawAnswer> {
  return new Promise((resolve, reject) => {
    const session = http2.connect(`http://127.0.0.1:${port(listener)}`);
    session.on('error', reject);
    const s = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
    const answer: RawAnswer = { status: 0, headers: {}, trailers: {}, body: Buffer.alloc(0), endStreamOnHeaders: false };
    const chunks: Buffer[] = [];
    s.on('response', (h, flags) => {
      answer.status = Number(h[':status']);
      answer.headers = h;
      answer.endStreamOnHeaders = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0;
    });
    s.on('trailers', (t) => (answer.trailers = t));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => {
      answer.body = Buffer.concat(chunks);
      session.close();
      resolve(answer);
    });
    if (typeof body === 'function') body(s);
    else s.end(body);
  });
}

const grpcStatusIn = (a: RawAnswer) => Number(a.trailers['grpc-status'] ?? a.headers['grpc-status']);
const helloRequest = (name: string, count = 0) => {
  // HelloRequest { name = 1 (string), count = 2 (uint32) }, encoded by hand.
  const n = Buffer.from(name);
  const parts = [Buffer.from([0x0a]), varint(n.length), n];
  if (count) parts.push(Buffer.from([0x10]), varint(count));
  return Buffer.concat(parts);
};
function varint(v: number): Buffer {
  const out: number[] = [];
  while (v > 0x7f) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
}
/** HelloReply { message = 1 } by hand. */
const replyText = (payload: Buffer) => {
  assert.equal(payload[0], 0x0a);
  let len = 0;
  let shift = 0;
  let i = 1;
  for (; ; i++) {
    len += (payload[i] & 0x7f) * 2 ** shift;
    shift += 7;
    if ((payload[i] & 0x80) === 0) break;
  }
  return payload.subarray(i + 1, i + 1 + len).toString();
};

test('unary SayHello over h2c and over TLS (ALPN h2)', async () => {
  assert.deepEqual(await unary(client('Greeter'), 'SayHello', { name: 'you' }), { message: 'Hello, you!' });
  assert.deepEqual(await unary(client('Greeter', 'tls'), 'SayHello', { name: 'TLS' }), { message: 'Hello, TLS!' });
  assert.deepEqual(await unary(client('Greeter'), 'SayHello', {}), { message: 'Hello, world!' });
  assert.equal(await metric('switchyard_grpc_calls_total', { listener: 'tls', method: '/helloworld.Greeter/SayHello', protocol: 'grpc', code: 'OK' }), 1);
});

test('server streaming: count replies in order; more than maxReplies is INVALID_ARGUMENT', async () => {
  const c = client('Greeter');
  const got: string[] = [];
  for await (const m of c.SayHelloStream({ name: 'x', count: 2000 }) as AnyCall) got.push(m.message as string);
  assert.equal(got.length, 2000);
  assert.equal(got[0], 'Hello, x! (1 of 2000)');
  assert.equal(got[1999], 'Hello, x! (2000 of 2000)');
  const three: string[] = [];
  for await (const m of c.SayHelloStream({ name: 'y' }) as AnyCall) three.push(m.message as string);
  assert.deepEqual(three, ['Hello, y! (1 of 3)', 'Hello, y! (2 of 3)', 'Hello, y! (3 of 3)']);
  const err = await statusOf((async () => {
    for await (const _ of c.SayHelloStream({ name: 'z', count: 2_000_000 }) as AnyCall);
  })());
  assert.equal(err.code, grpc.status.INVALID_ARGUMENT);
  assert.match(err.details, /more than this server sends \(1000000\)/);
});

test('server streaming to a reader that stops: the server is held back (bounded), and a cancel ends the call', async (t) => {
  const c = client('Greeter');
  const method = '/helloworld.Greeter/SayHelloStream';
  const sentBefore = await metric('switchyard_grpc_messages_total', { listener: 'h2c', method, direction: 'sent' });
  // A million replies of about 1 KB each: a gigabyte if the server did not wait for its reader.
  const call = c.SayHelloStream({ name: 'n'.repeat(1000), count: 1_000_000 }) as AnyCall;
  const errors: grpc.ServiceError[] = [];
  call.on('error', (e: grpc.ServiceError) => errors.push(e));
  let read = 0;
  call.on('data', () => {
    read++;
    if (read === 10) call.pause();
  });
  // Wait until the server has stopped sending: flow control has it waiting for 'drain'.
  let last = -1;
  let now = 0;
  for (let i = 0; i < 100; i++) {
    await wait(100);
    now = (await metric('switchyard_grpc_messages_total', { listener: 'h2c', method, direction: 'sent' })) - sentBefore;
    if (now === last && now > 10) break;
    last = now;
  }
  assert.equal(now, last, 'the server kept sending to a reader that stopped');
  // What is ahead of the reader is windows and socket buffers, not the million replies.
  assert.ok(now < 20_000, `${now} replies sent ahead of a reader that took 10`);
  t.diagnostic(`replies sent to a reader that took 10: ${now}`);
  await wait(300);
  assert.equal((await metric('switchyard_grpc_messages_total', { listener: 'h2c', method, direction: 'sent' })) - sentBefore, now);

  // The client cancels: the server's call ends (CANCELLED) and sends nothing more.
  const cancelledBefore = await metric('switchyard_grpc_calls_total', { listener: 'h2c', method, protocol: 'grpc', code: 'CANCELLED' });
  call.cancel();
  call.resume();
  for (let i = 0; i < 50 && (await metric('switchyard_grpc_calls_total', { listener: 'h2c', method, protocol: 'grpc', code: 'CANCELLED' })) === cancelledBefore; i++) await wait(50);
  assert.equal(await metric('switchyard_grpc_calls_total', { listener: 'h2c', method, protocol: 'grpc', code: 'CANCELLED' }), cancelledBefore + 1);
  assert.equal(errors[0]?.code, grpc.status.CANCELLED);
  const after = (await metric('switchyard_grpc_messages_total', { listener: 'h2c', method, direction: 'sent' })) - sentBefore;
  assert.ok(after < 20_000, `${after} sent`);
});

test('client streaming and bidi streaming', async () => {
  const c = client('Greeter');
  const reply = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const call = (c.SayHelloToMany as unknown as (cb: (e: Error | null, v: Record<string, unknown>) => void) => grpc.ClientWritableStream<unknown>)((e, v) => (e ? reject(e) : resolve(v)));
    for (const name of ['ann', 'bob', 'cy']) call.write({ name });
    call.end();
  });
  assert.deepEqual(reply, { message: 'Hello, ann, bob and cy!' });
  const chat = c.SayHelloChat() as unknown as grpc.ClientDuplexStream<unknown, Record<string, unknown>>;
  const answers: string[] = [];
  chat.write({ name: 'p' });
  for await (const m of chat) {
    answers.push(m.message as string);
    if (answers.length === 1) {
      // The first reply came before the second request was sent: replies are made as requests come.
      chat.write({ name: 'q' });
      chat.end();
    }
  }
  assert.deepEqual(answers, ['Hello, p!', 'Hello, q!']);
});

test('gzip-compressed requests are read (grpc-encoding)', async () => {
  const c = client('Greeter', 'h2c', { 'grpc.default_compression_algorithm': 2 });
  assert.deepEqual(await unary(c, 'SayHello', { name: 'zipped' }), { message: 'Hello, zipped!' });
  // A gzip bomb is cut at the limit (4 KiB here) while inflating: RESOURCE_EXHAUSTED.
  const bomb = gzipSync(helloRequest('a'.repeat(100_000)));
  const a = await rawCall('h2c', '/helloworld.Greeter/SayHello', encodeGrpcFrame(bomb, 1), { 'grpc-encoding': 'gzip' });
  assert.equal(grpcStatusIn(a), GrpcStatus.RESOURCE_EXHAUSTED, JSON.stringify(a.headers));
  const snappy = await rawCall('h2c', '/helloworld.Greeter/SayHello', encodeGrpcFrame(helloRequest('x'), 1), { 'grpc-encoding': 'snappy' });
  assert.equal(grpcStatusIn(snappy), GrpcStatus.UNIMPLEMENTED);
  assert.match(String(snappy.headers['grpc-accept-encoding']), /gzip/);
});

test('health: Check says SERVING for the server and each registered service, NOT_FOUND for others', async () => {
  const h = client('Health');
  assert.deepEqual(await unary(h, 'Check', {}), { status: 'SERVING' });
  assert.deepEqual(await unary(h, 'Check', { service: 'helloworld.Greeter' }), { status: 'SERVING' });
  assert.deepEqual(await unary(h, 'Check', { service: 'grpc.health.v1.Health' }), { status: 'SERVING' });
  assert.deepEqual(await unary(client('Health', 'tls'), 'Check', { service: '' }), { status: 'SERVING' });
  const err = await statusOf(unary(h, 'Check', { service: 'no.Such' }));
  assert.equal(err.code, grpc.status.NOT_FOUND);
  assert.equal(err.details, 'unknown service "no.Such"');
});

test('deadlines: the client\'s grpc-timeout ends a call with DEADLINE_EXCEEDED from the server; maxTimeout caps calls without one', async () => {
  // grpc-js enforces its deadline itself too; a raw request shows the server's own answer.
  const watch = encodeGrpcFrame(Buffer.alloc(0));
  const a = await rawCall('h2c', '/grpc.health.v1.Health/Watch', watch, { 'grpc-timeout': '200m' });
  assert.equal(a.status, 200);
  assert.equal(a.trailers['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
  // SERVING was sent first: one HealthCheckResponse { status = 1 }.
  assert.deepEqual(a.body, encodeGrpcFrame(Buffer.from([0x08, 0x01])));
  // No grpc-timeout at all, on a route with maxTimeout 150ms.
  const b = await rawCall('capped', '/grpc.health.v1.Health/Watch', watch);
  assert.equal(b.trailers['grpc-status'], String(GrpcStatus.DEADLINE_EXCEEDED));
  // A unary call whose request never ends: the deadline still ends it.
  const c = await rawCall('h2c', '/helloworld.Greeter/SayHello', (s) => s.write(encodeGrpcFrame(helloRequest('slow'))), { 'grpc-timeout': '100m' });
  assert.equal(grpcStatusIn(c), GrpcStatus.DEADLINE_EXCEEDED);
  // And with grpc-js: the call fails with DEADLINE_EXCEEDED.
  const err = await statusOf((async () => {
    for await (const _ of client('Health').Watch({ service: '' }, { deadline: Date.now() + 200 }) as AnyCall);
  })());
  assert.equal(err.code, grpc.status.DEADLINE_EXCEEDED);
  // A malformed grpc-timeout is refused.
  const bad = await rawCall('h2c', '/helloworld.Greeter/SayHello', encodeGrpcFrame(helloRequest('x')), { 'grpc-timeout': '10 seconds' });
  assert.equal(grpcStatusIn(bad), GrpcStatus.INTERNAL);
  assert.match(decodeGrpcMessage(bad.headers['grpc-message']), /bad grpc-timeout/);
});

test('unknown methods and services are UNIMPLEMENTED, as a trailers-only answer', async () => {
  const c = client('Greeter');
  const call = (path: string) =>
    new Promise<unknown>((resolve, reject) =>
      c.makeUnaryRequest(path, (x: Buffer) => x, (x: Buffer) => x, Buffer.alloc(0), (e, v) => (e ? reject(e) : resolve(v))),
    );
  const m = await statusOf(call('/helloworld.Greeter/SayGoodbye'));
  assert.equal(m.code, grpc.status.UNIMPLEMENTED);
  assert.equal(m.details, 'unknown method SayGoodbye of service helloworld.Greeter');
  const raw = await rawCall('h2c', '/helloworld.Greeter/SayGoodbye', encodeGrpcFrame(Buffer.alloc(0)));
  // One HEADERS frame that ends the stream: how a client knows it holds the status.
  assert.equal(raw.endStreamOnHeaders, true);
  assert.equal(raw.headers['grpc-status'], String(GrpcStatus.UNIMPLEMENTED));
  assert.equal(raw.body.length, 0);
  assert.equal(await metric('switchyard_grpc_calls_total', { listener: 'h2c', method: 'unknown', protocol: 'grpc', code: 'UNIMPLEMENTED' }), 2);
});

test('oversized messages are RESOURCE_EXHAUSTED, refused at their header', async () => {
  const err = await statusOf(unary(client('Greeter'), 'SayHello', { name: 'x'.repeat(5000) }));
  assert.equal(err.code, grpc.status.RESOURCE_EXHAUSTED);
  assert.match(err.details, /larger than the limit of 4096/);
  // The header of a 4 GiB message and nothing more: answered at once, nothing buffered.
  const a = await rawCall('h2c', '/helloworld.Greeter/SayHello', (s) => s.write(grpcFrameHeader(0xffff_ffff)));
  assert.equal(grpcStatusIn(a), GrpcStatus.RESOURCE_EXHAUSTED);
});

test('bad protobuf is INTERNAL; so are a second request to a unary method and a body cut inside a frame', async () => {
  const junk = await rawCall('h2c', '/helloworld.Greeter/SayHello', encodeGrpcFrame(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
  assert.equal(grpcStatusIn(junk), GrpcStatus.INTERNAL);
  assert.match(decodeGrpcMessage(junk.headers['grpc-message']), /not a valid helloworld\.HelloRequest/);
  const two = await rawCall('h2c', '/helloworld.Greeter/SayHello', Buffer.concat([encodeGrpcFrame(helloRequest('a')), encodeGrpcFrame(helloRequest('b'))]));
  assert.equal(grpcStatusIn(two), GrpcStatus.INTERNAL);
  assert.match(decodeGrpcMessage(two.headers['grpc-message']), /more than one request message/);
  const cut = await rawCall('h2c', '/helloworld.Greeter/SayHello', encodeGrpcFrame(helloRequest('abc')).subarray(0, 7));
  assert.equal(grpcStatusIn(cut), GrpcStatus.INTERNAL);
  const none = await rawCall('h2c', '/helloworld.Greeter/SayHello', Buffer.alloc(0));
  assert.equal(grpcStatusIn(none), GrpcStatus.INTERNAL);
  assert.match(decodeGrpcMessage(none.headers['grpc-message']), /no request message/);
});

test('not gRPC: GET is 405, another content type 415, gRPC over HTTP/1.1 505', async () => {
  const base = `http://127.0.0.1:${port('h2c')}/helloworld.Greeter/SayHello`;
  const get = await fetch(base);
  assert.equal(get.status, 405);
  assert.equal(get.headers.get('allow'), 'POST, OPTIONS');
  const json = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/json' }, body: '{}' });
  assert.equal(json.status, 415);
  const h1 = await fetch(base, { method: 'POST', headers: { 'content-type': 'application/grpc' }, body: new Uint8Array(encodeGrpcFrame(helloRequest('x'))) });
  assert.equal(h1.status, 505);
  assert.match(await h1.text(), /gRPC needs HTTP\/2/);
});

/** A gRPC-Web call through fetch (undici: HTTP/1.1). */
async function webCall(path: string, body: Buffer | string, options: { text?: boolean; headers?: Record<string, string> } = {}) {
  const res = await fetch(`http://127.0.0.1:${port('h2c')}${path}`, {
    method: 'POST',
    headers: { 'content-type': options.text ? 'application/grpc-web-text' : 'application/grpc-web+proto', 'x-grpc-web': '1', ...options.headers },
    body: typeof body === 'string' ? body : new Uint8Array(body),
  });
  const raw = Buffer.from(await res.arrayBuffer());
  const decoder = new GrpcWebResponseDecoder({ text: options.text === true });
  const parts = decoder.push(raw);
  const end = decoder.end();
  return { res, messages: [...parts.messages, ...end.messages].map((m) => replyText(m.payload)), trailers: parts.trailers ?? end.trailers, raw };
}

test('gRPC-Web over HTTP/1.1: binary and text, unary and streaming, trailers in the body', async () => {
  const unaryWeb = await webCall('/helloworld.Greeter/SayHello', encodeGrpcFrame(helloRequest('web')));
  assert.equal(unaryWeb.res.status, 200);
  assert.equal(unaryWeb.res.headers.get('content-type'), 'application/grpc-web+proto');
  assert.deepEqual(unaryWeb.messages, ['Hello, web!']);
  assert.deepEqual(unaryWeb.trailers, { 'grpc-status': '0' });
  // The wire as the spec has it: the message frame, then 0x80 and the trailers block.
  const raw = unaryWeb.raw;
  const firstLen = raw.readUInt32BE(1);
  assert.equal(raw[5 + firstLen], 0x80);
  assert.equal(raw.subarray(5 + firstLen + 5).toString(), 'grpc-status: 0\r\n');

  // Text mode: the request base64 in two separately padded pieces, the answer base64 too.
  const frame = encodeGrpcFrame(helloRequest('text', 3));
  const body = frame.subarray(0, 4).toString('base64') + frame.subarray(4).toString('base64');
  const streamed = await webCall('/helloworld.Greeter/SayHelloStream', body, { text: true });
  assert.equal(streamed.res.headers.get('content-type'), 'application/grpc-web-text+proto');
  assert.match(streamed.raw.toString(), /^[A-Za-z0-9+/=]+$/);
  assert.deepEqual(streamed.messages, ['Hello, text! (1 of 3)', 'Hello, text! (2 of 3)', 'Hello, text! (3 of 3)']);
  assert.deepEqual(streamed.trailers, { 'grpc-status': '0' });

  // An error before any reply: trailers-only, the status in the response headers.
  const unknown = await webCall('/helloworld.Greeter/Nope', encodeGrpcFrame(Buffer.alloc(0)));
  assert.equal(unknown.res.headers.get('grpc-status'), String(GrpcStatus.UNIMPLEMENTED));
  assert.equal(unknown.raw.length, 0);
  const junk = await webCall('/helloworld.Greeter/SayHello', 'not*base64', { text: true });
  assert.equal(junk.res.headers.get('grpc-status'), String(GrpcStatus.INTERNAL));
  assert.equal(await metric('switchyard_grpc_calls_total', { listener: 'h2c', method: '/helloworld.Greeter/SayHelloStream', protocol: 'grpc-web-text', code: 'OK' }), 1);
});

test('gRPC-Web CORS: preflights from a configured origin are answered, calls expose grpc-status; other origins get nothing', async () => {
  const url = `http://127.0.0.1:${port('h2c')}/helloworld.Greeter/SayHello`;
  const pre = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://app.example', 'access-control-request-method': 'POST', 'access-control-request-headers': 'content-type,x-grpc-web,x-user-agent' } });
  assert.equal(pre.status, 204);
  assert.equal(pre.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.equal(pre.headers.get('access-control-allow-methods'), 'POST');
  assert.equal(pre.headers.get('access-control-allow-headers'), 'content-type,x-grpc-web,x-user-agent');
  const other = await fetch(url, { method: 'OPTIONS', headers: { origin: 'https://evil.example', 'access-control-request-method': 'POST' } });
  assert.equal(other.status, 204);
  assert.equal(other.headers.get('access-control-allow-origin'), null);
  const call = await webCall('/helloworld.Greeter/SayHello', encodeGrpcFrame(helloRequest('cors')), { headers: { origin: 'https://app.example' } });
  assert.equal(call.res.headers.get('access-control-allow-origin'), 'https://app.example');
  assert.match(call.res.headers.get('access-control-expose-headers') ?? '', /grpc-status, grpc-message/);
  assert.deepEqual(call.messages, ['Hello, cors!']);
});

test('gRPC-Web over HTTP/2 (TLS): the same frames; grpc-web off on a route is 415', async () => {
  const session = http2.connect(`https://127.0.0.1:${port('tls')}`, { ca: caPem });
  const s = session.request({ ':method': 'POST', ':path': '/helloworld.Greeter/SayHello', 'content-type': 'application/grpc-web' });
  s.end(encodeGrpcFrame(helloRequest('h2web')));
  const chunks: Buffer[] = [];
  s.on('data', (d: Buffer) => chunks.push(d));
  await new Promise((r) => s.on('end', r));
  session.close();
  const d = new GrpcWebResponseDecoder({ text: false });
  const parts = d.push(Buffer.concat(chunks));
  assert.deepEqual(parts.messages.map((m) => replyText(m.payload)), ['Hello, h2web!']);
  assert.deepEqual(parts.trailers, { 'grpc-status': '0' });
  const off = await rawCall('capped', '/grpc.health.v1.Health/Check', encodeGrpcFrame(Buffer.alloc(0)), { 'content-type': 'application/grpc-web' });
  assert.equal(off.status, 415);
});

test('stopping the yard: Watch hears NOT_SERVING, then UNAVAILABLE', async () => {
  const small = await serve(
    { listeners: [{ name: 'g', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/*' }, handler: { type: 'grpc' } }] }] } as never,
    { logLevel: 'silent' },
  );
  const h = new pkg.grpc.health.v1.Health(`127.0.0.1:${small.address('g').port}`, grpc.credentials.createInsecure()) as unknown as Client;
  clients.push(h);
  const statuses: string[] = [];
  const watch = h.Watch({ service: 'helloworld.Greeter' }) as AnyCall;
  const ended = new Promise<grpc.ServiceError>((resolve) => watch.on('error', resolve));
  watch.on('data', (m: Record<string, unknown>) => {
    statuses.push(m.status as string);
    if (statuses.length === 1) void small.stop(5000);
  });
  const err = await ended;
  assert.deepEqual(statuses, ['SERVING', 'NOT_SERVING']);
  assert.equal(err.code, grpc.status.UNAVAILABLE);
  assert.equal(err.details, 'server shutting down');
  // The stop did not wait out its grace period for the stream.
  const { cutOff } = await small.stop();
  assert.equal(cutOff, 0);
});

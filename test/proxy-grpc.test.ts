import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, createServer as createH2Server, createSecureServer, type ClientHttp2Session, type ServerHttp2Stream } from 'node:http2';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { makeLeaf, makeTestCa } from './helpers/tls-fixtures.ts';
import { createServer as createNetServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import { serve, type Yard } from '../src/index.ts';

// gRPC through the proxy with @grpc/grpc-js on both sides: per-call balancing over the group's
// HTTP/2 connections (h2c:// targets), all four call shapes, the deadline from grpc-timeout,
// the proxy's own errors as gRPC statuses (UNAVAILABLE, DEADLINE_EXCEEDED, RESOURCE_EXHAUSTED,
// an open breaker's retry pushback), retries on UNAVAILABLE, grpc.health.v1 health checks,
// metrics by service/method/status, and gRPC-Web (binary and text) over HTTP/1.1.
// Messages are JSON (grpc-js takes any serializer), so no .proto file is needed here.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const serialize = (v: unknown): Buffer => Buffer.from(JSON.stringify(v));
const deserialize = (b: Buffer): unknown => JSON.parse(b.toString());
const method = (name: string, requestStream: boolean, responseStream: boolean) => ({
  path: `/test.Echo/${name}`,
  requestStream,
  responseStream,
  requestSerialize: serialize,
  requestDeserialize: deserialize,
  responseSerialize: serialize,
  responseDeserialize: deserialize,
});
const echoService = {
  Unary: method('Unary', false, false),
  ClientStream: method('ClientStream', true, false),
  ServerStream: method('ServerStream', false, true),
  Bidi: method('Bidi', true, true),
} as const;
const EchoClient = grpc.makeGenericClientConstructor(echoService as unknown as grpc.ServiceDefinition, 'Echo');

interface Msg {
  text?: string;
  n?: number;
  delay?: number;
  pad?: string;
}

/** grpc.health.v1.Health/Check with hand-encoded protobuf: status 1 SERVING, 2 NOT_SERVING. */
function healthService(status: () => number): grpc.ServiceDefinition {
  return {
    Check: {
      path: '/grpc.health.v1.Health/Check',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (n: number) => Buffer.from([0x08, n]),
      responseDeserialize: (b: Buffer) => b[1],
    },
  } as unknown as grpc.ServiceDefinition;
}

interface Backend {
  name: string;
  port: number;
  calls: number;
  /** Unary calls answer UNAVAILABLE while true. */
  unavailable: boolean;
  serving: number;
}

async function backend(name: string): Promise<Backend> {
  const b: Backend = { name, port: 0, calls: 0, unavailable: false, serving: 1 };
  const server = new grpc.Server();
  server.addService(echoService as unknown as grpc.ServiceDefinition, {
    Unary: (call: grpc.ServerUnaryCall<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      b.calls++;
      if (b.unavailable) return cb({ code: grpc.status.UNAVAILABLE, details: `${name} is unavailable` });
      const reply = () => cb(null, { text: `${name}:${call.request.text ?? ''}`, n: (call.request.pad ?? '').length });
      if (call.request.delay) setTimeout(reply, call.request.delay);
      else reply();
    },
    ClientStream: (call: grpc.ServerReadableStream<Msg, Msg>, cb: grpc.sendUnaryData<Msg>) => {
      b.calls++;
      let sum = 0;
      call.on('data', (m: Msg) => (sum += m.n ?? 0));
      call.on('end', () => cb(null, { text: name, n: sum }));
    },
    ServerStream: (call: grpc.ServerWritableStream<Msg, Msg>) => {
      b.calls++;
      const total = call.request.n ?? 3;
      let i = 0;
      // Written with backpressure: the next message waits for 'drain' when the stream is full.
      const pump = () => {
        while (i < total) {
          const ok = call.write({ text: name, n: i++, pad: call.request.pad });
          if (!ok) return void call.once('drain', pump);
        }
        call.end();
      };
      pump();
    },
    Bidi: (call: grpc.ServerDuplexStream<Msg, Msg>) => {
      b.calls++;
      call.on('data', (m: Msg) => call.write({ text: `${name}:${m.text}`, n: m.n }));
      call.on('end', () => call.end());
    },
  });
  server.addService(healthService(() => b.serving), {
    Check: (_call: unknown, cb: grpc.sendUnaryData<number>) => cb(null, b.serving),
  });
  b.port = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, port) => (err ? reject(err) : resolve(port))));
  closers.push(() => server.forceShutdown());
  return b;
}

async function deadPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function gateway(targets: string[], upstream: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Promise<{ yard: Yard; port: number }> {
  const yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, ...listener, routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }] }],
      upstreams: { u: { targets, health: false, ...upstream } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  return { yard, port: yard.address('web').port };
}

type EchoClientT = grpc.Client & Record<string, (...args: unknown[]) => unknown>;

function client(port: number): EchoClientT {
  const c = new EchoClient(`127.0.0.1:${port}`, grpc.credentials.createInsecure()) as unknown as EchoClientT;
  closers.push(() => c.close());
  return c;
}

function unary(c: EchoClientT, msg: Msg, options: grpc.CallOptions = {}): Promise<Msg> {
  return new Promise((resolve, reject) => c.Unary(msg, new grpc.Metadata(), options, (err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res))));
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

test('all four call shapes go through the proxy, each call balanced on its own over long-lived HTTP/2 connections', async () => {
  const a = await backend('a');
  const b = await backend('b');
  const { yard, port } = await gateway([`h2c://127.0.0.1:${a.port}`, `h2c://127.0.0.1:${b.port}`]);
  const c = client(port);

  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(String((await unary(c, { text: `hi${i}` })).text).split(':')[0]);
  assert.deepEqual([...seen].sort(), ['a', 'b'], 'calls on one client connection reach both targets');

  const summed = await new Promise<Msg>((resolve, reject) => {
    const call = c.ClientStream((err: grpc.ServiceError | null, res: Msg) => (err ? reject(err) : resolve(res))) as grpc.ClientWritableStream<Msg>;
    for (let i = 1; i <= 10; i++) call.write({ n: i });
    call.end();
  });
  assert.equal(summed.n, 55);

  const streamed: Msg[] = [];
  await new Promise<void>((resolve, reject) => {
    const call = c.ServerStream({ n: 50 }) as grpc.ClientReadableStream<Msg>;
    call.on('data', (m: Msg) => streamed.push(m));
    call.on('error', reject);
    call.on('end', () => resolve());
  });
  assert.deepEqual(
    streamed.map((m) => m.n),
    Array.from({ length: 50 }, (_, i) => i),
  );

  // Bidi: each reply comes back before the next message is sent (a real conversation, not a
  // request buffered until its end).
  const replies = await new Promise<string[]>((resolve, reject) => {
    const call = c.Bidi() as grpc.ClientDuplexStream<Msg, Msg>;
    const got: string[] = [];
    let sent = 0;
    const next = () => {
      if (sent === 5) return call.end();
      call.write({ text: `m${sent}`, n: sent });
      sent++;
    };
    call.on('data', (m: Msg) => {
      got.push(String(m.text).split(':')[1]);
      next();
    });
    call.on('error', reject);
    call.on('end', () => resolve(got));
    next();
  });
  assert.deepEqual(replies, ['m0', 'm1', 'm2', 'm3', 'm4']);

  const text = await yard.metrics.text();
  assert.equal(metric(text, 'switchyard_grpc_proxy_calls_total', { upstream: 'u', service: 'test.Echo', method: 'Unary', code: 'OK' }), 6);
  assert.equal(metric(text, 'switchyard_grpc_proxy_calls_total', { upstream: 'u', service: 'test.Echo', method: 'Bidi', code: 'OK' }), 1);
});

test('a slow reader of a server stream holds the upstream back (backpressure through the proxy) and still gets every message', async () => {
  const a = await backend('a');
  const { port } = await gateway([`h2c://127.0.0.1:${a.port}`]);
  const c = client(port);
  const pad = 'x'.repeat(32 * 1024);
  let count = 0;
  await new Promise<void>((resolve, reject) => {
    const call = c.ServerStream({ n: 200, pad }) as grpc.ClientReadableStream<Msg>;
    call.on('data', () => {
      count++;
      // Read slowly: pause now and then, so the windows fill and the writer has to wait.
      if (count % 20 === 0) {
        call.pause();
        setTimeout(() => call.resume(), 20);
      }
    });
    call.on('error', reject);
    call.on('end', () => resolve());
  });
  assert.equal(count, 200);
});

/** A raw HTTP/2 gRPC request, to see exactly what the proxy answers. */
async function rawCall(port: number, path: string, headers: Record<string, string>, body: Buffer): Promise<{ headers: Record<string, unknown>; trailers: Record<string, unknown>; body: Buffer }> {
  const session: ClientHttp2Session = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => session.destroy());
  try {
    return await new Promise((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': path, 'content-type': 'application/grpc', te: 'trailers', ...headers });
      let head: Record<string, unknown> = {};
      let trailers: Record<string, unknown> = {};
      const chunks: Buffer[] = [];
      stream.on('response', (h) => (head = h));
      stream.on('trailers', (t) => (trailers = t));
      stream.on('data', (d: Buffer) => chunks.push(d));
      stream.on('end', () => resolve({ headers: head, trailers, body: Buffer.concat(chunks) }));
      stream.on('error', reject);
      stream.end(body);
    });
  } finally {
    session.close();
  }
}

function frame(msg: unknown): Buffer {
  const payload = serialize(msg);
  const f = Buffer.alloc(5 + payload.length);
  f.writeUInt32BE(payload.length, 1);
  payload.copy(f, 5);
  return f;
}

test('grpc-timeout is the call\'s deadline: a call the upstream does not answer in time ends DEADLINE_EXCEEDED at the proxy', { timeout: 20_000 }, async () => {
  // An upstream that takes the call and never answers (and knows nothing of grpc-timeout), and
  // a client without a deadline of its own: only the proxy can end the call.
  const silent = createH2Server();
  const held: ServerHttp2Stream[] = [];
  silent.on('stream', (s) => held.push(s));
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r));
  closers.push(() => {
    held.forEach((s) => s.destroy());
    silent.close();
  });
  const { yard, port } = await gateway([`h2c://127.0.0.1:${(silent.address() as { port: number }).port}`], { timeouts: { total: 0, firstByte: '60s' } });
  const r = await rawCall(port, '/test.Echo/Unary', { 'grpc-timeout': '200m' }, frame({ text: 'slow' }));
  assert.equal(held.length, 1, 'the call reached the upstream');
  assert.equal(r.headers[':status'], 200);
  assert.equal(String(r.headers['grpc-status'] ?? r.trailers['grpc-status']), String(grpc.status.DEADLINE_EXCEEDED));
  const text = await yard.metrics.text();
  assert.equal(metric(text, 'switchyard_grpc_proxy_calls_total', { service: 'test.Echo', method: 'Unary', code: 'DEADLINE_EXCEEDED' }), 1);
});

test('the proxy\'s own errors are gRPC statuses: UNAVAILABLE with no target to reach, retry pushback from an open breaker, RESOURCE_EXHAUSTED when too large', async () => {
  const dead = await deadPort();
  const { yard, port } = await gateway([`h2c://127.0.0.1:${dead}`], { retry: { attempts: 0 }, outlier: false, breaker: { minRequests: 1, failureRate: 0.5, openFor: 60_000 } });
  const c = client(port);
  await assert.rejects(unary(c, { text: 'x' }), (err: grpc.ServiceError) => err.code === grpc.status.UNAVAILABLE);
  const r = await rawCall(port, '/test.Echo/Unary', {}, frame({ text: 'x' }));
  assert.equal(r.headers['grpc-status'], String(grpc.status.UNAVAILABLE));
  assert.ok(Number(r.headers['grpc-retry-pushback-ms']) > 0, 'an open breaker says when to come back');
  const text = await yard.metrics.text();
  assert.equal(metric(text, 'switchyard_upstream_rejected_total', { upstream: 'u', reason: 'breaker-open' }), 1);

  const a = await backend('a');
  const small = await gateway([`h2c://127.0.0.1:${a.port}`], {}, { limits: { maxBodySize: 1024 } });
  const big = await rawCall(small.port, '/test.Echo/Unary', {}, frame({ pad: 'y'.repeat(8 * 1024) }));
  assert.equal(String(big.headers['grpc-status'] ?? big.trailers['grpc-status']), String(grpc.status.RESOURCE_EXHAUSTED));
});

test('a call answered UNAVAILABLE is retried on another target when it can be replayed', async () => {
  const a = await backend('a');
  const b = await backend('b');
  a.unavailable = true;
  const { yard, port } = await gateway([`h2c://127.0.0.1:${a.port}`, `h2c://127.0.0.1:${b.port}`], { outlier: false });
  const c = client(port);
  for (let i = 0; i < 6; i++) assert.equal(String((await unary(c, { text: 't' })).text), 'b:t');
  assert.ok(a.calls >= 1, 'a was tried');
  const text = await yard.metrics.text();
  assert.ok(metric(text, 'switchyard_upstream_retries_total', { upstream: 'u' }) >= 1);
  assert.equal(metric(text, 'switchyard_grpc_proxy_calls_total', { service: 'test.Echo', method: 'Unary', code: 'UNAVAILABLE' }), 0);
});

test('grpc.health.v1 health checks take a NOT_SERVING target out of rotation', async () => {
  const a = await backend('a');
  const b = await backend('b');
  a.serving = 2;
  const { yard, port } = await gateway([`h2c://127.0.0.1:${a.port}`, `h2c://127.0.0.1:${b.port}`], {
    health: { grpc: { service: '' }, interval: 100, fall: 1, rise: 1, timeout: 1000 },
  });
  const group = yard.upstreams().find((g) => g.name === 'u')!;
  for (let i = 0; i < 100; i++) {
    const targets = (group.state() as { targets: { healthy: boolean }[] }).targets;
    if (!targets[0].healthy && targets[1].healthy) break;
    await new Promise((r) => setTimeout(r, 25));
  }
  const targets = (group.state() as { targets: { healthy: boolean }[] }).targets;
  assert.deepEqual(
    targets.map((t) => t.healthy),
    [false, true],
  );
  const before = a.calls;
  const c = client(port);
  for (let i = 0; i < 4; i++) assert.equal(String((await unary(c, { text: 'h' })).text), 'b:h');
  assert.equal(a.calls, before);
});

test('gRPC-Web over HTTP/1.1, binary and text, is translated to gRPC and back (trailers in the body)', async () => {
  const a = await backend('a');
  const { port } = await gateway([`h2c://127.0.0.1:${a.port}`]);
  const res = await request(`http://127.0.0.1:${port}/test.Echo/Unary`, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web+proto', 'x-grpc-web': '1' },
    body: frame({ text: 'web' }),
  });
  assert.equal(res.statusCode, 200);
  assert.equal(res.headers['content-type'], 'application/grpc-web+proto');
  const body = Buffer.from(await res.body.arrayBuffer());
  const len = body.readUInt32BE(1);
  assert.equal(body[0], 0);
  assert.deepEqual(deserialize(body.subarray(5, 5 + len)), { text: 'a:web', n: 0 });
  const trailer = body.subarray(5 + len);
  assert.equal(trailer[0], 0x80, 'the trailers frame ends the body');
  assert.match(trailer.subarray(5).toString(), /grpc-status: ?0/);

  const text = await request(`http://127.0.0.1:${port}/test.Echo/Unary`, {
    method: 'POST',
    headers: { 'content-type': 'application/grpc-web-text', accept: 'application/grpc-web-text' },
    body: frame({ text: 'txt' }).toString('base64'),
  });
  assert.equal(text.statusCode, 200);
  assert.equal(text.headers['content-type'], 'application/grpc-web-text+proto');
  const raw = await text.body.text();
  // Each chunk is base64 on its own (padding may sit between them): decode chunk by chunk.
  const decoded = Buffer.concat(raw.match(/[A-Za-z0-9+/]+={0,2}/g)!.map((part) => Buffer.from(part, 'base64')));
  const l2 = decoded.readUInt32BE(1);
  assert.deepEqual(deserialize(decoded.subarray(5, 5 + l2)), { text: 'a:txt', n: 0 });
  assert.equal(decoded[5 + l2], 0x80);
});

test('https:// targets with http2: true are spoken to over HTTP/2 (ALPN h2), gRPC included; without it, HTTP/1.1', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-grpc-tls-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const ca = await makeTestCa(dir);
  const leaf = await makeLeaf(dir, ca, 'up', ['127.0.0.1']);
  const up = createSecureServer({ cert: await readFile(leaf.cert), key: await readFile(leaf.key), allowHTTP1: true });
  up.on('request', (req, res) => {
    if (req.headers['content-type'] === 'application/grpc') {
      res.writeHead(200, { 'content-type': 'application/grpc' });
      res.addTrailers({ 'grpc-status': '0' });
      res.end(frame({ version: req.httpVersion }));
      return;
    }
    res.end(req.httpVersion);
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  closers.push(() => up.close());
  const target = `https://127.0.0.1:${(up.address() as { port: number }).port}`;
  const h2 = await gateway([target], { http2: true, tls: { ca: ca.cert } });
  const h1 = await gateway([target], { tls: { ca: ca.cert } });
  const viaH2 = await request(`http://127.0.0.1:${h2.port}/`);
  assert.equal(await viaH2.body.text(), '2.0');
  const viaH1 = await request(`http://127.0.0.1:${h1.port}/`);
  assert.equal(await viaH1.body.text(), '1.1');
  const c = client(h2.port);
  const reply = await unary(c, { text: 'tls' });
  assert.deepEqual(reply, { version: '2.0' });
});

test('a client that resets a call mid-body: the upstream stream is reset too, after the chunks sent before it', async () => {
  // A raw HTTP/2 upstream, to see the reset arrive.
  const seen: { data: number; reset: Promise<number> } = { data: 0, reset: Promise.resolve(-1) };
  let gotData!: () => void;
  const dataArrived = new Promise<void>((r) => (gotData = r));
  const upstream = createH2Server();
  upstream.on('stream', (stream: ServerHttp2Stream) => {
    seen.reset = new Promise((resolve) => stream.on('close', () => resolve(stream.rstCode)));
    stream.on('data', (chunk: Buffer) => {
      seen.data += chunk.length;
      gotData();
    });
    stream.on('error', () => {});
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => upstream.close(r)));
  const { port } = await gateway([`h2c://127.0.0.1:${(upstream.address() as { port: number }).port}`]);
  const session: ClientHttp2Session = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => session.destroy());
  const req = session.request({ ':method': 'POST', ':path': '/test.Echo/ClientStream', 'content-type': 'application/grpc', te: 'trailers' });
  req.on('error', () => {});
  req.write(Buffer.from([0, 0, 0, 0, 3, 0x61, 0x62, 0x63]));
  await Promise.race([dataArrived, new Promise((_, reject) => setTimeout(() => reject(new Error('no DATA upstream within 5 s')), 5000))]);
  req.close(8 /* CANCEL */);
  const code = await Promise.race([seen.reset, new Promise<number>((_, reject) => setTimeout(() => reject(new Error('upstream stream not reset within 5 s')), 5000))]);
  assert.equal(seen.data, 8);
  assert.notEqual(code, 0, 'the upstream stream was reset, not ended');
});

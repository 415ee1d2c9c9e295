import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Duplex } from 'node:stream';
import { createServer as createNetServer } from 'node:net';
import * as grpc from '@grpc/grpc-js';
import { request } from 'undici';
import WebSocket, { WebSocketServer } from 'ws';
import { serve, type Yard } from '../src/index.ts';
import { runCli } from './helpers/daemon.ts';
import { newTraceparent, validTraceparent } from '../src/handlers/proxy/trace.ts';

// The proxy's `forwarded` and `via` options with real upstreams that record what they were sent:
// each style with and without trustForwarded against a client that forges every forwarding field,
// Via off both ways, the same result over HTTP/2, gRPC and WebSocket upgrades, and `switchyard
// check` naming the field of a bad value.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const FORGED = {
  'x-forwarded-for': '6.6.6.6',
  'x-forwarded-proto': 'https',
  'x-forwarded-host': 'evil.test',
  forwarded: 'for=6.6.6.6',
  via: '1.0 edge',
};

interface Recorder {
  url: string;
  /** Headers of the requests (and upgrade requests) seen, in order. */
  seen: IncomingHttpHeaders[];
}

/** An HTTP/1.1 upstream that records each request's headers; `via` is put on its answers when given. WebSocket upgrades are accepted. */
async function recorder(via?: string): Promise<Recorder> {
  const r: Recorder = { url: '', seen: [] };
  const server: Server = createServer((req, res) => {
    r.seen.push(req.headers);
    if (via !== undefined) res.setHeader('via', via);
    res.end('ok');
  });
  const wss = new WebSocketServer({ noServer: true });
  server.on('upgrade', (req, socket: Duplex, head: Buffer) => {
    r.seen.push(req.headers);
    socket.on('error', () => socket.destroy());
    wss.handleUpgrade(req, socket, head, (ws) => ws.on('error', () => ws.terminate()));
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  r.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  closers.push(() => {
    server.closeAllConnections();
    return new Promise((ok) => server.close(ok));
  });
  return r;
}

async function yardFor(target: string, handler: Record<string, unknown>, listener: Record<string, unknown> = {}): Promise<number> {
  const yard: Yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', ...listener, routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u', ...handler } }] }],
      upstreams: { u: { targets: [target], health: false } },
    },
    { logLevel: 'silent' },
  );
  closers.push(() => yard.stop(100));
  return yard.address('web').port;
}

/** The forwarding fields and Via of a recorded request, as one object (absent fields left out). */
function fields(h: IncomingHttpHeaders): Record<string, string> {
  const out: Record<string, string> = {};
  for (const name of ['x-forwarded-for', 'x-forwarded-proto', 'x-forwarded-host', 'forwarded', 'via']) {
    const v = h[name];
    if (v !== undefined) out[name] = String(v);
  }
  return out;
}

const OURS = {
  xf: { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'example.test' },
  rfc: { forwarded: 'for=127.0.0.1;host="example.test";proto=http' },
};

// What the upstream gets from a forging client, per style, when the client is not trusted: our
// fields of the style sent, none of the client's.
const UNTRUSTED: Record<string, Record<string, string>> = {
  both: { ...OURS.xf, ...OURS.rfc },
  'x-forwarded': { ...OURS.xf },
  rfc7239: { ...OURS.rfc },
  none: {},
};

// Trusted: our hop appended to the style sent, the other style passed as the client sent it.
const TRUSTED: Record<string, Record<string, string>> = {
  both: { 'x-forwarded-for': '6.6.6.6, 127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6, for=127.0.0.1;host="example.test";proto=http' },
  'x-forwarded': { 'x-forwarded-for': '6.6.6.6, 127.0.0.1', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6' },
  rfc7239: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6, for=127.0.0.1;host="example.test";proto=http' },
  none: { 'x-forwarded-for': '6.6.6.6', 'x-forwarded-proto': 'https', 'x-forwarded-host': 'evil.test', forwarded: 'for=6.6.6.6' },
};

for (const style of ['both', 'x-forwarded', 'rfc7239', 'none']) {
  for (const trust of [false, true]) {
    test(`forwarded: ${style}, trustForwarded: ${trust}: the fields an upstream gets from a client that forges them all`, async () => {
      const up = await recorder();
      const port = await yardFor(up.url, { forwarded: style, trustForwarded: trust });
      const r = await request(`http://127.0.0.1:${port}/f`, { headers: { host: 'example.test', ...FORGED } });
      assert.equal(r.statusCode, 200);
      await r.body.text();
      assert.equal(up.seen.length, 1);
      assert.deepEqual(fields(up.seen[0]), { ...(trust ? TRUSTED : UNTRUSTED)[style], via: '1.0 edge, 1.1 switchyard' });
    });
  }
}

test('the Forwarded element follows each request\'s Host on one keep-alive connection', async () => {
  // Our element is remembered from the last request (request-headers.ts): a request with another
  // Host, then one with the first again, must each get their own.
  const up = await recorder();
  const port = await yardFor(up.url, {});
  for (const host of ['a.example', 'b.example', 'a.example', 'b.example:8080']) {
    const r = await request(`http://127.0.0.1:${port}/f`, { headers: { host } });
    assert.equal(r.statusCode, 200);
    await r.body.text();
  }
  assert.deepEqual(
    up.seen.map((h) => h.forwarded),
    ['for=127.0.0.1;host="a.example";proto=http', 'for=127.0.0.1;host="b.example";proto=http', 'for=127.0.0.1;host="a.example";proto=http', 'for=127.0.0.1;host="b.example:8080";proto=http'],
  );
});

test('forwarded left out is both (the fields sent before the option existed)', async () => {
  const up = await recorder();
  const port = await yardFor(up.url, {});
  const r = await request(`http://127.0.0.1:${port}/f`, { headers: { host: 'example.test' } });
  await r.body.text();
  assert.deepEqual(fields(up.seen[0]), { ...OURS.xf, ...OURS.rfc, via: '1.1 switchyard' });
});

test('via: false adds no Via either way; Via already there passes unchanged', async () => {
  const withVia = await recorder('1.1 backend');
  const bare = await recorder();
  const portA = await yardFor(withVia.url, { via: false });
  const portB = await yardFor(bare.url, { via: false });

  const a = await request(`http://127.0.0.1:${portA}/v`, { headers: { via: '1.0 edge' } });
  await a.body.text();
  assert.equal(withVia.seen[0].via, '1.0 edge');
  assert.equal(a.headers.via, '1.1 backend');

  const b = await request(`http://127.0.0.1:${portB}/v`);
  await b.body.text();
  assert.equal(bare.seen[0].via, undefined);
  assert.equal(b.headers.via, undefined);
  // The forwarding fields are a separate choice: still both by default.
  assert.equal(bare.seen[0]['x-forwarded-for'], '127.0.0.1');
  assert.match(String(bare.seen[0].forwarded), /^for=127\.0\.0\.1;host="127\.0\.0\.1:\d+";proto=http$/);
});

test('a custom via string goes both ways', async () => {
  const up = await recorder();
  const port = await yardFor(up.url, { via: '1.1 gw-7' });
  const r = await request(`http://127.0.0.1:${port}/v`);
  await r.body.text();
  assert.equal(up.seen[0].via, '1.1 gw-7');
  assert.equal(r.headers.via, '1.1 gw-7');
});

// One route config for every protocol below: X-Forwarded-* only, no Via. The forged Forwarded and
// the client's X-Forwarded-* must not reach the upstream over any of them.
const LEAN = { forwarded: 'x-forwarded', via: false };
const LEAN_SEEN = { 'x-forwarded-for': '127.0.0.1', 'x-forwarded-proto': 'http', 'x-forwarded-host': 'example.test', via: '1.0 edge' };

test('HTTP/2 client: the same fields as HTTP/1.1', async () => {
  const up = await recorder();
  const port = await yardFor(up.url, LEAN, { http2: { h2c: true } });
  const session = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => session.close());
  const status = await new Promise<number>((resolve, reject) => {
    const s = session.request({ ':path': '/h2', ':authority': 'example.test', ...FORGED });
    let code = 0;
    s.on('response', (h) => (code = Number(h[':status'])));
    s.on('error', reject);
    s.resume();
    s.on('end', () => resolve(code));
  });
  assert.equal(status, 200);
  assert.equal(up.seen.length, 1);
  assert.deepEqual(fields(up.seen[0]), LEAN_SEEN);
});

test('WebSocket upgrade: the same fields as a plain request', async () => {
  const up = await recorder();
  const port = await yardFor(up.url, LEAN);
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, { headers: { host: 'example.test', ...FORGED } });
  closers.push(() => ws.terminate());
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  assert.equal(up.seen.length, 1);
  assert.equal(up.seen[0].upgrade, 'websocket');
  assert.deepEqual(fields(up.seen[0]), LEAN_SEEN);
});

test('gRPC call (grpc-js both sides): the metadata the server sees', async () => {
  const seen: Record<string, grpc.MetadataValue>[] = [];
  const service = {
    Unary: {
      path: '/test.Fields/Unary',
      requestStream: false,
      responseStream: false,
      requestSerialize: (b: Buffer) => b,
      requestDeserialize: (b: Buffer) => b,
      responseSerialize: (b: Buffer) => b,
      responseDeserialize: (b: Buffer) => b,
    },
  } as unknown as grpc.ServiceDefinition;
  const server = new grpc.Server();
  server.addService(service, {
    Unary: (call: grpc.ServerUnaryCall<Buffer, Buffer>, cb: grpc.sendUnaryData<Buffer>) => {
      seen.push(call.metadata.getMap());
      cb(null, Buffer.from('ok'));
    },
  });
  const backendPort = await new Promise<number>((resolve, reject) => server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))));
  closers.push(() => server.forceShutdown());
  const port = await yardFor(`h2c://127.0.0.1:${backendPort}`, LEAN, { http2: { h2c: true } });

  const Client = grpc.makeGenericClientConstructor(service, 'Fields');
  const client = new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), { 'grpc.default_authority': 'example.test' });
  closers.push(() => client.close());
  const md = new grpc.Metadata();
  for (const [k, v] of Object.entries(FORGED)) md.set(k, v);
  const answer = await new Promise<Buffer>((resolve, reject) =>
    (client as unknown as { Unary: (m: Buffer, md: grpc.Metadata, cb: (e: Error | null, r: Buffer) => void) => void }).Unary(Buffer.from('hi'), md, (e, r) => (e ? reject(e) : resolve(r))),
  );
  assert.equal(answer.toString(), 'ok');
  assert.equal(seen.length, 1);
  const m = seen[0];
  assert.deepEqual(
    { xff: m['x-forwarded-for'], proto: m['x-forwarded-proto'], host: m['x-forwarded-host'], forwarded: m.forwarded, via: m.via },
    { xff: '127.0.0.1', proto: 'http', host: 'example.test', forwarded: undefined, via: '1.0 edge' },
  );
});

test('switchyard check names the field of a bad forwarded or via value', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'sy-fwd-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  const config = (handler: string) =>
    ['listeners:', '  - name: web', '    protocol: http', '    address: 127.0.0.1:0', '    routes:', '      - match: { path: /* }', `        handler: { type: proxy, upstream: u, ${handler} }`, 'upstreams:', '  u: { targets: [http://127.0.0.1:9] }', ''].join('\n');

  const bad = join(dir, 'bad-forwarded.yaml');
  await writeFile(bad, config('forwarded: x-forwarded-for'));
  const r1 = await runCli(['check', bad]);
  assert.notEqual(r1.code, 0);
  assert.match(r1.stdout + r1.stderr, /handler\.forwarded/);
  assert.match(r1.stdout + r1.stderr, /"both", "x-forwarded", "rfc7239" or "none"/);

  const badVia = join(dir, 'bad-via.yaml');
  await writeFile(badVia, config('via: true'));
  const r2 = await runCli(['check', badVia]);
  assert.notEqual(r2.code, 0);
  assert.match(r2.stdout + r2.stderr, /handler\.via/);
  assert.match(r2.stdout + r2.stderr, /expected false or printable text/);

  const good = join(dir, 'good.yaml');
  await writeFile(good, config('forwarded: none, via: false'));
  const r3 = await runCli(['check', good]);
  assert.equal(r3.code, 0, r3.stdout + r3.stderr);
});

test('new traceparents are valid and all different, across refills of the random block (6,000 of them)', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 6000; i++) {
    const tp = newTraceparent();
    assert.ok(validTraceparent(tp), tp);
    assert.match(tp, /^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/);
    seen.add(tp.slice(3, 35));
    seen.add(tp.slice(36, 52));
  }
  assert.equal(seen.size, 12000);
});

test('response heads reach the client field for field: in one read, split over reads, with latin1 bytes', async () => {
  // A raw upstream, so that the head's bytes and how they are split into reads are ours to say.
  const head = (tag: string) =>
    `HTTP/1.1 200 OK\r\nX-One: ${tag}-a\r\nX-Latin: caf\xe9 \xbfs\xed?\r\nConnection: keep-alive, X-Hop\r\nX-Hop: gone\r\nVia: 1.0 origin\r\nX-Last: ${tag}-z\r\nContent-Length: 2\r\n\r\nok`;
  const server = createNetServer((socket) => {
    socket.on('error', () => socket.destroy());
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString('latin1');
      let end: number;
      while ((end = buffered.indexOf('\r\n\r\n')) !== -1) {
        const split = buffered.startsWith('GET /split');
        buffered = buffered.slice(end + 4);
        const bytes = Buffer.from(head(split ? 'split' : 'whole'), 'latin1');
        if (!split) socket.write(bytes);
        else {
          // The head in two reads for the proxy: cut inside a value, the rest a moment later.
          socket.write(bytes.subarray(0, 40));
          setTimeout(() => socket.write(bytes.subarray(40)), 30);
        }
      }
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  closers.push(() => new Promise((ok) => server.close(ok)));
  const port = await yardFor(`http://127.0.0.1:${(server.address() as { port: number }).port}`, {});
  for (const tag of ['whole', 'split', 'whole']) {
    const r = await request(`http://127.0.0.1:${port}/${tag}`);
    assert.equal(await r.body.text(), 'ok');
    assert.equal(r.headers['x-one'], `${tag}-a`);
    assert.equal(Buffer.from(String(r.headers['x-latin']), 'latin1').toString('latin1'), 'caf\xe9 \xbfs\xed?');
    assert.equal(r.headers['x-last'], `${tag}-z`);
    assert.equal(r.headers['x-hop'], undefined);
    assert.equal(r.headers.via, '1.0 origin, 1.1 switchyard');
  }
});

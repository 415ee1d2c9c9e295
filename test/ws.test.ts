import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomBytes } from 'node:crypto';
import { connect, type Socket } from 'node:net';
import { request } from 'node:http';
import WebSocket, { type ClientOptions } from 'ws';
import { z } from 'zod';
import { serve, registerHandler, handlerModule, ConfigError, type Yard } from '../src/index.ts';
import { WsEndpoint, websocketOptionsSchema, type WsPeer } from '../src/handlers/ws/index.ts';

// The WebSocket endpoint through the daemon, with the real `ws` client for well-behaved peers
// and hand-made handshakes on raw sockets for the badly behaved ones (a client that stops
// reading, one that never answers pings). Every limit is driven past its edge and must end in
// the documented close code or HTTP status while the other clients keep being served.

const yards: Yard[] = [];
const clients: WebSocket[] = [];
const sockets: Socket[] = [];
after(async () => {
  for (const c of clients) c.terminate();
  for (const s of sockets) s.destroy();
  for (const y of yards) await y.stop(100);
});

// ---- a probe handler: the endpoint's API as a handler sees it, with what it saw kept here ----

interface Probe {
  peer: WsPeer;
  closes: [number, string][];
  /** Largest bufferedAmount seen right after a send during a flood. */
  maxBuffered: number;
  refused: number;
  accepted: number;
}
const probes: Probe[] = [];

const probeSchema = z.strictObject({ type: z.literal('ws-probe-test'), websocket: websocketOptionsSchema });
if (handlerModule('ws-probe-test') === undefined) {
  registerHandler({
    type: 'ws-probe-test',
    summary: 'test: a WsEndpoint handler that floods on request and records what it saw',
    schema: probeSchema,
    http: (config, ctx) => {
      const endpoint = new WsEndpoint(config.websocket, { listener: ctx.listener, handlerType: 'ws-probe-test', log: ctx.log, metrics: ctx.metrics });
      return {
        handle: ({ res }) => {
          res.end();
        },
        upgrade: (uctx) =>
          endpoint.accept(uctx, (peer) => {
            const probe: Probe = { peer, closes: [], maxBuffered: 0, refused: 0, accepted: 0 };
            probes.push(probe);
            peer.onClose((code, reason) => probe.closes.push([code, reason]));
            peer.onMessage((data) => {
              const [cmd, a, b] = data.toString().split(' ');
              if (cmd === 'throw') throw new Error('probe handler failure');
              // 1005 may never be sent (RFC 6455 7.4.1): ws throws, as any handler bug would.
              if (cmd === 'badclose') return peer.close(1005, 'not a code to send');
              if (cmd === 'flood') {
                const chunk = Buffer.alloc(Number(b), 0x61);
                for (let i = 0; i < Number(a); i++) {
                  if (peer.send(chunk)) probe.accepted++;
                  else probe.refused++;
                  probe.maxBuffered = Math.max(probe.maxBuffered, peer.bufferedAmount);
                }
                return;
              }
              peer.send(data, false);
            });
          }),
        drain: () => endpoint.drain(),
        close: () => endpoint.close(),
      };
    },
  });
}

// ---- helpers ----

async function start(websocket: Record<string, unknown> = {}, type = 'ws-echo'): Promise<{ yard: Yard; port: number }> {
  const yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/ws' }, handler: { type, websocket } },
            { match: { path: '/metrics' }, handler: { type: 'metrics' } },
          ],
        },
      ],
    },
    { logLevel: 'silent' },
  );
  yards.push(yard);
  return { yard, port: yard.address('web').port };
}

/** Opens a `ws` client; rejects with the HTTP status when the upgrade is refused. */
function open(port: number, options: ClientOptions = {}): Promise<WebSocket> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws`, options);
  clients.push(ws);
  return new Promise((resolve, reject) => {
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      reject(Object.assign(new Error(`upgrade refused: ${res.statusCode}`), { status: res.statusCode }));
      ws.terminate();
    });
    ws.once('error', reject);
  });
}

function nextMessage(ws: WebSocket): Promise<{ data: Buffer; isBinary: boolean }> {
  return new Promise((resolve, reject) => {
    ws.once('message', (data, isBinary) => resolve({ data: data as Buffer, isBinary }));
    ws.once('close', (code) => reject(new Error(`closed (${code}) while waiting for a message`)));
  });
}

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: reason.toString() })));
}

async function echoes(ws: WebSocket, text: string): Promise<void> {
  const got = nextMessage(ws);
  ws.send(text);
  assert.equal((await got).data.toString(), text);
}

/** Polls until `check` holds; a bounded wait, not a timing assertion. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** One sample from the yard's metrics (0 when the series does not exist yet). */
async function metric(yard: Yard, name: string, labels: string): Promise<number> {
  const line = (await yard.metrics.text()).split('\n').find((l) => l.startsWith(`${name}{${labels}}`));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

function httpGet(port: number, path: string): Promise<{ status: number; headers: Record<string, unknown>; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body }));
    });
    req.on('error', reject);
    req.end();
  });
}

/**
 * A client frame. The mask key is all zeros, which RFC 6455 allows (it only requires a key) and
 * which leaves the payload as is, so megabytes of frames cost no per-byte work in the test.
 */
function clientFrame(payload: Buffer, opcode = 0x2): Buffer {
  const len = payload.length;
  let head: Buffer;
  if (len < 126) head = Buffer.from([0x80 | opcode, 0x80 | len]);
  else if (len < 65536) {
    head = Buffer.from([0x80 | opcode, 0x80 | 126, 0, 0]);
    head.writeUInt16BE(len, 2);
  } else {
    head = Buffer.alloc(10);
    head[0] = 0x80 | opcode;
    head[1] = 0x80 | 127;
    head.writeBigUInt64BE(BigInt(len), 2);
  }
  return Buffer.concat([head, Buffer.alloc(4), payload]);
}

/** A raw socket that does the opening handshake by hand; `after` is what came after the 101 head. */
async function rawOpen(port: number): Promise<{ socket: Socket; after: () => Buffer; closed: Promise<void> }> {
  const socket = connect({ port, host: '127.0.0.1' });
  sockets.push(socket);
  socket.on('error', () => undefined);
  const closedP = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  let got = Buffer.alloc(0);
  socket.on('data', (d: Buffer) => (got = Buffer.concat([got, d])));
  const key = randomBytes(16).toString('base64');
  socket.write(`GET /ws HTTP/1.1\r\nhost: ws.test\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`);
  await until('the handshake answer', () => got.includes('\r\n\r\n') || socket.destroyed, 5000);
  const end = got.indexOf('\r\n\r\n');
  assert.match(got.subarray(0, end).toString('latin1'), /^HTTP\/1\.1 101 /);
  return { socket, after: () => got.subarray(end + 4), closed: closedP };
}

// ---- echo ----

test('ws-echo: text comes back as text and binary as binary', { timeout: 10_000 }, async () => {
  const { yard, port } = await start();
  const ws = await open(port);
  const text = nextMessage(ws);
  ws.send('héllo wörld');
  const t = await text;
  assert.equal(t.isBinary, false);
  assert.equal(t.data.toString(), 'héllo wörld');

  const bytes = randomBytes(70_000);
  const bin = nextMessage(ws);
  ws.send(bytes);
  const b = await bin;
  assert.equal(b.isBinary, true);
  assert.ok(b.data.equals(bytes));

  assert.equal(await metric(yard, 'switchyard_ws_messages_total', 'listener="web",direction="in"'), 2);
  assert.equal(await metric(yard, 'switchyard_ws_messages_total', 'listener="web",direction="out"'), 2);
  assert.equal(await metric(yard, 'switchyard_ws_connections', 'listener="web"'), 1);
  ws.close(1000, 'bye');
  await closed(ws);
  await until('the connection gauge to drop', async () => (await metric(yard, 'switchyard_ws_connections', 'listener="web"')) === 0);
  assert.equal(await metric(yard, 'switchyard_ws_closed_total', 'listener="web",code="1000"'), 1);
});

test('ws-echo: a plain HTTP request gets 426 with upgrade: websocket', { timeout: 10_000 }, async () => {
  const { port } = await start();
  const res = await httpGet(port, '/ws');
  assert.equal(res.status, 426);
  assert.equal(res.headers.upgrade, 'websocket');
  assert.match(res.body, /^426 [^\n]+\n$/);
});

// ---- limits ----

test('a message over maxMessageSize closes that client with 1009; others keep being served', { timeout: 10_000 }, async () => {
  const { port } = await start({ maxMessageSize: '1KiB' });
  const other = await open(port);
  const big = await open(port);
  const done = closed(big);
  big.send(Buffer.alloc(1025));
  assert.equal((await done).code, 1009);
  await echoes(other, 'still here');
  await echoes(await open(port), 'new client');
});

test('maxMessageSize applies to the inflated size of a compressed message', { timeout: 10_000 }, async () => {
  const { port } = await start({ maxMessageSize: '1KiB', deflate: true });
  const ws = await open(port);
  assert.equal(ws.extensions, 'permessage-deflate');
  // 100 000 repeated bytes deflate to about a hundred: only the inflated size is over the limit.
  const done = closed(ws);
  ws.send('a'.repeat(100_000));
  assert.equal((await done).code, 1009);
});

test('slowConsumer close: a client that stops reading is closed (1013) and cut off; another keeps its echoes', { timeout: 30_000 }, async () => {
  // closeTimeout is long so that only the slow-consumer grace can cut the socket within the wait.
  const { yard, port } = await start({ sendQueueLimit: '64KiB', rateLimit: false, closeTimeout: '60s' });
  const good = await open(port);
  const slow = await rawOpen(port);
  slow.socket.pause();
  // 32 MiB of echoes: more than loopback's kernel buffers on both sides can hide.
  const frame = clientFrame(Buffer.alloc(64 * 1024, 0x62));
  for (let i = 0; i < 512; i++) slow.socket.write(frame);
  await until('a 1013 close', async () => (await metric(yard, 'switchyard_ws_closed_total', 'listener="web",code="1013"')) === 1, 20_000);
  assert.equal(await metric(yard, 'switchyard_ws_connections', 'listener="web"'), 1);
  await echoes(good, 'unaffected');
});

test('the send queue stays under sendQueueLimit plus one message; over it the peer is closed with 1013', { timeout: 20_000 }, async () => {
  const { port } = await start({ sendQueueLimit: '256KiB', closeTimeout: '60s' }, 'ws-probe-test');
  const before = probes.length;
  const raw = await rawOpen(port);
  raw.socket.pause();
  raw.socket.write(clientFrame(Buffer.from('flood 2000 65536'), 0x1));
  await until('the probe peer', () => probes.length > before);
  const probe = probes[probes.length - 1];
  await until('the flood to run and the peer to go', () => probe.closes.length === 1);
  assert.ok(probe.refused > 0, 'some sends were refused');
  assert.ok(probe.accepted > 0);
  assert.ok(probe.maxBuffered <= 256 * 1024 + 65536 + 14, `queued ${probe.maxBuffered} bytes`);
  assert.equal(probe.peer.open, false);
  assert.equal(probe.peer.send('late'), false);
});

test('slowConsumer drop: messages are dropped and counted, the client stays connected, memory stays bounded', { timeout: 20_000 }, async () => {
  const { yard, port } = await start({ sendQueueLimit: '256KiB', slowConsumer: 'drop' }, 'ws-probe-test');
  const before = probes.length;
  const raw = await rawOpen(port);
  raw.socket.pause();
  raw.socket.write(clientFrame(Buffer.from('flood 2000 65536'), 0x1));
  await until('the probe peer', () => probes.length > before);
  const probe = probes[probes.length - 1];
  await until('the flood to finish', () => probe.accepted + probe.refused === 2000);
  assert.ok(probe.refused > 0);
  assert.ok(probe.maxBuffered <= 256 * 1024 + 65536 + 14, `queued ${probe.maxBuffered} bytes`);
  assert.equal(probe.peer.open, true);
  assert.equal(await metric(yard, 'switchyard_ws_dropped_total', 'listener="web"'), probe.refused);
});

test('ws-echo with slowConsumer drop: a non-reading client has echoes dropped (switchyard_ws_dropped_total at /metrics)', { timeout: 30_000 }, async () => {
  const { port } = await start({ sendQueueLimit: '64KiB', slowConsumer: 'drop', rateLimit: false });
  const good = await open(port);
  const slow = await rawOpen(port);
  slow.socket.pause();
  const frame = clientFrame(Buffer.alloc(64 * 1024, 0x62));
  for (let i = 0; i < 512; i++) slow.socket.write(frame);
  const dropped = async () => {
    const m = /^switchyard_ws_dropped_total\{listener="web"\} (\d+)$/m.exec((await httpGet(port, '/metrics')).body);
    return m ? Number(m[1]) : 0;
  };
  await until('dropped echoes', async () => (await dropped()) > 0, 20_000);
  assert.equal(slow.socket.destroyed, false);
  await echoes(good, 'unaffected');
  const metrics = (await httpGet(port, '/metrics')).body;
  assert.match(metrics, /^switchyard_ws_connections\{listener="web"\} 2$/m);
  assert.doesNotMatch(metrics, /code="1013"/);
});

test('a peer that never answers pings is terminated; a ws client (which answers) stays open', { timeout: 20_000 }, async () => {
  const { yard, port } = await start({ pingInterval: '100ms', pongTimeout: '100ms' });
  const good = await open(port);
  let pings = 0;
  good.on('ping', () => pings++);
  const dead = await rawOpen(port);
  await dead.closed;
  // It was pinged (0x89: a final ping frame) and went without a closing handshake.
  assert.ok(dead.after().includes(0x89), 'the silent peer saw a ping');
  await until('the server to count it', async () => (await metric(yard, 'switchyard_ws_closed_total', 'listener="web",code="1006"')) === 1);
  const seen = pings;
  await until('three more ping rounds', () => pings >= seen + 3);
  assert.equal(good.readyState, WebSocket.OPEN);
  await echoes(good, 'alive');
});

test('over the message rate the client is closed with 1008 after exactly the burst', { timeout: 10_000 }, async () => {
  const { port } = await start({ rateLimit: { rate: 5, per: '1m' } });
  const ws = await open(port);
  let got = 0;
  ws.on('message', () => got++);
  const done = closed(ws);
  for (let i = 0; i < 10; i++) ws.send(`m${i}`);
  const { code, reason } = await done;
  assert.equal(code, 1008);
  assert.equal(reason, 'message rate over limit');
  assert.equal(got, 5);
});

test('origin allow-list: another Origin or none gets 403 before the handshake; a listed one connects', { timeout: 10_000 }, async () => {
  const { port } = await start({ origins: ['http://good.test'] });
  await assert.rejects(open(port, { origin: 'http://evil.test' }), { status: 403 });
  await assert.rejects(open(port), { status: 403 });
  await echoes(await open(port, { origin: 'http://good.test' }), 'welcome');
  const any = await start({ origins: ['*'] });
  await echoes(await open(any.port, { origin: 'http://anything.test' }), 'any');
});

test('deflate on: permessage-deflate is negotiated and a compressible message round-trips compressed', { timeout: 10_000 }, async () => {
  const { port } = await start({ deflate: { threshold: '1KiB', level: 6 } });
  let socket: Socket | undefined;
  const ws = await open(port, {
    createConnection: (opts) => (socket = connect(opts as { port: number; host: string })),
  });
  assert.equal(ws.extensions, 'permessage-deflate');
  const text = 'switchyard '.repeat(30_000);
  const got = nextMessage(ws);
  ws.send(text);
  assert.equal((await got).data.toString(), text);
  assert.ok(socket && socket.bytesRead < text.length / 10, `read ${socket?.bytesRead} bytes for ${text.length}`);
});

test('deflate is off by default: no extension is negotiated even when the client offers it', { timeout: 10_000 }, async () => {
  const { port } = await start();
  const ws = await open(port, { perMessageDeflate: true });
  assert.equal(ws.extensions, '');
  await echoes(ws, 'plain');
});

test('maxConnections: the next upgrade gets 503; after one leaves there is room again', { timeout: 10_000 }, async () => {
  const { yard, port } = await start({ maxConnections: 2 });
  const a = await open(port);
  await open(port);
  await assert.rejects(open(port), { status: 503 });
  a.close();
  await closed(a);
  await until('the slot to free up', async () => (await metric(yard, 'switchyard_ws_connections', 'listener="web"')) === 1);
  await echoes(await open(port), 'room again');
});

test('yard.stop() closes every peer with 1001 and nothing is cut off', { timeout: 15_000 }, async () => {
  const { yard, port } = await start();
  const a = await open(port);
  const b = await open(port);
  const closes = Promise.all([closed(a), closed(b)]);
  const result = await yard.stop(10_000);
  assert.deepEqual(result, { cutOff: 0 });
  for (const c of await closes) assert.deepEqual(c, { code: 1001, reason: 'server shutting down' });
});

// ---- the peer API and failures inside handlers ----

test('a handler that throws closes its peer with 1011; the endpoint keeps serving', { timeout: 10_000 }, async () => {
  const { port } = await start({}, 'ws-probe-test');
  for (const cmd of ['throw', 'badclose']) {
    const ws = await open(port);
    const done = closed(ws);
    ws.send(cmd);
    assert.deepEqual(await done, { code: 1011, reason: 'internal error' }, cmd);
  }
  await echoes(await open(port), 'fine');
});

test('WsPeer: ids are unique, remoteAddress is the client, onClose fires once with the client code', { timeout: 10_000 }, async () => {
  const { port } = await start({}, 'ws-probe-test');
  const before = probes.length;
  const a = await open(port);
  const b = await open(port);
  await echoes(a, 'x');
  await echoes(b, 'y');
  const [pa, pb] = probes.slice(before);
  assert.notEqual(pa.peer.id, pb.peer.id);
  assert.match(pa.peer.id, /^ws-\d+$/);
  assert.equal(pa.peer.remoteAddress, '127.0.0.1');
  assert.equal(pa.peer.open, true);
  a.close(4000, 'done here');
  await closed(a);
  await until('the close to reach the handler', () => pa.closes.length > 0);
  assert.deepEqual(pa.closes, [[4000, 'done here']]);
  assert.equal(pa.peer.open, false);
  assert.equal(pa.peer.send('gone'), false);
  assert.equal(pb.peer.open, true);
});

// ---- config ----

test('bad websocket options are config errors that name the field', async () => {
  const cases: [Record<string, unknown>, string][] = [
    [{ slowConsumer: 'explode' }, 'websocket.slowConsumer'],
    [{ maxMesageSize: '1KiB' }, 'websocket.maxMesageSize'],
    [{ maxMessageSize: 'lots' }, 'websocket.maxMessageSize'],
    [{ rateLimit: { rate: 0, per: '1s' } }, 'websocket.rateLimit.rate'],
    [{ pingInterval: 'often' }, 'websocket.pingInterval'],
    [{ origins: ['example.com'] }, 'websocket.origins[0]'],
    [{ rateLimit: { rate: 5, per: '0ms' } }, 'websocket.rateLimit.per'],
    [{ rateLimit: { rate: 5, burst: 0.5 } }, 'websocket.rateLimit.burst'],
    [{ rateLimit: { rate: 5, brust: 10 } }, 'websocket.rateLimit.brust'],
    [{ rateLimit: 'lots' }, 'websocket.rateLimit'],
    [{ rateLimit: { messages: 5, per: '1s' } }, 'websocket.rateLimit.messages'],
    [{ deflate: { level: 11 } }, 'websocket.deflate.level'],
    [{ deflate: { treshold: '1KiB' } }, 'websocket.deflate.treshold'],
    [{ deflate: 'yes' }, 'websocket.deflate'],
  ];
  for (const [websocket, path] of cases) {
    const err = await start(websocket).then(
      () => assert.fail(`accepted ${JSON.stringify(websocket)}`),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ConfigError, String(err));
    assert.ok(err.issues.some((i) => i.path.endsWith(path)), `${path} not in ${JSON.stringify(err.issues)}`);
  }
});

test('websocket options: defaults as documented', () => {
  assert.deepEqual(websocketOptionsSchema.parse(undefined), {
    maxMessageSize: 1024 * 1024,
    sendQueueLimit: 1024 * 1024,
    slowConsumer: 'close',
    rateLimit: { rate: 200, per: 1000 },
    pingInterval: 30_000,
    pongTimeout: 10_000,
    maxConnections: 10_000,
    deflate: false,
    closeTimeout: 5_000,
  });
  assert.deepEqual(websocketOptionsSchema.parse({ deflate: true }).deflate, { threshold: 1024, concurrency: 4, level: 1 });
});

test('websocket.rateLimit is the shared { rate, per, burst }; the old { messages, per } is refused naming its replacement', () => {
  assert.deepEqual(websocketOptionsSchema.parse({ rateLimit: { rate: 0.5, per: '1s', burst: 3 } }).rateLimit, { rate: 0.5, per: 1000, burst: 3 });
  assert.deepEqual(websocketOptionsSchema.parse({ rateLimit: { rate: 20 } }).rateLimit, { rate: 20, per: 1000 });
  assert.equal(websocketOptionsSchema.parse({ rateLimit: false }).rateLimit, false);
  const old = websocketOptionsSchema.safeParse({ rateLimit: { messages: 50, per: '1s' } });
  assert.equal(old.success, false);
  assert.deepEqual(old.error.issues.map((i) => i.path.join('.')), ['rateLimit.messages']);
  assert.match(old.error.issues[0].message, /`messages` is now `rate`/);
});

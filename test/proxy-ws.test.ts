import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import { connect, createServer as createNetServer, type Socket } from 'node:net';
import { serve, type Yard } from '../src/index.ts';

// WebSocket through the proxy, with a hand-written RFC 6455 handshake and frames on raw sockets
// (no ws dependency): echo both ways, the upstream dying mid-stream, the upstream refusing the
// upgrade, no upstream at all. The yard must answer or close every time and keep serving.

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';
const acceptOf = (key: string) => createHash('sha1').update(key + GUID).digest('base64');

const yards: Yard[] = [];
const servers: Server[] = [];
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
});

/** One unmasked (server) or masked (client) frame with a short payload (< 126 bytes). */
function frame(payload: Buffer, masked: boolean, opcode = 0x1): Buffer {
  if (!masked) return Buffer.concat([Buffer.from([0x80 | opcode, payload.length]), payload]);
  const mask = randomBytes(4);
  const out = Buffer.alloc(payload.length);
  for (let i = 0; i < payload.length; i++) out[i] = payload[i] ^ mask[i % 4];
  return Buffer.concat([Buffer.from([0x80 | opcode, 0x80 | payload.length]), mask, out]);
}

/** Parses one short frame from the start of `buf`; undefined while incomplete. */
function parseFrame(buf: Buffer): { opcode: number; payload: Buffer; size: number } | undefined {
  if (buf.length < 2) return undefined;
  const masked = (buf[1] & 0x80) !== 0;
  const len = buf[1] & 0x7f;
  assert.ok(len < 126, 'test frames are short');
  const start = 2 + (masked ? 4 : 0);
  if (buf.length < start + len) return undefined;
  let payload = buf.subarray(start, start + len);
  if (masked) {
    const mask = buf.subarray(2, 6);
    payload = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  }
  return { opcode: buf[0] & 0x0f, payload, size: start + len };
}

interface WsUpstream {
  url: string;
  upgrades: number;
  lastHeaders?: IncomingMessage['headers'];
  sockets: Set<Socket>;
}

/** A WebSocket echo server; a frame "die" makes it drop the connection; /refuse answers 403. */
async function wsUpstream(): Promise<WsUpstream> {
  const server = createServer((_req, res) => res.end('plain http'));
  const u: WsUpstream = { url: '', upgrades: 0, sockets: new Set() };
  server.on('upgrade', (req: IncomingMessage, socket: Socket) => {
    u.upgrades++;
    u.lastHeaders = req.headers;
    socket.on('error', () => undefined);
    if (req.url === '/refuse') {
      socket.end('HTTP/1.1 403 Forbidden\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nconnection: close\r\n\r\nnope\n');
      return;
    }
    u.sockets.add(socket);
    socket.once('close', () => u.sockets.delete(socket));
    socket.once('end', () => socket.end());
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${acceptOf(String(req.headers['sec-websocket-key']))}\r\n\r\n`);
    let buf = Buffer.alloc(0);
    socket.on('data', (d: Buffer) => {
      buf = Buffer.concat([buf, d]);
      for (let f = parseFrame(buf); f; f = parseFrame(buf)) {
        buf = buf.subarray(f.size);
        if (f.payload.toString() === 'die') {
          socket.destroy();
          return;
        }
        socket.write(frame(f.payload, false, f.opcode));
      }
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  u.url = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
  servers.push(server);
  return u;
}

async function proxyYard(targets: string[], upstream: Record<string, unknown> = {}): Promise<number> {
  const yard = await serve(
    {
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'api' } }] }],
      upstreams: { api: { targets, ...upstream } },
    },
    { logLevel: 'silent' },
  );
  yards.push(yard);
  return yard.address('web').port;
}

/** A client socket that collects what it receives, and settles `closed` when the socket closes. */
function client(port: number): { socket: Socket; received: () => Buffer; closed: Promise<void>; waitFor: (pred: (b: Buffer) => boolean) => Promise<Buffer> } {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  let got = Buffer.alloc(0);
  const waiters: (() => void)[] = [];
  socket.on('data', (d: Buffer) => {
    got = Buffer.concat([got, d]);
    for (const w of waiters.splice(0)) w();
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => resolve()));
  const waitFor = (pred: (b: Buffer) => boolean) =>
    new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gave up waiting; got ${JSON.stringify(got.toString('latin1'))}`)), 5000);
      const check = () => {
        if (pred(got)) {
          clearTimeout(timer);
          resolve(got);
        } else if (socket.destroyed) {
          clearTimeout(timer);
          reject(new Error(`closed; got ${JSON.stringify(got.toString('latin1'))}`));
        } else waiters.push(check);
      };
      check();
    });
  return { socket, received: () => got, closed, waitFor };
}

function upgradeRequest(path: string, key: string): string {
  return `GET ${path} HTTP/1.1\r\nhost: ws.test\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-key: ${key}\r\nsec-websocket-version: 13\r\n\r\n`;
}

const headEnd = (b: Buffer) => b.indexOf('\r\n\r\n');

async function open(port: number, path = '/chat') {
  const key = randomBytes(16).toString('base64');
  const c = client(port);
  c.socket.write(upgradeRequest(path, key));
  const got = await c.waitFor((b) => headEnd(b) !== -1);
  const head = got.subarray(0, headEnd(got)).toString('latin1');
  return { ...c, key, head, rest: () => c.received().subarray(headEnd(c.received()) + 4) };
}

test('WebSocket: upgrade and frames both ways through the proxy', { timeout: 10_000 }, async () => {
  const up = await wsUpstream();
  const port = await proxyYard([up.url]);
  const ws = await open(port);
  assert.match(ws.head, /^HTTP\/1\.1 101 /);
  assert.match(ws.head, new RegExp(`^sec-websocket-accept: ${acceptOf(ws.key).replace(/[+/=]/g, '\\$&')}$`, 'im'));
  for (const text of ['hello', 'second message']) {
    const before = ws.rest().length;
    ws.socket.write(frame(Buffer.from(text), true));
    await ws.waitFor(() => parseFrame(ws.rest().subarray(before)) !== undefined);
    const f = parseFrame(ws.rest().subarray(before))!;
    assert.equal(f.payload.toString(), text);
  }
  // The upstream saw forwarded headers and the upgrade.
  assert.equal(up.lastHeaders?.upgrade, 'websocket');
  assert.equal(up.lastHeaders?.['x-forwarded-for'], '127.0.0.1');
  assert.equal(up.lastHeaders?.via, '1.1 switchyard');
  assert.equal(up.lastHeaders?.host, 'ws.test');
  // The client closing closes the upstream connection.
  ws.socket.end();
  await ws.closed;
  for (let i = 0; i < 100 && up.sockets.size > 0; i++) await new Promise((r) => setTimeout(r, 20));
  assert.equal(up.sockets.size, 0);
});

test('WebSocket: the upstream dying mid-stream closes the client; the proxy keeps serving', { timeout: 10_000 }, async () => {
  const up = await wsUpstream();
  const port = await proxyYard([up.url]);
  const ws = await open(port);
  assert.match(ws.head, /^HTTP\/1\.1 101 /);
  ws.socket.write(frame(Buffer.from('die'), true));
  await ws.closed; // bounded by the test runner's timeout; a hang fails the test

  const again = await open(port);
  assert.match(again.head, /^HTTP\/1\.1 101 /);
  again.socket.write(frame(Buffer.from('still here'), true));
  await again.waitFor((b) => b.includes('still here'));
  again.socket.destroy();
});

test('WebSocket: an upstream refusing the upgrade is relayed; no upstream is 502; no crash', { timeout: 10_000 }, async () => {
  const up = await wsUpstream();
  const port = await proxyYard([up.url]);
  const refused = await open(port, '/refuse');
  assert.match(refused.head, /^HTTP\/1\.1 403 /);
  await refused.closed;
  assert.match(refused.received().toString(), /nope/);

  const dead = createNetServer();
  await new Promise<void>((r) => dead.listen(0, '127.0.0.1', r));
  const deadPort = (dead.address() as { port: number }).port;
  await new Promise((r) => dead.close(r));
  const port2 = await proxyYard([`http://127.0.0.1:${deadPort}`], { retry: { attempts: 0 } });
  const noUp = await open(port2);
  assert.match(noUp.head, /^HTTP\/1\.1 502 /);
  await noUp.closed;
  assert.match(noUp.received().toString(), /upstream refused connection/);

  const ok = await open(port);
  assert.match(ok.head, /^HTTP\/1\.1 101 /);
  ok.socket.destroy();
});

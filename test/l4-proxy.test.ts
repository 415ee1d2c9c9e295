import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, connect, type Server, type Socket } from 'node:net';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { serve, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { tcpProxyHandler } from '../src/handlers/tcp-proxy.ts';
import { udpProxyHandler } from '../src/handlers/udp-proxy.ts';

// L4 proxying with real sockets: tcp-proxy and udp-proxy in a yard, in front of plain net and
// dgram servers on 127.0.0.1. Nothing here asserts on timing.

for (const mod of [tcpProxyHandler, udpProxyHandler]) if (handlerModule(mod.type) === undefined) registerHandler(mod as never);

const closers: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function start(config: unknown): Promise<Yard> {
  const y = await serve(config, { logLevel: 'silent' });
  closers.push(() => y.stop(100));
  return y;
}

interface TcpTarget {
  port: number;
  name: string;
  /** Connections accepted so far. */
  accepted: number;
  /** Connections open now. */
  open: Set<Socket>;
  server: Server;
}

/**
 * A target that echoes what it reads (with `name:` sent first, so a client knows which target it
 * reached), and ends its side when the client ends its own.
 */
async function tcpTarget(name: string, opts: { greet?: boolean } = {}): Promise<TcpTarget> {
  const t: TcpTarget = { port: 0, name, accepted: 0, open: new Set(), server: undefined as never };
  const server = createServer({ allowHalfOpen: true }, (s) => {
    t.accepted++;
    t.open.add(s);
    s.on('close', () => t.open.delete(s));
    s.on('error', () => s.destroy());
    if (opts.greet !== false) s.write(`${name}:`);
    s.pipe(s);
  });
  t.server = server;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  t.port = (server.address() as { port: number }).port;
  closers.push(() => {
    for (const s of t.open) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return t;
}

/** A port nothing listens on: bound, then closed. */
async function deadPort(): Promise<number> {
  const s = createServer();
  s.listen(0, '127.0.0.1');
  await once(s, 'listening');
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function tcpYard(targets: number[], upstream: Record<string, unknown> = {}, handler: Record<string, unknown> = {}): Promise<Yard> {
  return start({
    listeners: [{ name: 'l4', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'u', ...handler } }],
    upstreams: { u: { targets: targets.map((p) => `127.0.0.1:${p}`), balance: 'round-robin', ...upstream } },
  });
}

/** Connects, sends `data`, half-closes, and collects everything until the proxy closes. */
function exchange(port: number, data: string | Buffer): Promise<{ body: Buffer; ended: boolean }> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    const chunks: Buffer[] = [];
    let ended = false;
    s.on('connect', () => s.end(data));
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => (ended = true));
    s.on('error', reject);
    s.on('close', () => resolve({ body: Buffer.concat(chunks), ended }));
  });
}

test('tcp-proxy: bytes both ways, round-robin over the targets', async () => {
  const a = await tcpTarget('a');
  const b = await tcpTarget('b');
  const y = await tcpYard([a.port, b.port]);
  const { port } = y.address('l4');
  const seen: string[] = [];
  for (let i = 0; i < 4; i++) {
    const r = await exchange(port, `hello ${i}\n`);
    assert.ok(r.ended, 'the reply ended with a FIN');
    const text = r.body.toString();
    const m = /^([ab]):hello (\d)\n$/.exec(text);
    assert.ok(m, `unexpected reply ${JSON.stringify(text)}`);
    assert.equal(m[2], String(i));
    seen.push(m[1]);
  }
  assert.deepEqual([...seen].sort(), ['a', 'a', 'b', 'b']);
  assert.notEqual(seen[0], seen[1]);
});

test('tcp-proxy: half-close — the client ends its side first and still receives the whole reply', async () => {
  // A target that reads everything until the client's FIN, and only then answers.
  let gotFin = false;
  const server = createServer({ allowHalfOpen: true }, (s) => {
    const chunks: Buffer[] = [];
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => {
      gotFin = true;
      const body = Buffer.concat(chunks);
      // Answer in pieces, after the FIN, so the reply clearly flows on a half-closed connection.
      s.write(`len=${body.length};`);
      setTimeout(() => s.end(body.toString().toUpperCase()), 20);
    });
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => new Promise((r) => server.close(r)));
  const y = await tcpYard([(server.address() as { port: number }).port]);
  const r = await exchange(y.address('l4').port, 'question?');
  assert.ok(gotFin, 'the client FIN was forwarded upstream');
  assert.ok(r.ended);
  assert.equal(r.body.toString(), 'len=9;QUESTION?');
});

test('tcp-proxy: 8 MiB each way with a slow reader arrives intact (backpressure)', async () => {
  const t = await tcpTarget('x', { greet: false });
  const y = await tcpYard([t.port]);
  const payload = Buffer.alloc(8 * 1024 * 1024);
  for (let i = 0; i < payload.length; i++) payload[i] = (i * 31 + (i >> 13)) & 0xff;
  const got = await new Promise<Buffer>((resolve, reject) => {
    const s = connect({ ...y.address('l4'), allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.on('connect', () => s.end(payload));
    s.on('data', (d) => {
      chunks.push(d);
      s.pause();
      setTimeout(() => s.resume(), 1);
    });
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  assert.equal(got.length, payload.length);
  assert.ok(got.equals(payload));
});

test('tcp-proxy: bytes sent before the upstream connects are kept (and the client FIN after them)', async () => {
  const t = await tcpTarget('x', { greet: false });
  const y = await tcpYard([t.port]);
  // Written and ended in one go: all of it reaches the proxy before its upstream connect completes.
  const big = Buffer.alloc(300 * 1024, 7);
  const r = await new Promise<Buffer>((resolve, reject) => {
    const s = connect({ ...y.address('l4'), allowHalfOpen: true });
    const chunks: Buffer[] = [];
    s.end(Buffer.concat([Buffer.from('early:'), big]));
    s.on('data', (d) => chunks.push(d));
    s.on('end', () => resolve(Buffer.concat(chunks)));
    s.on('error', reject);
  });
  assert.equal(r.length, 6 + big.length);
  assert.equal(r.subarray(0, 6).toString(), 'early:');
});

test('tcp-proxy: a dead target is skipped (connect failure -> next target), inFlight returns to 0', async () => {
  const dead = await deadPort();
  const live = await tcpTarget('live');
  const y = await tcpYard([dead, live.port], { outlier: false });
  const { port } = y.address('l4');
  for (let i = 0; i < 4; i++) {
    const r = await exchange(port, 'ping');
    assert.equal(r.body.toString(), 'live:ping');
  }
  const group = y.upstreams().find((g) => g.name === 'u');
  assert.ok(group);
  await waitFor(() => group.targets.every((t) => t.inFlight === 0), 'inFlight back to 0');
});

test('tcp-proxy: all targets dead -> the client is closed with nothing sent', async () => {
  const y = await tcpYard([await deadPort(), await deadPort()]);
  const r = await exchange(y.address('l4').port, 'anyone?');
  assert.equal(r.body.length, 0);
});

test('tcp-proxy: a target that resets mid-stream closes the client; a client abort closes the upstream', async () => {
  const t = await tcpTarget('x', { greet: false });
  const y = await tcpYard([t.port]);
  const group = y.upstreams().find((g) => g.name === 'u')!;

  // Upstream reset: the client's connection is reset too (not ended, which would look complete).
  const c1 = connect({ ...y.address('l4'), allowHalfOpen: true });
  let c1Error: NodeJS.ErrnoException | undefined;
  c1.on('error', (err) => (c1Error = err));
  const c1Closed = new Promise((r) => c1.once('close', r));
  c1.write('one');
  await once(c1, 'data');
  assert.equal(t.open.size, 1);
  for (const s of t.open) s.resetAndDestroy();
  await c1Closed;
  assert.equal(c1Error?.code, 'ECONNRESET');

  // Client abort: the target's socket goes away too.
  const c2 = connect({ ...y.address('l4'), allowHalfOpen: true });
  c2.write('two');
  await once(c2, 'data');
  assert.equal(t.open.size, 1);
  c2.resetAndDestroy();
  await waitFor(() => t.open.size === 0, 'the target connection closed after the client abort');
  await waitFor(() => group.targets[0].inFlight === 0, 'inFlight back to 0');
});

test('tcp-proxy: no bytes for the idle timeout closes both sides', async () => {
  const t = await tcpTarget('x', { greet: false });
  const y = await tcpYard([t.port], { timeouts: { idle: '150ms' } });
  const c = connect({ ...y.address('l4'), allowHalfOpen: true });
  c.on('error', () => {});
  const closed = new Promise((r) => c.once('close', r));
  c.write('hi');
  await once(c, 'data');
  // The proxy closes its side (FIN); this client then ends its own so the socket closes.
  c.on('end', () => c.end());
  await closed;
  await waitFor(() => t.open.size === 0, 'the target connection closed');
});

// ---- udp ----

interface UdpTarget {
  port: number;
  socket: UdpSocket;
  /** Distinct client ports seen (one per proxy session). */
  peers: Set<number>;
}

async function udpTarget(name: string): Promise<UdpTarget> {
  const socket = createSocket('udp4');
  const t: UdpTarget = { port: 0, socket, peers: new Set() };
  socket.on('message', (m, r) => {
    t.peers.add(r.port);
    socket.send(Buffer.concat([Buffer.from(`${name}:`), m]), r.port, r.address);
  });
  socket.bind(0, '127.0.0.1');
  await once(socket, 'listening');
  t.port = socket.address().port;
  closers.push(() => new Promise<void>((r) => socket.close(() => r())));
  return t;
}

async function udpClient(): Promise<UdpSocket & { next(timeoutMs?: number): Promise<string> }> {
  const s = createSocket('udp4') as UdpSocket & { next(timeoutMs?: number): Promise<string> };
  const queue: string[] = [];
  const waiters: ((m: string) => void)[] = [];
  s.on('message', (m) => {
    const w = waiters.shift();
    if (w) w(m.toString());
    else queue.push(m.toString());
  });
  s.next = (timeoutMs = 5000) =>
    new Promise<string>((resolve, reject) => {
      const m = queue.shift();
      if (m !== undefined) return resolve(m);
      const waiter = (x: string) => {
        clearTimeout(timer);
        resolve(x);
      };
      const timer = setTimeout(() => {
        waiters.splice(waiters.indexOf(waiter), 1);
        reject(new Error(`no datagram within ${timeoutMs} ms`));
      }, timeoutMs);
      waiters.push(waiter);
    });
  s.bind(0, '127.0.0.1');
  await once(s, 'listening');
  closers.push(() => new Promise<void>((r) => s.close(() => r())));
  return s;
}

test('udp-proxy: each client gets its own session; replies return; idle sessions close', async () => {
  const a = await udpTarget('a');
  const b = await udpTarget('b');
  const y = await start({
    listeners: [{ name: 'u4', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'udp-proxy', upstream: 'u', sessionIdle: '200ms' } }],
    upstreams: { u: { targets: [`127.0.0.1:${a.port}`, `127.0.0.1:${b.port}`], balance: 'round-robin' } },
  });
  const { port } = y.address('u4');
  const group = y.upstreams().find((g) => g.name === 'u')!;
  const c1 = await udpClient();
  const c2 = await udpClient();

  c1.send('one', port, '127.0.0.1');
  const r1 = await c1.next();
  c2.send('two', port, '127.0.0.1');
  const r2 = await c2.next();
  // Round-robin: the two sessions went to different targets.
  const t1 = r1.split(':')[0];
  const t2 = r2.split(':')[0];
  assert.equal(r1, `${t1}:one`);
  assert.equal(r2, `${t2}:two`);
  assert.notEqual(t1, t2);

  // Later datagrams stay in their session: same target, same upstream socket.
  for (let i = 0; i < 3; i++) {
    c1.send(`more${i}`, port, '127.0.0.1');
    assert.equal(await c1.next(), `${t1}:more${i}`);
  }
  assert.equal(a.peers.size, 1);
  assert.equal(b.peers.size, 1);
  assert.equal(group.targets.reduce((n, t) => n + t.inFlight, 0), 2);

  // Quiet for longer than sessionIdle: both sessions close; the next datagram opens a new one.
  await waitFor(() => group.targets.every((t) => t.inFlight === 0), 'idle sessions closed');
  c1.send('again', port, '127.0.0.1');
  const r3 = await c1.next();
  assert.match(r3, /^[ab]:again$/);
  assert.equal(a.peers.size + b.peers.size, 3, 'a new session (new upstream socket) after the idle close');
});

test('udp-proxy: a session to a dead target is closed (ICMP refused) and the retry of the client reaches a live one', async () => {
  const a = await udpTarget('a');
  const dead = createSocket('udp4');
  dead.bind(0, '127.0.0.1');
  await once(dead, 'listening');
  const deadPortUdp = dead.address().port;
  await new Promise<void>((r) => dead.close(() => r()));
  const y = await start({
    listeners: [{ name: 'u4', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'udp-proxy', upstream: 'u' } }],
    upstreams: { u: { targets: [`127.0.0.1:${deadPortUdp}`, `127.0.0.1:${a.port}`], balance: 'round-robin', outlier: false } },
  });
  const { port } = y.address('u4');
  const group = y.upstreams().find((g) => g.name === 'u')!;
  const c = await udpClient();
  // The first session goes to the dead target (round-robin starts at the first): no answer.
  let reply: string | undefined;
  for (let i = 0; i < 20 && reply === undefined; i++) {
    c.send(`try${i}`, port, '127.0.0.1');
    reply = await c.next(250).catch(() => undefined);
  }
  assert.match(reply ?? '', /^a:try\d+$/);
  assert.equal(group.targets[0].inFlight, 0, 'the dead session is closed');
});

test('udp-proxy: at maxSessions, datagrams from new clients are dropped', async () => {
  const a = await udpTarget('a');
  const y = await start({
    listeners: [{ name: 'u4', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'udp-proxy', upstream: 'u', maxSessions: 1 } }],
    upstreams: { u: { targets: [`127.0.0.1:${a.port}`] } },
  });
  const { port } = y.address('u4');
  const c1 = await udpClient();
  const c2 = await udpClient();
  c1.send('first', port, '127.0.0.1');
  assert.equal(await c1.next(), 'a:first');
  c2.send('second', port, '127.0.0.1');
  // c1's session still works; c2 got nothing (checked after c1's next round trip).
  c1.send('still', port, '127.0.0.1');
  assert.equal(await c1.next(), 'a:still');
  assert.equal(a.peers.size, 1);
  await assert.rejects(c2.next(300), /no datagram/);
});

async function waitFor(cond: () => boolean, what: string, ms = 5000): Promise<void> {
  const until = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > until) throw new Error(`timed out waiting: ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

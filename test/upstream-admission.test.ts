import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type ServerResponse, type Server, get as httpGet } from 'node:http';
import { connect as h2connect } from 'node:http2';
import { createServer as createNetServer, connect, type Socket } from 'node:net';
import { createSocket } from 'node:dgram';
import { once } from 'node:events';
import { request } from 'undici';
import { serve, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { tcpProxyHandler } from '../src/handlers/tcp-proxy.ts';
import { udpProxyHandler } from '../src/handlers/udp-proxy.ts';
import { OutlierDetector } from '../src/upstream/health/outlier.ts';
import { Target } from '../src/upstream/target.ts';

// The one upstream admission contract (src/upstream/admission.ts) seen from every proxy: the
// pending cap shared by HTTP and WebSocket, the breaker and the rejection counts for tcp-proxy
// and udp-proxy, a per-try timeout while queued for a pooled connection that retries elsewhere,
// ejection counts that decay, and 1xx Early Hints and trailers passed through the HTTP proxy.
// Real sockets on 127.0.0.1; counts asserted, never times.

for (const mod of [tcpProxyHandler, udpProxyHandler]) if (handlerModule(mod.type) === undefined) registerHandler(mod as never);

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function start(config: unknown): Promise<Yard> {
  const y = await serve(config, { logLevel: 'silent' });
  closers.push(() => y.stop(100));
  return y;
}

async function httpServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number }> {
  const server = createServer(handler);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => {
    server.closeAllConnections();
    server.close();
  });
  return { server, port: (server.address() as { port: number }).port };
}

/** A TCP server that accepts and never says a word: a TLS handshake to it never completes. */
async function silentServer(): Promise<number> {
  const held = new Set<Socket>();
  const s = createNetServer((c) => {
    held.add(c);
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closers.push(() => {
    for (const c of held) c.destroy();
    s.close();
  });
  return (s.address() as { port: number }).port;
}

async function deadPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function metric(text: string, name: string, labels: Record<string, string>): number {
  for (const line of text.split('\n')) {
    if (!line.startsWith(`${name}{`)) continue;
    const body = line.slice(name.length + 1, line.indexOf('}'));
    if (Object.entries(labels).every(([k, v]) => body.includes(`${k}="${v}"`))) return Number(line.slice(line.lastIndexOf(' ') + 1));
  }
  return 0;
}

async function waitFor(what: string, check: () => boolean | Promise<boolean>): Promise<void> {
  for (let i = 0; i < 200; i++) {
    if (await check()) return;
    await new Promise((r) => setTimeout(r, 25));
  }
  assert.fail(`gave up waiting for ${what}`);
}

function groupState(y: Yard, name: string): { waiting: number; breaker: { state: string } | null; targets: { id: string; inFlight: number }[] } {
  return y.upstreams().find((g) => g.name === name)!.state() as never;
}

/** Sends a raw WebSocket upgrade and resolves with the response's status line and head. */
function upgrade(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      s.write('GET /ws HTTP/1.1\r\nhost: x\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-version: 13\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n');
    });
    let head = '';
    s.on('data', (d) => {
      head += d.toString('latin1');
      if (head.includes('\r\n\r\n')) {
        s.destroy();
        resolve(head);
      }
    });
    s.on('error', reject);
    s.on('close', () => resolve(head));
  });
}

test('the pending cap is the group\'s: a WebSocket is refused while an HTTP request waits for its connection', async () => {
  // An https:// target that never finishes the handshake keeps a try waiting for its connection.
  const port = await silentServer();
  const y = await start({
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u', websocket: true } }],
      },
    ],
    upstreams: {
      u: {
        targets: [`https://127.0.0.1:${port}`],
        breaker: { maxPending: 1 },
        retry: { attempts: 0 },
        timeouts: { connect: 5000 },
        health: false,
      },
    },
  });
  const web = y.address('web').port;
  const waiting = request(`http://127.0.0.1:${web}/slow`).catch((err: unknown) => err);
  await waitFor('the HTTP try to be waiting', () => groupState(y, 'u').waiting === 1);
  const head = await upgrade(web);
  assert.match(head, /^HTTP\/1\.1 503 /);
  assert.match(head, /\r\nretry-after: 1\r\n/i);
  const again = await request(`http://127.0.0.1:${web}/other`);
  assert.equal(again.statusCode, 503);
  await again.body.dump();
  const text = await y.metrics.text();
  assert.equal(metric(text, 'switchyard_upstream_rejected_total', { upstream: 'u', reason: 'max-pending' }), 2);
  const first = await waiting;
  // The waiting request ends with the connect timeout; either way it leaves the count.
  if (!(first instanceof Error)) await (first as { body: { dump(): Promise<void> } }).body.dump();
  await waitFor('nothing waiting', () => groupState(y, 'u').waiting === 0);
});

test('a per-try timeout while queued for a pooled connection retries on another target instead of answering 504', async () => {
  const releases: (() => void)[] = [];
  const make = (name: string) =>
    httpServer((req, res) => {
      if (req.url === '/slow') {
        // The head at once (so the per-try timeout no longer applies to it), the rest held: the
        // target's only pooled connection stays busy.
        res.writeHead(200);
        res.write(`${name}:`);
        releases.push(() => res.end('slow'));
        return;
      }
      res.end(name);
    });
  const a = await make('a');
  const b = await make('b');
  closers.push(() => releases.forEach((r) => r()));
  const y = await start({
    listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }] }],
    upstreams: {
      u: {
        targets: [`http://127.0.0.1:${a.port}`, `http://127.0.0.1:${b.port}`],
        // Both requests hash to the same target, whose only connection the first one holds.
        balance: 'consistent-hash',
        hash: { key: 'header', name: 'x-k' },
        pool: { connections: 1 },
        retry: { attempts: 1, perTryTimeout: 300 },
        health: false,
        outlier: false,
      },
    },
  });
  const base = `http://127.0.0.1:${y.address('web').port}`;
  // Its head through the proxy before the second request starts: until the head is in, the
  // per-try timeout applies to the slow request itself (on a loaded machine it could fire and
  // send the slow request to the other target too).
  const slowRes = await request(`${base}/slow`, { headers: { 'x-k': 'same' } });
  assert.equal(releases.length, 1);
  const fast = await request(`${base}/fast`, { headers: { 'x-k': 'same' } });
  assert.equal(fast.statusCode, 200);
  const answeredBy = await fast.body.text();
  releases[0]();
  const slowBy = (await slowRes.body.text()).split(':')[0];
  assert.notEqual(answeredBy, slowBy, 'the retry went to the target whose pool was free');
  const text = await y.metrics.text();
  assert.equal(metric(text, 'switchyard_upstream_errors_total', { upstream: 'u', kind: 'pool_wait_timeout' }), 1);
  assert.equal(metric(text, 'switchyard_upstream_retries_total', { upstream: 'u' }), 1);
  await waitFor('no try left in flight', () => groupState(y, 'u').targets.every((t) => t.inFlight === 0) && groupState(y, 'u').waiting === 0);
});

function tcpClient(port: number): Promise<{ data: string; socket: Socket }> {
  return new Promise((resolve) => {
    const socket = connect(port, '127.0.0.1');
    let data = '';
    socket.on('data', (d) => {
      data += d.toString();
      resolve({ data, socket });
    });
    socket.on('error', () => undefined);
    socket.on('close', () => resolve({ data, socket }));
  });
}

test('tcp-proxy goes through the breaker: maxRequests caps connections, failures open it, refusals are counted', async () => {
  const greeter = createNetServer((c) => {
    c.write('hi');
    c.on('error', () => undefined);
  });
  await new Promise<void>((r) => greeter.listen(0, '127.0.0.1', r));
  const held: Socket[] = [];
  closers.push(() => {
    held.forEach((s) => s.destroy());
    greeter.close();
  });
  const dead = await deadPort();
  const y = await start({
    listeners: [
      { name: 'capped', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'one' } },
      { name: 'broken', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'dead' } },
    ],
    upstreams: {
      one: { targets: [`127.0.0.1:${(greeter.address() as { port: number }).port}`], breaker: { maxRequests: 1 }, health: false },
      dead: { targets: [`127.0.0.1:${dead}`], breaker: { minRequests: 2, failureRate: 0.5, openFor: 60_000 }, retry: { attempts: 0 }, health: false, outlier: false },
    },
  });
  const first = await tcpClient(y.address('capped').port);
  held.push(first.socket);
  assert.equal(first.data, 'hi');
  const second = await tcpClient(y.address('capped').port);
  assert.equal(second.data, '', 'the second connection is closed without reaching the target');
  first.socket.destroy();
  await waitFor('the first connection to be released', () => groupState(y, 'one').targets[0].inFlight === 0);
  const third = await tcpClient(y.address('capped').port);
  held.push(third.socket);
  assert.equal(third.data, 'hi');

  for (let i = 0; i < 2; i++) assert.equal((await tcpClient(y.address('broken').port)).data, '');
  await waitFor('the breaker to open', () => groupState(y, 'dead').breaker?.state === 'open');
  assert.equal((await tcpClient(y.address('broken').port)).data, '');
  const text = await y.metrics.text();
  assert.equal(metric(text, 'switchyard_upstream_rejected_total', { upstream: 'one', reason: 'max-requests' }), 1);
  assert.equal(metric(text, 'switchyard_upstream_rejected_total', { upstream: 'dead', reason: 'breaker-open' }), 1);
  assert.equal(metric(text, 'switchyard_upstream_breaker_state', { upstream: 'dead' }), 2);
  // Two failed connects, and none while the breaker was open.
  assert.equal(metric(text, 'switchyard_upstream_requests_total', { upstream: 'dead', outcome: 'connect-failure' }), 2);
});

test('udp-proxy counts every datagram it drops, by reason, and its sessions go through the breaker', async () => {
  const echo = createSocket('udp4');
  echo.on('message', (m, from) => echo.send(m, from.port, from.address));
  echo.bind(0, '127.0.0.1');
  await once(echo, 'listening');
  closers.push(() => echo.close());
  const y = await start({
    listeners: [
      { name: 'few', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'udp-proxy', upstream: 'u', maxSessions: 1 } },
      { name: 'capped', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'udp-proxy', upstream: 'v' } },
    ],
    upstreams: {
      u: { targets: [`127.0.0.1:${echo.address().port}`], health: false },
      v: { targets: [`127.0.0.1:${echo.address().port}`], breaker: { maxRequests: 1 }, health: false },
    },
  });
  const clients = [createSocket('udp4'), createSocket('udp4'), createSocket('udp4'), createSocket('udp4')];
  closers.push(() => clients.forEach((c) => c.close()));
  const replies = clients.map(() => 0);
  clients.forEach((c, i) => c.on('message', () => replies[i]++));
  const send = (i: number, port: number) => clients[i].send('ping', port, '127.0.0.1');
  send(0, y.address('few').port);
  await waitFor('the first session to answer', () => replies[0] === 1);
  send(1, y.address('few').port);
  send(2, y.address('capped').port);
  await waitFor('the capped session to answer', () => replies[2] === 1);
  send(3, y.address('capped').port);
  await waitFor('both drops to be counted', async () => {
    const text = await y.metrics.text();
    return (
      metric(text, 'switchyard_udp_proxy_dropped_total', { listener: 'few', reason: 'max-sessions' }) === 1 &&
      metric(text, 'switchyard_udp_proxy_dropped_total', { listener: 'capped', reason: 'max-requests' }) === 1
    );
  });
  assert.equal(replies[1], 0);
  assert.equal(replies[3], 0);
  const text = await y.metrics.text();
  assert.equal(metric(text, 'switchyard_upstream_rejected_total', { upstream: 'v', reason: 'max-requests' }), 1);
});

test('outlier ejection counts decay: a target back in service long enough starts again at the base ejection time', () => {
  let now = 0;
  const t = new Target('t', '127.0.0.1', 1, 'http:', 'http://127.0.0.1:1', 1, 0);
  const other = new Target('o', '127.0.0.1', 2, 'http:', 'http://127.0.0.1:2', 1, 1);
  const d = new OutlierDetector({ consecutiveFailures: 1, baseEjectionTime: 1000, maxEjectionTime: 10_000, maxEjectPercent: 100 }, [t, other], () => now);
  d.onFailure(t);
  assert.equal(t.ejectedUntil, 1000);
  now = 1500;
  d.onFailure(t);
  assert.equal(t.ejections, 2);
  assert.equal(t.ejectedUntil, 3500, 'a second ejection soon after lasts twice as long');
  // Two base times back in service forget both past ejections.
  now = 5600;
  d.onFailure(t);
  assert.equal(t.ejections, 1);
  assert.equal(t.ejectedUntil, 6600);
  // One base time forgets one: the next ejection is the second again, not the third.
  now = 7700;
  d.onFailure(t);
  assert.equal(t.ejections, 1);
  assert.equal(t.ejectedUntil, 8700);
});

test('the HTTP proxy passes 103 Early Hints and trailers on, to HTTP/1.1 and HTTP/2 clients', async () => {
  const up = await httpServer((_req, res) => {
    res.writeEarlyHints({ link: '</style.css>; rel=preload; as=style' });
    res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
    res.write('body');
    res.addTrailers({ 'x-checksum': 'abc123' });
    res.end();
  });
  const y = await start({
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        http2: { h2c: true },
        routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }],
      },
    ],
    upstreams: { u: { targets: [`http://127.0.0.1:${up.port}`], health: false } },
  });
  const port = y.address('web').port;

  const h1 = await new Promise<{ hints: string[]; body: string; trailers: NodeJS.Dict<string> }>((resolve, reject) => {
    const hints: string[] = [];
    const req = httpGet({ host: '127.0.0.1', port, path: '/' }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ hints, body, trailers: res.trailers }));
    });
    req.on('information', (info) => {
      if (info.statusCode === 103) hints.push(String(info.headers.link));
    });
    req.on('error', reject);
  });
  assert.deepEqual(h1.hints, ['</style.css>; rel=preload; as=style']);
  assert.equal(h1.body, 'body');
  assert.equal(h1.trailers['x-checksum'], 'abc123');

  const session = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => session.destroy());
  const h2 = await new Promise<{ infos: number[]; status: number; body: string; trailers: Record<string, unknown> }>((resolve, reject) => {
    const stream = session.request({ ':path': '/', te: 'trailers' });
    const infos: number[] = [];
    let status = 0;
    let body = '';
    let trailers: Record<string, unknown> = {};
    stream.on('headers', (h) => infos.push(Number(h[':status'])));
    stream.on('response', (h) => (status = Number(h[':status'])));
    stream.on('trailers', (t) => (trailers = t));
    stream.setEncoding('utf8');
    stream.on('data', (d: string) => (body += d));
    stream.on('end', () => resolve({ infos, status, body, trailers }));
    stream.on('error', reject);
  });
  session.close();
  assert.deepEqual(h2.infos, [103]);
  assert.equal(h2.status, 200);
  assert.equal(h2.body, 'body');
  assert.equal(h2.trailers['x-checksum'], 'abc123');
});

test('an HTTP/2 request body without Content-Length reaches the upstream whole; past maxBodySize it is a 413', async () => {
  const up = await httpServer((req, res) => {
    let n = 0;
    req.on('data', (d: Buffer) => (n += d.length));
    req.on('end', () => res.end(String(n)));
  });
  const y = await start({
    listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, limits: { maxBodySize: 64 * 1024 }, routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'u' } }] }],
    upstreams: { u: { targets: [`http://127.0.0.1:${up.port}`], retry: { attempts: 0 } } },
  });
  const session = h2connect(`http://127.0.0.1:${y.address('web').port}`);
  closers.push(() => session.destroy());
  const post = (size: number) =>
    new Promise<{ status: number; body: string }>((resolve, reject) => {
      const stream = session.request({ ':method': 'POST', ':path': '/upload' });
      let status = 0;
      let body = '';
      stream.on('response', (h) => (status = Number(h[':status'])));
      stream.setEncoding('utf8');
      stream.on('data', (d: string) => (body += d));
      stream.on('end', () => resolve({ status, body }));
      stream.on('error', reject);
      // Written in pieces, no content-length: only END_STREAM says where the body ends.
      for (let sent = 0; sent < size; sent += 1024) stream.write(Buffer.alloc(Math.min(1024, size - sent), 97));
      stream.end();
    });
  assert.deepEqual(await post(2048), { status: 200, body: '2048' });
  const big = await post(256 * 1024);
  assert.equal(big.status, 413);
  session.close();
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { readFileSync, readdirSync, readlinkSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createServer, connect, type Server, type Socket } from 'node:net';
import type { Socket as DatagramSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer as createHttpServer, request } from 'node:http';
import { createServer as createHttp2Server, type Http2Session } from 'node:http2';
import { serve, createLogger, parseConfig, ConfigError, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { tcpProxyHandler } from '../src/handlers/tcp-proxy.ts';
import { getSocketOption, optionFd, socketOptionsUnavailableReason, type SocketOptionName } from '../src/sys/sockopt.ts';

// `socket:` on listeners and upstream groups, read back from the kernel with getsockopt on the
// real sockets: the listening sockets (through the yard's listeningSockets()), connections they
// accepted (caught on the server's 'connection' event), and the yard's own connections to a
// backend (found by inode: `ss -e` names it, /proc/self/fd holds it). Backlogs are read from
// `ss -l` (Send-Q of a listening socket is its backlog). Nothing here asserts on timing.

if (handlerModule(tcpProxyHandler.type) === undefined) registerHandler(tcpProxyHandler as never);

const native = socketOptionsUnavailableReason();
const closers: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

interface LogRecord {
  level: number;
  msg: string;
  [key: string]: unknown;
}

async function start(config: unknown): Promise<{ yard: Yard; logs: LogRecord[] }> {
  const logs: LogRecord[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, done) {
      for (const line of chunk.toString().split('\n')) if (line) logs.push(JSON.parse(line) as LogRecord);
      done();
    },
  });
  const yard = await serve(config, { logger: createLogger('info', sink) });
  closers.push(() => yard.stop(100));
  return { yard, logs };
}

function listeningServer(yard: Yard, name: string): Server {
  const entry = yard.listeningSockets().find((l) => l.name === name);
  assert.ok(entry, `listener ${name} has a listening socket`);
  return entry.socket as Server;
}

function sysctl(name: string): number {
  return Number(readFileSync(`/proc/sys/${name.replaceAll('.', '/')}`, 'utf8').trim().split(/\s+/)[0]);
}

/** What the kernel holds for a buffer size asked of SO_RCVBUF/SO_SNDBUF: twice it, capped at twice the sysctl. */
function doubled(asked: number, max: string): number {
  return 2 * Math.min(asked, sysctl(max));
}

function options(fd: number, names: SocketOptionName[]): Record<string, number> {
  return Object.fromEntries(names.map((n) => [n, getSocketOption(fd, n)]));
}

/** The next connection `server` accepts (the raw TCP one). */
function nextAccepted(server: Server): Promise<Socket> {
  return new Promise((resolve) => server.once('connection', resolve));
}

async function connectTo(port: number, host = '127.0.0.1'): Promise<Socket> {
  const s = connect({ port, host });
  s.on('error', () => {});
  closers.push(() => void s.destroy());
  await once(s, 'connect');
  return s;
}

/** The listen backlog of the socket listening on `port` (ss -l: Send-Q is the backlog). */
function ssBacklog(port: number): number {
  const out = execFileSync('ss', ['-Hlnt', `sport = :${port}`], { encoding: 'utf8', timeout: 10_000 });
  const line = out.split('\n').find((l) => l.trim() !== '');
  assert.ok(line, `ss lists the listening socket on ${port}`);
  // State Recv-Q Send-Q Local Peer, or Recv-Q Send-Q Local Peer when a state filter is given.
  const cols = line.trim().split(/\s+/);
  return Number(cols[0] === 'LISTEN' ? cols[2] : cols[1]);
}

/**
 * This process's fd of its own established TCP connection to 127.0.0.1:`port` (the yard's
 * upstream connection): `ss -e` gives its inode, /proc/self/fd maps the inode to the fd.
 */
function ownConnectionFd(port: number): { fd: number; ss: string } {
  const out = execFileSync('ss', ['-Htnoe', 'state', 'established', `dport = :${port}`], { encoding: 'utf8', timeout: 10_000 });
  const lines = out.split('\n').filter((l) => l.includes('ino:'));
  assert.equal(lines.length, 1, `one connection to port ${port}:\n${out}`);
  const inode = /ino:(\d+)/.exec(lines[0])![1];
  const fds = readdirSync('/proc/self/fd');
  assert.ok(fds.length < 100_000);
  for (const fd of fds) {
    let link: string;
    try {
      link = readlinkSync(`/proc/self/fd/${fd}`);
    } catch {
      continue;
    }
    if (link === `socket:[${inode}]`) return { fd: Number(fd), ss: lines[0] };
  }
  assert.fail(`no fd of this process holds socket inode ${inode}`);
}

async function echoBackend(): Promise<{ port: number; server: Server }> {
  const open = new Set<Socket>();
  const server = createServer((s) => {
    open.add(s);
    s.on('close', () => open.delete(s));
    s.on('error', () => s.destroy());
    s.pipe(s);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    for (const s of open) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return { port: (server.address() as { port: number }).port, server };
}

/** GET / through the yard on `port`; the body. */
function get(port: number): Promise<string> {
  return new Promise<string>((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/', agent: false, timeout: 10_000 }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d) => (text += d));
      res.on('end', () => resolve(text));
    });
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end();
  });
}

const KEEPALIVE = ['keepAlive', 'keepIdle', 'keepInterval', 'keepCount'] as const satisfies SocketOptionName[];

test('http and tcp listeners: the listening socket and the connections it accepts carry socket:', { skip: native }, async () => {
  const socket = {
    keepAlive: { idle: '30s', interval: '5s', count: 4 },
    receiveBufferSize: '256KiB',
    sendBufferSize: '96KiB',
    backlog: 77,
    fastOpen: 32,
  };
  const { yard, logs } = await start({
    listeners: [
      { name: 'web', protocol: 'http', address: '127.0.0.1:0', socket: { ...socket, noDelay: false }, routes: [{ handler: { type: 'respond', body: 'hi' } }] },
      { name: 'raw', protocol: 'tcp', address: '127.0.0.1:0', socket, handler: { type: 'echo' } },
      { name: 'raw-nagle', protocol: 'tcp', address: '127.0.0.1:0', socket: { noDelay: false }, handler: { type: 'echo' } },
      { name: 'plain', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } },
    ],
  });
  const expected = {
    keepAlive: 1,
    keepIdle: 30,
    keepInterval: 5,
    keepCount: 4,
    receiveBuffer: doubled(256 * 1024, 'net.core.rmem_max'),
    sendBuffer: doubled(96 * 1024, 'net.core.wmem_max'),
  };
  for (const name of ['web', 'raw']) {
    const server = listeningServer(yard, name);
    const fd = optionFd(server);
    assert.ok(fd !== undefined, `${name}: listening fd`);
    assert.deepEqual(options(fd, [...KEEPALIVE, 'receiveBuffer', 'sendBuffer']), expected, `${name}: listening socket`);
    assert.equal(getSocketOption(fd, 'fastOpen'), 32, `${name}: TCP_FASTOPEN queue`);
    assert.equal(ssBacklog(yard.address(name).port), 77, `${name}: backlog`);

    const accepted = nextAccepted(server);
    await connectTo(yard.address(name).port);
    const conn = await accepted;
    const cfd = optionFd(conn);
    assert.ok(cfd !== undefined, `${name}: accepted fd`);
    assert.deepEqual(options(cfd, [...KEEPALIVE, 'receiveBuffer', 'sendBuffer']), expected, `${name}: accepted connection inherits`);
    // http: noDelay false; tcp: Node's default (true), which a listener without noDelay keeps.
    assert.equal(getSocketOption(cfd, 'noDelay'), name === 'web' ? 0 : 1, `${name}: TCP_NODELAY`);
  }

  const nagle = nextAccepted(listeningServer(yard, 'raw-nagle'));
  await connectTo(yard.address('raw-nagle').port);
  assert.equal(getSocketOption(optionFd(await nagle)!, 'noDelay'), 0, 'tcp listener with noDelay: false');

  // Without socket: nothing is touched (kernel defaults: no keepalive, Node's backlog of 1024 capped by somaxconn).
  const plain = listeningServer(yard, 'plain');
  assert.equal(getSocketOption(optionFd(plain)!, 'keepAlive'), 0);
  assert.equal(getSocketOption(optionFd(plain)!, 'fastOpen'), 0);
  assert.equal(ssBacklog(yard.address('plain').port), Math.min(1024, sysctl('net.core.somaxconn')));

  // The effective buffer sizes are logged; fastOpen without the kernel's server bit is a warning naming the field.
  const buffers = logs.find((r) => r.listener === 'web' && typeof r.msg === 'string' && r.msg.includes('socket buffers'));
  assert.deepEqual(buffers?.effective, { receiveBufferSize: expected.receiveBuffer, sendBufferSize: expected.sendBuffer });
  const tfo = sysctl('net.ipv4.tcp_fastopen');
  const warned = logs.some((r) => r.field === 'socket.fastOpen' && r.listener === 'web');
  assert.equal(warned, (tfo & 2) === 0, `fastOpen warning when net.ipv4.tcp_fastopen (${tfo}) lacks the server bit`);
});

test('a buffer larger than the kernel allows is capped: logged with the effective size, naming the field', { skip: native }, async () => {
  const max = sysctl('net.core.rmem_max');
  const { yard, logs } = await start({
    listeners: [{ name: 'big', protocol: 'tcp', address: '127.0.0.1:0', socket: { receiveBufferSize: max * 2, backlog: 65_535 }, handler: { type: 'echo' } }],
  });
  assert.equal(getSocketOption(optionFd(listeningServer(yard, 'big'))!, 'receiveBuffer'), 2 * max);
  const capped = logs.find((r) => r.level === 40 && r.msg.includes('socket.receiveBufferSize'));
  assert.ok(capped, 'a warning names socket.receiveBufferSize');
  assert.match(capped.msg, /net\.core\.rmem_max/);
  assert.match(capped.msg, new RegExp(`holds ${2 * max}`));
  const somaxconn = sysctl('net.core.somaxconn');
  if (somaxconn < 65_535) {
    assert.ok(logs.some((r) => r.field === 'socket.backlog' && /somaxconn/.test(r.msg)), 'a backlog over somaxconn is a warning');
    assert.equal(ssBacklog(yard.address('big').port), somaxconn);
  }
});

test('tcp-proxy: the upstream group sets socket: on its connection to the target', { skip: native }, async () => {
  const backend = await echoBackend();
  const { yard } = await start({
    listeners: [{ name: 'l4', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'u' } }],
    upstreams: {
      u: {
        targets: [`127.0.0.1:${backend.port}`],
        socket: { noDelay: false, keepAlive: { idle: '20s', interval: '3s', count: 2 }, receiveBufferSize: '192KiB', sendBufferSize: '80KiB' },
      },
    },
  });
  const client = await connectTo(yard.address('l4').port);
  client.write('ping');
  const [echo] = (await once(client, 'data')) as [Buffer];
  assert.equal(echo.toString(), 'ping');
  const { fd, ss } = ownConnectionFd(backend.port);
  assert.deepEqual(options(fd, ['noDelay', ...KEEPALIVE, 'receiveBuffer', 'sendBuffer']), {
    noDelay: 0,
    keepAlive: 1,
    keepIdle: 20,
    keepInterval: 3,
    keepCount: 2,
    receiveBuffer: doubled(192 * 1024, 'net.core.rmem_max'),
    sendBuffer: doubled(80 * 1024, 'net.core.wmem_max'),
  });
  // ss sees the keepalive timer running on it.
  assert.match(ss, /timer:\(keepalive,/);
});

test('http proxy: the pooled connection to the target gets socket:, and keepAlive: true keeps the kernel timings over undici\'s', { skip: native }, async () => {
  const web = createHttpServer((_req, res) => res.end('from backend'));
  web.listen(0, '127.0.0.1');
  await once(web, 'listening');
  closers.push(() => {
    web.closeAllConnections();
    return new Promise((r) => web.close(r));
  });
  const port = (web.address() as { port: number }).port;
  const { yard } = await start({
    listeners: [{ name: 'gw', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'proxy', upstream: 'api' } }] }],
    upstreams: { api: { targets: [`http://127.0.0.1:${port}`], socket: { keepAlive: true, sendBufferSize: '64KiB' } } },
  });
  assert.equal(await get(yard.address('gw').port), 'from backend');
  const { fd } = ownConnectionFd(port);
  // undici's own setKeepAlive (Node's: 60 s idle, 1 s interval, 10 probes) replaced by the kernel's sysctl timings.
  assert.deepEqual(options(fd, [...KEEPALIVE, 'sendBuffer', 'noDelay']), {
    keepAlive: 1,
    keepIdle: sysctl('net.ipv4.tcp_keepalive_time'),
    keepInterval: sysctl('net.ipv4.tcp_keepalive_intvl'),
    keepCount: sysctl('net.ipv4.tcp_keepalive_probes'),
    sendBuffer: doubled(64 * 1024, 'net.core.wmem_max'),
    noDelay: 1,
  });
});

test('HTTP/2 (h2c) upstream: the session\'s connection gets socket:', { skip: native }, async () => {
  const h2 = createHttp2Server((_req, res) => res.end('from h2'));
  h2.listen(0, '127.0.0.1');
  await once(h2, 'listening');
  const sessions = new Set<Http2Session>();
  h2.on('session', (s) => {
    sessions.add(s);
    s.on('close', () => sessions.delete(s));
  });
  closers.push(() => {
    for (const s of sessions) s.destroy();
    return new Promise((r) => h2.close(r));
  });
  const port = (h2.address() as { port: number }).port;
  const { yard } = await start({
    listeners: [{ name: 'gw2', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'proxy', upstream: 'h2' } }] }],
    upstreams: { h2: { targets: [`h2c://127.0.0.1:${port}`], socket: { noDelay: false, keepAlive: { idle: '45s' } } } },
  });
  assert.equal(await get(yard.address('gw2').port), 'from h2');
  const { fd } = ownConnectionFd(port);
  assert.deepEqual(options(fd, ['noDelay', 'keepAlive', 'keepIdle']), { noDelay: 0, keepAlive: 1, keepIdle: 45 });
});

function ipv6Loopback(): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createServer();
    s.once('error', () => resolve(false));
    s.listen(0, '::1', () => s.close(() => resolve(true)));
  });
}

test('ipv6Only: a [::] listener takes IPv4 too unless ipv6Only is true', async (t) => {
  if (!(await ipv6Loopback())) return t.skip('no IPv6 on the loopback interface here');
  const { yard } = await start({
    listeners: [
      { name: 'v6only', protocol: 'tcp', address: '[::]:0', socket: { ipv6Only: true }, handler: { type: 'echo' } },
      { name: 'dual', protocol: 'tcp', address: '[::]:0', socket: { ipv6Only: false }, handler: { type: 'echo' } },
    ],
  });
  const v6only = yard.address('v6only').port;
  const dual = yard.address('dual').port;
  await connectTo(v6only, '::1');
  await connectTo(dual, '::1');
  await connectTo(dual, '127.0.0.1');
  const refused = await new Promise<string>((resolve) => {
    const s = connect({ port: v6only, host: '127.0.0.1' });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED', 'IPv4 to an ipv6Only listener is refused');
  if (!native) {
    assert.equal(getSocketOption(optionFd(listeningServer(yard, 'v6only'))!, 'ipv6Only'), 1);
    assert.equal(getSocketOption(optionFd(listeningServer(yard, 'dual'))!, 'ipv6Only'), 0);
  }
});

test('unix listener: backlog at listen, buffer sizes on each accepted connection', { skip: native }, async () => {
  const dir = mkdtempSync(join(tmpdir(), 'sockopt-'));
  const path = join(dir, 'u.sock');
  const { yard } = await start({
    listeners: [{ name: 'u', protocol: 'unix', path, socket: { backlog: 33, receiveBufferSize: '300KiB', sendBufferSize: '250KiB' }, handler: { type: 'echo' } }],
  });
  const server = listeningServer(yard, 'u');
  const accepted = nextAccepted(server);
  const c = connect({ path });
  closers.push(() => void c.destroy());
  await once(c, 'connect');
  const fd = optionFd(await accepted)!;
  assert.deepEqual(options(fd, ['receiveBuffer', 'sendBuffer']), {
    receiveBuffer: doubled(300 * 1024, 'net.core.rmem_max'),
    sendBuffer: doubled(250 * 1024, 'net.core.wmem_max'),
  });
  const out = execFileSync('ss', ['-Hlx', `src = ${path}`], { encoding: 'utf8', timeout: 10_000 });
  const cols = out.trim().split(/\s+/);
  assert.equal(Number(cols[cols.indexOf('LISTEN') + 2]), 33, `ss -lx: ${out}`);
});

test('udp listener: receive and send buffer sizes', async () => {
  const { yard } = await start({
    listeners: [{ name: 'dg', protocol: 'udp', address: '127.0.0.1:0', socket: { receiveBufferSize: '320KiB', sendBufferSize: '160KiB' }, handler: { type: 'echo' } }],
  });
  const s = yard.listeningSockets().find((l) => l.name === 'dg')!.socket as DatagramSocket;
  assert.equal(s.getRecvBufferSize(), doubled(320 * 1024, 'net.core.rmem_max'));
  assert.equal(s.getSendBufferSize(), doubled(160 * 1024, 'net.core.wmem_max'));
});

test('a reload that changes socket: rebinds the listener with the new options; one that does not keeps its socket', { skip: native }, async () => {
  const config = (idle: string, idleTimeout = '60s') => ({
    listeners: [{ name: 'r', protocol: 'tcp', address: '127.0.0.1:0', limits: { idleTimeout }, socket: { keepAlive: { idle } }, handler: { type: 'echo' } }],
  });
  const { yard } = await start(config('30s'));
  const first = listeningServer(yard, 'r');
  assert.equal(getSocketOption(optionFd(first)!, 'keepIdle'), 30);
  const kept = await yard.reload(parseConfig(config('30s', '30s')));
  assert.ok(kept.ok, JSON.stringify(kept));
  assert.equal(listeningServer(yard, 'r'), first, 'same socket options: the listener keeps its socket');
  const replaced = await yard.reload(parseConfig(config('40s', '30s')));
  assert.ok(replaced.ok && replaced.changed.some((c) => c.includes('replaced')), JSON.stringify(replaced));
  const second = listeningServer(yard, 'r');
  assert.notEqual(second, first);
  assert.equal(getSocketOption(optionFd(second)!, 'keepIdle'), 40);
});

function issuesOf(input: unknown): { path: string; message: string }[] {
  try {
    parseConfig(input);
  } catch (err) {
    assert.ok(err instanceof ConfigError, `expected ConfigError, got ${String(err)}`);
    return err.issues;
  }
  assert.fail('the config was accepted');
}

test('config errors name the socket field', () => {
  const tcp = (socket: unknown, address = '127.0.0.1:0') => ({ listeners: [{ name: 't', protocol: 'tcp', address, socket, handler: { type: 'echo' } }] });
  const one = (input: unknown) => {
    const issues = issuesOf(input);
    assert.equal(issues.length, 1, JSON.stringify(issues));
    return issues[0];
  };
  let i = one(tcp({ keepAlive: { idle: '1500ms' } }));
  assert.equal(i.path, 'listeners[0].socket.keepAlive.idle');
  assert.match(i.message, /whole seconds/);
  i = one(tcp({ keepAlive: { count: 500 } }));
  assert.equal(i.path, 'listeners[0].socket.keepAlive.count');
  i = one(tcp({ receiveBufferSize: '2GiB' }));
  assert.equal(i.path, 'listeners[0].socket.receiveBufferSize');
  assert.match(i.message, /1GiB/);
  i = one(tcp({ receiveBufferSize: 'lots' }));
  assert.equal(i.path, 'listeners[0].socket.receiveBufferSize');
  i = one(tcp({ ipv6Only: true }));
  assert.equal(i.path, 'listeners[0].socket.ipv6Only');
  assert.match(i.message, /IPv6 addresses/);
  i = one(tcp({ backlog: 0 }));
  assert.equal(i.path, 'listeners[0].socket.backlog');
  i = one(tcp({ fastOpen: true }));
  assert.equal(i.path, 'listeners[0].socket.fastOpen');
  i = one({ listeners: [{ name: 'd', protocol: 'udp', address: '127.0.0.1:0', socket: { noDelay: true }, handler: { type: 'echo' } }] });
  assert.equal(i.path, 'listeners[0].socket.noDelay');
  assert.match(i.message, /unknown field/);
  i = one({ listeners: [{ name: 'u', protocol: 'unix', path: '/tmp/x.sock', socket: { keepAlive: true }, handler: { type: 'echo' } }] });
  assert.equal(i.path, 'listeners[0].socket.keepAlive');
  i = one({
    listeners: [{ name: 't', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'u' } }],
    upstreams: { u: { targets: ['127.0.0.1:1'], socket: { backlog: 10 } } },
  });
  assert.equal(i.path, 'upstreams.u.socket.backlog');
  // `[::]` with ipv6Only leaves the IPv4 port free for another listener; without it, the check refuses the pair.
  const pair = (ipv6Only: boolean) => ({
    listeners: [
      { name: 'v6', protocol: 'tcp', address: '[::]:8080', socket: { ipv6Only }, handler: { type: 'echo' } },
      { name: 'v4', protocol: 'http', address: '0.0.0.0:8080', routes: [{ handler: { type: 'respond' } }] },
    ],
  });
  parseConfig(pair(true));
  i = one(pair(false));
  assert.equal(i.path, 'listeners[1].address');
  assert.match(i.message, /ipv6Only/);
  // Accepted: an IPv6 address with ipv6Only, and every field at once.
  parseConfig(tcp({ ipv6Only: true, noDelay: false, keepAlive: { idle: '1m', interval: '10s', count: 5 }, receiveBufferSize: '1MiB', sendBufferSize: 65536, backlog: 4096, fastOpen: 16 }, '[::]:0'));
});

import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { request } from 'undici';
import { serve, type Yard } from '../src/index.ts';
import { startDaemon, killDaemon, type Daemon } from './helpers/daemon.ts';

// Middleware that holds resources lets them go with its config generation: forwardAuth's
// connections to its authentication service are closed once a reload's old generation has
// finished its requests, and when the listener stops. The service is a real node:http server on
// 127.0.0.1 that tells its connections apart; it keeps them alive for a minute (and says so in
// Keep-Alive), so a connection that closes within the bounded waits below was closed by the yard.

const dir = mkdtempSync(join(tmpdir(), 'sy-mw-lifecycle-'));
const servers: Server[] = [];
const yards: Yard[] = [];
let daemon: Daemon | undefined;
after(async () => {
  await killDaemon(daemon);
  for (const y of yards) await y.stop(100);
  for (const s of servers) {
    s.closeAllConnections();
    s.close();
  }
  rmSync(dir, { recursive: true, force: true });
});

/** Bounds every wait below: far under the minute the service keeps an idle connection open. */
const WAIT_MS = 10_000;

interface Tracked {
  socket: Socket;
  closed: boolean;
  whenClosed: Promise<void>;
}

async function listen(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; url: string; connections: Tracked[] }> {
  const server = createServer({ keepAliveTimeout: 60_000 }, handler);
  const connections: Tracked[] = [];
  server.on('connection', (socket: Socket) => {
    const tracked: Tracked = { socket, closed: false, whenClosed: new Promise((resolve) => socket.once('close', () => resolve())) };
    void tracked.whenClosed.then(() => (tracked.closed = true));
    connections.push(tracked);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  servers.push(server);
  return { server, url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, connections };
}

/** An authentication service: `Bearer good` is ann, anything else 401. Counts the calls each connection carried. */
async function authService(): Promise<{ url: string; connections: Tracked[]; calls: Map<Socket, number> }> {
  const calls = new Map<Socket, number>();
  const svc = await listen((req, res) => {
    calls.set(req.socket, (calls.get(req.socket) ?? 0) + 1);
    if (req.headers.authorization === 'Bearer good') {
      res.writeHead(200, { 'x-user': 'ann' });
      res.end();
    } else {
      res.writeHead(401, { 'www-authenticate': 'Bearer', 'content-type': 'text/plain' });
      res.end('who are you?\n');
    }
  });
  return { ...svc, calls };
}

async function closedWithin(t: Tracked, what: string): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    t.whenClosed,
    new Promise((_, reject) => (timer = setTimeout(() => reject(new Error(`${what} still open after ${WAIT_MS} ms`)), WAIT_MS))),
  ]).finally(() => clearTimeout(timer));
}

async function get(url: string, token: string): Promise<{ status: number; body: string }> {
  const res = await request(url, { headers: { authorization: `Bearer ${token}` }, headersTimeout: WAIT_MS, bodyTimeout: WAIT_MS });
  return { status: res.statusCode, body: await res.body.text() };
}

test('a reload (SIGHUP) closes the old generation\'s connection to the auth service once its requests finish; requests authenticate throughout', { timeout: 90_000 }, async () => {
  const auth = await authService();
  // An upstream that holds each request until released: a request in flight across the reload.
  const held: ServerResponse[] = [];
  let heldArrived: () => void = () => {};
  const arrived = new Promise<void>((resolve) => (heldArrived = resolve));
  const upstream = await listen((_req, res) => {
    held.push(res);
    heldArrived();
  });

  const file = join(dir, 'yard.json');
  const write = (version: string) =>
    writeFileSync(
      file,
      JSON.stringify({
        listeners: [
          {
            name: 'web',
            protocol: 'http',
            address: '127.0.0.1:0',
            middleware: { forwardAuth: { url: `${auth.url}/verify`, copyResponseHeaders: ['x-user'] } },
            routes: [
              { match: { path: '/held' }, handler: { type: 'proxy', upstream: 'held' } },
              { match: { path: '/*' }, handler: { type: 'respond', body: version } },
            ],
          },
        ],
        upstreams: { held: { targets: [upstream.url] } },
        logging: { level: 'info', accessLog: false },
      }),
    );
  write('v0');
  daemon = await startDaemon([file]);
  const base = `http://127.0.0.1:${daemon.port('web')}`;

  assert.deepEqual(await get(`${base}/app`, 'good'), { status: 200, body: 'v0' });
  assert.equal((await get(`${base}/app`, 'bad')).status, 401);
  assert.equal(auth.connections.length, 1, 'one kept-alive connection to the service');
  const old = auth.connections[0];

  // In flight on the old generation: authenticated, then held by the upstream.
  const inFlight = get(`${base}/held`, 'good');
  await arrived;

  write('v1');
  daemon.child.kill('SIGHUP');
  let served = '';
  for (let tries = 0; tries < 200 && served !== 'v1'; tries++) {
    const r = await get(`${base}/app`, 'good');
    assert.equal(r.status, 200, 'a request during the reload is authenticated');
    served = r.body;
    if (served !== 'v1') await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.equal(served, 'v1', `the reload took effect\n${daemon.stdout()}`);
  const current = auth.connections.filter((c) => c !== old);
  assert.equal(current.length, 1, 'the new generation opened its own connection to the service');
  assert.equal(old.closed, false, 'the old generation\'s connection stays while its request is in flight');

  for (const res of held.splice(0)) res.end('held answer');
  assert.deepEqual(await inFlight, { status: 200, body: 'held answer' });
  await closedWithin(old, 'the old generation\'s connection to the auth service');

  // Across the reload: still every request asks the service, on the new generation's connection.
  const before = auth.calls.get(current[0].socket) ?? 0;
  assert.deepEqual(await get(`${base}/app`, 'good'), { status: 200, body: 'v1' });
  assert.equal((await get(`${base}/app`, 'bad')).status, 401);
  assert.equal(auth.calls.get(current[0].socket), before + 2, 'both calls went over the current connection');
  assert.equal(current[0].closed, false, 'the current generation keeps its connection');
  assert.doesNotMatch(daemon.stdout(), /middleware cleanup failed/);

  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
});

test('stopping the yard closes forwardAuth\'s connections to the auth service', { timeout: 60_000 }, async () => {
  const auth = await authService();
  const yard = await serve(
    {
      listeners: [
        {
          name: 'w',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/a/*' }, handler: { type: 'respond', body: 'a' }, middleware: { forwardAuth: { url: `${auth.url}/a` } } },
            { match: { path: '/b/*' }, handler: { type: 'respond', body: 'b' }, middleware: { forwardAuth: { url: `${auth.url}/b` } } },
          ],
        },
      ],
      logging: { level: 'silent', accessLog: false },
    },
    { logLevel: 'silent' },
  );
  yards.push(yard);
  const base = `http://127.0.0.1:${yard.address('w').port}`;
  assert.deepEqual(await get(`${base}/a/x`, 'good'), { status: 200, body: 'a' });
  assert.deepEqual(await get(`${base}/b/x`, 'good'), { status: 200, body: 'b' });
  assert.equal(auth.connections.length, 2, 'one connection per forwardAuth (each route has its own)');
  await yard.stop(100);
  yards.splice(yards.indexOf(yard), 1);
  for (const c of auth.connections) await closedWithin(c, 'a connection to the auth service after stop');
});

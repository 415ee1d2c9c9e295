import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { connect, createServer as createNetServer } from 'node:net';
import { request } from 'undici';
import { ClientLoad } from './helpers/client-load.ts';
import { serve, parseConfig, type Yard } from '../src/index.ts';

// Reload (Yard.reload): a new config swapped into the running daemon. Real sockets on
// 127.0.0.1; counts and contents asserted, never times.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

function webConfig(port: number, body: string, extra: Record<string, unknown> = {}) {
  return {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: `127.0.0.1:${port}`,
        routes: [{ match: { path: '/' }, handler: { type: 'respond', body } }],
      },
    ],
    logging: { level: 'silent' as const },
    ...extra,
  };
}

test('20 reloads under a continuous client loop: no request fails, each change takes effect, the port stays', async () => {
  const port = await freePort();
  const yard: Yard = await serve(webConfig(port, 'v0'), { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  // Keep-alive clients and fresh connections both, until the reloads are done.
  const load = new ClientLoad(`http://127.0.0.1:${port}/`, { fresh: 1, keepAlive: 2 });
  for (let i = 1; i <= 20; i++) {
    const result = await yard.reload(parseConfig(webConfig(port, `v${i}`), 'test'));
    assert.equal(result.ok, true, JSON.stringify(result));
    const res = await request(`http://127.0.0.1:${port}/`, { reset: true });
    assert.equal(await res.body.text(), `v${i}`, 'the new body is served right after the reload');
  }
  await load.stop();
  assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} failed requests`);
  assert.ok(load.ok > 20, `the clients made requests throughout (${load.ok})`);
  assert.ok(load.bodies.size > 1, 'the clients saw the bodies change');
  assert.equal(yard.address('web').port, port);
});

test('a reload that cannot start leaves the running config serving, and says why', async () => {
  const port = await freePort();
  const yard = await serve(webConfig(port, 'old'), { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  // A second listener on a port another process holds: binding fails after provisioning.
  const blocker = createNetServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  closers.push(() => blocker.close());
  const taken = (blocker.address() as { port: number }).port;
  const bad = webConfig(port, 'new');
  bad.listeners.push({ name: 'extra', protocol: 'http', address: `127.0.0.1:${taken}`, routes: [{ match: { path: '/' }, handler: { type: 'respond', body: 'x' } }] });
  const result = await yard.reload(parseConfig(bad, 'test'));
  assert.equal(result.ok, false);
  assert.match((result as { error: string }).error, /extra|in use/);
  const res = await request(`http://127.0.0.1:${port}/`);
  assert.equal(await res.body.text(), 'old');
  assert.deepEqual(yard.listeners().map((l) => l.name), ['web']);

  // A static root that does not exist: refused when provisioning, nothing changes either.
  const missing = webConfig(port, 'new');
  missing.listeners[0].routes.push({ match: { path: '/files/*' }, handler: { type: 'static', root: '/nonexistent/switchyard-root' } as never });
  const r2 = await yard.reload(parseConfig(missing, 'test'));
  assert.equal(r2.ok, false);
  const again = await request(`http://127.0.0.1:${port}/`);
  assert.equal(await again.body.text(), 'old');
});

test('a request in flight finishes on the route it started with; listeners come and go; unchanged upstream groups carry over', async () => {
  let release: (() => void) | undefined;
  const upstream: Server = createServer((req, res) => {
    if (req.url === '/slow') release = () => res.end('slow answer');
    else res.end('upstream');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  closers.push(() => {
    upstream.closeAllConnections();
    upstream.close();
  });
  const target = `http://127.0.0.1:${(upstream.address() as { port: number }).port}`;
  const port = await freePort();
  const first = {
    listeners: [{ name: 'web', protocol: 'http', address: `127.0.0.1:${port}`, routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'api' } }] }],
    upstreams: { api: { targets: [target] }, spare: { targets: [target] } },
  };
  const yard = await serve(first, { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  const api = yard.upstreams().find((g) => g.name === 'api');
  const slow = request(`http://127.0.0.1:${port}/slow`);
  for (let i = 0; i < 100 && !release; i++) await new Promise((r) => setTimeout(r, 20));
  assert.ok(release, 'the slow request reached the upstream');

  // The proxy route becomes a fixed answer; a tcp listener is added; `spare` changes.
  const tcpPort = await freePort();
  const second = {
    listeners: [
      { name: 'web', protocol: 'http', address: `127.0.0.1:${port}`, routes: [{ match: { path: '/*' }, handler: { type: 'respond', body: 'replaced' } }] },
      { name: 'echo', protocol: 'tcp', address: `127.0.0.1:${tcpPort}`, handler: { type: 'echo' } },
    ],
    upstreams: { api: { targets: [target] }, spare: { targets: [target], balance: 'least-connections' } },
  };
  const result = await yard.reload(parseConfig(second, 'test'));
  assert.equal(result.ok, true, JSON.stringify(result));
  assert.ok((result as { changed: string[] }).changed.includes('listener echo: added'));
  assert.ok((result as { changed: string[] }).changed.includes('upstream spare: changed'));
  assert.equal(yard.upstreams().find((g) => g.name === 'api'), api, 'an unchanged group is the same object, pools and health included');
  const now = await request(`http://127.0.0.1:${port}/x`);
  assert.equal(await now.body.text(), 'replaced');
  release!();
  const old = await slow;
  assert.equal(await old.body.text(), 'slow answer', 'the request in flight finished through the proxy it started on');

  const echoed = await new Promise<string>((resolve, reject) => {
    const s = connect(tcpPort, '127.0.0.1', () => s.end('ping'));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
  assert.equal(echoed, 'ping');

  // Removing the tcp listener closes its port.
  const third = await yard.reload(parseConfig({ ...second, listeners: [second.listeners[0]] }, 'test'));
  assert.equal(third.ok, true);
  assert.ok((third as { changed: string[] }).changed.includes('listener echo: removed'));
  const refused = await new Promise<string>((resolve) => {
    const s = connect(tcpPort, '127.0.0.1');
    s.on('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
  assert.equal(refused, 'ECONNREFUSED');
});

test('a listener whose binding changes is replaced: moved to another port, the old port closes', async () => {
  const a = await freePort();
  const b = await freePort();
  const yard = await serve(webConfig(a, 'here'), { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  const result = await yard.reload(parseConfig(webConfig(b, 'there'), 'test'));
  assert.equal(result.ok, true);
  assert.ok((result as { changed: string[] }).changed.includes('listener web: replaced (its binding changed)'));
  const res = await request(`http://127.0.0.1:${b}/`);
  assert.equal(await res.body.text(), 'there');
  await assert.rejects(request(`http://127.0.0.1:${a}/`, { reset: true }));
});

test('a real daemon reloaded 20 times by SIGHUP under a client loop: no request fails, the last config serves', { timeout: 120_000 }, async () => {
  const { mkdtempSync, writeFileSync, rmSync } = await import('node:fs');
  const { tmpdir } = await import('node:os');
  const { join } = await import('node:path');
  const { startDaemon } = await import('./helpers/daemon.ts');
  const dir = mkdtempSync(join(tmpdir(), 'sy-reload-'));
  closers.push(() => rmSync(dir, { recursive: true, force: true }));
  const file = join(dir, 'yard.json');
  const port = await freePort();
  const write = (body: string) => writeFileSync(file, JSON.stringify({ ...webConfig(port, body), logging: { level: 'warn' } }));
  write('v0');
  const daemon = await startDaemon([file]);
  closers.push(() => {
    if (daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
  });
  const base = `http://127.0.0.1:${port}/`;
  const load = new ClientLoad(base, { fresh: 1, keepAlive: 2 });
  for (let i = 1; i <= 20; i++) {
    write(`v${i}`);
    daemon.child.kill('SIGHUP');
    // The reload is done when the new body is served.
    for (let tries = 0; tries < 200; tries++) {
      const text = await (await request(base, { reset: true })).body.text();
      if (text === `v${i}`) break;
      await new Promise((r) => setTimeout(r, 10));
    }
  }
  await load.stop();
  assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} failed requests`);
  assert.ok(load.ok > 20, `requests were made throughout (${load.ok})`);
  assert.equal(await (await request(base, { reset: true })).body.text(), 'v20');
  assert.equal(daemon.child.exitCode, null, 'the daemon is still running');
  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
});

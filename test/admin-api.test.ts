import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { request } from 'undici';
import { serve, type Yard } from '../src/index.ts';
import { callerOf } from '../src/handlers/admin/caller.ts';
import { redact } from '../src/handlers/admin/redact.ts';
import { MemoryRoomStore } from '../src/state/memory.ts';

// The writable admin API on a real admin listener: the running config (redacted), POST /load
// (good, invalid, unstartable), POST /reload without a file, /listeners, draining and enabling
// a target, /rooms; and who may call it.

const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

async function backend(name: string): Promise<{ url: string; hits: () => number }> {
  let hits = 0;
  const s: Server = createServer((_req, res) => {
    hits++;
    res.end(name);
  });
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  closers.push(() => {
    s.closeAllConnections();
    s.close();
  });
  return { url: `http://127.0.0.1:${(s.address() as { port: number }).port}`, hits: () => hits };
}

function config(webBody: string, targets: string[], token = 'a-token-of-sixteen-chars-or-more') {
  return {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [
          { match: { path: '/' }, handler: { type: 'respond', body: webBody } },
          { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } },
        ],
      },
      {
        name: 'admin',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [
          { match: { path: '/upstreams' }, handler: { type: 'upstreams' } },
          { match: { path: '/*' }, handler: { type: 'admin', token } },
        ],
      },
    ],
    upstreams: { api: { targets, retry: { attempts: 0 } } },
    state: { backend: 'memory' },
  };
}

test('GET /config redacts secrets; POST /load swaps a config in, refuses an invalid one (400) and one that cannot start (422)', async () => {
  const a = await backend('a');
  const yard: Yard = await serve(config('first', [a.url]), { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  const admin = `http://127.0.0.1:${yard.address('admin').port}`;
  const web = `http://127.0.0.1:${yard.address('web').port}`;

  const shown = (await (await request(`${admin}/config`)).body.json()) as { listeners: { routes: { handler: { token?: string } }[] }[] };
  assert.equal(shown.listeners[1].routes[1].handler.token, '[redacted]');

  // YAML, keeping the ports the listeners have now (port 0 would move them).
  const yaml = `
listeners:
  - name: web
    protocol: http
    address: 127.0.0.1:${yard.address('web').port}
    routes:
      - match: { path: / }
        handler: { type: respond, body: second }
  - name: admin
    protocol: http
    address: 127.0.0.1:${yard.address('admin').port}
    routes:
      - match: { path: /* }
        handler: { type: admin }
`;
  const loaded = await request(`${admin}/load`, { method: 'POST', body: yaml, headers: { 'content-type': 'application/yaml' } });
  const answer = await loaded.body.text();
  assert.equal(loaded.statusCode, 200, answer);
  const result = JSON.parse(answer) as { ok: boolean; changed: string[] };
  assert.equal(result.ok, true);
  assert.ok(result.changed.includes('listener web: reconfigured'));
  assert.equal(await (await request(`${web}/`)).body.text(), 'second');

  const invalid = await request(`${admin}/load`, { method: 'POST', body: JSON.stringify({ listeners: [{ name: 'x', protocol: 'http' }] }), headers: { 'content-type': 'application/json' } });
  assert.equal(invalid.statusCode, 400);
  const bad = (await invalid.body.json()) as { ok: boolean; issues: { path: string }[] };
  assert.equal(bad.ok, false);
  assert.ok(bad.issues.length > 0);

  // What validation can see (a static root that is not there) is invalid: refused before anything changes.
  const noRoot = yaml.replace('handler: { type: respond, body: second }', 'handler: { type: static, root: /nonexistent/switchyard }');
  const invalidRoot = await request(`${admin}/load`, { method: 'POST', body: noRoot });
  assert.equal(invalidRoot.statusCode, 400);
  const rootIssues = ((await invalidRoot.body.json()) as { issues: { path: string; message: string }[] }).issues;
  assert.deepEqual(rootIssues.map((i) => i.path), ['listeners[0].routes[0].handler.root']);
  assert.match(rootIssues[0].message, /does not exist/);

  // What only starting finds (a port another server holds) is refused by the reload itself.
  const broken = `${yaml}  - name: taken\n    protocol: tcp\n    address: ${new URL(a.url).host}\n    handler: { type: echo }\n`;
  const refused = await request(`${admin}/load`, { method: 'POST', body: broken });
  assert.equal(refused.statusCode, 422);
  assert.equal(((await refused.body.json()) as { ok: boolean }).ok, false);
  assert.equal(await (await request(`${web}/`)).body.text(), 'second', 'the running config still serves');

  // A config past maxConfigSize is refused by its size, not read.
  const huge = await request(`${admin}/load`, { method: 'POST', body: Buffer.alloc(5 * 1024 * 1024, 0x20) });
  assert.equal(huge.statusCode, 413);
  await huge.body.dump();
  assert.equal(await (await request(`${web}/`)).body.text(), 'second');

  // Started from code, this daemon has no file to read again.
  const reread = await request(`${admin}/reload`, { method: 'POST' });
  assert.equal(reread.statusCode, 422);
  assert.match(((await reread.body.json()) as { error: string }).error, /POST \/load/);
});

test('/listeners shows in-flight work; a drained target gets no new requests until enabled; /rooms lists rooms', async () => {
  const a = await backend('a');
  const b = await backend('b');
  const yard = await serve(config('x', [a.url, b.url]), { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  const admin = `http://127.0.0.1:${yard.address('admin').port}`;
  const web = `http://127.0.0.1:${yard.address('web').port}`;

  const listeners = (await (await request(`${admin}/listeners`)).body.json()) as { listeners: { name: string; inFlight: number }[] };
  assert.deepEqual(listeners.listeners.map((l) => l.name), ['web', 'admin']);
  assert.equal(typeof listeners.listeners[0].inFlight, 'number');

  const id = new URL(a.url).host;
  const drained = await request(`${admin}/upstreams/api/targets/${encodeURIComponent(id)}/drain`, { method: 'POST' });
  assert.equal(drained.statusCode, 200);
  await drained.body.dump();
  const before = a.hits();
  for (let i = 0; i < 6; i++) assert.equal(await (await request(`${web}/api/x`)).body.text(), 'b');
  assert.equal(a.hits(), before, 'the drained target got nothing');
  const state = (await (await request(`${admin}/upstreams`)).body.json()) as { upstreams: { targets: { id: string; drained: boolean }[] }[] };
  assert.equal(state.upstreams[0].targets.find((t) => t.id === id)?.drained, true);

  const enabled = await request(`${admin}/upstreams/api/targets/${encodeURIComponent(id)}/enable`, { method: 'POST' });
  assert.equal(enabled.statusCode, 200);
  await enabled.body.dump();
  const seen = new Set<string>();
  for (let i = 0; i < 6; i++) seen.add(await (await request(`${web}/api/x`)).body.text());
  assert.deepEqual([...seen].sort(), ['a', 'b']);

  const unknown = await request(`${admin}/upstreams/api/targets/nowhere:1/drain`, { method: 'POST' });
  assert.equal(unknown.statusCode, 404);
  await unknown.body.dump();
  const wrongMethod = await request(`${admin}/upstreams/api/targets/${encodeURIComponent(id)}/drain`);
  assert.equal(wrongMethod.statusCode, 405);
  await wrongMethod.body.dump();

  const rooms = (await (await request(`${admin}/rooms`)).body.json()) as { rooms: unknown[] };
  assert.deepEqual(rooms.rooms, []);
});

test('who may call: loopback, or a caller with the token; the room list and redaction rules', async () => {
  const fake = (address: string, authorization?: string) => ({ socket: { remoteAddress: address }, headers: { authorization } }) as never;
  const token = 'a-token-of-sixteen-chars-or-more';
  assert.equal(callerOf(fake('127.0.0.1'), undefined).allowed, true);
  assert.equal(callerOf(fake('::1'), undefined).allowed, true);
  assert.equal(callerOf(fake('::ffff:127.0.0.1'), undefined).allowed, true);
  assert.equal(callerOf(fake('10.1.2.3'), undefined).allowed, false, 'no token configured: loopback only');
  assert.equal(callerOf(fake('10.1.2.3'), token).allowed, false, 'a token configured, none given');
  assert.equal(callerOf(fake('10.1.2.3', 'Bearer wrong-token-of-the-same-len'), token).allowed, false);
  assert.equal(callerOf(fake('10.1.2.3', `Bearer ${token}`), token).allowed, true);
  assert.equal(callerOf(fake('10.1.2.3', `Bearer ${token}`), token).who, '10.1.2.3 (token)');

  assert.deepEqual(redact({ state: { redis: { url: 'redis://user:hunter2@db:6379/0' } }, tls: { key: './k.pem', passphrase: 'x' } }), {
    state: { redis: { url: 'redis://user:[redacted]@db:6379/0' } },
    tls: { key: './k.pem', passphrase: '[redacted]' },
  });

  const store = new MemoryRoomStore({ maxIdleRooms: 10, maxHistoryBytes: 1024 * 1024 });
  assert.deepEqual(await store.list(10), []);
  await store.claim('lobby', 'ann', 'session-1');
  assert.deepEqual(await store.list(10), [{ room: 'lobby', members: 1 }]);
  await store.close();
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { killDaemon, startDaemon, type Daemon } from './helpers/daemon.ts';
import { run } from './helpers/net.ts';
import { parseConfig, serve } from '../src/index.ts';

// A reload that keeps a resp listener keeps its cache: the keys, the clients connected before
// (subscribers included, still receiving), and the new config applied to the kept keyspace (a
// lower maxmemory evicts down to it). A real daemon reloaded by SIGHUP, with redis-cli and
// ioredis; and in process, a reload that fails leaves the cache with its old config.

const dir = mkdtempSync(join(tmpdir(), 'sy-resp-reload-'));
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const r = await run('redis-cli', ['-p', String(port), ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.replace(/\n+$/, '');
}

function client(port: number): Redis {
  return new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null });
}

/** `INFO memory`'s used_memory. */
async function usedMemory(port: number): Promise<number> {
  const m = /used_memory:(\d+)/.exec(await cli(port, 'INFO', 'memory'));
  assert.ok(m, 'INFO memory has used_memory');
  return Number(m[1]);
}

test('SIGHUP with a changed resp config keeps the keys, the clients and the subscribers; a lower maxmemory evicts down to it', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const file = join(dir, 'yard.json');
  const write = (handler: Record<string, unknown>) =>
    writeFileSync(file, JSON.stringify({ listeners: [{ name: 'cache', protocol: 'tcp', address: `127.0.0.1:${port}`, handler: { type: 'resp', ...handler } }], logging: { level: 'warn' } }));
  write({ maxmemoryPolicy: 'allkeys-lru' });
  let daemon: Daemon | undefined = await startDaemon([file], { cwd: dir });
  closers.push(() => killDaemon(daemon));

  const before = client(port);
  const sub = client(port);
  closers.push(() => before.disconnect(), () => sub.disconnect());
  await before.connect();
  await sub.connect();
  const value = 'v'.repeat(1000);
  const pipe = before.pipeline();
  for (let i = 0; i < 300; i++) pipe.set(`key:${i}`, `${i}:${value}`);
  await pipe.exec();
  assert.equal(await before.dbsize(), 300);
  const messages: string[] = [];
  sub.on('message', (channel: string, message: string) => messages.push(`${channel}=${message}`));
  await sub.subscribe('news');
  const usedBefore = await usedMemory(port);
  assert.ok(usedBefore > 300 * 1000, `used_memory counts the values (${usedBefore})`);

  // Reload: only maxmemory changes, to about a third of what the keys take.
  const limit = Math.floor(usedBefore / 3);
  write({ maxmemoryPolicy: 'allkeys-lru', maxmemory: limit });
  daemon.child.kill('SIGHUP');
  let seen = '';
  for (let tries = 0; tries < 300 && !seen.includes(String(limit)); tries++) {
    seen = await cli(port, 'CONFIG', 'GET', 'maxmemory');
    if (!seen.includes(String(limit))) await sleep(20);
  }
  assert.match(seen, new RegExp(`\\b${limit}\\b`), 'the reload took effect');

  // The kept keyspace, evicted down to the new limit under allkeys-lru.
  const keys = Number(await cli(port, 'DBSIZE'));
  assert.ok(keys > 0 && keys < 300, `some keys were evicted, not all (${keys} left)`);
  assert.ok((await usedMemory(port)) <= limit, 'used_memory is within the new maxmemory');
  let checked = 0;
  for (let i = 0; i < 300 && checked < 10; i++) {
    const got = await cli(port, 'GET', `key:${i}`);
    if (got === '') continue;
    assert.equal(got, `${i}:${value}`, 'a key that stayed kept its value');
    checked++;
  }
  assert.ok(checked > 0);

  // The connection opened before the reload still works, on the same keyspace as a new one.
  assert.equal(await before.set('after', 'from-old-connection'), 'OK');
  assert.equal(await cli(port, 'GET', 'after'), 'from-old-connection');
  assert.equal(await before.get('after'), 'from-old-connection');

  // The subscriber is still connected and gets what a new connection publishes.
  assert.equal(await cli(port, 'PUBLISH', 'news', 'kept'), '1');
  for (let tries = 0; tries < 200 && messages.length === 0; tries++) await sleep(10);
  assert.deepEqual(messages, ['news=kept']);

  // A second reload that changes nothing of the cache keeps it too.
  write({ maxmemoryPolicy: 'allkeys-lru', maxmemory: limit, maxClients: 500 });
  daemon.child.kill('SIGHUP');
  for (let tries = 0; tries < 300 && !(await cli(port, 'INFO', 'clients')).includes('maxclients:500'); tries++) await sleep(20);
  assert.match(await cli(port, 'INFO', 'clients'), /maxclients:500/);
  assert.equal(await cli(port, 'GET', 'after'), 'from-old-connection');
  assert.equal(await cli(port, 'PUBLISH', 'news', 'again'), '1');

  daemon.child.kill('SIGTERM');
  assert.equal((await daemon.exited).code, 0);
  daemon = undefined;
});

test('a reload that fails after provisioning leaves the cache with its keys and its old config', async () => {
  const port = await freePort();
  const blocker = createServer();
  await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise((r) => blocker.close(r)));
  const taken = (blocker.address() as { port: number }).port;
  const config = (maxmemory: number, extra: unknown[] = []) => ({
    listeners: [{ name: 'cache', protocol: 'tcp', address: `127.0.0.1:${port}`, handler: { type: 'resp', maxmemory, maxmemoryPolicy: 'allkeys-lru' } }, ...extra],
    logging: { level: 'silent' as const },
  });
  const yard = await serve(config(0), { logLevel: 'silent' });
  closers.push(() => yard.stop(100));
  const r = client(port);
  closers.push(() => r.disconnect());
  await r.connect();
  for (let i = 0; i < 50; i++) await r.set(`k${i}`, 'x'.repeat(500));

  // The second listener cannot bind: the reload fails once the resp handler is provisioned.
  const bad = config(1000, [{ name: 'other', protocol: 'tcp', address: `127.0.0.1:${taken}`, handler: { type: 'echo' } }]);
  const result = await yard.reload(parseConfig(bad, 'test'));
  assert.equal(result.ok, false);
  assert.deepEqual(await r.config('GET', 'maxmemory'), ['maxmemory', '0']);
  assert.equal(await r.set('k50', 'x'.repeat(500)), 'OK', 'no OOM, no eviction: the old limit is in force');
  assert.equal(await r.dbsize(), 51, 'the failed reload evicted nothing after it was undone');

  // And a good reload after it still keeps the cache.
  const ok = await yard.reload(parseConfig(config(0), 'test'));
  assert.equal(ok.ok, true);
  assert.equal(await r.dbsize(), 51);
});

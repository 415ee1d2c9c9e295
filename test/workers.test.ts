import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer, type AddressInfo } from 'node:net';
import { request } from 'undici';
import { startDaemon, type Daemon } from './helpers/daemon.ts';
import { parseConfig } from '../src/config/load.ts';
import { ConfigError } from '../src/config/errors.ts';
import { processAlive as alive } from '../src/yard/pid-file.ts';

// `workers: 2` with real processes: `serve` becomes a primary with two workers accepting on the
// same sockets. Which worker answered is read off the access log (each line carries its pid).
// Both serve; the admin listener's /metrics counts the requests of both; a killed worker is
// replaced while the other goes on answering; SIGHUP reloads both; SIGTERM drains and exits 0.

const dir = mkdtempSync(join(tmpdir(), 'sy-workers-'));
const configFile = join(dir, 'yard.json');
let daemon: Daemon | undefined;

after(() => {
  if (daemon && daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
  rmSync(dir, { recursive: true, force: true });
});

function writeConfig(body: string, extra: object = {}): void {
  writeFileSync(
    configFile,
    JSON.stringify({
      workers: 2,
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'respond', body } }] },
        {
          name: 'admin',
          protocol: 'http',
          address: '127.0.0.1:0',
          middleware: { accessLog: false },
          routes: [
            { match: { path: '/metrics' }, handler: { type: 'metrics' } },
            { match: { path: '/*' }, handler: { type: 'admin' } },
          ],
        },
      ],
      logging: { level: 'info' },
      ...extra,
    }),
  );
}

/** One request on a connection of its own (so that each can land on either worker). */
async function get(url: string): Promise<{ status: number; body: string }> {
  const res = await request(url, { headers: { connection: 'close' } });
  return { status: res.statusCode, body: await res.body.text() };
}

/** pids of the access log lines so far (those with a url), with the body route they served. */
function servedBy(d: Daemon, url = '/'): Map<number, number> {
  const out = new Map<number, number>();
  for (const line of d.stdout().split('\n')) {
    if (!line.startsWith('{')) continue;
    const rec = JSON.parse(line) as { pid?: number; msg?: string; url?: string };
    if (rec.msg === 'request' && rec.url === url && rec.pid) out.set(rec.pid, (out.get(rec.pid) ?? 0) + 1);
  }
  return out;
}

function workerPids(d: Daemon): number[] {
  const m = /2 worker processes \(pids (\d+), (\d+)\)/.exec(d.stdout());
  assert.ok(m, `banner names the workers:\n${d.stdout()}`);
  return [Number(m[1]), Number(m[2])];
}

/** Requests (each on a new connection) until both `pids` served one of them; returns how many were sent. */
async function untilBoth(d: Daemon, url: string, path: string, pids: number[], expect: string): Promise<number> {
  for (let n = 1; n <= 600; n++) {
    const r = await get(url + path.slice(1));
    assert.equal(r.status, 200);
    assert.equal(r.body, expect);
    const by = servedBy(d, path);
    if (n % 10 === 0 || n === 600) {
      await new Promise((res) => setTimeout(res, 50)); // the log lines of the last ones
      if (pids.every((p) => (servedBy(d, path).get(p) ?? 0) > 0)) return n;
    }
    void by;
  }
  assert.fail(`both workers did not answer in 600 connections: ${JSON.stringify([...servedBy(d, path)])}`);
}

test('workers: 2 serve on one socket, /metrics sums them, a killed worker is replaced, SIGHUP reloads both, SIGTERM exits 0', { timeout: 120_000 }, async () => {
  writeConfig('one');
  daemon = await startDaemon([configFile, '--grace', '2s']);
  const d = daemon;
  const web = d.urls.get('web')!;
  const admin = d.urls.get('admin')!;
  const pids = workerPids(d);
  assert.ok(pids.every(alive));

  // Both workers answer on the one listening socket.
  const sent = await untilBoth(d, web, '/a', pids, 'one');
  await new Promise((res) => setTimeout(res, 100));
  const by = servedBy(d, '/a');
  assert.equal([...by.values()].reduce((a, b) => a + b, 0), sent);

  // The admin listener's metrics (whichever worker answers) count every worker's requests.
  for (let i = 0; i < 4; i++) {
    const m = await get(admin + 'metrics');
    assert.equal(m.status, 200);
    const total = [...m.body.matchAll(/^switchyard_total_requests\{listener="web",[^}]*\} (\d+)$/gm)].reduce((a, x) => a + Number(x[1]), 0);
    assert.equal(total, sent, `aggregated switchyard_total_requests\n${m.body.slice(0, 2000)}`);
  }

  // A killed worker: the other goes on answering every request while the primary starts another.
  const [victim, survivor] = pids;
  process.kill(victim!, 'SIGKILL');
  while (alive(victim!)) await new Promise((res) => setTimeout(res, 10));
  let failures = 0;
  let replacement: number | undefined;
  const deadline = Date.now() + 20_000;
  while (replacement === undefined && Date.now() < deadline) {
    const r = await get(web + 'b').catch(() => undefined);
    if (r?.status !== 200 || r.body !== 'one') failures++;
    const back = /"msg":"worker \d is back \(pid (\d+)\)"/.exec(d.stdout());
    if (back) replacement = Number(back[1]);
  }
  assert.equal(failures, 0, 'no request failed while a worker was down');
  assert.ok(replacement && alive(replacement) && replacement !== victim, `a new worker started:\n${d.stdout().slice(-3000)}`);
  assert.match(d.stdout(), /worker \d \(pid \d+\) exited \(SIGKILL\); starting another in 100 ms/);
  const now = [survivor!, replacement];
  await untilBoth(d, web, '/c', now, 'one');

  // SIGHUP to the primary: every worker takes the new config.
  writeConfig('two');
  d.child.kill('SIGHUP');
  const until = Date.now() + 20_000;
  while (!/reload: done/.test(d.stdout()) && Date.now() < until) await new Promise((res) => setTimeout(res, 50));
  assert.match(d.stdout(), /reload: done \(changed: listener web: reconfigured\)/);
  await untilBoth(d, web, '/d', now, 'two');

  // A config the workers refuse: the reload fails everywhere, they go on with the running one.
  writeConfig('three', { workers: 3 });
  d.child.kill('SIGHUP');
  const until2 = Date.now() + 20_000;
  while (!/reload failed/.test(d.stdout()) && Date.now() < until2) await new Promise((res) => setTimeout(res, 50));
  assert.match(d.stdout(), /reload failed: workers: the number of worker processes cannot change on a reload/);
  assert.equal((await get(web + 'e')).body, 'two');

  // SIGTERM drains every worker; the primary exits 0 once they have.
  d.child.kill('SIGTERM');
  const exit = await d.exited;
  assert.deepEqual(exit, { code: 0, signal: null }, d.stderr());
  await new Promise((res) => setTimeout(res, 100));
  assert.ok(!now.some(alive), 'no worker outlives the primary');
});

test('a worker that cannot start stops the whole daemon with its error', { timeout: 60_000 }, async () => {
  writeConfig('x');
  const bad = join(dir, 'bad.json');
  // The port is held by another server: the config is valid (check passes), binding fails in
  // each worker. (A missing static root no longer gets this far: check refuses it first.)
  const holder = createServer();
  await new Promise<void>((resolve) => holder.listen(0, '127.0.0.1', resolve));
  const port = (holder.address() as AddressInfo).port;
  try {
    writeFileSync(bad, JSON.stringify({ workers: 2, listeners: [{ name: 'web', protocol: 'http', address: `127.0.0.1:${port}`, routes: [{ match: { path: '/*' }, handler: { type: 'echo' } }] }] }));
    const d = await startDaemon([bad]).catch((e: Error) => e);
    assert.ok(d instanceof Error, 'the daemon does not start');
    assert.match(d.message, /worker \d did not start/);
  } finally {
    holder.close();
  }
});

test('config: workers > 1 refuses what would be per worker (memory chat, memory rate limits), names the fields', () => {
  const base = (extra: object) => ({ workers: 2, ...extra });
  const refused = (raw: object): string => {
    try {
      parseConfig(raw, 'test');
    } catch (err) {
      assert.ok(err instanceof ConfigError);
      return err.message;
    }
    assert.fail('accepted');
  };
  const chat = refused(base({ listeners: [{ name: 'c', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'chat' } }] }] }));
  assert.match(chat, /listeners\[0\]\.routes\[0\]\.handler\.type/);
  assert.match(chat, /state\.backend: redis/);
  const limit = refused(
    base({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', middleware: { rateLimit: { rate: 10, per: '1s' } }, routes: [{ match: { path: '/*' }, handler: { type: 'echo' } }] }] }),
  );
  assert.match(limit, /listeners\[0\]\.middleware\.rateLimit\.store/);
  assert.match(limit, /store: redis/);
  assert.match(refused({ workers: 0, listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'echo' } }] }] }), /workers/);
  // Shared through Redis, the same config is fine; so is a chat with one worker.
  const ok = parseConfig(
    {
      workers: 'auto',
      state: { backend: 'redis', url: 'redis://127.0.0.1:6379' },
      listeners: [{ name: 'c', protocol: 'http', address: '127.0.0.1:0', middleware: { rateLimit: { rate: 10, per: '1s', store: 'redis' } }, routes: [{ match: { path: '/*' }, handler: { type: 'chat' } }] }],
    },
    'test',
  );
  assert.equal(ok.workers, 'auto');
  assert.equal(parseConfig({ listeners: [{ name: 'c', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'chat' } }] }, 'test').workers, 1);
});

test('--pid-file with workers: the file names the primary; a killed worker is replaced (the file does not stop it); removed at exit', { timeout: 60_000 }, async () => {
  writeConfig('pid');
  const pidFile = join(dir, 'workers.pid');
  daemon = await startDaemon([configFile, '--grace', '1s', '--pid-file', pidFile]);
  const d = daemon;
  assert.equal(readFileSync(pidFile, 'utf8'), `${d.child.pid}\n`);
  const [victim] = workerPids(d);
  process.kill(victim!, 'SIGKILL');
  const deadline = Date.now() + 20_000;
  while (!/"msg":"worker \d is back/.test(d.stdout()) && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
  assert.match(d.stdout(), /"msg":"worker \d is back \(pid \d+\)"/, `the replacement started:\n${d.stdout().slice(-3000)}${d.stderr().slice(-2000)}`);
  assert.equal(readFileSync(pidFile, 'utf8'), `${d.child.pid}\n`, 'still the primary');
  d.child.kill('SIGTERM');
  assert.deepEqual(await d.exited, { code: 0, signal: null }, d.stderr());
  assert.equal(existsSync(pidFile), false, 'the primary removed it');
});

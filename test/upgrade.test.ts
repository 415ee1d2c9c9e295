import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, createServer as createNetServer } from 'node:net';
import { request } from 'undici';
import { ClientLoad } from './helpers/client-load.ts';
import { runCli, startDaemon, type Daemon } from './helpers/daemon.ts';
import { processAlive as alive } from '../src/yard/pid-file.ts';
import { killUpgraded, pidIn } from './helpers/upgrade.ts';

// Zero-downtime upgrade with real processes: `switchyard upgrade` (SIGUSR2) starts a new daemon
// that takes over the running one's listening sockets; clients hammering it across the hand-over
// see no refused connection and no failed request; the new config (here a new body) serves; the
// old daemon exits 0. A new daemon that cannot start leaves the old one serving.

const dir = mkdtempSync(join(tmpdir(), 'sy-upgrade-'));
const pidFile = join(dir, 'switchyard.pid');
const configFile = join(dir, 'yard.json');
const socketPath = join(dir, 'echo.sock');
let daemon: Daemon | undefined;

const pidOf = (): number => pidIn(pidFile);

after(async () => {
  killUpgraded(pidFile, daemon);
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return port;
}

let adminPort = 0;

function writeConfig(port: number, body: string): void {
  writeFileSync(
    configFile,
    JSON.stringify({
      listeners: [
        { name: 'web', protocol: 'http', address: `127.0.0.1:${port}`, routes: [{ match: { path: '/' }, handler: { type: 'respond', body } }] },
        { name: 'echo', protocol: 'unix', path: socketPath, handler: { type: 'echo' } },
        { name: 'admin', protocol: 'http', address: `127.0.0.1:${adminPort}`, routes: [{ match: { path: '/*' }, handler: { type: 'admin' } }] },
      ],
          logging: { level: "info", accessLog: false },
    }),
  );
}

function unixEcho(): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect(socketPath, () => s.end('ping'));
    // A connection that is never answered fails the test instead of holding it forever.
    s.setTimeout(5000, () => s.destroy(new Error('unix echo: no answer within 5 s')));
    let got = '';
    s.on('data', (d) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
}

test('upgrade under load: the new daemon takes the sockets over, no request fails, the old one exits 0', { timeout: 120_000 }, async () => {
  const port = await freePort();
  adminPort = await freePort();
  writeConfig(port, 'old');
  daemon = await startDaemon([configFile, '--pid-file', pidFile, '--grace', '3s']);
  const oldPid = daemon.child.pid!;
  assert.equal(pidOf(), oldPid);
  const base = `http://127.0.0.1:${port}/`;
  assert.equal(await (await request(base)).body.text(), 'old');

  const load = new ClientLoad(base, {
    fresh: 2,
    keepAlive: 1,
    extra: [async () => ((await unixEcho()) === 'ping' ? undefined : 'unix echo answered something else')],
  });

  // The new daemon reads the config file again: a new body tells who answers.
  writeConfig(port, 'new');
  const exited = new Promise<number | null>((resolve) => daemon!.child.once('exit', (code) => resolve(code)));
  const upgraded = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 100_000 });
  assert.equal(upgraded.code, 0, `${upgraded.stderr}${upgraded.stdout}\ndaemon: ${daemon.stdout().slice(-2000)}${daemon.stderr().slice(-2000)}`);
  const newPid = pidOf();
  assert.notEqual(newPid, oldPid);
  assert.ok(alive(newPid));
  assert.equal(await exited, 0, 'the old daemon drained and exited 0');
  // A little more load on the new daemon alone, then stop.
  await new Promise((r) => setTimeout(r, 300));
  await load.stop();

  assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} failed requests`);
  assert.ok(load.ok > 10, `requests were made throughout (${load.ok})`);
  assert.ok(load.bodies.has('new'), 'the new daemon answered');
  assert.equal(await (await request(base, { reset: true })).body.text(), 'new');
  assert.equal(await unixEcho(), 'ping', 'the unix socket file is still there and served');

  // A new daemon that cannot start (an invalid config) is given up: the running one goes on, and
  // the admin API's answer says so at once.
  writeFileSync(configFile, '{ "listeners": [ { "name": "web" } ] }');
  const failed = await runCli(['upgrade', '--admin', `http://127.0.0.1:${adminPort}`], { timeoutMs: 100_000 });
  assert.equal(failed.code, 1, failed.stderr + failed.stdout);
  assert.match(failed.stderr, /upgrade failed: the new daemon exited/);
  assert.equal(pidOf(), newPid);
  assert.equal(await (await request(base, { reset: true })).body.text(), 'new');
  process.kill(newPid, 'SIGTERM');
  // The daemon that took the socket over as an fd removes its file when it stops, as one that
  // bound it does.
  for (let i = 0; i < 200 && alive(newPid); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(alive(newPid), false, 'the new daemon stopped on SIGTERM');
  assert.equal(existsSync(socketPath), false, 'the unix socket file is removed on stop');
});

test('an upgrade to a config without a listener: its port refuses connections once the old daemon is gone (the new one does not hold it)', { timeout: 120_000 }, async () => {
  const port = await freePort();
  const sparePort = await freePort();
  const file = join(dir, 'spare.json');
  const pids = join(dir, 'spare.pid');
  const config = (spare: boolean) =>
    writeFileSync(
      file,
      JSON.stringify({
        listeners: [
          { name: 'web', protocol: 'http', address: `127.0.0.1:${port}`, routes: [{ match: { path: '/' }, handler: { type: 'respond', body: spare ? 'old' : 'new' } }] },
          ...(spare ? [{ name: 'spare', protocol: 'tcp', address: `127.0.0.1:${sparePort}`, handler: { type: 'echo' } }] : []),
        ],
        logging: { level: 'info', accessLog: false },
      }),
    );
  config(true);
  const old = await startDaemon([file, '--pid-file', pids, '--grace', '1s']);
  const exited = new Promise<number | null>((resolve) => old.child.once('exit', (code) => resolve(code)));
  config(false);
  const upgraded = await runCli(['upgrade', '--pid-file', pids], { timeoutMs: 100_000 });
  assert.equal(upgraded.code, 0, `${upgraded.stderr}${upgraded.stdout}`);
  const newPid = pidIn(pids);
  try {
    assert.equal(await exited, 0);
    assert.equal(await (await request(`http://127.0.0.1:${port}/`, { reset: true })).body.text(), 'new');
    const outcome = await new Promise<string>((resolve) => {
      const s = connect(sparePort, '127.0.0.1');
      // Held by the new daemon, the port would take the connection into a backlog nobody accepts.
      s.setTimeout(3000, () => {
        s.destroy();
        resolve('connected, never served');
      });
      s.once('connect', () => s.write('ping'));
      s.once('data', () => {
        s.destroy();
        resolve('served');
      });
      s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    });
    assert.equal(outcome, 'ECONNREFUSED');
  } finally {
    if (alive(newPid)) process.kill(newPid, 'SIGKILL');
  }
});

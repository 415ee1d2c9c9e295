import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { ClientLoad } from './helpers/client-load.ts';
import { runCli, startDaemon, type Daemon } from './helpers/daemon.ts';
import { killUpgraded, pidIn } from './helpers/upgrade.ts';

// Zero-downtime upgrade of a udp listener, with real processes: the udp socket goes to the new
// daemon, which must not read it before its listener handles what it reads (src/yard/upgrade.ts,
// holdUntilListened). Two clients send numbered datagrams, each one after another as soon as its
// last echo is back, across the upgrade: not one is lost, whichever daemon reads it. (Without
// the hold, the new daemon read and dropped some in every run on Node 20 and 24.)

const dir = mkdtempSync(join(tmpdir(), 'sy-upgrade-udp-'));
const pidFile = join(dir, 'switchyard.pid');
const configFile = join(dir, 'yard.json');
let daemon: Daemon | undefined;
const clients: UdpSocket[] = [];

/** How long an echo may take before its datagram counts as lost. */
const ECHO_TIMEOUT_MS = 1000;
/** Clients at once, each sending its next datagram as soon as the last one's echo is back. */
const CLIENTS = 2;

after(() => {
  killUpgraded(pidFile, daemon);
  for (const c of clients) c.close();
  rmSync(dir, { recursive: true, force: true });
});

/** One round of the client: the next numbered datagram, answered by its echo or a failure. */
function echoRounds(socket: UdpSocket, port: number): () => Promise<string | undefined> {
  let n = 0;
  let waiting: { payload: string; answered: () => void } | undefined;
  // An echo that comes after its datagram was given up does not match the one awaited now.
  socket.on('message', (m) => {
    if (waiting && m.toString() === waiting.payload) waiting.answered();
  });
  return () => {
    const payload = `datagram ${n++}`;
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        waiting = undefined;
        resolve(`${payload}: no echo within ${ECHO_TIMEOUT_MS} ms`);
      }, ECHO_TIMEOUT_MS);
      waiting = {
        payload,
        answered: () => {
          clearTimeout(timer);
          waiting = undefined;
          resolve(undefined);
        },
      };
      socket.send(payload, port, '127.0.0.1');
    });
  };
}

test('upgrade: no datagram to a udp listener is lost, before, during and after the hand-over', { timeout: 120_000 }, async () => {
  writeFileSync(
    configFile,
    JSON.stringify({
      // Port 0: the new daemon takes the socket the old one bound, whatever its port.
      listeners: [
        { name: 'echo', protocol: 'udp', address: '127.0.0.1:0', handler: { type: 'echo' } },
        // Certificates to read and check: the new daemon takes a while between receiving the
        // sockets and starting its listeners, as a gateway's does.
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', tls: { issuer: 'internal', names: ['localhost'] }, routes: [{ match: { path: '/' }, handler: { type: 'respond', body: 'ok' } }] },
      ],
      logging: { level: 'info', accessLog: false },
    }),
  );
  daemon = await startDaemon([configFile, '--pid-file', pidFile, '--grace', '1s'], { env: { SWITCHYARD_DATA_DIR: join(dir, 'data') }, timeoutMs: 60_000 });
  const oldPid = daemon.child.pid!;
  const port = daemon.port('echo');

  // More than one client: the socket more often has a datagram queued when the new daemon's event loop looks at it.
  for (let i = 0; i < CLIENTS; i++) {
    const c = createSocket('udp4');
    clients.push(c);
    await new Promise<void>((r) => c.bind(0, '127.0.0.1', r));
  }
  // No HTTP loops (fresh, keepAlive 0): its url is never asked; the loops are the udp clients'.
  const load = new ClientLoad('http://unused.invalid/', { fresh: 0, keepAlive: 0, extra: clients.map((c) => echoRounds(c, port)) });
  const waitForEchoes = async (n: number) => {
    const target = load.ok + n;
    for (let i = 0; i < 200 && load.ok < target && load.failures.length === 0; i++) await new Promise((r) => setTimeout(r, 25));
  };

  await waitForEchoes(50);
  const beforeUpgrade = load.ok;
  const exited = new Promise<number | null>((resolve) => daemon!.child.once('exit', (code) => resolve(code)));
  const upgraded = await runCli(['upgrade', '--pid-file', pidFile], { timeoutMs: 100_000 });
  assert.equal(upgraded.code, 0, `${upgraded.stderr}${upgraded.stdout}\ndaemon: ${daemon.stdout().slice(-2000)}${daemon.stderr().slice(-2000)}`);
  const newPid = pidIn(pidFile);
  assert.notEqual(newPid, oldPid);
  assert.equal(await exited, 0, 'the old daemon drained and exited 0');
  // From here only the new daemon holds the socket.
  const atOldExit = load.ok;
  await waitForEchoes(50);
  await load.stop();

  assert.deepEqual(load.failures.slice(0, 5), [], `${load.failures.length} datagrams lost out of ${load.ok + load.failures.length}`);
  assert.ok(beforeUpgrade >= 50, `the old daemon echoed before the upgrade (${beforeUpgrade})`);
  assert.ok(atOldExit > beforeUpgrade, 'datagrams were echoed during the upgrade');
  assert.ok(load.ok >= atOldExit + 50, `the new daemon alone echoed after the old one exited (${load.ok - atOldExit})`);
});

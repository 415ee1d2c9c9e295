import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type AddressInfo } from 'node:net';
import { createSocket } from 'node:dgram';
import { Http3Client } from '../src/http3/client.ts';
import { startDaemon, type Daemon } from './helpers/daemon.ts';
import { processAlive as alive } from '../src/yard/pid-file.ts';
import { killUpgraded, pidIn } from './helpers/upgrade.ts';

// Zero-downtime upgrade of an http listener with HTTP/3, with real processes: the UDP socket
// goes to the new daemon with the TCP one (`<listener>#h3`), so right after `switchyard upgrade`
// an HTTP/3 request is answered by the new daemon while the old one still drains a request, and
// the UDP port is held by one of them at every moment. An HTTP/3 connection the old daemon had
// open across the upgrade (whose datagrams either process may read) harms neither.

const dir = mkdtempSync(join(tmpdir(), 'sy-upgrade-h3-'));
const dataDir = join(dir, 'data');
const pidFile = join(dir, 'switchyard.pid');
const configFile = join(dir, 'yard.json');
let daemon: Daemon | undefined;
let slow: HttpServer | undefined;

const pidOf = (): number => pidIn(pidFile);

after(async () => {
  killUpgraded(pidFile, daemon);
  slow?.closeAllConnections();
  slow?.close();
  rmSync(dir, { recursive: true, force: true });
});

async function freePort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as AddressInfo).port;
  await new Promise((r) => s.close(r));
  return port;
}

function writeConfig(port: number, slowPort: number, body: string): void {
  writeFileSync(
    configFile,
    JSON.stringify({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: `127.0.0.1:${port}`,
          tls: { issuer: 'internal', names: ['localhost'] },
          http3: true,
          routes: [
            { match: { path: '/slow' }, handler: { type: 'proxy', upstream: 'slow' } },
            { match: { path: '/' }, handler: { type: 'respond', body } },
          ],
        },
      ],
      upstreams: { slow: { targets: [`http://127.0.0.1:${slowPort}`] } },
      logging: { level: 'info', accessLog: false },
    }),
  );
}

/** Whether this process can bind the UDP port (it then lets it go at once): true means nobody held it. */
function udpPortFree(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = createSocket('udp4');
    s.once('error', () => {
      s.close();
      resolve(false);
    });
    s.bind(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}

test('upgrade: HTTP/3 is served by the new daemon at once, on the UDP socket the old one handed over', { timeout: 120_000 }, async () => {
  const port = await freePort();
  // An upstream that answers /slow only when told: the old daemon has a request to drain.
  let release: (() => void) | undefined;
  let arrived: () => void = () => {};
  const reached = new Promise<void>((r) => (arrived = r));
  slow = createHttpServer((_req, res) => {
    arrived();
    release = () => res.end('drained');
  });
  await new Promise<void>((r) => slow!.listen(0, '127.0.0.1', r));
  const slowPort = (slow.address() as AddressInfo).port;

  writeConfig(port, slowPort, 'old');
  const env = { SWITCHYARD_DATA_DIR: dataDir };
  daemon = await startDaemon([configFile, '--pid-file', pidFile, '--grace', '60s'], { env, timeoutMs: 60_000 });
  const oldPid = daemon.child.pid!;
  const ca = readFileSync(join(dataDir, 'pki', 'local', 'root.crt'), 'utf8');
  const h3 = (timeout = 15_000) => Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost', timeout });

  // An HTTP/3 connection to the old daemon, kept open across the upgrade.
  const before = await h3();
  assert.equal((await before.request({ path: '/' })).body.toString(), 'old');
  assert.equal(await udpPortFree(port), false, 'the old daemon holds the UDP port');

  // A request the old daemon will still be serving after the hand-over (over TCP).
  const draining = httpsGet(`https://127.0.0.1:${port}/slow`, ca);
  await reached;

  // Probe the UDP port all through the upgrade: nobody may ever find it free.
  let probing = true;
  let probes = 0;
  let freeSeen = 0;
  const prober = (async () => {
    for (let i = 0; i < 2000 && probing; i++) {
      probes++;
      if (await udpPortFree(port)) freeSeen++;
      await new Promise((r) => setTimeout(r, 10));
    }
  })();

  writeConfig(port, slowPort, 'new');
  const exited = new Promise<number | null>((resolve) => daemon!.child.once('exit', (code) => resolve(code)));
  // The old daemon's drain begins with GOAWAY on its HTTP/3 connections: from then on it accepts nothing.
  const goaway = new Promise<void>((r) => before.session.once('goaway', () => r()));
  // SIGUSR2 (what `switchyard upgrade` sends; the command itself waits for the old daemon to exit).
  process.kill(oldPid, 'SIGUSR2');
  let newPid = oldPid;
  for (let i = 0; i < 600 && newPid === oldPid; i++) {
    await new Promise((r) => setTimeout(r, 50));
    newPid = pidOf();
  }
  assert.notEqual(newPid, oldPid, `no new daemon took over\ndaemon: ${daemon.stdout().slice(-2000)}${daemon.stderr().slice(-2000)}`);

  await goaway;
  // Right after the hand-over, with the old daemon still draining: HTTP/3 is the new daemon's.
  assert.ok(alive(oldPid), 'the old daemon is still draining its /slow request');
  const fresh = await h3();
  const res = await fresh.request({ path: '/' });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'new', 'the new daemon answered over HTTP/3');
  assert.ok(alive(oldPid), 'the old daemon was still there when the new one answered');
  await fresh.close();

  // The connection opened before the upgrade stays with the old daemon (after GOAWAY the client
  // closes it); whatever of its datagrams the new daemon reads, it drops.
  await before.close().catch(() => undefined);

  release!();
  const drained = await draining;
  assert.equal(drained, 'drained', 'the old daemon finished its request');
  assert.equal(await exited, 0, 'the old daemon drained and exited 0');
  probing = false;
  await prober;
  assert.equal(freeSeen, 0, `the UDP port was free ${freeSeen} times out of ${probes} probes during the upgrade`);
  assert.ok(probes > 0);

  // The new daemon alone serves HTTP/3 on, and is alive after datagrams of the old connection.
  assert.ok(alive(newPid), 'the new daemon runs');
  const last = await h3();
  assert.equal((await last.request({ path: '/' })).body.toString(), 'new');
  await last.close();
  assert.equal(await udpPortFree(port), false, 'the new daemon holds the UDP port');
  const daemonLog = daemon.stdout() + daemon.stderr();
  assert.doesNotMatch(daemonLog, /HTTP\/3 waits for its UDP port/, 'the new daemon did not wait for the port');

  process.kill(newPid, 'SIGTERM');
  for (let i = 0; i < 200 && alive(newPid); i++) await new Promise((r) => setTimeout(r, 50));
  assert.equal(alive(newPid), false, 'the new daemon stopped on SIGTERM');
});

/** GET over HTTPS (TLS over TCP) trusting `ca`; resolves with the body. */
async function httpsGet(url: string, ca: string): Promise<string> {
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, servername: 'localhost', agent: false }, (res) => {
      let body = '';
      res.on('data', (d) => (body += d));
      res.on('end', () => resolve(body));
      res.on('error', reject);
    });
    req.setTimeout(90_000, () => req.destroy(new Error('no answer within 90 s')));
    req.on('error', reject);
    req.end();
  });
}

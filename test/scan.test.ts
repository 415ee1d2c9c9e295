import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile, spawn } from 'node:child_process';
import { createServer as createNetServer, type Server as NetServer, type Socket } from 'node:net';
import { createServer as createHttpServer } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createSocket, type Socket as DgramSocket } from 'node:dgram';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { runCli, cliPath, repoRoot } from './helpers/daemon.ts';
import { startLoopbackDns, type LoopbackDns } from './helpers/dns.ts';
import {
  hostCount,
  parsePorts,
  parseTargets,
  resolveTargets,
  runScan,
  sanitizeRemoteText,
  scan,
  ScanUsageError,
  udpPayload,
  type HostReport,
  type PortReport,
} from '../src/scan/index.ts';

// `switchyard scan` against listeners this test opens on 127.0.0.1: open ports (silent, a
// talk-first banner, HTTP with a Server header, HTTPS with a self-signed certificate), ports known
// to be closed (listened on, then closed), a UDP server that answers and a UDP port that is
// closed. Filtered ports are made in a network namespace of the test's own (routes that drop,
// refuse as unreachable, or prohibit), where the scanner runs as a child process; nmap, when
// installed, scans the same ports and must see the same states.

const execFileP = promisify(execFile);
const HOST = '127.0.0.1';

let dir: string;
const tcpServers: NetServer[] = [];
const sockets = new Set<Socket>();
let silentPort: number;
let bannerPort: number;
let httpPort: number;
let httpsPort: number;
let closedPorts: number[];
let udpServer: DgramSocket;
let udpOpenPort: number;
let udpClosedPort: number;
let dns: LoopbackDns;

async function listen(server: NetServer): Promise<number> {
  tcpServers.push(server);
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.on('error', () => {});
    s.on('close', () => sockets.delete(s));
  });
  await new Promise<void>((r) => server.listen(0, HOST, r));
  return (server.address() as { port: number }).port;
}

/** A port nothing listens on: listened on, then closed (the kernel answers it with a reset). */
async function closedTcpPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, HOST, r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

async function closedUdpPort(): Promise<number> {
  const s = createSocket('udp4');
  await new Promise<void>((r) => s.bind(0, HOST, r));
  const port = s.address().port;
  await new Promise<void>((r) => s.close(r));
  return port;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-scan-'));
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem'), '-days', '1', '-subj', '/CN=scan.test/O=Switchyard Test']);
  const key = await readFile(join(dir, 'key.pem'));
  const cert = await readFile(join(dir, 'cert.pem'));

  silentPort = await listen(createNetServer());
  // A talk-first service whose greeting carries an escape sequence and a bell: shown escaped.
  bannerPort = await listen(createNetServer((s) => s.write('SSH-2.0-Switchyard_Test \x1b[31mred\x07\r\n')));
  httpPort = await listen(createHttpServer((_req, res) => res.writeHead(200, { Server: 'switchyard-test/1.0' }).end('hello')));
  httpsPort = await listen(createHttpsServer({ key, cert }, (_req, res) => res.writeHead(204, { Server: 'switchyard-tls-test/2.0' }).end()));
  closedPorts = [await closedTcpPort(), await closedTcpPort()];

  udpServer = createSocket('udp4');
  udpServer.on('message', (_msg, from) => udpServer.send('pong', from.port, from.address));
  await new Promise<void>((r) => udpServer.bind(0, HOST, r));
  udpOpenPort = udpServer.address().port;
  udpClosedPort = await closedUdpPort();
  dns = await startLoopbackDns();
});

after(async () => {
  for (const s of sockets) s.destroy();
  await Promise.all(tcpServers.map((s) => new Promise<void>((r) => s.close(() => r()))));
  await new Promise<void>((r) => udpServer.close(r));
  await dns.close();
  await rm(dir, { recursive: true, force: true });
});

function portOf(host: HostReport | undefined, port: number): PortReport {
  const found = host?.ports.find((p) => p.port === port);
  assert.ok(found, `port ${port} in ${JSON.stringify(host)}`);
  return found;
}

interface JsonScan {
  protocol: string;
  hostsTotal: number;
  hosts: HostReport[];
  summary: { hostsDone: number; interrupted: boolean };
}

async function scanJson(args: string[]): Promise<JsonScan> {
  const r = await runCli(['scan', ...args, '--json'], { timeoutMs: 30_000 });
  assert.equal(r.code, 0, r.stderr);
  return JSON.parse(r.stdout) as JsonScan;
}

describe('targets and port lists', () => {
  test('port lists as nmap writes them', () => {
    assert.equal(parsePorts('22,80,8000-8100').length, 103);
    assert.deepEqual(parsePorts('80,22,80,21-23'), [21, 22, 23, 80]);
    assert.equal(parsePorts('-').length, 65535);
    assert.deepEqual(parsePorts('-3'), [1, 2, 3]);
    assert.deepEqual(parsePorts('65534-'), [65534, 65535]);
    for (const bad of ['0', '65536', '100-90', 'http', '', '1,,2', '1-2-3']) {
      assert.throws(() => parsePorts(bad), ScanUsageError, bad);
    }
  });

  test('CIDR blocks are walked in order, network and broadcast addresses included', async () => {
    const v4 = await resolveTargets(parseTargets(['127.0.0.1/30']));
    assert.deepEqual([...v4.hosts()].map((h) => h.address), ['127.0.0.0', '127.0.0.1', '127.0.0.2', '127.0.0.3']);
    const v6 = await resolveTargets(parseTargets(['::1/126,10.1.2.3']));
    assert.deepEqual([...v6.hosts()].map((h) => h.address), ['::', '::1', '::2', '::3', '10.1.2.3']);
    const named = await resolveTargets(parseTargets(['localhost']));
    const [local] = [...named.hosts()];
    assert.equal(local?.name, 'localhost');
    assert.ok(local?.address === '127.0.0.1' || local?.address === '::1', local?.address);
  });

  test('blocks over the host cap are refused before anything is resolved or sent', async () => {
    assert.equal(hostCount(parseTargets(['10.0.0.0/8', '192.168.0.0/16'])), 16_777_216n + 65_536n);
    await assert.rejects(resolveTargets(parseTargets(['10.0.0.0/15'])), /131072 addresses, more than the limit of 65536/);
    await assert.rejects(resolveTargets(parseTargets(['fe80::/64'])), /more than the limit/);
    const raised = await resolveTargets(parseTargets(['10.0.0.0/15']), 131072);
    assert.equal(raised.count, 131072);
    assert.throws(() => parseTargets(['10.0.0.0/33']), ScanUsageError);
    assert.throws(() => parseTargets(['http://example.com']), ScanUsageError);
    assert.throws(() => parseTargets([',']), /no target/);
  });

  test('remote text is shown with its control characters escaped', () => {
    assert.equal(sanitizeRemoteText('a\x1b[2Jb\r\n\x00\u202e'), 'a\\x1b[2Jb\\r\\n\\x00\\u202e');
    assert.equal(sanitizeRemoteText('x'.repeat(20), 8), `${'x'.repeat(8)}…`);
  });
});

describe('tcp connect scan', () => {
  test('open and closed ports, with nmap\'s reasons', async () => {
    const { hosts, summary } = await scan({ targets: [HOST], ports: [silentPort, ...closedPorts] });
    assert.equal(summary.hostsDone, 1);
    assert.equal(summary.interrupted, false);
    const [host] = hosts;
    assert.equal(host?.address, HOST);
    assert.deepEqual(portOf(host, silentPort), { port: silentPort, protocol: 'tcp', state: 'open', reason: 'syn-ack', service: 'unknown' });
    for (const p of closedPorts) assert.deepEqual({ state: portOf(host, p).state, reason: portOf(host, p).reason }, { state: 'closed', reason: 'conn-refused' });
    assert.deepEqual(host?.counts, { open: 1, closed: 2 });
  });

  test('a state shared by more than 25 ports is summarised; open ports are always listed', async () => {
    const ports = [...parsePorts('1-40'), silentPort];
    const { hosts } = await scan({ targets: [HOST], ports });
    const [host] = hosts;
    assert.ok(host);
    const closed = host.notShown.find((n) => n.state === 'closed');
    assert.ok(closed, JSON.stringify(host));
    assert.equal(closed.count + host.ports.filter((p) => p.state === 'closed').length + (host.counts.open ?? 0) + (host.counts.filtered ?? 0), ports.length);
    assert.ok(host.ports.some((p) => p.port === silentPort && p.state === 'open'));
    assert.ok(!host.ports.some((p) => p.state === 'closed'));
  });

  test('never more probes in flight than --concurrency', async () => {
    // Twelve listeners that hold every connection until the test lets it go. With --banner and a
    // long banner timeout the scanner keeps each open port's connection until the server ends it,
    // so what the servers hold at once is exactly what the scanner has in flight.
    const held: Socket[] = [];
    let accepted = 0;
    let most = 0;
    const servers: NetServer[] = [];
    const ports: number[] = [];
    for (let i = 0; i < 12; i++) {
      const s = createNetServer((sock) => {
        sock.on('error', () => {});
        held.push(sock);
        accepted++;
        most = Math.max(most, held.length);
      });
      await new Promise<void>((r) => s.listen(0, HOST, r));
      servers.push(s);
      ports.push((s.address() as { port: number }).port);
    }
    let done = false;
    const scanning = scan({ targets: [HOST], ports, concurrency: 3, banner: true, bannerTimeoutMs: 30_000 }).finally(() => (done = true));
    try {
      // Release the held connections a round at a time: once three are held (or all twelve came),
      // give a fourth a moment to show up, then end them all.
      for (let round = 0; round < 12 && !done; round++) {
        for (let waited = 0; held.length < 3 && accepted < 12 && waited < 10_000 && !done; waited += 10) await new Promise((r) => setTimeout(r, 10));
        await new Promise((r) => setTimeout(r, 100));
        for (const sock of held.splice(0)) sock.destroy();
      }
      const { hosts } = await scanning;
      assert.equal(hosts[0]?.counts.open, 12);
      assert.equal(accepted, 12);
      assert.equal(most, 3, `at most 3 connections at once (and the scanner uses them), saw ${most}`);
    } finally {
      for (const sock of held) sock.destroy();
      await Promise.all(servers.map((s) => new Promise<void>((r) => s.close(() => r()))));
    }
  });

  test('with a rate limit every port is still scanned', async () => {
    const { hosts } = await scan({ targets: [HOST], ports: [silentPort, ...closedPorts, ...parsePorts('1-10')], rate: 200 });
    assert.equal(Object.values(hosts[0]?.counts ?? {}).reduce((a, b) => a + (b ?? 0), 0), 13);
    assert.equal(portOf(hosts[0], silentPort).state, 'open');
  });

  test('progress is reported while the scan runs, with the totals', async () => {
    const seen: { probesDone: number; probesTotal: number; hostsTotal: number }[] = [];
    // A silent open port with --banner keeps the scan busy for at least half the banner timeout
    // (the wait for a greeting), long enough for a 10 ms progress interval to fire.
    await runScan({ targets: [HOST], ports: [silentPort, ...closedPorts], banner: true, bannerTimeoutMs: 400, progressIntervalMs: 10, onProgress: (p) => seen.push(p) });
    assert.ok(seen.length >= 1, 'at least one progress report');
    for (const p of seen) {
      assert.equal(p.probesTotal, 3);
      assert.equal(p.hostsTotal, 1);
      assert.ok(p.probesDone <= 3);
    }
  });

  test('Ctrl-C stops the scan: exit 130, the hosts finished so far printed', async () => {
    const child = spawn(process.execPath, ['--import', 'tsx', cliPath, 'scan', `${HOST},127.0.0.2`, '-p', String(silentPort), '--banner', '--banner-timeout', '60s', '--concurrency', '1'], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    child.stdout.on('data', (d) => (stdout += d));
    const exited = new Promise<number | null>((resolve) => child.on('exit', (code) => resolve(code)));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30_000);
    try {
      // The header is printed once the targets are read; the banner grab then waits on the silent port.
      for (let waited = 0; !stdout.includes('TCP connect scan') && waited < 20_000; waited += 20) await new Promise((r) => setTimeout(r, 20));
      await new Promise((r) => setTimeout(r, 200));
      child.kill('SIGINT');
      assert.equal(await exited, 130);
      // The banner grab in flight is cut short (the port is still reported open); the second host never starts.
      assert.match(stdout, new RegExp(`^${silentPort}/tcp\\s+open\\s+unknown$`, 'm'));
      assert.match(stdout, /Scanned 1 of 2 hosts in [\d.]+ s \(stopped before the end/);
      assert.doesNotMatch(stdout, /127\.0\.0\.2/);
    } finally {
      clearTimeout(timer);
      child.kill('SIGKILL');
    }
  });

  test('the CLI prints nmap\'s PORT STATE SERVICE table', async () => {
    const r = await runCli(['scan', HOST, '-p', `${silentPort},${closedPorts[0]}`], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Scan report for 127\.0\.0\.1$/m);
    assert.match(r.stdout, /^PORT\s+STATE\s+SERVICE$/m);
    assert.match(r.stdout, new RegExp(`^${silentPort}/tcp\\s+open\\s+unknown$`, 'm'));
    assert.match(r.stdout, new RegExp(`^${closedPorts[0]}/tcp\\s+closed\\s+unknown$`, 'm'));
    assert.equal(r.stderr, '', 'no progress on stderr when it is not a terminal');
  });

  test('--json is one document', async () => {
    const doc = await scanJson([HOST, '-p', `${silentPort},${closedPorts.join(',')}`]);
    assert.equal(doc.protocol, 'tcp');
    assert.equal(doc.hostsTotal, 1);
    assert.equal(doc.summary.hostsDone, 1);
    assert.equal(doc.summary.interrupted, false);
    assert.equal(portOf(doc.hosts[0], silentPort).state, 'open');
    assert.equal(portOf(doc.hosts[0], closedPorts[1] as number).state, 'closed');
  });

  test('--grepable lines parse as nmap -oG', async () => {
    const r = await runCli(['scan', HOST, '-p', `${silentPort},${closedPorts.join(',')}`, '--grepable'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    const lines = r.stdout.trim().split('\n');
    assert.match(lines[0] ?? '', /^# Switchyard \S+ scan initiated .* as: switchyard scan /);
    assert.match(lines.at(-1) ?? '', /^# Switchyard done at .* -- 1 IP address scanned in [\d.]+ seconds$/);
    const hostLine = lines.find((l) => l.startsWith('Host: '));
    const fields = Object.fromEntries((hostLine ?? '').split('\t').map((f) => [f.slice(0, f.indexOf(':')), f.slice(f.indexOf(':') + 2)]));
    assert.equal(fields.Host, '127.0.0.1 ()');
    const ports = new Map((fields.Ports ?? '').split(', ').map((entry): [number, string] => {
      const [port, state, protocol, , service] = entry.split('/');
      assert.equal(protocol, 'tcp');
      assert.equal(service, 'unknown');
      return [Number(port), state ?? ''];
    }));
    const expected: [number, string][] = [[silentPort, 'open'], ...closedPorts.map((p): [number, string] => [p, 'closed'])];
    assert.deepEqual(ports, new Map(expected.sort((a, b) => a[0] - b[0])));
  });

  test('--open lists only open ports', async () => {
    const r = await runCli(['scan', HOST, '-p', `${silentPort},${closedPorts.join(',')}`, '--open'], { timeoutMs: 30_000 });
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, new RegExp(`^${silentPort}/tcp\\s+open`, 'm'));
    assert.doesNotMatch(r.stdout, /closed\s+unknown/);
  });

  test('127.0.0.1/30: four hosts in order, the listener only on .1', async () => {
    const doc = await scanJson(['127.0.0.1/30', '-p', String(silentPort)]);
    assert.deepEqual(doc.hosts.map((h) => h.address), ['127.0.0.0', '127.0.0.1', '127.0.0.2', '127.0.0.3']);
    assert.deepEqual(doc.hosts.map((h) => portOf(h, silentPort).state), ['closed', 'open', 'closed', 'closed']);
  });

  test('bad targets and options exit 2 with the reason', async () => {
    const tooMany = await runCli(['scan', '10.0.0.0/8', '-p', '80']);
    assert.equal(tooMany.code, 2);
    assert.match(tooMany.stderr, /16777216 addresses, more than the limit of 65536.*--max-hosts/);
    const badPort = await runCli(['scan', HOST, '-p', '99999']);
    assert.equal(badPort.code, 2);
    assert.match(badPort.stderr, /ports run from 1 to 65535/);
    const both = await runCli(['scan', HOST, '-p', '80', '--json', '--grepable']);
    assert.equal(both.code, 2);
    assert.match(both.stderr, /choose one of --json and --grepable/);
    const noTarget = await runCli(['scan']);
    assert.equal(noTarget.code, 2);
  });
});

describe('banners', () => {
  test('a talk-first service: its greeting, control characters escaped', async () => {
    const { hosts } = await scan({ targets: [HOST], ports: [bannerPort], banner: true });
    assert.equal(portOf(hosts[0], bannerPort).banner?.text, 'SSH-2.0-Switchyard_Test \\x1b[31mred\\x07');
  });

  test('an HTTP server on any port: its Server header, asked with HEAD', async () => {
    const { hosts } = await scan({ targets: [HOST], ports: [httpPort], banner: true, bannerTimeoutMs: 1000 });
    assert.deepEqual(portOf(hosts[0], httpPort).banner, { http: { status: 'HTTP/1.1 200 OK', server: 'switchyard-test/1.0' } });
  });

  test('--tls: the certificate\'s subject and issuer, and the Server header over TLS', async () => {
    const r = await scanJson([HOST, '-p', String(httpsPort), '--banner', '--tls', '--banner-timeout', '2s']);
    const banner = portOf(r.hosts[0], httpsPort).banner;
    assert.equal(banner?.tls?.subject, 'CN=scan.test, O=Switchyard Test');
    assert.equal(banner?.tls?.issuer, 'CN=scan.test, O=Switchyard Test');
    assert.match(banner?.tls?.protocol ?? '', /^TLSv1\.[23]$/);
    assert.equal(banner?.http?.server, 'switchyard-tls-test/2.0');
    const table = await runCli(['scan', HOST, '-p', String(httpsPort), '--banner', '--tls'], { timeoutMs: 30_000 });
    assert.match(table.stdout, /open\s+unknown\s+tls TLSv1\.\d subject: CN=scan\.test, O=Switchyard Test; issuer: CN=scan\.test, O=Switchyard Test \| Server: switchyard-tls-test\/2\.0/);
  });

  test('a TLS handshake with a plain service fails and says so', async () => {
    const { hosts } = await scan({ targets: [HOST], ports: [bannerPort], banner: true, tls: true, bannerTimeoutMs: 1000 });
    const banner = portOf(hosts[0], bannerPort).banner;
    assert.equal(banner?.tls, undefined);
    assert.ok(banner?.tlsError, JSON.stringify(banner));
  });
});

describe('udp scan', () => {
  test('a server that answers is open, a closed port is closed (ICMP port unreachable)', async () => {
    const doc = await scanJson([HOST, '-sU', '-p', `${udpOpenPort},${udpClosedPort}`]);
    assert.equal(doc.protocol, 'udp');
    assert.deepEqual(portOf(doc.hosts[0], udpOpenPort), { port: udpOpenPort, protocol: 'udp', state: 'open', reason: 'udp-response', service: 'unknown', reply: 'pong' });
    const closed = portOf(doc.hosts[0], udpClosedPort);
    assert.deepEqual([closed.state, closed.reason], ['closed', 'port-unreach']);
  });

  test('--udp is -sU; --banner is refused for UDP', async () => {
    const doc = await scanJson([HOST, '--udp', '-p', String(udpOpenPort)]);
    assert.equal(portOf(doc.hosts[0], udpOpenPort).state, 'open');
    const refused = await runCli(['scan', HOST, '--udp', '--banner', '-p', '53']);
    assert.equal(refused.code, 2);
    assert.match(refused.stderr, /--banner and --tls are for TCP scans/);
  });

  test('the DNS probe is a query a DNS server answers (version.bind)', async () => {
    const client = createSocket('udp4');
    const query = udpPayload(53);
    try {
      const reply = await new Promise<Buffer>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error('no DNS answer within 5 s')), 5000);
        client.once('message', (m) => {
          clearTimeout(timer);
          resolve(m);
        });
        client.send(query, dns.port, HOST);
      });
      assert.ok(dns.asked.has('version.bind'), [...dns.asked].join(','));
      assert.equal(reply.readUInt16BE(0), query.readUInt16BE(0), 'the reply carries the query\'s id');
      assert.ok((reply[2] ?? 0) & 0x80, 'a response');
    } finally {
      client.close();
    }
    assert.equal(udpPayload(123).length, 48);
    assert.equal(udpPayload(123)[0], 0x23, 'NTP v4, mode 3 (client)');
    assert.equal(udpPayload(161)[0], 0x30, 'SNMP: a BER sequence');
    assert.equal(udpPayload(9999).length, 0, 'other ports: an empty datagram');
  });
});

describe('filtered ports (a network namespace of the test\'s own)', () => {
  const ns = `swscan${process.pid}`;
  let skip: string | false = false;

  before(async () => {
    if (process.getuid?.() !== 0) {
      skip = 'needs root for ip netns';
      return;
    }
    try {
      await execFileP('ip', ['netns', 'add', ns]);
      // Inside it only lo. 10.77.0.0/24 is routed to lo, where packets to an address that is not
      // ours are dropped (no forwarding): silence. The others answer at once: unreachable, prohibit,
      // and no route at all.
      for (const args of [['link', 'set', 'lo', 'up'], ['route', 'add', '10.77.0.0/24', 'dev', 'lo'], ['route', 'add', 'unreachable', '10.78.0.0/24'], ['route', 'add', 'prohibit', '10.79.0.0/24']]) {
        await execFileP('ip', ['netns', 'exec', ns, 'ip', ...args]);
      }
    } catch (err) {
      skip = `ip netns does not work here: ${(err as Error).message}`;
    }
  });

  after(async () => {
    await execFileP('ip', ['netns', 'del', ns]).catch(() => {});
  });

  function scanInNamespace(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
    return new Promise((resolve, reject) => {
      const child = spawn('ip', ['netns', 'exec', ns, process.execPath, '--import', 'tsx', cliPath, 'scan', ...args], { cwd: repoRoot, stdio: ['ignore', 'pipe', 'pipe'] });
      let stdout = '';
      let stderr = '';
      child.stdout.on('data', (d) => (stdout += d));
      child.stderr.on('data', (d) => (stderr += d));
      const timer = setTimeout(() => {
        child.kill('SIGKILL');
        reject(new Error(`scan in ${ns} did not exit within 30 s\n${stdout}\n${stderr}`));
      }, 30_000);
      child.on('exit', (code) => {
        clearTimeout(timer);
        resolve({ code, stdout, stderr });
      });
    });
  }

  test('silence, unreachable, prohibited and no route are filtered, each with its reason', async (t) => {
    if (skip) return t.skip(skip);
    const r = await scanInNamespace(['10.77.0.2,10.78.0.5,10.79.0.5,10.80.0.1', '-p', '80', '--timeout', '300ms', '--retries', '1', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as JsonScan;
    assert.deepEqual(
      doc.hosts.map((h) => [h.address, portOf(h, 80).state, portOf(h, 80).reason]),
      [
        ['10.77.0.2', 'filtered', 'no-response'],
        ['10.78.0.5', 'filtered', 'host-unreach'],
        ['10.79.0.5', 'filtered', 'admin-prohibited'],
        ['10.80.0.1', 'filtered', 'net-unreach'],
      ],
    );
  });

  test('UDP silence is open|filtered', async (t) => {
    if (skip) return t.skip(skip);
    const r = await scanInNamespace(['10.77.0.2', '-sU', '-p', '53,9999', '--timeout', '300ms', '--json']);
    assert.equal(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout) as JsonScan;
    for (const port of [53, 9999]) assert.deepEqual([portOf(doc.hosts[0], port).state, portOf(doc.hosts[0], port).reason], ['open|filtered', 'no-response']);
  });
});

describe('against nmap', () => {
  test('nmap -sT sees the same states on the same ports', async (t) => {
    const which = await execFileP('nmap', ['--version']).catch(() => undefined);
    if (!which) {
      if (process.env.CI === '1' || process.env.CI === 'true') assert.fail('nmap is required under CI (scripts/install-system-deps.sh installs it)');
      return t.skip('nmap is not installed');
    }
    const ports = [silentPort, bannerPort, httpPort, httpsPort, ...closedPorts].sort((a, b) => a - b);
    const list = ports.join(',');
    const nmap = await execFileP('nmap', ['-sT', '-Pn', '-n', '-p', list, HOST, '-oX', '-'], { timeout: 60_000 });
    const theirs = new Map<number, string>();
    for (const m of nmap.stdout.matchAll(/<port protocol="tcp" portid="(\d+)"><state state="([a-z|]+)"/g)) theirs.set(Number(m[1]), m[2] as string);
    assert.equal(theirs.size, ports.length, nmap.stdout);
    const doc = await scanJson([HOST, '-p', list]);
    const ours = new Map(doc.hosts[0]?.ports.map((p) => [p.port, p.state]));
    assert.deepEqual(ours, theirs);
    assert.deepEqual([...ours].filter(([, s]) => s === 'open').map(([p]) => p), [silentPort, bannerPort, httpPort, httpsPort].sort((a, b) => a - b));
  });
});

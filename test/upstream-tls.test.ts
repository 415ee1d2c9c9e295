import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { chmod, copyFile, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import https from 'node:https';
import net from 'node:net';
import tls from 'node:tls';
import { once } from 'node:events';
import { randomBytes } from 'node:crypto';
import WebSocket, { WebSocketServer } from 'ws';
import { serve, registerHandler, handlerModule, type Yard } from '../src/index.ts';
import { tcpProxyHandler } from '../src/handlers/tcp-proxy.ts';
import { makeLeaf, makeTestCa, openssl, waitFor, type Files } from './helpers/tls-fixtures.ts';

// TLS to upstreams with real TLS servers made here (openssl certificates from a private CA): the
// proxy to https targets (ca, servername, insecure, a client certificate), a wrong CA answered
// 502 naming TLS and counted, WebSocket to a wss target, tcp-proxy to tls:// targets, health
// checks over TLS, and the config errors. Loopback only; nothing asserts on timing.

if (handlerModule(tcpProxyHandler.type) === undefined) registerHandler(tcpProxyHandler as never);

const closers: (() => Promise<unknown> | void)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

let dir: string;
let ca: Files;
let otherCa: Files;
/** 127.0.0.1 and localhost, from `ca`. */
let local: Files;
/** api.internal only, from `ca`. */
let named: Files;
/** 127.0.0.1, from `otherCa`. */
let foreign: Files;
/** A client certificate (clientAuth) from `ca`. */
let client: Files;

/** A client certificate: makeLeaf's are for servers (extendedKeyUsage serverAuth). */
async function makeClientLeaf(cn: string): Promise<Files> {
  const files = { cert: join(dir, `${cn}.crt`), key: join(dir, `${cn}.key`) };
  const csr = join(dir, `${cn}.csr`);
  const ext = join(dir, `${cn}.ext`);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', csr, '-subj', `/CN=${cn}`]);
  await writeFile(ext, 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n');
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', ext, '-out', files.cert]);
  await chmod(files.key, 0o600);
  return files;
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-upstream-tls-'));
  closers.push(() => rm(dir, { recursive: true, force: true }));
  ca = await makeTestCa(dir, 'ca');
  otherCa = await makeTestCa(dir, 'other');
  local = await makeLeaf(dir, ca, 'local', ['127.0.0.1', 'localhost']);
  named = await makeLeaf(dir, ca, 'named', ['api.internal']);
  foreign = await makeLeaf(dir, otherCa, 'foreign', ['127.0.0.1']);
  client = await makeClientLeaf('gateway');
});

async function pair(f: Files): Promise<{ cert: string; key: string }> {
  return { cert: await readFile(f.cert, 'utf8'), key: await readFile(f.key, 'utf8') };
}

interface HttpsUpstream {
  port: number;
  server: https.Server;
  /** SNI of each request's connection ('' for none) and the client certificate's CN, if any. */
  seen: { sni: string; peer: string }[];
}

/** An https server answering `name sni=... peer=...`; `requireClient` asks for a certificate from `ca`. */
async function httpsUpstream(name: string, cert: Files, opts: { requireClient?: boolean; maxVersion?: tls.SecureVersion } = {}): Promise<HttpsUpstream> {
  const u: HttpsUpstream = { port: 0, server: undefined as never, seen: [] };
  const server = https.createServer(
    { ...(await pair(cert)), maxVersion: opts.maxVersion, ...(opts.requireClient ? { requestCert: true, rejectUnauthorized: true, ca: await readFile(ca.cert, 'utf8') } : {}) },
    (req, res) => {
      const socket = req.socket as tls.TLSSocket;
      const sni = (socket as unknown as { servername?: string | false }).servername || '';
      const peer = String(socket.getPeerCertificate()?.subject?.CN ?? '');
      u.seen.push({ sni, peer });
      res.end(`${name} sni=${sni} peer=${peer} path=${req.url}`);
    },
  );
  server.on('tlsClientError', () => {});
  u.server = server;
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  u.port = (server.address() as net.AddressInfo).port;
  closers.push(() => {
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  return u;
}

async function start(config: unknown, baseDir?: string): Promise<Yard> {
  const y = await serve(config, { logLevel: 'silent', baseDir });
  closers.push(() => y.stop(100));
  return y;
}

function proxyConfig(upstream: Record<string, unknown>): unknown {
  return {
    listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/*' }, handler: { type: 'proxy', upstream: 'api' } }] }],
    upstreams: { api: { retry: { attempts: 0 }, outlier: false, ...upstream } },
  };
}

function webUrl(y: Yard, path = '/x'): string {
  const a = y.address('web');
  return `http://127.0.0.1:${a.port}${path}`;
}

test('proxy to an https upstream signed by a private CA (tls.ca); without the CA it is 502 naming TLS', { timeout: 30_000 }, async () => {
  const up = await httpsUpstream('a', local);
  const y = await start(proxyConfig({ targets: [`https://127.0.0.1:${up.port}`], tls: { ca: ca.cert } }));
  const r = await fetch(webUrl(y, '/hello'), { headers: { host: 'public.example' } });
  assert.equal(r.status, 200);
  // An IP target is verified against its IP, and no SNI is sent (not the client's Host).
  assert.equal(await r.text(), 'a sni= peer= path=/hello');

  const bare = await start(proxyConfig({ targets: [`https://127.0.0.1:${up.port}`] }));
  const r2 = await fetch(webUrl(bare));
  assert.equal(r2.status, 502);
  assert.match(await r2.text(), /TLS/);
});

test('tls.servername: SNI and the verified name differ from the address; without it the name does not match', { timeout: 30_000 }, async () => {
  const up = await httpsUpstream('n', named);
  const y = await start(proxyConfig({ targets: [`https://127.0.0.1:${up.port}`], tls: { ca: ca.cert, servername: 'api.internal' } }));
  const r = await fetch(webUrl(y), { headers: { host: 'public.example' } });
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'n sni=api.internal peer= path=/x');

  const wrong = await start(proxyConfig({ targets: [`https://127.0.0.1:${up.port}`], tls: { ca: ca.cert } }));
  const r2 = await fetch(webUrl(wrong));
  assert.equal(r2.status, 502);
  assert.match(await r2.text(), /upstream TLS handshake failed/);
  const text = await wrong.metrics.text();
  assert.match(text, new RegExp(`switchyard_upstream_errors_total\\{upstream="api",target="127.0.0.1:${up.port}",kind="upstream_tls"\\} 1`));
});

test('tls.insecure: an upstream nobody vouches for is reached', { timeout: 30_000 }, async () => {
  const up = await httpsUpstream('f', foreign);
  const y = await start(proxyConfig({ targets: [`https://127.0.0.1:${up.port}`], tls: { insecure: true } }));
  const r = await fetch(webUrl(y));
  assert.equal(r.status, 200);
  assert.match(await r.text(), /^f /);
});

test('a wrong CA: 502 naming TLS, counted as a connect failure of the target, and retried on another target', { timeout: 30_000 }, async () => {
  const bad = await httpsUpstream('bad', foreign);
  const good = await httpsUpstream('good', local);
  const y = await start(proxyConfig({ targets: [`https://127.0.0.1:${bad.port}`], tls: { ca: ca.cert } }));
  const r = await fetch(webUrl(y));
  assert.equal(r.status, 502);
  assert.match(await r.text(), /^502 upstream TLS handshake failed$/m);
  const state = y.upstreams()[0].state() as { targets: { requests: { connectFailure: number; success: number } }[] };
  assert.equal(state.targets[0].requests.connectFailure, 1);
  assert.equal(state.targets[0].requests.success, 0);

  // Nothing was sent, so another target is tried: every request lands on the good one.
  const both = await start(
    proxyConfig({ targets: [`https://127.0.0.1:${bad.port}`, `https://127.0.0.1:${good.port}`], tls: { ca: ca.cert }, retry: { attempts: 1 } }),
  );
  for (let i = 0; i < 4; i++) {
    const res = await fetch(webUrl(both));
    assert.equal(res.status, 200);
    assert.match(await res.text(), /^good /);
  }
});

test('a client certificate for an upstream that requires one; without it a TLS 1.2 upstream refuses the handshake (502 naming TLS)', { timeout: 30_000 }, async () => {
  const up = await httpsUpstream('m', local, { requireClient: true });
  const y = await start(proxyConfig({ targets: [`https://127.0.0.1:${up.port}`], tls: { ca: ca.cert, cert: client.cert, key: client.key } }));
  const r = await fetch(webUrl(y));
  assert.equal(r.status, 200);
  assert.equal(await r.text(), 'm sni= peer=gateway path=/x');

  // TLS 1.3 refuses a missing certificate only after the client's side of the handshake, which
  // undici then reports as a closed connection (docs/tls.md); TLS 1.2 refuses in the handshake.
  const up12 = await httpsUpstream('m12', local, { requireClient: true, maxVersion: 'TLSv1.2' });
  const none = await start(proxyConfig({ targets: [`https://127.0.0.1:${up12.port}`], tls: { ca: ca.cert } }));
  const r2 = await fetch(webUrl(none));
  assert.equal(r2.status, 502);
  assert.match(await r2.text(), /TLS/);
});

test('config errors name the field: a missing CA file, a client key readable by others, tls without TLS targets', { timeout: 30_000 }, async () => {
  await assert.rejects(
    serve(proxyConfig({ targets: ['https://127.0.0.1:1'], tls: { ca: './nope.pem' } }), { logLevel: 'silent', baseDir: dir }),
    (err: Error) => err.message.startsWith('upstreams.api.tls.ca (upstream): ') && err.message.includes(join(dir, 'nope.pem')) && /no such file/.test(err.message),
  );
  const loose = join(dir, 'loose.key');
  await copyFile(client.key, loose);
  await chmod(loose, 0o644);
  await assert.rejects(
    serve(proxyConfig({ targets: ['https://127.0.0.1:1'], tls: { cert: client.cert, key: loose } }), { logLevel: 'silent' }),
    (err: Error) => err.message.startsWith('upstreams.api.tls.key (upstream): ') && /chmod 600/.test(err.message),
  );
  await assert.rejects(serve(proxyConfig({ targets: ['http://127.0.0.1:1'], tls: { ca: ca.cert } }), { logLevel: 'silent' }), (err: Error) =>
    /upstreams\.api\.tls.*https:\/\/ and tls:\/\/ targets/.test(err.message),
  );
  await assert.rejects(serve(proxyConfig({ targets: ['https://127.0.0.1:1'], tls: { cert: client.cert } }), { logLevel: 'silent' }), (err: Error) =>
    /upstreams\.api\.tls\.key/.test(err.message),
  );
});

test('WebSocket through the proxy to a wss upstream (tls.ca, tls.servername)', { timeout: 30_000 }, async () => {
  const server = https.createServer(await pair(named));
  const wss = new WebSocketServer({ server });
  const snis: string[] = [];
  wss.on('connection', (ws, req) => {
    snis.push(String((req.socket as unknown as { servername?: string }).servername));
    ws.on('message', (data) => ws.send(`echo:${data.toString()}`));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    for (const c of wss.clients) c.terminate();
    server.closeAllConnections();
    return new Promise((r) => server.close(r));
  });
  const port = (server.address() as net.AddressInfo).port;
  const y = await start(proxyConfig({ targets: [`https://127.0.0.1:${port}`], tls: { ca: ca.cert, servername: 'api.internal' } }));
  const a = y.address('web');
  const ws = new WebSocket(`ws://127.0.0.1:${a.port}/ws`);
  closers.push(() => {
    // Terminating a socket whose handshake was refused emits an error: not news here.
    ws.on('error', () => {});
    ws.terminate();
  });
  await once(ws, 'open');
  ws.send('hi');
  const [msg] = (await once(ws, 'message')) as [Buffer];
  assert.equal(msg.toString(), 'echo:hi');
  assert.deepEqual(snis, ['api.internal']);
  ws.close();

  // The same target without the servername: the handshake fails on the name, 502.
  const wrong = await start(proxyConfig({ targets: [`https://127.0.0.1:${port}`], tls: { ca: ca.cert } }));
  const w = new WebSocket(`ws://127.0.0.1:${wrong.address('web').port}/ws`);
  closers.push(() => {
    // Terminating a socket whose handshake was refused emits an error: not news here.
    w.on('error', () => {});
    w.terminate();
  });
  const [, res] = (await once(w, 'unexpected-response')) as [unknown, { statusCode: number }];
  assert.equal(res.statusCode, 502);
});

/** A TLS echo server (certificate `cert`), optionally requiring a client certificate from `ca`. */
async function tlsEcho(cert: Files, opts: { requireClient?: boolean } = {}): Promise<{ port: number; server: tls.Server; peers: string[] }> {
  const peers: string[] = [];
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(
    { ...(await pair(cert)), allowHalfOpen: true, ...(opts.requireClient ? { requestCert: true, rejectUnauthorized: true, ca: await readFile(ca.cert, 'utf8') } : {}) },
    (s) => {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => s.destroy());
      peers.push(String(s.getPeerCertificate()?.subject?.CN ?? ''));
      s.pipe(s);
    },
  );
  server.on('tlsClientError', () => {});
  // Raw connections too: one whose handshake never finished would hold server.close() forever.
  const raw = new Set<net.Socket>();
  server.on('connection', (s: net.Socket) => {
    raw.add(s);
    s.once('close', () => raw.delete(s));
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  closers.push(() => {
    for (const s of sockets) s.destroy();
    for (const s of raw) s.destroy();
    return new Promise((r) => server.close(r));
  });
  return { port: (server.address() as net.AddressInfo).port, server, peers };
}

/** Connects to the tcp listener, sends `text`, ends, and resolves with all that came back. */
function roundTrip(port: number, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ port, host: '127.0.0.1', allowHalfOpen: true });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.once('error', reject);
    s.once('close', () => resolve(got));
    s.once('connect', () => s.end(text));
  });
}

function tcpProxyConfig(upstream: Record<string, unknown>): unknown {
  return {
    listeners: [{ name: 'l4', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'tcp-proxy', upstream: 'backend' } }],
    upstreams: { backend: { retry: { attempts: 0 }, outlier: false, ...upstream } },
  };
}

test('tcp-proxy to tls:// targets: bytes inside TLS with the group\'s CA and client certificate; a wrong CA gets nothing through', { timeout: 30_000 }, async () => {
  const echo = await tlsEcho(local, { requireClient: true });
  const y = await start(tcpProxyConfig({ targets: [`tls://127.0.0.1:${echo.port}`], tls: { ca: ca.cert, cert: client.cert, key: client.key } }));
  assert.equal(await roundTrip(y.address('l4').port, 'through TLS'), 'through TLS');
  assert.deepEqual(echo.peers, ['gateway']);

  const bad = await tlsEcho(foreign);
  const y2 = await start(tcpProxyConfig({ targets: [`tls://127.0.0.1:${bad.port}`], tls: { ca: ca.cert } }));
  assert.equal(await roundTrip(y2.address('l4').port, 'nope'), '');
  assert.equal(bad.peers.length, 0);
  const state = y2.upstreams()[0].state() as { targets: { requests: { connectFailure: number } }[] };
  assert.equal(state.targets[0].requests.connectFailure, 1);
  assert.match(await y2.metrics.text(), /switchyard_upstream_errors_total\{upstream="backend",target="127\.0\.0\.1:\d+",kind="upstream_tls"\} 1/);
});

type TargetState = { id: string; healthy: boolean };
const targetsOf = (y: Yard) => (y.upstreams()[0].state() as { targets: TargetState[] }).targets;

test('health checks over https with the group\'s TLS options: a target whose certificate does not verify goes down, and up once it does', { timeout: 30_000 }, async () => {
  const good = await httpsUpstream('good', local);
  const bad = await httpsUpstream('bad', foreign);
  const y = await start(
    proxyConfig({
      targets: [`https://127.0.0.1:${good.port}`, `https://127.0.0.1:${bad.port}`],
      tls: { ca: ca.cert },
      health: { path: '/health', interval: '50ms', timeout: '2s', rise: 1, fall: 1 },
    }),
  );
  await waitFor('the bad target down', () => (targetsOf(y)[1].healthy ? undefined : true));
  assert.equal(targetsOf(y)[0].healthy, true);
  assert.ok(good.seen.length > 0, 'the good target was checked over TLS');
  // Every request now goes to the good target.
  for (let i = 0; i < 3; i++) assert.match(await (await fetch(webUrl(y))).text(), /^good /);
  // The bad target gets a certificate the CA vouches for: checks pass again.
  bad.server.setSecureContext(await pair(local));
  await waitFor('the bad target up', () => (targetsOf(y)[1].healthy ? true : undefined));
});

test('tcp health checks of tls:// targets complete the handshake (verification included)', { timeout: 30_000 }, async () => {
  const good = await tlsEcho(local);
  const bad = await tlsEcho(foreign);
  const y = await start(
    tcpProxyConfig({
      targets: [`tls://127.0.0.1:${good.port}`, `tls://127.0.0.1:${bad.port}`],
      tls: { ca: ca.cert },
      health: { interval: '50ms', timeout: '2s', rise: 1, fall: 1 },
    }),
  );
  await waitFor('the bad target down', () => (targetsOf(y)[1].healthy ? undefined : true));
  assert.equal(targetsOf(y)[0].healthy, true);
  bad.server.setSecureContext(await pair(local));
  await waitFor('the bad target up', () => (targetsOf(y)[1].healthy ? true : undefined));
});

import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, writeFileSync, chmodSync, copyFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { request } from 'undici';
import { Agent } from 'undici';
import WebSocket from 'ws';
import { serve, type Yard } from '../src/index.ts';
import { makeLeaf, makeTestCa, type Files } from './helpers/tls-fixtures.ts';
import { run } from './helpers/net.ts';
import { killDaemon, startDaemon, type Daemon } from './helpers/daemon.ts';

// TLS on listeners, with real clients: https from files chosen by SNI, https and tls-over-tcp from
// the local CA, WebSocket over TLS, handshake failures counted without harm to anyone else, a
// client speaking plain HTTP to the TLS port closed at once, certificate files replaced while
// serving, and config problems naming the field.

const dir = mkdtempSync(join(tmpdir(), 'sy-tls-listeners-'));
const dataDir = join(dir, 'data');
const yards: Yard[] = [];
let daemon: Daemon | undefined;
let ca: Files;
let a: Files;
let wild: Files;

before(async () => {
  ca = await makeTestCa(dir);
  a = await makeLeaf(dir, ca, 'a', ['a.test']);
  wild = await makeLeaf(dir, ca, 'wild', ['*.b.test']);
});
after(async () => {
  for (const y of yards) await y.stop(100);
  await killDaemon(daemon);
});

async function yard(listeners: unknown[]): Promise<Yard> {
  const y = await serve({ listeners }, { logLevel: 'silent', dataDir, baseDir: dir });
  yards.push(y);
  return y;
}

/** The subject CN of the certificate served for `servername` (none: the default). */
function servedName(port: number, servername: string | undefined, ca: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername, ca, rejectUnauthorized: false }, () => {
      const cn = s.getPeerCertificate().subject?.CN;
      s.destroy();
      resolve(String(cn));
    });
    s.on('error', reject);
  });
}

test('https from certificate files: SNI picks exact, then wildcard, then the default; curl verifies', async () => {
  const y = await yard([
    {
      name: 'web',
      protocol: 'http',
      address: '127.0.0.1:0',
      tls: { certificates: [{ cert: 'a.crt', key: 'a.key' }, { cert: wild.cert, key: wild.key }] },
      routes: [{ handler: { type: 'respond', body: 'secure\n' } }],
    },
  ]);
  const port = y.address('web').port;
  const caPem = readFileSync(ca.cert, 'utf8');
  assert.equal(await servedName(port, 'a.test', caPem), 'a.test');
  assert.equal(await servedName(port, 'x.b.test', caPem), '*.b.test');
  assert.equal(await servedName(port, undefined, caPem), 'a.test', 'no SNI: the first certificate');
  for (const host of ['a.test', 'x.b.test']) {
    const r = await run('curl', ['-s', '--cacert', ca.cert, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, 'secure\n');
  }
  // A name the certificates do not cover fails verification in a real client.
  const wrong = await run('curl', ['-s', '--cacert', ca.cert, '--resolve', `other.test:${port}:127.0.0.1`, `https://other.test:${port}/`]);
  assert.notEqual(wrong.code, 0);
  assert.equal(y.listeners()[0].url.startsWith('https://'), true);
});

test('the local CA: https and tls over tcp verified against its root; WebSocket over TLS', async () => {
  const y = await yard([
    {
      name: 'web',
      protocol: 'http',
      address: '127.0.0.1:0',
      tls: { issuer: 'internal', names: ['app.test'] },
      routes: [
        { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
        { handler: { type: 'respond', body: 'from the local CA\n' } },
      ],
    },
    { name: 'echo', protocol: 'tcp', address: '127.0.0.1:0', tls: { issuer: 'internal' }, handler: { type: 'echo' } },
  ]);
  const root = join(dataDir, 'pki', 'local', 'root.crt');
  const rootPem = readFileSync(root, 'utf8');
  const port = y.address('web').port;
  for (const url of [`https://127.0.0.1:${port}/`, `https://localhost:${port}/`]) {
    const r = await run('curl', ['-s', '--cacert', root, url]);
    assert.equal(r.stdout, 'from the local CA\n', `${url}: ${r.stderr}`);
  }
  const named = await run('curl', ['-s', '--cacert', root, '--resolve', `app.test:${port}:127.0.0.1`, `https://app.test:${port}/`]);
  assert.equal(named.stdout, 'from the local CA\n', named.stderr);

  const echoed = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: y.address('echo').port, ca: rootPem }, () => s.end('over tls\n'));
    let got = '';
    s.on('data', (d: Buffer) => (got += d));
    s.on('end', () => resolve(got));
    s.on('error', reject);
  });
  assert.equal(echoed, 'over tls\n');

  const ws = new WebSocket(`wss://localhost:${port}/ws`, { ca: rootPem });
  const reply = await new Promise<string>((resolve, reject) => {
    ws.once('open', () => ws.send('ping over wss'));
    ws.once('message', (d: Buffer) => resolve(d.toString()));
    ws.once('error', reject);
  });
  ws.close();
  assert.equal(reply, 'ping over wss');
});

test('failed handshakes are counted and harm nobody; plain HTTP to the TLS port is closed at once', async () => {
  const y = await yard([
    { name: 'web', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: a.cert, key: a.key }] }, routes: [{ handler: { type: 'respond', body: 'ok\n' } }] },
  ]);
  const port = y.address('web').port;
  // A client that only speaks TLS 1.1: the server's minimum is 1.2.
  const old = await new Promise<string>((resolve) => {
    const s = tls.connect({ host: '127.0.0.1', port, maxVersion: 'TLSv1.1', minVersion: 'TLSv1', rejectUnauthorized: false });
    s.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? err.message));
    s.on('secureConnect', () => resolve('connected'));
  });
  assert.notEqual(old, 'connected');
  const plain = await run('curl', ['-s', '-m', '5', `http://127.0.0.1:${port}/`]);
  assert.notEqual(plain.code, 28, 'curl did not time out: the connection was closed');
  assert.notEqual(plain.code, 0);
  const r = await request(`https://127.0.0.1:${port}/`, { dispatcher: new Agent({ connect: { ca: readFileSync(ca.cert), servername: 'a.test' } }) });
  assert.equal(await r.body.text(), 'ok\n');
  let metrics = '';
  for (let i = 0; i < 50; i++) {
    metrics = await y.metrics.registry.metrics();
    if ((metrics.match(/switchyard_tls_handshake_failures_total\{listener="web",reason="[^"]+"\} \d+/g) ?? []).length > 0) break;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  const failures = [...metrics.matchAll(/switchyard_tls_handshake_failures_total\{listener="web",reason="([^"]+)"\} (\d+)/g)];
  assert.ok(failures.reduce((n, m) => n + Number(m[2]), 0) >= 2, metrics);
});

test('certificate files replaced while serving: new handshakes get the new pair, no restart', async () => {
  const live = join(dir, 'live');
  const { mkdirSync } = await import('node:fs');
  mkdirSync(live, { recursive: true });
  const next = await makeLeaf(dir, ca, 'next', ['a.test'], { cn: 'a.test (next)' });
  copyFileSync(a.cert, join(live, 'site.crt'));
  copyFileSync(a.key, join(live, 'site.key'));
  chmodSync(join(live, 'site.key'), 0o600);
  const y = await yard([
    {
      name: 'web',
      protocol: 'http',
      address: '127.0.0.1:0',
      tls: { certificates: [{ cert: join(live, 'site.crt'), key: join(live, 'site.key') }], reload: { watch: true, debounce: '50ms' } },
      routes: [{ handler: { type: 'respond', body: 'ok\n' } }],
    },
  ]);
  const port = y.address('web').port;
  const caPem = readFileSync(ca.cert, 'utf8');
  assert.equal(await servedName(port, 'a.test', caPem), 'a.test');
  writeFileSync(join(live, 'site.key'), readFileSync(next.key), { mode: 0o600 });
  writeFileSync(join(live, 'site.crt'), readFileSync(next.cert));
  let served = '';
  for (let i = 0; i < 100 && served !== 'a.test (next)'; i++) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    served = await servedName(port, 'a.test', caPem);
  }
  assert.equal(served, 'a.test (next)');
});

test('tls config problems name the field', async () => {
  const loose = join(dir, 'loose.key');
  copyFileSync(a.key, loose);
  chmodSync(loose, 0o644);
  await assert.rejects(
    serve({ listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: a.cert, key: loose }] }, routes: [{ handler: { type: 'respond' } }] }] }, { logLevel: 'silent' }),
    (err: Error) => /listeners\[0\]\.tls\.certificates\[0\]\.key/.test(err.message) && /chmod|600|readable/i.test(err.message),
  );
  await assert.rejects(
    serve({ listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: join(dir, 'missing.crt'), key: a.key }] }, routes: [{ handler: { type: 'respond' } }] }] }, { logLevel: 'silent' }),
    (err: Error) => /listeners\[0\]\.tls\.certificates\[0\]\.cert/.test(err.message),
  );
  await assert.rejects(
    serve({ listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: a.cert, key: wild.key }] }, routes: [{ handler: { type: 'respond' } }] }] }, { logLevel: 'silent' }),
    (err: Error) => /listeners\[0\]\.tls\.certificates\[0\]/.test(err.message) && /match/i.test(err.message),
  );
});

test('the banner of an https listener on the local CA shows a curl line that works', async () => {
  const file = join(dir, 'banner.yaml');
  writeFileSync(file, `listeners:\n  - name: secure\n    protocol: http\n    address: 127.0.0.1:0\n    tls: { issuer: internal }\n    routes:\n      - match: { path: /hello }\n        handler: { type: respond, body: "hello\\n" }\n`);
  daemon = await startDaemon([file], { env: { SWITCHYARD_DATA_DIR: join(dir, 'banner-data') } });
  const line = /try: (curl .*)$/m.exec(daemon.stdout())?.[1];
  assert.ok(line, daemon.stdout());
  assert.match(line, /--cacert /);
  const r = await run('bash', ['-c', line]);
  assert.equal(r.code, 0, r.stderr);
  assert.match(r.stdout, /^HTTP\/(?:1\.1|2) 200/);
  assert.match(r.stdout, /hello/);
  await killDaemon(daemon);
});

test('over TLS too, an Upgrade the route does not take is served as a plain request, pipelined request and all', async () => {
  const y = await yard([
    { name: 'web', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: a.cert, key: a.key }] }, routes: [{ match: { path: '/*' }, handler: { type: 'echo' } }] },
  ]);
  const raw = await new Promise<string>((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port: y.address('web').port, servername: 'a.test', ca: readFileSync(ca.cert) }, () => {
      s.write('GET /first HTTP/1.1\r\nHost: a.test\r\nConnection: Upgrade\r\nUpgrade: foo\r\n\r\nGET /second HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n\r\n');
    });
    let got = '';
    s.on('data', (d: Buffer) => (got += d.toString('latin1')));
    s.on('close', () => resolve(got));
    s.on('error', reject);
  });
  assert.deepEqual([...raw.matchAll(/HTTP\/1\.1 (\d{3})/g)].map((m) => m[1]), ['200', '200'], raw);
  assert.match(raw, /"url": "\/first"/);
  assert.match(raw, /"url": "\/second"/);
});

test('the local CA issues for the host names the routes serve when tls.names is not given', async () => {
  const y = await yard([
    {
      name: 'web',
      protocol: 'http',
      address: '127.0.0.1:0',
      tls: { issuer: 'internal' },
      routes: [
        { match: { host: 'shop.test' }, handler: { type: 'respond', body: 'shop\n' } },
        { match: { host: '*.apps.test' }, handler: { type: 'respond', body: 'apps\n' } },
      ],
    },
  ]);
  const port = y.address('web').port;
  const root = join(dataDir, 'pki', 'local', 'root.crt');
  for (const [host, body] of [['shop.test', 'shop\n'], ['one.apps.test', 'apps\n']]) {
    const r = await run('curl', ['-s', '--cacert', root, '--resolve', `${host}:${port}:127.0.0.1`, `https://${host}:${port}/`]);
    assert.equal(r.stdout, body, `${host}: ${r.stderr}`);
  }
});

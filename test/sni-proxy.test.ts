import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as netConnect } from 'node:net';
import tls from 'node:tls';
import { serve, parseConfig, ConfigError, type Yard } from '../src/index.ts';
import { makeLeaf, makeTestCa, type Files } from './helpers/tls-fixtures.ts';
import { run } from './helpers/net.ts';

// TLS passthrough: a tcp listener routes each connection by the server name of its ClientHello
// to a tcp-proxy upstream without terminating TLS. The backends hold the certificates: the
// client verifies the backend's own certificate through the yard.

const dir = mkdtempSync(join(tmpdir(), 'sy-sni-'));
const servers: tls.Server[] = [];
const yards: Yard[] = [];
let ca: Files;
let caPem: string;
const ports: Record<string, number> = {};

/** A TLS backend that answers every connection with its own name. */
async function backend(name: string, cert: Files): Promise<number> {
  const server = tls.createServer({ cert: readFileSync(cert.cert), key: readFileSync(cert.key) }, (s) => {
    s.on('error', () => undefined);
    s.end(`I am ${name}\n`);
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  servers.push(server);
  return (server.address() as { port: number }).port;
}

before(async () => {
  ca = await makeTestCa(dir);
  caPem = readFileSync(ca.cert, 'utf8');
  ports.a = await backend('A', await makeLeaf(dir, ca, 'a', ['a.test']));
  ports.b = await backend('B', await makeLeaf(dir, ca, 'b', ['*.b.test']));
  ports.c = await backend('C', await makeLeaf(dir, ca, 'c', ['fallback.test', 'other.test']));
});
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const s of servers) s.close();
});

async function router(handler: Record<string, unknown>): Promise<number> {
  const y = await serve(
    {
      listeners: [{ name: 'edge', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'sni-proxy', ...handler } }],
      upstreams: {
        a: { targets: [`127.0.0.1:${ports.a}`] },
        b: { targets: [`127.0.0.1:${ports.b}`] },
        c: { targets: [`127.0.0.1:${ports.c}`] },
      },
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  return y.address('edge').port;
}

/** What the backend reached through `port` for `servername` says, after verifying its certificate for that name. */
function through(port: number, servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const options: tls.ConnectionOptions = { host: '127.0.0.1', port, servername, ca: caPem };
    // Without a name the backend's certificate cannot match one: only the chain is checked.
    if (!servername) options.checkServerIdentity = () => undefined;
    const s = tls.connect(options);
    let secure = false;
    let got = '';
    s.on('secureConnect', () => (secure = true));
    s.on('data', (d: Buffer) => (got += d));
    s.on('error', () => undefined);
    s.on('close', () => (secure ? resolve(got) : reject(new Error('closed before the handshake completed'))));
  });
}

test('routes by server name, exact and wildcard, to backends that keep their own certificates', async () => {
  const port = await router({ routes: [{ names: ['a.test'], upstream: 'a' }, { names: ['*.b.test'], upstream: 'b' }], default: 'c' });
  assert.equal(await through(port, 'a.test'), 'I am A\n');
  assert.equal(await through(port, 'x.b.test'), 'I am B\n');
  assert.equal(await through(port, 'A.TEST'), 'I am A\n', 'names compare case-insensitively');
  assert.equal(await through(port, 'other.test'), 'I am C\n', 'an unknown name takes the default');
  const r = await run('curl', ['-s', '--cacert', ca.cert, '--resolve', `x.b.test:${port}:127.0.0.1`, `https://x.b.test:${port}/`]);
  // The backend speaks no HTTP, but the TLS handshake (with its certificate for *.b.test) succeeded.
  assert.notEqual(r.code, 60, 'certificate verified');
  assert.notEqual(r.code, 35, 'handshake completed');
});

test('without a default, unknown names and hellos without a name are closed; so is anything that is not TLS', async () => {
  const port = await router({ routes: [{ names: ['a.test'], upstream: 'a' }] });
  await assert.rejects(through(port, 'nobody.test'));
  await assert.rejects(through(port, undefined));
  const plain = await new Promise<string>((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port }, () => s.write('GET / HTTP/1.1\r\nHost: a.test\r\n\r\n'));
    let got = '';
    s.on('data', (d: Buffer) => (got += d));
    s.on('close', () => resolve(got));
    s.on('error', () => resolve(got));
  });
  assert.equal(plain, '', 'closed without a byte');
  assert.equal(await through(port, 'a.test'), 'I am A\n', 'and the listener still serves');
});

test('an upstream named by a route but missing from the config is a check error naming the route', () => {
  assert.throws(
    () => parseConfig({ listeners: [{ name: 'edge', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'sni-proxy', routes: [{ names: ['a.test'], upstream: 'nope' }], default: 'also-nope' } }] }),
    (err: ConfigError) =>
      err.issues.some((i) => i.path === 'listeners[0].handler.routes[0].upstream') && err.issues.some((i) => i.path === 'listeners[0].handler.default'),
  );
});

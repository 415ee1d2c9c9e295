import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import tls from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Agent, request } from 'undici';
import { serve, type Yard } from '../src/index.ts';
import { CertificateStore, clientCertificate, type ClientCertificate } from '../src/tls/index.ts';
import { echo, handshake, makeClientCert, makeLeaf, makeTestCa, openssl, startTlsEcho, type Files } from './helpers/tls-fixtures.ts';
import { run } from './helpers/net.ts';
import { recorder, type Recorder } from './security/recorder.ts';

// Client certificates (mTLS) with real clients: curl --cert/--key, undici with a client
// certificate, openssl s_client. Mode require refuses a client without a certificate or with one
// from another CA; mode request serves both with the verified flag right; routes match subject,
// fingerprint and verified; X-Forwarded-Client-Cert reaches a recording upstream in Envoy's
// format and a forged one from the client never does; the CA file is re-read on reload.

const dir = mkdtempSync(join(tmpdir(), 'sy-tls-client-auth-'));
const yards: Yard[] = [];
const recorders: Recorder[] = [];
let serverCa: Files;
let server: Files;
let clientCa: Files;
let otherCa: Files;
let alice: Files;
let bob: Files;
let mallory: Files;
let serverOnly: Files;

before(async () => {
  serverCa = await makeTestCa(dir, 'server-ca');
  server = await makeLeaf(dir, serverCa, 'server', ['localhost', '127.0.0.1']);
  clientCa = await makeTestCa(dir, 'client-ca');
  otherCa = await makeTestCa(dir, 'other-ca');
  alice = await makeClientCert(dir, clientCa, 'alice', { subj: '/O=Switchyard test/CN=alice', uris: ['spiffe://test/alice'], dns: ['alice.test'] });
  bob = await makeClientCert(dir, clientCa, 'bob', { subj: '/O=Switchyard test/CN=bob' });
  // Same subject as alice, from a CA the listener does not trust.
  // From the trusted CA, but made for servers (extendedKeyUsage serverAuth only).
  serverOnly = await makeLeaf(dir, clientCa, 'server-only', ['carol.test'], { cn: 'carol' });
  mallory = await makeClientCert(dir, otherCa, 'mallory', { subj: '/O=Switchyard test/CN=alice', uris: ['spiffe://test/alice'] });
});
after(async () => {
  for (const y of yards) await y.stop(100);
  for (const r of recorders) r.close();
});

async function yard(listeners: unknown[], upstreams: Record<string, unknown> = {}): Promise<Yard> {
  const y = await serve({ listeners, upstreams }, { logLevel: 'silent', baseDir: dir });
  yards.push(y);
  return y;
}

function tlsListener(clientAuth: unknown, routes: unknown[], extra: Record<string, unknown> = {}) {
  return { name: 'mtls', protocol: 'http', address: '127.0.0.1:0', tls: { certificates: [{ cert: 'server.crt', key: 'server.key' }], clientAuth, ...extra }, routes };
}

/** curl against 127.0.0.1:port with the server CA and, when given, a client certificate. */
function curl(port: number, path: string, client?: Files, headers: string[] = []) {
  const args = ['-s', '--cacert', serverCa.cert, '-o', '-', '-w', '\n%{http_code}'];
  if (client) args.push('--cert', client.cert, '--key', client.key);
  for (const h of headers) args.push('-H', h);
  return run('curl', [...args, `https://127.0.0.1:${port}${path}`]);
}

async function curlOk(port: number, path: string, client?: Files, headers: string[] = []): Promise<{ status: number; body: string }> {
  const r = await curl(port, path, client, headers);
  assert.equal(r.code, 0, `curl failed: ${r.stderr}`);
  const nl = r.stdout.lastIndexOf('\n');
  return { status: Number(r.stdout.slice(nl + 1)), body: r.stdout.slice(0, nl) };
}

/** The SHA-256 fingerprint openssl prints (`AB:CD:...`). */
async function fingerprintOf(cert: string): Promise<string> {
  const { stdout } = await openssl(['x509', '-in', cert, '-noout', '-fingerprint', '-sha256']);
  return stdout.trim().split('=')[1];
}

function undiciAgent(client?: Files, maxVersion?: 'TLSv1.2'): Agent {
  return new Agent({
    connect: { ca: readFileSync(serverCa.cert, 'utf8'), ...(client ? { cert: readFileSync(client.cert), key: readFileSync(client.key) } : {}), ...(maxVersion ? { maxVersion } : {}) },
  });
}

test('mode require: curl, undici and s_client with a client certificate from the CA are served; without one, or with one from another CA, refused', async () => {
  const y = await yard([tlsListener({ ca: 'client-ca.crt', mode: 'require' }, [{ handler: { type: 'respond', body: 'hello mtls' } }])]);
  const port = y.address('mtls').port;

  assert.deepEqual(await curlOk(port, '/', alice), { status: 200, body: 'hello mtls' });
  const none = await curl(port, '/');
  assert.notEqual(none.code, 0, 'curl without a client certificate must fail');
  const other = await curl(port, '/', mallory);
  assert.notEqual(other.code, 0, 'curl with a certificate from another CA must fail');
  const wrongUse = await curl(port, '/', serverOnly);
  assert.notEqual(wrongUse.code, 0, 'curl with a server-only certificate of the CA must fail');

  const good = undiciAgent(alice);
  const r = await request(`https://localhost:${port}/`, { dispatcher: good });
  assert.equal(r.statusCode, 200);
  assert.equal(await r.body.text(), 'hello mtls');
  await good.close();
  for (const client of [undefined, mallory]) {
    // TLS 1.2: the server's refusal ends the handshake itself (with 1.3 it comes as an alert after it).
    for (const maxVersion of [undefined, 'TLSv1.2'] as const) {
      const agent = undiciAgent(client, maxVersion);
      await assert.rejects(request(`https://localhost:${port}/`, { dispatcher: agent }).then((res) => res.body.text()), `undici ${client ? 'other CA' : 'no cert'} ${maxVersion ?? 'TLSv1.3'}`);
      await agent.close();
    }
  }

  // TLS 1.2 handshakes with openssl: refused without a certificate, completed with one.
  const input = 'GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n';
  const base = ['s_client', '-connect', `127.0.0.1:${port}`, '-CAfile', serverCa.cert, '-tls1_2', '-ign_eof'];
  const refused = await run('openssl', base, { input });
  assert.notEqual(refused.code, 0, refused.stdout);
  assert.doesNotMatch(refused.stdout, /hello mtls/);
  const served = await run('openssl', [...base, '-cert', alice.cert, '-key', alice.key], { input });
  assert.match(served.stdout, /HTTP\/1\.1 200/);
  assert.match(served.stdout, /hello mtls/);
});

/** GET / over a fresh TLS connection with a client certificate (and a session to resume): the body and whether it resumed. */
function getOver(port: number, client: Files, session?: Buffer): Promise<{ body: string; reused: boolean; session?: Buffer }> {
  return new Promise((resolve, reject) => {
    let ticket: Buffer | undefined;
    let data = '';
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', ca: readFileSync(serverCa.cert), cert: readFileSync(client.cert), key: readFileSync(client.key), session });
    s.on('session', (t: Buffer) => (ticket = t));
    s.once('secureConnect', () => s.write('GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n'));
    s.on('data', (d: Buffer) => (data += d.toString()));
    s.on('end', () => resolve({ body: data.slice(data.indexOf('\r\n\r\n') + 4), reused: s.isSessionReused(), session: ticket }));
    s.on('error', reject);
  });
}

test('mode request: with and without a certificate served; the verified flag, subject, SANs, fingerprint and serial as the accessor reads them', async () => {
  const store = await CertificateStore.create({ certificates: [server], clientAuth: { ca: [clientCa.cert], mode: 'request' }, watch: false });
  const srv = createHttpsServer(store.serverOptions(), (req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify(clientCertificate(req.socket) ?? null));
  });
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as { port: number }).port;
  try {
    const none = await curlOk(port, '/');
    assert.equal(none.body, 'null');

    const a = JSON.parse((await curlOk(port, '/', alice)).body) as ClientCertificate;
    assert.equal(a.verified, true);
    assert.equal(a.error, undefined);
    assert.equal(a.subject, 'CN=alice,O=Switchyard test');
    assert.equal(a.issuer, 'CN=Switchyard test CA client-ca');
    assert.deepEqual(a.uris, ['spiffe://test/alice']);
    assert.deepEqual(a.dns, ['alice.test']);
    assert.equal(a.fingerprint256, (await fingerprintOf(alice.cert)).replaceAll(':', '').toLowerCase());
    const serial = (await openssl(['x509', '-in', alice.cert, '-noout', '-serial'])).stdout.trim().split('=')[1];
    assert.equal(a.serialNumber.toUpperCase(), serial.toUpperCase());

    const m = JSON.parse((await curlOk(port, '/', mallory)).body) as ClientCertificate;
    assert.equal(m.verified, false, 'a certificate from another CA is served, unverified');
    assert.equal(typeof m.error, 'string');
    assert.equal(m.subject, 'CN=alice,O=Switchyard test');

    // A resumed session (a TLS 1.3 ticket) keeps the identity of its full handshake.
    const first = await getOver(port, alice);
    assert.equal(first.reused, false);
    assert.ok(first.session, 'a session ticket was received');
    const again = await getOver(port, alice, first.session);
    assert.equal(again.reused, true, 'the session was resumed');
    assert.equal((JSON.parse(again.body) as ClientCertificate).verified, true);
    assert.equal((JSON.parse(again.body) as ClientCertificate).subject, 'CN=alice,O=Switchyard test');
  } finally {
    store.close();
    srv.closeAllConnections();
    await new Promise((r) => srv.close(r));
  }
});

test('routes match the client certificate: subject and fingerprint (verified only), verified true/false; others get the 403 route', async () => {
  const bobFp = await fingerprintOf(bob.cert);
  const y = await yard([
    tlsListener({ ca: 'client-ca.crt', mode: 'request' }, [
      { match: { path: '/admin', clientCert: { subject: 'CN=alice,O=Switchyard test' } }, handler: { type: 'respond', body: 'admin' } },
      { match: { path: '/admin' }, handler: { type: 'respond', status: 403, body: 'forbidden' } },
      { match: { path: '/fp', clientCert: { fingerprint: bobFp } }, handler: { type: 'respond', body: 'bob by fingerprint' } },
      { match: { path: '/fp', clientCert: { uri: 'spiffe://test/alice' } }, handler: { type: 'respond', body: 'alice by uri' } },
      { match: { path: '/fp' }, handler: { type: 'respond', status: 403, body: 'forbidden' } },
      { match: { clientCert: { verified: true } }, handler: { type: 'respond', body: 'verified' } },
      { match: { clientCert: { verified: false } }, handler: { type: 'respond', body: 'anonymous' } },
    ]),
  ]);
  const port = y.address('mtls').port;
  assert.deepEqual(await curlOk(port, '/admin', alice), { status: 200, body: 'admin' });
  assert.deepEqual(await curlOk(port, '/admin', bob), { status: 403, body: 'forbidden' });
  assert.deepEqual(await curlOk(port, '/admin'), { status: 403, body: 'forbidden' });
  assert.deepEqual(await curlOk(port, '/admin', mallory), { status: 403, body: 'forbidden' }, 'the right subject from an untrusted CA');
  assert.deepEqual(await curlOk(port, '/fp', bob), { status: 200, body: 'bob by fingerprint' });
  assert.deepEqual(await curlOk(port, '/fp', alice), { status: 200, body: 'alice by uri' });
  assert.deepEqual(await curlOk(port, '/fp', mallory), { status: 403, body: 'forbidden' });
  assert.deepEqual(await curlOk(port, '/other', bob), { status: 200, body: 'verified' });
  assert.deepEqual(await curlOk(port, '/other'), { status: 200, body: 'anonymous' });
  assert.deepEqual(await curlOk(port, '/other', mallory), { status: 200, body: 'anonymous' });
});

test('X-Forwarded-Client-Cert upstream: Envoy format with sanitize-set, a forged one removed by default, forward/append-forward only behind a verified certificate', async () => {
  const rec = await recorder();
  recorders.push(rec);
  const proxy = (path: string, forwardClientCert?: string) => ({ match: { path }, handler: { type: 'proxy', upstream: 'rec', ...(forwardClientCert ? { forwardClientCert } : {}) } });
  const y = await yard(
    [tlsListener({ ca: 'client-ca.crt', mode: 'request' }, [proxy('/default'), proxy('/set', 'sanitize-set'), proxy('/forward', 'forward'), proxy('/append', 'append-forward')])],
    { rec: { targets: [rec.url] } },
  );
  const port = y.address('mtls').port;
  const forged = 'Hash=0000;Subject="CN=admin"';
  const xfccOf = async (path: string, client?: Files, send = true): Promise<string | string[] | undefined> => {
    const before = rec.requests.length;
    const r = await curlOk(port, path, client, send ? [`X-Forwarded-Client-Cert: ${forged}`] : []);
    assert.equal(r.status, 200, r.body);
    assert.equal(rec.requests.length, before + 1);
    return rec.requests[before].headers['x-forwarded-client-cert'];
  };
  const hash = (await fingerprintOf(alice.cert)).replaceAll(':', '').toLowerCase();
  const aliceXfcc = `Hash=${hash};Subject="CN=alice,O=Switchyard test";URI=spiffe://test/alice;DNS=alice.test`;
  const bobHash = (await fingerprintOf(bob.cert)).replaceAll(':', '').toLowerCase();

  // Default (sanitize): whatever the client sends, nothing reaches the upstream.
  assert.equal(await xfccOf('/default'), undefined);
  assert.equal(await xfccOf('/default', alice), undefined);
  // sanitize-set: ours for a verified certificate, the forged one gone.
  assert.equal(await xfccOf('/set', alice), aliceXfcc);
  assert.equal(await xfccOf('/set', bob, false), `Hash=${bobHash};Subject="CN=bob,O=Switchyard test"`);
  assert.equal(await xfccOf('/set'), undefined, 'no certificate: the forged header is removed, none added');
  assert.equal(await xfccOf('/set', mallory), undefined, 'an unverified certificate is never described upstream');
  // forward / append-forward: the client's is trusted only from a verified client.
  assert.equal(await xfccOf('/forward', alice), forged);
  assert.equal(await xfccOf('/forward'), undefined);
  assert.equal(await xfccOf('/forward', mallory), undefined);
  assert.equal(await xfccOf('/append', alice), `${forged},${aliceXfcc}`);
  assert.equal(await xfccOf('/append', alice, false), aliceXfcc);
  assert.equal(await xfccOf('/append'), undefined);
  // Exactly one XFCC header line went upstream for each request that had one.
  const lines = rec.bytes().split('\r\n').filter((l) => /^x-forwarded-client-cert:/i.test(l));
  assert.equal(lines.length, 5);
});

test('the clientAuth CA file is re-read on reload: a client of the new CA is accepted, of the old one refused', async () => {
  const caFile = join(dir, 'reload-ca.crt');
  copyFileSync(otherCa.cert, caFile);
  const events: string[] = [];
  const store = await CertificateStore.create({
    certificates: [server],
    clientAuth: { ca: [caFile], mode: 'require' },
    maxVersion: 'TLSv1.2',
    watch: false,
    onEvent: (e) => events.push(e.type),
  });
  const srv = await startTlsEcho(store);
  try {
    const m = await handshake(srv.port, 'localhost', { cert: readFileSync(mallory.cert), key: readFileSync(mallory.key) });
    assert.equal(await echo(m.socket, 'mallory'), 'mallory');
    m.socket.destroy();
    await assert.rejects(handshake(srv.port, 'localhost', { cert: readFileSync(bob.cert), key: readFileSync(bob.key) }));

    copyFileSync(clientCa.cert, caFile);
    const result = await store.reload();
    assert.equal(result.failed.length, 0);
    const b = await handshake(srv.port, 'localhost', { cert: readFileSync(bob.cert), key: readFileSync(bob.key) });
    assert.equal(await echo(b.socket, 'bob'), 'bob');
    b.socket.destroy();
    // Also without SNI (the server's default context).
    const b2 = await handshake(srv.port, undefined, { cert: readFileSync(bob.cert), key: readFileSync(bob.key) });
    b2.socket.destroy();
    await assert.rejects(handshake(srv.port, 'localhost', { cert: readFileSync(mallory.cert), key: readFileSync(mallory.key) }));
    await assert.rejects(handshake(srv.port, undefined, { cert: readFileSync(mallory.cert), key: readFileSync(mallory.key) }));

    // A broken CA file keeps the CAs in force and is reported.
    copyFileSync(server.key, caFile);
    const bad = await store.reload();
    assert.equal(bad.failed.length, 1);
    assert.equal(bad.failed[0].field, 'ca');
    assert.ok(events.includes('reload-failed'));
    const b3 = await handshake(srv.port, 'localhost', { cert: readFileSync(bob.cert), key: readFileSync(bob.key) });
    b3.socket.destroy();
  } finally {
    await srv.stop();
  }
});

test('config errors name the field: a missing CA file, a non-PEM one, identity matches with verified: false', async () => {
  await assert.rejects(yard([tlsListener({ ca: 'nope.crt' }, [{ handler: { type: 'respond' } }])]), (err: Error) => {
    assert.match(err.message, /listeners\[0\]\.tls\.clientAuth\.ca/);
    assert.match(err.message, /nope\.crt/);
    return true;
  });
  await assert.rejects(yard([tlsListener({ ca: 'server.key' }, [{ handler: { type: 'respond' } }])]), /listeners\[0\]\.tls\.clientAuth\.ca.*no PEM certificate/);
  await assert.rejects(yard([tlsListener({ ca: 'client-ca.crt', mode: 'sometimes' }, [{ handler: { type: 'respond' } }])]), /clientAuth\.mode/);
  await assert.rejects(
    yard([tlsListener({ ca: 'client-ca.crt' }, [{ match: { clientCert: { subject: 'CN=a', verified: false } }, handler: { type: 'respond' } }])]),
    /routes\[0\]\.match\.clientCert\.verified/,
  );
  await assert.rejects(
    yard([tlsListener({ ca: 'client-ca.crt' }, [{ match: { clientCert: { fingerprint: 'abc' } }, handler: { type: 'respond' } }])]),
    /clientCert\.fingerprint/,
  );
});

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import { CertificateStore, createCertificateStore, InternalCA, leafNames, tlsConfigSchema, TlsConfigError, type TlsEvent } from '../src/tls/index.ts';
import { echo, handshake, openssl, servedSerial, startTlsEcho, waitFor } from './helpers/tls-fixtures.ts';
import { runCli } from './helpers/daemon.ts';

// The local development CA: its files and modes, a root made once and reused, leaves that
// openssl verifies against the root, served by a store to curl/openssl/Node, renewed before they
// expire (by a moved clock, and by the store's own timer with a short lifetime) without dropping
// a connection; and `switchyard ca`.

const execFileP = promisify(execFile);

let base: string;
before(async () => {
  base = await mkdtemp(join(tmpdir(), 'switchyard-ca-'));
});
after(async () => {
  await rm(base, { recursive: true, force: true });
});

let n = 0;
const freshDir = () => join(base, `data-${++n}`);
const mode = async (p: string) => (await stat(p)).mode & 0o777;

/** The leaf file holds the leaf and then the intermediate; openssl verifies it up to the root. */
async function opensslVerify(ca: InternalCA, certFile: string, atTime?: number): Promise<string> {
  const args = ['verify', '-CAfile', ca.rootCertFile, '-untrusted', certFile, '-purpose', 'sslserver'];
  if (atTime !== undefined) args.push('-attime', String(Math.floor(atTime / 1000)));
  const { stdout } = await openssl([...args, certFile]);
  return stdout;
}

describe('the CA on disk', () => {
  test('root and intermediate are made once: EC P-256, folders 0700, files 0600; a second open reuses them', async () => {
    const dataDir = freshDir();
    const ca = await InternalCA.open({ dataDir });
    assert.equal(ca.created, true);
    const dir = join(dataDir, 'pki', 'local');
    assert.equal(ca.rootCertFile, join(dir, 'root.crt'));
    for (const d of [dataDir, join(dataDir, 'pki'), dir, join(dir, 'leaves')]) assert.equal(await mode(d), 0o700, d);
    for (const f of ['root.crt', 'root.key', 'intermediate.crt', 'intermediate.key']) assert.equal(await mode(join(dir, f)), 0o600, f);

    const { stdout: text } = await openssl(['x509', '-in', ca.rootCertFile, '-noout', '-text']);
    assert.match(text, /CA:TRUE/);
    assert.match(text, /Certificate Sign/);
    assert.match(text, /prime256v1|P-256/);
    const { stdout: inter } = await openssl(['verify', '-CAfile', ca.rootCertFile, join(dir, 'intermediate.crt')]);
    assert.match(inter, /: OK/);

    const rootPem = await readFile(ca.rootCertFile, 'utf8');
    const again = await InternalCA.open({ dataDir });
    assert.equal(again.created, false);
    assert.equal(again.rootCertPem, rootPem);
    assert.equal(await readFile(again.rootCertFile, 'utf8'), rootPem);
  });

  test('two processes starting at once end with one root', async () => {
    const dataDir = freshDir();
    const [a, b] = await Promise.all([InternalCA.open({ dataDir }), InternalCA.open({ dataDir })]);
    assert.equal(a.rootCertPem, b.rootCertPem);
    assert.equal([a.created, b.created].filter(Boolean).length, 1);
    assert.deepEqual((await readdir(join(dataDir, 'pki'))).sort(), ['local']);
  });

  test('a looser data folder is tightened to 0700; a root key readable by others is refused', async () => {
    const dataDir = freshDir();
    const ca = await InternalCA.open({ dataDir });
    await (await import('node:fs/promises')).chmod(dataDir, 0o755);
    await (await import('node:fs/promises')).chmod(join(ca.dir, 'root.key'), 0o644);
    const err = await InternalCA.open({ dataDir }).then(
      () => assert.fail('opened'),
      (e: unknown) => e as TlsConfigError,
    );
    assert.equal(await mode(dataDir), 0o700);
    assert.equal(err.code, 'SWITCHYARD_TLS_KEY_PERMISSIONS');
    assert.equal(err.file, join(ca.dir, 'root.key'));
  });
});

describe('leaves', () => {
  let ca: InternalCA;
  before(async () => {
    ca = await InternalCA.open({ dataDir: freshDir() });
  });

  test('a leaf for the names asked, plus localhost and loopback, verifies against the root with openssl', async () => {
    const leaf = await ca.leaf(['app.test', '*.app.test']);
    assert.deepEqual([...leaf.names].sort(), ['*.app.test', '127.0.0.1', '::1', 'app.test', 'localhost']);
    assert.match(await opensslVerify(ca, leaf.certFile!), /: OK/);
    assert.equal(await mode(leaf.certFile!), 0o600);
    assert.equal(await mode(leaf.keyFile!), 0o600);
    const life = leaf.notAfter.getTime() - leaf.notBefore.getTime();
    assert.ok(life <= 24 * 3_600_000 + 120_000 && life >= 24 * 3_600_000, `about 24 h, got ${life} ms`);
    const { stdout } = await openssl(['x509', '-in', leaf.certFile!, '-noout', '-text']);
    assert.match(stdout, /CA:FALSE/);
    assert.match(stdout, /TLS Web Server Authentication/);
  });

  test('the same names get the cached leaf, from memory and from disk in a new process', async () => {
    const a = await ca.leaf(['cache.test']);
    const b = await ca.leaf(['CACHE.test.', 'localhost']);
    assert.equal(b.leaf.serialNumber, a.leaf.serialNumber);
    const reopened = await InternalCA.open({ dataDir: ca.dataDir });
    assert.equal((await reopened.leaf(['cache.test'])).leaf.serialNumber, a.leaf.serialNumber);
    assert.notEqual((await ca.leaf(['other.test'])).leaf.serialNumber, a.leaf.serialNumber);
  });

  test('what is not a host name is refused', () => {
    for (const bad of ['has space.test', 'a..b', '*.*.test', 'x/y', '']) {
      assert.throws(() => leafNames([bad]), (e: unknown) => e instanceof TlsConfigError && e.code === 'SWITCHYARD_TLS_CA', bad);
    }
    assert.throws(() => leafNames(Array.from({ length: 101 }, (_, i) => `n${i}.test`)), /at most 100/);
  });

  test('leaves are reissued at 2/3 of their life; the intermediate is replaced at 2/3 of its own', async () => {
    let now = Date.now();
    const clocked = await InternalCA.open({ dataDir: freshDir(), now: () => now });
    const first = await clocked.leaf(['clock.test']);
    now += 15 * 3_600_000;
    assert.equal((await clocked.leaf(['clock.test'])).leaf.serialNumber, first.leaf.serialNumber, 'not yet at 2/3 of 24 h');
    now += 2 * 3_600_000;
    const second = await clocked.leaf(['clock.test']);
    assert.notEqual(second.leaf.serialNumber, first.leaf.serialNumber, 'past 2/3 of 24 h');
    assert.match(await opensslVerify(clocked, second.certFile!, now), /: OK/);

    const interBefore = new X509Certificate(await readFile(join(clocked.dir, 'intermediate.crt'))).serialNumber;
    now += 5 * 24 * 3_600_000; // past 2/3 of the intermediate's 7 days
    const third = await clocked.leaf(['clock.test']);
    const interAfter = new X509Certificate(await readFile(join(clocked.dir, 'intermediate.crt'))).serialNumber;
    assert.notEqual(interAfter, interBefore);
    assert.equal(third.chain[1].serialNumber, interAfter);
    assert.match(await opensslVerify(clocked, third.certFile!, now), /: OK/);
  });
});

describe('served by a store', () => {
  test('curl, openssl s_client and Node trust the leaf through the root; 127.0.0.1 without SNI too', async () => {
    const dataDir = freshDir();
    const config = tlsConfigSchema.parse({ issuer: 'internal', names: ['app.test'], reload: { watch: false } });
    const store = await createCertificateStore(config, { dataDir, alpn: ['http/1.1'] });
    const ca = await InternalCA.open({ dataDir });
    const https = createHttpsServer(store.serverOptions(), (req, res) => res.end(`hi ${req.headers.host}\n`));
    store.attach(https);
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    const port = (https.address() as { port: number }).port;
    try {
      const { stdout } = await execFileP(
        'curl',
        ['-sS', '--max-time', '10', '--cacert', ca.rootCertFile, '--resolve', `app.test:${port}:127.0.0.1`, `https://app.test:${port}/`],
        { timeout: 20_000 },
      );
      assert.equal(stdout, `hi app.test:${port}\n`);
      const { stdout: ip } = await execFileP('curl', ['-sS', '--max-time', '10', '--cacert', ca.rootCertFile, `https://127.0.0.1:${port}/`], { timeout: 20_000 });
      assert.equal(ip, `hi 127.0.0.1:${port}\n`);
      const { stdout: s } = await openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'app.test', '-alpn', 'http/1.1', '-CAfile', ca.rootCertFile, '-verify_return_error'], { input: '' });
      assert.match(s, /Verify return code: 0 \(ok\)/);
      const h = await handshake(port, 'localhost', { ca: ca.rootCertPem, rejectUnauthorized: true });
      h.socket.destroy();
      assert.equal(h.authorized, true);
      // Without the root the same client refuses: the trust comes from it, not from luck.
      await assert.rejects(handshake(port, 'localhost', { rejectUnauthorized: true }), /unable to (get|verify)|self.signed|UNABLE_TO/i);
    } finally {
      store.close();
      https.closeAllConnections();
      await new Promise((r) => https.close(r));
    }
  });

  test('renewal by the clock: new handshakes get the new leaf, an open connection keeps working', async () => {
    let now = Date.now();
    const ca = await InternalCA.open({ dataDir: freshDir(), now: () => now });
    const events: TlsEvent[] = [];
    const store = await CertificateStore.create({ internal: { ca, names: ['renew.test'] }, now: () => now, onEvent: (e) => events.push(e) });
    const { port, stop } = await startTlsEcho(store);
    try {
      const open = await handshake(port, 'renew.test');
      const oldSerial = open.cert.serialNumber;
      now += 3_600_000;
      assert.equal(await store.renewIfDue(), false);
      assert.equal(await servedSerial(port, 'renew.test'), oldSerial);
      now += 16 * 3_600_000;
      assert.equal(await store.renewIfDue(), true);
      const renewed = events.find((e) => e.type === 'renewed');
      assert.ok(renewed && renewed.type === 'renewed');
      assert.notEqual(renewed.certificate.serialNumber, oldSerial);
      assert.equal(await servedSerial(port, 'renew.test'), renewed.certificate.serialNumber);
      assert.equal(await servedSerial(port, undefined), renewed.certificate.serialNumber, 'the default context too');
      assert.equal(await echo(open.socket, 'still here'), 'still here');
      open.socket.destroy();
    } finally {
      await stop();
    }
  });

  test('renewal by the store\'s own timer (a 3 s leaf is renewed after 2 s)', async () => {
    const ca = await InternalCA.open({ dataDir: freshDir(), leafLifetimeMs: 3000 });
    const events: TlsEvent[] = [];
    const store = await CertificateStore.create({ internal: { ca, names: ['timer.test'] }, onEvent: (e) => events.push(e) });
    const { port, stop } = await startTlsEcho(store);
    try {
      const before = await servedSerial(port, 'timer.test');
      const renewed = await waitFor('a renewed event', () => events.find((e) => e.type === 'renewed'), 20_000);
      assert.ok(renewed.type === 'renewed');
      assert.notEqual(renewed.certificate.serialNumber, before);
      assert.equal(await servedSerial(port, 'timer.test'), renewed.certificate.serialNumber);
    } finally {
      await stop();
    }
  });
});

describe('switchyard ca', () => {
  test('creates the CA and tells where the root is and how to trust it; a second run reuses it', async () => {
    const dataDir = freshDir();
    const first = await runCli(['ca', '--data-dir', dataDir]);
    assert.equal(first.code, 0, first.stderr);
    const root = join(dataDir, 'pki', 'local', 'root.crt');
    assert.match(first.stdout, /Created the local CA/);
    assert.ok(first.stdout.includes(`root certificate: ${root}`));
    assert.ok(first.stdout.includes(`curl --cacert ${root}`));
    assert.ok(first.stdout.includes(`NODE_EXTRA_CA_CERTS=${root}`));
    assert.match(first.stdout, /update-ca-certificates/);
    assert.match(first.stdout, /certutil -d sql:\$HOME\/\.pki\/nssdb -A -t C,,/);
    assert.equal(await mode(join(dataDir, 'pki', 'local', 'root.key')), 0o600);

    const second = await runCli(['ca', '--data-dir', dataDir]);
    assert.equal(second.code, 0, second.stderr);
    assert.doesNotMatch(second.stdout, /Created/);
    const pem = await runCli(['ca', '--pem', '--data-dir', dataDir]);
    assert.equal(pem.code, 0, pem.stderr);
    assert.equal(pem.stdout, await readFile(root, 'utf8'));
  });

  test('the default folder follows XDG_DATA_HOME (SWITCHYARD_DATA_DIR unset)', async () => {
    const xdg = freshDir();
    const env = { XDG_DATA_HOME: xdg, SWITCHYARD_DATA_DIR: '' };
    const r = await runCli(['ca', '--pem'], { env });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, await readFile(join(xdg, 'switchyard', 'pki', 'local', 'root.crt'), 'utf8'));
  });

  test('an unusable data folder is an error with exit 1', async () => {
    const file = join(base, 'a-file');
    await writeFile(file, 'x');
    const r = await runCli(['ca', '--data-dir', join(file, 'sub')]);
    assert.equal(r.code, 1);
    assert.match(r.stderr, /switchyard: cannot use .* as the CA's data folder/);
  });
});

import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { chmod, copyFile, mkdir, mkdtemp, readFile, rename, rm, writeFile } from 'node:fs/promises';
import { createServer as createHttpsServer } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { X509Certificate } from 'node:crypto';
import { promisify } from 'node:util';
import {
  CertificateStore,
  createCertificateStore,
  loadKeyPair,
  nameMatches,
  tlsConfigSchema,
  tlsErrorPath,
  TlsConfigError,
  type TlsEvent,
} from '../src/tls/index.ts';
import { echo, handshake, makeLeaf, makeTestCa, openssl, servedSerial, startTlsEcho, waitFor, type Files } from './helpers/tls-fixtures.ts';

// The certificate layer with certificates openssl makes here: a store's SNI choice seen by real
// clients (Node tls, curl, openssl s_client), every way a pair is refused, the protocol defaults,
// session tickets, and reload on file change with an open connection kept.

const execFileP = promisify(execFile);

let dir: string;
let ca: Files;
let dflt: Files;
let exactA: Files;
let wild: Files;
let exactInWild: Files;
const serialOf = async (f: Files) => new X509Certificate(await readFile(f.cert)).serialNumber;

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-tls-'));
  ca = await makeTestCa(dir);
  dflt = await makeLeaf(dir, ca, 'default', ['default.example.test']);
  exactA = await makeLeaf(dir, ca, 'a', ['a.example.test']);
  wild = await makeLeaf(dir, ca, 'wild', ['*.wild.example.test']);
  exactInWild = await makeLeaf(dir, ca, 'exact-in-wild', ['exact.wild.example.test']);
});

after(async () => {
  await rm(dir, { recursive: true, force: true });
});

test('wildcards cover one label, without case or trailing dot', () => {
  assert.equal(nameMatches('*.example.com', 'a.example.com'), true);
  assert.equal(nameMatches('*.example.com', 'A.Example.COM.'), true);
  assert.equal(nameMatches('*.example.com', 'a.b.example.com'), false);
  assert.equal(nameMatches('*.example.com', 'example.com'), false);
  assert.equal(nameMatches('a.example.com', 'b.example.com'), false);
});

describe('SNI selection seen by real clients', () => {
  let store: CertificateStore;
  let port: number;
  let stop: () => Promise<void>;
  let https: ReturnType<typeof createHttpsServer>;
  let httpsPort: number;
  const serial: Record<string, string> = {};

  before(async () => {
    // The exact name is listed after the wildcard covering it, so "exact first" is the store's
    // doing, not the list order.
    store = await CertificateStore.create({
      certificates: [dflt, exactA, wild, exactInWild],
      alpn: ['http/1.1'],
      watch: false,
    });
    ({ port, stop } = await startTlsEcho(store));
    https = createHttpsServer(store.serverOptions(), (req, res) => res.end(`hello ${req.headers.host}\n`));
    store.attach(https);
    await new Promise<void>((r) => https.listen(0, '127.0.0.1', r));
    httpsPort = (https.address() as { port: number }).port;
    for (const [k, f] of Object.entries({ dflt, exactA, wild, exactInWild })) serial[k] = await serialOf(f);
  });

  after(async () => {
    await stop();
    https.closeAllConnections();
    await new Promise((r) => https.close(r));
  });

  const cases: [string, string | undefined, keyof typeof serial | string][] = [
    ['exact name', 'a.example.test', 'exactA'],
    ['exact name in another case, with a trailing dot', 'A.Example.Test.', 'exactA'],
    ['one label under a wildcard', 'x.wild.example.test', 'wild'],
    ['an exact name before the wildcard covering it', 'exact.wild.example.test', 'exactInWild'],
    ['two labels under a wildcard: the default', 'a.b.wild.example.test', 'dflt'],
    ['the wildcard\'s own parent: the default', 'wild.example.test', 'dflt'],
    ['an unknown name: the default', 'unknown.example.test', 'dflt'],
    ['no SNI: the default', undefined, 'dflt'],
  ];
  for (const [what, servername, expected] of cases) {
    test(`${what} (${servername ?? 'no SNI'})`, async () => {
      assert.ok(serial[expected], `fixture ${expected}`);
      assert.equal(await servedSerial(port, servername), serial[expected]);
      assert.equal(store.select(servername).leaf.serialNumber, serial[expected]);
    });
  }

  test('a client verifying against the test CA accepts each certificate for its name', async () => {
    for (const name of ['a.example.test', 'x.wild.example.test', 'exact.wild.example.test', 'default.example.test']) {
      const h = await handshake(port, name, { ca: await readFile(ca.cert), rejectUnauthorized: true });
      h.socket.destroy();
      assert.equal(h.authorized, true, name);
    }
  });

  test('curl with --cacert and --resolve gets each name\'s certificate', async () => {
    for (const name of ['a.example.test', 'y.wild.example.test']) {
      const { stdout } = await execFileP(
        'curl',
        ['-sS', '--max-time', '10', '--cacert', ca.cert, '--resolve', `${name}:${httpsPort}:127.0.0.1`, `https://${name}:${httpsPort}/`],
        { timeout: 20_000 },
      );
      assert.equal(stdout, `hello ${name}:${httpsPort}\n`);
    }
    // Without the name in the certificate curl refuses: the default does not cover it.
    await assert.rejects(
      execFileP('curl', ['-sS', '--max-time', '10', '--cacert', ca.cert, '--resolve', `a.b.wild.example.test:${httpsPort}:127.0.0.1`, `https://a.b.wild.example.test:${httpsPort}/`], { timeout: 20_000 }),
      /SSL|certificate/i,
    );
  });

  test('openssl s_client: SNI picks the certificate, ALPN agrees on http/1.1, TLS 1.3', async () => {
    const { stdout } = await openssl(
      ['s_client', '-connect', `127.0.0.1:${port}`, '-servername', 'x.wild.example.test', '-alpn', 'http/1.1', '-CAfile', ca.cert, '-verify_return_error'],
      { input: '' },
    );
    assert.match(stdout, /subject=CN = \*\.wild\.example\.test/);
    assert.match(stdout, /ALPN protocol: http\/1\.1/);
    assert.match(stdout, /Verify return code: 0 \(ok\)/);
    assert.match(stdout, /TLSv1\.3/);
  });

  test('Node client: ALPN from the caller\'s list', async () => {
    const h = await handshake(port, 'a.example.test', { ALPNProtocols: ['h2', 'http/1.1'] });
    h.socket.destroy();
    assert.equal(h.alpn, 'http/1.1');
  });
});

describe('protocol defaults', () => {
  test('TLS 1.2 accepted by default, TLS 1.1 refused at the server', async () => {
    const store = await CertificateStore.create({ certificates: [dflt], watch: false });
    const { port, clientErrors, stop } = await startTlsEcho(store);
    try {
      const h = await handshake(port, undefined, { maxVersion: 'TLSv1.2' });
      h.socket.destroy();
      assert.equal(h.protocol, 'TLSv1.2');
      // The client is told to allow TLS 1.0/1.1 (SECLEVEL=0) so that the refusal is the server's.
      await assert.rejects(
        openssl(['s_client', '-connect', `127.0.0.1:${port}`, '-tls1_1', '-cipher', 'DEFAULT:@SECLEVEL=0'], { input: '' }),
      );
      await waitFor('the server\'s tlsClientError', () => (clientErrors.length > 0 ? true : undefined));
      assert.match(String((clientErrors[0] as NodeJS.ErrnoException).code ?? clientErrors[0].message), /UNSUPPORTED_PROTOCOL|VERSION/i);
    } finally {
      await stop();
    }
  });

  test('minVersion TLSv1.3 refuses a TLS 1.2 client', async () => {
    const store = await CertificateStore.create({ certificates: [dflt], minVersion: 'TLSv1.3', watch: false });
    const { port, stop } = await startTlsEcho(store);
    try {
      await assert.rejects(handshake(port, undefined, { maxVersion: 'TLSv1.2' }));
      const h = await handshake(port, undefined);
      h.socket.destroy();
      assert.equal(h.protocol, 'TLSv1.3');
    } finally {
      await stop();
    }
  });

  test('sessions resume with a ticket until the ticket key rotates, for SNI names too; rotation is reported', async () => {
    const events: TlsEvent[] = [];
    const store = await CertificateStore.create({ certificates: [dflt, exactA], watch: false, onEvent: (e) => events.push(e) });
    const { port, stop } = await startTlsEcho(store);
    try {
      for (const name of [undefined, 'a.example.test']) {
        const ticket = async (session?: Buffer) => {
          const h = await handshake(port, name, { session });
          // TLS 1.3 tickets arrive after the handshake; a round trip makes sure they are in. A
          // resumed session gets no new ticket from OpenSSL, so the one it came with is kept.
          await echo(h.socket, 'x');
          const got = h.reused ? session! : await waitFor('a session ticket', () => h.sessions.at(-1));
          h.socket.destroy();
          return { reused: h.reused, session: got };
        };
        const first = await ticket();
        assert.equal(first.reused, false);
        const second = await ticket(first.session);
        assert.equal(second.reused, true, `resumed (${name ?? 'no SNI'})`);
        store.rotateTicketKeys();
        const third = await ticket(second.session);
        assert.equal(third.reused, false, `a ticket under the old key is a full handshake, not a failure (${name ?? 'no SNI'})`);
        const fourth = await ticket(third.session);
        assert.equal(fourth.reused, true, `the new key's tickets resume (${name ?? 'no SNI'})`);
      }
      assert.equal(events.filter((e) => e.type === 'ticket-keys-rotated').length, 2);
    } finally {
      await stop();
    }
  });

  test('sessionTickets: false: no session resumes', async () => {
    const store = await CertificateStore.create({ certificates: [dflt], watch: false, sessionTickets: false });
    const { port, stop } = await startTlsEcho(store);
    try {
      // OpenSSL still hands TLS 1.3 clients a (stateful) session; Node keeps no server-side
      // cache unless asked to, so it never resumes.
      const h = await handshake(port, undefined);
      assert.equal(await echo(h.socket, 'ping'), 'ping');
      const session = await waitFor('a session', () => h.sessions.at(-1));
      h.socket.destroy();
      const again = await handshake(port, undefined, { session });
      again.socket.destroy();
      assert.equal(again.reused, false);
    } finally {
      await stop();
    }
  });
});

describe('each bad pair is refused with its code, file and field', () => {
  let bad: string;
  before(async () => {
    bad = join(dir, 'bad');
    await mkdir(bad);
  });

  async function refused(files: { cert: string; key: string; passphrase?: string }, code: string, field: string, file: string, message: RegExp, now?: () => number) {
    const err = await loadKeyPair(files, { now }).then(
      () => assert.fail('loaded'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof TlsConfigError, String(err));
    assert.equal(err.code, code);
    assert.equal(err.field, field);
    assert.equal(err.file, file);
    assert.match(err.message, message);
  }

  test('missing certificate or key file', async () => {
    await refused({ cert: join(bad, 'nope.crt'), key: dflt.key }, 'SWITCHYARD_TLS_FILE_MISSING', 'cert', join(bad, 'nope.crt'), /no such file/);
    await refused({ cert: dflt.cert, key: join(bad, 'nope.key') }, 'SWITCHYARD_TLS_FILE_MISSING', 'key', join(bad, 'nope.key'), /no such file/);
  });

  test('a folder where a file should be', async () => {
    await refused({ cert: bad, key: dflt.key }, 'SWITCHYARD_TLS_FILE_UNREADABLE', 'cert', bad, /not a regular file/);
  });

  test('not PEM: text, a key where the certificate goes, a certificate where the key goes, a broken block', async () => {
    const text = join(bad, 'text.crt');
    await writeFile(text, 'hello, I am not a certificate\n');
    await refused({ cert: text, key: dflt.key }, 'SWITCHYARD_TLS_NOT_PEM', 'cert', text, /no PEM certificate/);
    await refused({ cert: dflt.key, key: dflt.key }, 'SWITCHYARD_TLS_NOT_PEM', 'cert', dflt.key, /no PEM certificate/);
    const certAsKey = join(bad, 'cert-as.key');
    await copyFile(dflt.cert, certAsKey);
    await chmod(certAsKey, 0o600);
    await refused({ cert: dflt.cert, key: certAsKey }, 'SWITCHYARD_TLS_NOT_PEM', 'key', certAsKey, /no PEM private key/);
    const broken = join(bad, 'broken.crt');
    await writeFile(broken, '-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n');
    await refused({ cert: broken, key: dflt.key }, 'SWITCHYARD_TLS_NOT_PEM', 'cert', broken, /does not parse/);
  });

  test('a key readable by group or others: chmod 600 it', async () => {
    const loose = join(bad, 'loose.key');
    await copyFile(dflt.key, loose);
    for (const mode of [0o644, 0o640, 0o604]) {
      await chmod(loose, mode);
      await refused({ cert: dflt.cert, key: loose }, 'SWITCHYARD_TLS_KEY_PERMISSIONS', 'key', loose, new RegExp(`mode 0${mode.toString(8)}.*chmod 600`));
    }
    await chmod(loose, 0o400);
    assert.equal((await loadKeyPair({ cert: dflt.cert, key: loose })).names[0], 'default.example.test');
  });

  test('a key that is not the certificate\'s', async () => {
    await refused({ cert: dflt.cert, key: exactA.key }, 'SWITCHYARD_TLS_KEY_MISMATCH', 'key', exactA.key, /does not match the certificate/);
  });

  test('expired and not yet valid (by the clock)', async () => {
    const cert = new X509Certificate(await readFile(dflt.cert));
    const after = Date.parse(cert.validTo) + 1000;
    const before = Date.parse(cert.validFrom) - 1000;
    await refused(dflt, 'SWITCHYARD_TLS_CERT_EXPIRED', 'cert', dflt.cert, /expired on/, () => after);
    await refused(dflt, 'SWITCHYARD_TLS_CERT_NOT_YET_VALID', 'cert', dflt.cert, /not valid before.*clock/, () => before);
  });

  test('an encrypted key: no passphrase, a wrong one, the right one (and it serves)', async () => {
    const enc = await makeLeaf(bad, ca, 'enc', ['enc.example.test'], { passphrase: 'correct horse' });
    await refused(enc, 'SWITCHYARD_TLS_BAD_PASSPHRASE', 'passphrase', enc.key, /encrypted and no passphrase/);
    await refused({ ...enc, passphrase: 'wrong' }, 'SWITCHYARD_TLS_BAD_PASSPHRASE', 'passphrase', enc.key, /wrong passphrase/);
    const store = await CertificateStore.create({ certificates: [{ ...enc, passphrase: 'correct horse' }], watch: false });
    const { port, stop } = await startTlsEcho(store);
    try {
      assert.equal(await servedSerial(port, 'enc.example.test'), await serialOf(enc));
    } finally {
      await stop();
    }
  });

  test('a chain file out of order', async () => {
    const chain = join(bad, 'chain.crt');
    // The leaf, then a certificate that did not issue it.
    await writeFile(chain, (await readFile(dflt.cert, 'utf8')) + (await readFile(exactA.cert, 'utf8')));
    await refused({ cert: chain, key: dflt.key }, 'SWITCHYARD_TLS_CHAIN_ORDER', 'cert', chain, /certificate 2 in it did not issue certificate 1/);
    // In order (leaf, then its CA) it loads.
    const good = join(bad, 'good-chain.crt');
    await writeFile(good, (await readFile(dflt.cert, 'utf8')) + (await readFile(ca.cert, 'utf8')));
    assert.equal((await loadKeyPair({ cert: good, key: dflt.key })).chain.length, 2);
  });

  test('the store names the entry, and the config path follows', async () => {
    const err = await CertificateStore.create({ certificates: [dflt, { cert: dflt.cert, key: exactA.key }], watch: false }).then(
      () => assert.fail('created'),
      (e: unknown) => e as TlsConfigError,
    );
    assert.equal(err.code, 'SWITCHYARD_TLS_KEY_MISMATCH');
    assert.equal(err.entry, 1);
    assert.equal(tlsErrorPath(err), 'tls.certificates[1].key');
    await assert.rejects(CertificateStore.create({ watch: false }), { code: 'SWITCHYARD_TLS_NO_CERTIFICATE' });
  });
});

describe('config', () => {
  test('the schema names bad fields', () => {
    const issues = (input: unknown) => {
      const r = tlsConfigSchema.safeParse(input);
      assert.equal(r.success, false);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`);
    };
    assert.match(issues({}).join('\n'), /certificates: give certificates/);
    assert.match(issues({ certificates: [{ cert: 'a', key: 'b', default: true }, { cert: 'c', key: 'd', default: true }] }).join('\n'), /certificates\.1\.default: only one/);
    assert.match(issues({ certificates: [{ cert: 'a', key: 'b', kye: 'x' }] }).join('\n'), /kye/);
    assert.match(issues({ certificates: [{ cert: 'a', key: 'b' }], minVersion: 'TLSv1.1' }).join('\n'), /minVersion/);
    assert.match(issues({ certificates: [{ cert: 'a', key: 'b' }], minVersion: 'TLSv1.3', maxVersion: 'TLSv1.2' }).join('\n'), /maxVersion: must not be below/);
    assert.match(issues({ certificates: [{ cert: 'a', key: 'b' }], names: ['x.test'] }).join('\n'), /names: names are for an issuer/);
    assert.match(issues({ certificates: [{ cert: 'a', key: 'b' }], sessionTimeout: 'soon' }).join('\n'), /sessionTimeout: expected a duration/);
    const ok = tlsConfigSchema.parse({ certificates: [{ cert: 'a', key: 'b' }] });
    assert.equal(ok.minVersion, 'TLSv1.2');
    assert.equal(ok.sessionTimeout, 300_000);
    assert.equal(ok.reload.watch, true);
  });

  test('createCertificateStore resolves relative paths against the config folder; default: true wins', async () => {
    const config = tlsConfigSchema.parse({
      certificates: [
        { cert: 'a.crt', key: 'a.key' },
        { cert: 'wild.crt', key: 'wild.key', default: true },
      ],
      alpn: ['http/1.1'],
      reload: { watch: false },
    });
    const store = await createCertificateStore(config, { baseDir: dir });
    try {
      assert.equal(store.select(undefined).leaf.serialNumber, await serialOf(wild));
      assert.equal(store.select('a.example.test').leaf.serialNumber, await serialOf(exactA));
      assert.deepEqual(store.serverOptions().ALPNProtocols, ['http/1.1']);
      assert.equal(store.serverOptions().minVersion, 'TLSv1.2');
      assert.equal(store.serverOptions().honorCipherOrder, true);
    } finally {
      store.close();
    }
  });
});

describe('reload', () => {
  /** A folder with its own copy of a pair, so that rewriting it touches no other test. */
  async function ownPair(name: string, from: Files): Promise<Files> {
    const d = join(dir, `reload-${name}`);
    await mkdir(d);
    const files = { cert: join(d, 'site.crt'), key: join(d, 'site.key') };
    await copyFile(from.cert, files.cert);
    await copyFile(from.key, files.key);
    await chmod(files.key, 0o600);
    return files;
  }

  /** Replaces a pair the way deploy tools do: new files renamed over the old ones, key first. */
  async function replacePair(target: Files, from: Files): Promise<void> {
    await copyFile(from.key, `${target.key}.new`);
    await chmod(`${target.key}.new`, 0o600);
    await copyFile(from.cert, `${target.cert}.new`);
    await rename(`${target.key}.new`, target.key);
    await rename(`${target.cert}.new`, target.cert);
  }

  test('a changed pair on disk serves new handshakes (SNI and default); an open connection keeps working', async () => {
    const site = await ownPair('watch', exactA);
    const next = await makeLeaf(dir, ca, 'a-next', ['a.example.test']);
    const events: TlsEvent[] = [];
    const store = await CertificateStore.create({ certificates: [site], debounceMs: 50, onEvent: (e) => events.push(e) });
    const { port, stop } = await startTlsEcho(store);
    try {
      const oldSerial = await serialOf(exactA);
      const newSerial = await serialOf(next);
      const open = await handshake(port, 'a.example.test');
      assert.equal(open.cert.serialNumber, oldSerial);
      assert.equal(await echo(open.socket, 'before'), 'before');

      await replacePair(site, next);
      const reloaded = await waitFor('a reloaded event', () => events.find((e) => e.type === 'reloaded'));
      assert.equal(reloaded.type === 'reloaded' && reloaded.certificate.serialNumber, newSerial);

      assert.equal(await servedSerial(port, 'a.example.test'), newSerial);
      assert.equal(await servedSerial(port, undefined), newSerial, 'the default context was replaced too');
      assert.equal(await echo(open.socket, 'after'), 'after', 'the connection made before the reload still works');
      assert.equal(open.socket.getPeerCertificate().serialNumber, oldSerial);
      open.socket.destroy();
    } finally {
      await stop();
    }
  });

  test('a bad new pair is reported and the old one keeps serving; a good one after it is taken', async () => {
    const site = await ownPair('bad', exactA);
    const events: TlsEvent[] = [];
    const store = await CertificateStore.create({ certificates: [site], debounceMs: 50, onEvent: (e) => events.push(e) });
    const { port, stop } = await startTlsEcho(store);
    try {
      const oldSerial = await serialOf(exactA);
      // A certificate whose key is not the one on disk.
      await copyFile(dflt.cert, `${site.cert}.new`);
      await rename(`${site.cert}.new`, site.cert);
      const failed = await waitFor('a reload-failed event', () => events.find((e) => e.type === 'reload-failed'));
      assert.equal(failed.type === 'reload-failed' && failed.error.code, 'SWITCHYARD_TLS_KEY_MISMATCH');
      assert.equal(failed.type === 'reload-failed' && failed.entry, 0);
      assert.equal(await servedSerial(port, 'a.example.test'), oldSerial);
      assert.equal(events.some((e) => e.type === 'reloaded'), false);

      // An explicit reload (SIGHUP) says the same.
      const result = await store.reload();
      assert.equal(result.reloaded.length, 0);
      assert.equal(result.failed[0]?.code, 'SWITCHYARD_TLS_KEY_MISMATCH');

      // A loose key mode is refused at reload as at start.
      await replacePair(site, dflt);
      await chmod(site.key, 0o644);
      assert.equal((await store.reload()).failed[0]?.code, 'SWITCHYARD_TLS_KEY_PERMISSIONS');
      assert.equal(await servedSerial(port, 'a.example.test'), oldSerial);

      await chmod(site.key, 0o600);
      const ok = await store.reload();
      assert.equal(ok.failed.length, 0);
      assert.equal(ok.reloaded[0]?.serialNumber, await serialOf(dflt));
      assert.equal(await servedSerial(port, undefined), await serialOf(dflt));
    } finally {
      await stop();
    }
  });

  test('reload() without a watch; an unchanged pair is not reloaded', async () => {
    const site = await ownPair('manual', exactA);
    const store = await CertificateStore.create({ certificates: [site], watch: false });
    const { port, stop } = await startTlsEcho(store);
    try {
      assert.deepEqual(await store.reload(), { reloaded: [], failed: [] });
      await replacePair(site, dflt);
      assert.equal((await store.reload()).reloaded.length, 1);
      assert.equal(await servedSerial(port, 'default.example.test'), await serialOf(dflt));
    } finally {
      await stop();
    }
  });
});

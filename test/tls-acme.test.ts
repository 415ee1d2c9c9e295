import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from 'node:fs/promises';
import { createServer as createHttpServer, type Server as HttpServer } from 'node:http';
import { createServer as createNetServer, type Server as NetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, test } from 'node:test';
import { connect as tlsConnect, createServer as createTlsServer } from 'node:tls';
import {
  AcmeIssuer,
  CertificateManager,
  FileAcmeStorage,
  Http01Challenges,
  TlsAlpnChallenges,
  acmeConfigSchema,
  answerHttp01,
  backoffDelay,
  peekTlsAlpn01,
  type AcmeEvents,
  type AcmeStorage,
  type CertificateSource,
  type ChallengeType,
  type Clock,
  type IssuedCertificate,
} from '../src/tls/acme/index.ts';
import { Redis } from 'ioredis';
import { RedisAcmeStorage } from '../src/tls/acme/redis-storage.ts';
import { startLoopbackDns, type LoopbackDns } from './helpers/dns.ts';
import { pebbleSkip, startPebble, type Pebble } from './helpers/pebble.ts';
import { redisSkip, startRedis, type RedisServer } from './helpers/redis.ts';

// Automatic certificates against a real pebble started here. Its validation of made-up names
// (*.acme.test) asks a tiny DNS server of this file that answers 127.0.0.1, where this file runs
// the responders: an http server on pebble's httpPort answering HTTP-01 from Http01Challenges,
// and a TCP server on its tlsPort that peeks each ClientHello: acme-tls/1 goes to the
// TLS-ALPN-01 responder, anything else to a TLS server serving the managers' certificates by SNI.
// Renewal time is moved with an injected clock; no test waits on real time passing.

const skip = pebbleSkip();

const RETRY = { minMs: 60_000, maxMs: 6 * 3_600_000 };

class FakeClock implements Clock {
  constructor(public t = Date.now()) {}
  now(): number {
    return this.t;
  }
  setTimer(): () => void {
    return () => undefined;
  }
}

/** A source counting the orders that reach the CA. */
function counting(source: CertificateSource): CertificateSource & { orders: number } {
  const counted = {
    storagePrefix: source.storagePrefix,
    orders: 0,
    async issue(names: string[]): Promise<IssuedCertificate> {
      counted.orders++;
      return source.issue(names);
    },
  };
  return counted;
}

function record(manager: CertificateManager): { [K in keyof AcmeEvents]: AcmeEvents[K][] } {
  const seen: { [K in keyof AcmeEvents]: AcmeEvents[K][] } = { loaded: [], issued: [], renewed: [], failed: [] };
  manager.on('loaded', (e) => seen.loaded.push(e));
  manager.on('issued', (e) => seen.issued.push(e));
  manager.on('renewed', (e) => seen.renewed.push(e));
  manager.on('failed', (e) => seen.failed.push(e));
  return seen;
}

function serial(pem: string): string {
  return new X509Certificate(pem).serialNumber;
}

describe('ACME against pebble', { skip }, () => {
  let dns: LoopbackDns;
  let pebble: Pebble;
  let httpServer: HttpServer;
  let tcpServer: NetServer;
  let httpPort: number;
  let tlsPort: number;
  let dir: string;
  let root: string;
  const http01 = new Http01Challenges();
  const tlsAlpn01 = new TlsAlpnChallenges();
  /** Whether the http responder consults http01 (off to make pebble's validation fail). */
  let answering = true;
  let http01Answered = 0;
  let tlsAlpnAnswered = 0;
  /** The managers whose certificates the TLS port serves. */
  const serving = new Set<CertificateManager>();

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'switchyard-acme-'));
    dns = await startLoopbackDns();
    httpServer = createHttpServer((req, res) => {
      if (answering && answerHttp01(http01, req, res)) {
        http01Answered++;
        return;
      }
      res.writeHead(404).end();
    });
    const tlsServer = createTlsServer({
      SNICallback: (name, cb) => {
        for (const m of serving) {
          const ctx = m.contextFor(name);
          if (ctx) return cb(null, ctx);
        }
        cb(new Error(`no certificate for ${name}`));
      },
    });
    tlsServer.on('tlsClientError', () => undefined);
    tcpServer = createNetServer((socket) => {
      socket.on('error', () => undefined);
      void peekTlsAlpn01(socket, tlsAlpn01).then((outcome) => {
        if (outcome === 'answered') tlsAlpnAnswered++;
        if (outcome === 'pass') tlsServer.emit('connection', socket);
      });
    });
    httpPort = await listen(httpServer);
    tlsPort = await listen(tcpServer);
    pebble = await startPebble({ httpPort, tlsPort, dnsServer: `127.0.0.1:${dns.port}` });
    root = await pebble.root();
  });

  after(async () => {
    await pebble?.stop();
    await dns?.close();
    httpServer?.close();
    tcpServer?.close();
    httpServer?.closeAllConnections();
    if (dir) await rm(dir, { recursive: true, force: true });
  });

  function issuer(storage: AcmeStorage, challenges: ChallengeType[]): AcmeIssuer {
    return new AcmeIssuer({
      directory: pebble.directory,
      directoryCa: pebble.ca,
      email: 'ops@acme.test',
      challenges,
      storage,
      http01,
      tlsAlpn01,
      poll: { minMs: 100, maxMs: 500, attempts: 40 },
    });
  }

  function manager(source: CertificateSource, storage: AcmeStorage, clock: Clock, lockWaitMs = 15_000): CertificateManager {
    return new CertificateManager({ source, storage, clock, retry: RETRY, lockWaitMs, random: () => 0.5 });
  }

  /** The serial of the certificate the TLS port serves for `servername`, verified against pebble's root. */
  function served(servername: string): Promise<string> {
    return new Promise((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: tlsPort, servername, ca: root }, () => {
        const cert = s.getPeerCertificate();
        s.end();
        resolve(cert.serialNumber);
      });
      s.setTimeout(5000, () => s.destroy(new Error('timeout')));
      s.on('error', reject);
    });
  }

  test('issues over HTTP-01, stores key and chain (0600 in a 0700 folder), serves it by SNI', async () => {
    const storage = new FileAcmeStorage(join(dir, 'http01'));
    const clock = new FakeClock();
    const source = counting(issuer(storage, ['http-01']));
    const m = manager(source, storage, clock);
    const seen = record(m);
    serving.add(m);
    m.add(['web.acme.test', 'www.acme.test']);
    const before = http01Answered;
    await m.runDue();
    assert.deepEqual(seen.failed.map((f) => f.error.message), []);
    assert.equal(seen.issued.length, 1);
    assert.equal(source.orders, 1);
    assert.ok(http01Answered >= before + 2, 'pebble fetched both tokens from the responder');
    assert.equal(http01.size, 0, 'tokens are dropped once the order is done');
    const cert = m.certificate(['www.acme.test', 'web.acme.test']);
    assert.ok(cert);
    const leaf = new X509Certificate(cert.chain);
    assert.match(leaf.subjectAltName ?? '', /DNS:web\.acme\.test/);
    assert.match(leaf.subjectAltName ?? '', /DNS:www\.acme\.test/);
    assert.equal(leaf.publicKey.asymmetricKeyType, 'ec');
    assert.equal(await served('www.acme.test'), leaf.serialNumber);
    // Renewal is planned at 2/3 of the lifetime.
    const from = cert.notBefore.getTime();
    assert.equal(m.nextCheckAt(['web.acme.test', 'www.acme.test']), from + (2 / 3) * (cert.notAfter.getTime() - from));
    // On disk: the account key and the certificate, private.
    const prefix = source.storagePrefix;
    assert.equal((await stat(join(dir, 'http01', prefix, 'account-key.pem'))).mode & 0o777, 0o600);
    assert.equal((await stat(join(dir, 'http01', prefix))).mode & 0o777, 0o700);
    const certs = await readdir(join(dir, 'http01', prefix, 'certs'));
    assert.equal(certs.filter((f) => f.endsWith('.json')).length, 1);
    assert.equal(certs.length, 1, 'no temporary or lock file left behind');
    assert.equal((await stat(join(dir, 'http01', prefix, 'certs', certs[0]))).mode & 0o777, 0o600);
    await m.close();
  });

  test('issues over TLS-ALPN-01 (acme-tls/1 peeked from the ClientHello, other clients unaffected)', async () => {
    const storage = new FileAcmeStorage(join(dir, 'alpn'));
    const source = counting(issuer(storage, ['tls-alpn-01']));
    const m = manager(source, storage, new FakeClock());
    const seen = record(m);
    serving.add(m);
    m.add(['alpn.acme.test']);
    const before = { tls: tlsAlpnAnswered, http: http01Answered };
    await m.runDue();
    assert.deepEqual(seen.failed.map((f) => f.error.message), []);
    assert.equal(seen.issued.length, 1);
    assert.ok(tlsAlpnAnswered > before.tls, 'pebble validated through the acme-tls/1 responder');
    assert.equal(http01Answered, before.http, 'no HTTP-01 was used');
    assert.equal(tlsAlpn01.size, 0);
    const cert = m.certificate(['alpn.acme.test']);
    assert.ok(cert);
    assert.equal(await served('alpn.acme.test'), serial(cert.chain));
    await m.close();
  });

  test('a stored certificate is reused on restart: no new order, same account key', async () => {
    const storage = new FileAcmeStorage(join(dir, 'restart'));
    const first = counting(issuer(storage, ['http-01']));
    const m1 = manager(first, storage, new FakeClock());
    m1.add(['again.acme.test']);
    await m1.runDue();
    await m1.close();
    const issuedSerial = serial(m1.certificate(['again.acme.test'])?.chain ?? '');
    const key = await storage.get(`${first.storagePrefix}/account-key.pem`);
    assert.equal(first.orders, 1);

    // A new daemon: new objects, the same folder.
    const again = new FileAcmeStorage(join(dir, 'restart'));
    const second = counting(issuer(again, ['http-01']));
    const m2 = manager(second, again, new FakeClock());
    const seen = record(m2);
    m2.add(['again.acme.test']);
    await m2.runDue();
    assert.equal(second.orders, 0, 'no order for a stored certificate that is not due');
    assert.equal(seen.loaded.length, 1);
    assert.equal(seen.issued.length, 0);
    assert.equal(serial(m2.certificate(['again.acme.test'])?.chain ?? ''), issuedSerial);
    assert.ok(m2.contextFor('again.acme.test'));
    // The next order on this storage opens the account with the stored key, not a new one.
    await second.issue(['again.acme.test']);
    assert.deepEqual(await again.get(`${second.storagePrefix}/account-key.pem`), key);
    await m2.close();
  });

  test('renews past 2/3 of the lifetime, not before; the old certificate serves until then', async () => {
    const storage = new FileAcmeStorage(join(dir, 'renew'));
    const clock = new FakeClock();
    const source = counting(issuer(storage, ['http-01']));
    const m = manager(source, storage, clock);
    const seen = record(m);
    serving.add(m);
    m.add(['renew.acme.test']);
    await m.runDue();
    const old = m.certificate(['renew.acme.test']);
    assert.ok(old);
    const renewAt = old.notBefore.getTime() + (2 / 3) * (old.notAfter.getTime() - old.notBefore.getTime());

    clock.t = renewAt - 1000;
    await m.runDue();
    assert.equal(source.orders, 1, 'not renewed before 2/3');
    assert.equal(await served('renew.acme.test'), serial(old.chain));

    clock.t = renewAt + 1000;
    await m.runDue();
    assert.deepEqual(seen.failed.map((f) => f.error.message), []);
    assert.equal(source.orders, 2);
    assert.equal(seen.renewed.length, 1);
    assert.equal(seen.renewed[0].previousNotAfter.getTime(), old.notAfter.getTime());
    const fresh = m.certificate(['renew.acme.test']);
    assert.ok(fresh);
    assert.notEqual(serial(fresh.chain), serial(old.chain));
    assert.equal(await served('renew.acme.test'), serial(fresh.chain));
    const stored = await storage.get(`${source.storagePrefix}/certs/${(await readdir(join(dir, 'renew', source.storagePrefix, 'certs')))[0]}`);
    assert.ok(stored?.toString().includes(fresh.chain.split('\n')[1]), 'the storage holds the new one');
    await m.close();
  });

  test('a CA that refuses (validation fails): failed event, backoff, nothing served, tokens dropped', async () => {
    const storage = new FileAcmeStorage(join(dir, 'refused'));
    const clock = new FakeClock();
    const source = counting(issuer(storage, ['http-01']));
    const m = manager(source, storage, clock);
    const seen = record(m);
    m.add(['refused.acme.test']);
    answering = false;
    try {
      await m.runDue();
    } finally {
      answering = true;
    }
    assert.equal(seen.failed.length, 1);
    const f = seen.failed[0];
    assert.match(f.error.message, /refused\.acme\.test/);
    assert.equal(f.failures, 1);
    assert.equal(f.serving, undefined);
    assert.ok(f.retryInMs >= RETRY.minMs && f.retryInMs <= RETRY.maxMs);
    assert.equal(m.nextCheckAt(['refused.acme.test']), clock.t + f.retryInMs);
    assert.equal(m.certificate(['refused.acme.test']), undefined);
    assert.equal(http01.size, 0);
    // Not tried again before the backoff is over.
    await m.runDue();
    assert.equal(source.orders, 1);
    // Once it is over the order goes through.
    clock.t += f.retryInMs;
    await m.runDue();
    assert.equal(seen.issued.length, 1);
    await m.close();
  });

  test('pebble down: failures back off (doubling, bounded), the old certificate keeps serving; back up: renewed', async () => {
    const storage = new FileAcmeStorage(join(dir, 'down'));
    const clock = new FakeClock();
    const source = counting(issuer(storage, ['http-01']));
    const m = manager(source, storage, clock);
    const seen = record(m);
    serving.add(m);
    m.add(['down.acme.test']);
    await m.runDue();
    const old = m.certificate(['down.acme.test']);
    assert.ok(old);
    clock.t = old.notAfter.getTime() - 1000; // well past 2/3: due

    const port = pebble.port;
    await pebble.stop();
    for (let i = 1; i <= 3; i++) {
      await m.runDue();
      assert.equal(seen.failed.length, i);
      const f = seen.failed[i - 1];
      assert.equal(f.failures, i);
      assert.equal(f.serving?.notAfter.getTime(), old.notAfter.getTime());
      // random() = 0.5: three quarters of min * 2^(i-1), never below min
      assert.equal(f.retryInMs, Math.max(RETRY.minMs, 0.75 * RETRY.minMs * 2 ** (i - 1)));
      assert.equal(await served('down.acme.test'), serial(old.chain), 'still serving the old one');
      clock.t += f.retryInMs;
    }

    pebble = await startPebble({ httpPort, tlsPort, dnsServer: `127.0.0.1:${dns.port}`, port, tls: pebble.tls });
    root = await pebble.root();
    await m.runDue();
    assert.equal(seen.renewed.length, 1, `renewed once pebble is back: ${seen.failed.at(-1)?.error.message}`);
    const fresh = m.certificate(['down.acme.test']);
    assert.ok(fresh);
    assert.equal(await served('down.acme.test'), serial(fresh.chain));
    await m.close();
  });

  async function orderOnce(storageA: AcmeStorage, storageB: AcmeStorage, name: string): Promise<void> {
    const clock = new FakeClock();
    const a = counting(issuer(storageA, ['http-01']));
    const b = counting(issuer(storageB, ['http-01']));
    const ma = manager(a, storageA, clock, 5000);
    const mb = manager(b, storageB, clock, 5000);
    const seenA = record(ma);
    const seenB = record(mb);
    ma.add([name]);
    mb.add([name]);
    await Promise.all([ma.runDue(), mb.runDue()]);
    assert.equal(a.orders + b.orders, 1, 'one order for two daemons');
    assert.deepEqual([...seenA.failed, ...seenB.failed], []);
    const [winner, loser] = a.orders === 1 ? [ma, mb] : [mb, ma];
    assert.ok(winner.certificate([name]));
    // The other one looks again after lockWaitMs and finds it in the storage.
    const due = loser.nextCheckAt([name]);
    assert.ok(due !== undefined && due <= clock.t + 5000);
    if (!loser.certificate([name])) {
      clock.t = due;
      await loser.runDue();
    }
    assert.equal(a.orders + b.orders, 1);
    assert.equal(serial(loser.certificate([name])?.chain ?? ''), serial(winner.certificate([name])?.chain ?? ''));
    await ma.close();
    await mb.close();
  }

  test('two daemons sharing a data folder order once (lock file)', async () => {
    await orderOnce(new FileAcmeStorage(join(dir, 'shared')), new FileAcmeStorage(join(dir, 'shared')), 'shared.acme.test');
  });

  describe('on Redis', { skip: redisSkip() }, () => {
    let redis: RedisServer;
    before(async () => {
      redis = await startRedis();
    });
    after(async () => {
      await redis?.stop();
    });

    test('two daemons sharing Redis order once (SET NX PX); blobs under the key prefix', async () => {
      const config = { backend: 'redis' as const, url: redis.url, keyPrefix: 'acmetest:', presenceTtl: 15_000, connectTimeout: 2000, maxHistoryBytes: 0 };
      const a = await RedisAcmeStorage.connect(config);
      const b = await RedisAcmeStorage.connect(config);
      try {
        await orderOnce(a, b, 'redis.acme.test');
        const raw = new Redis(redis.url);
        try {
          const keys = await raw.keys('*');
          assert.ok(keys.length >= 2);
          assert.ok(keys.every((k) => k.startsWith('acmetest:acme:')), keys.join(' '));
          assert.ok(keys.some((k) => k.endsWith('/account-key.pem')));
        } finally {
          raw.disconnect();
        }
        const release = await a.lock('x/y', 60_000);
        assert.ok(release);
        assert.equal(await b.lock('x/y', 60_000), undefined, 'held');
        await release();
        const again = await b.lock('x/y', 60_000);
        assert.ok(again, 'free after release');
        await again();
      } finally {
        await a.close();
        await b.close();
      }
    });
  });
});

describe('ACME pieces without a CA', () => {
  test('file storage: lock held, released, and an expired or half-written lock taken over', async () => {
    const root = await mkdtemp(join(tmpdir(), 'switchyard-acme-lock-'));
    try {
      const s = new FileAcmeStorage(root);
      const r1 = await s.lock('a/b', 60_000);
      assert.ok(r1);
      assert.equal(await s.lock('a/b', 60_000), undefined);
      await r1();
      const r2 = await s.lock('a/b', 60_000);
      assert.ok(r2);
      await r2();
      await writeFile(join(root, 'a', 'b.lock'), JSON.stringify({ token: 'dead', expires: Date.now() - 1 }));
      const r3 = await s.lock('a/b', 60_000);
      assert.ok(r3, 'expired lock taken over');
      await writeFile(join(root, 'c.lock'), '');
      assert.equal(await s.lock('c', 60_000), undefined, 'a lock being written is held');
      // Older than the ttl by its mtime, set into the past (a ttl of 0 against a file written in the
      // same millisecond would depend on the clock: mtime has sub-millisecond digits, Date.now not).
      const past = new Date(Date.now() - 10_000);
      await utimes(join(root, 'c.lock'), past, past);
      assert.ok(await s.lock('c', 5_000), 'a half-written lock older than the ttl is taken over');
      await r3();
      await s.set('x/y.pem', 'one');
      await s.set('x/y.pem', 'two');
      assert.equal((await s.get('x/y.pem'))?.toString(), 'two');
      await s.delete('x/y.pem');
      assert.equal(await s.get('x/y.pem'), undefined);
      await assert.rejects(s.get('../etc/passwd'), /bad ACME storage name/);
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  test('backoff: doubling from min, jittered in the upper half, within [min, max]', () => {
    const p = { minMs: 60_000, maxMs: 6 * 3_600_000 };
    for (let failures = 1; failures <= 40; failures++) {
      for (const r of [0, 0.3, 0.999]) {
        const d = backoffDelay(p, failures, () => r);
        assert.ok(d >= p.minMs && d <= p.maxMs, `${failures}: ${d}`);
        const ceiling = Math.min(p.maxMs, p.minMs * 2 ** (failures - 1));
        assert.ok(d >= Math.min(ceiling / 2, p.maxMs) - 1 || d === p.minMs);
      }
    }
    assert.equal(backoffDelay(p, 3, () => 0), 120_000);
  });

  test('config: defaults, named directories, refusals', () => {
    const c = acmeConfigSchema.parse({ issuer: 'acme', email: 'ops@example.com', directory: 'letsencrypt-staging' });
    assert.equal(c.directory, 'https://acme-staging-v02.api.letsencrypt.org/directory');
    assert.deepEqual(c.challenges, ['tls-alpn-01', 'http-01']);
    assert.equal(c.renewAt, 2 / 3);
    assert.deepEqual(c.retry, { min: 60_000, max: 21_600_000 });
    assert.equal(acmeConfigSchema.safeParse({ issuer: 'acme', directory: 'http://ca.example/dir' }).success, false);
    assert.equal(acmeConfigSchema.safeParse({ issuer: 'acme', names: ['*.example.com'] }).success, false);
    assert.equal(acmeConfigSchema.safeParse({ issuer: 'acme', retry: { min: '1h', max: '1m' } }).success, false);
    assert.equal(acmeConfigSchema.safeParse({ issuer: 'acme', email: 'nope' }).success, false);
  });
});

function listen(server: HttpServer | NetServer): Promise<number> {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve((server.address() as { port: number }).port));
  });
}

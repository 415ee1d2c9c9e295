import { test, after, before, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { serve, type Yard } from '../src/index.ts';
import { startLoopbackDns, type LoopbackDns } from './helpers/dns.ts';
import { pebbleSkip, startPebble, type Pebble } from './helpers/pebble.ts';
import { run } from './helpers/net.ts';

// `tls: { issuer: acme }` on a listener, end to end against a real pebble: the yard's own http
// listener answers HTTP-01, its https listener answers TLS-ALPN-01 in front of the handshake, and
// once the order is in, the https listener serves the certificate pebble issued, verified by
// real clients against pebble's root.

const skip = pebbleSkip();

/** A free loopback port (pebble must know where to validate before the yard binds there). */
async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const port = (s.address() as { port: number }).port;
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

describe('ACME certificates on listeners', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'sy-acme-listeners-'));
  let dns: LoopbackDns;
  const running: { pebble?: Pebble; yard?: Yard }[] = [];

  before(async () => {
    dns = await startLoopbackDns();
  });
  after(async () => {
    for (const r of running) {
      await r.yard?.stop(100);
      await r.pebble?.stop();
    }
    await dns?.close();
  });

  async function issuedOn(challenge: 'http-01' | 'tls-alpn-01', name: string): Promise<void> {
    const webPort = await freePort();
    const securePort = await freePort();
    const pebble = await startPebble({ httpPort: webPort, tlsPort: securePort, dnsServer: `127.0.0.1:${dns.port}` });
    const slot: { pebble?: Pebble; yard?: Yard } = { pebble };
    running.push(slot);
    const caFile = join(dir, `pebble-${challenge}.pem`);
    writeFileSync(caFile, pebble.ca);
    const yard = await serve(
      {
        listeners: [
          { name: 'web', protocol: 'http', address: `127.0.0.1:${webPort}`, routes: [{ handler: { type: 'respond', body: 'plain\n' } }] },
          {
            name: 'secure',
            protocol: 'http',
            address: `127.0.0.1:${securePort}`,
            tls: { issuer: 'acme', directory: pebble.directory, directoryCa: caFile, email: 'ops@acme.test', names: [name], challenges: [challenge], retry: { min: '1s', max: '2s' } },
            routes: [{ handler: { type: 'respond', body: 'issued over acme\n' } }],
          },
        ],
      },
      { logLevel: 'silent', dataDir: join(dir, `data-${challenge}`) },
    );
    slot.yard = yard;
    let metrics = '';
    for (let i = 0; i < 150 && !/event="issued"\} 1/.test(metrics); i++) {
      await new Promise((r) => setTimeout(r, 100));
      metrics = await yard.metrics.registry.metrics();
    }
    assert.match(metrics, /switchyard_acme_certificates_total\{listener="secure",event="issued"\} 1/, metrics.split('\n').filter((l) => l.includes('acme')).join('\n'));
    const root = await pebble.root();
    const subject = await new Promise<string>((resolve, reject) => {
      const s = tlsConnect({ host: '127.0.0.1', port: securePort, servername: name, ca: root }, () => {
        const san = s.getPeerCertificate().subjectaltname ?? '';
        s.end();
        resolve(san);
      });
      s.on('error', reject);
    });
    assert.match(subject, new RegExp(`DNS:${name.replace(/\./g, '\\.')}`));
    const rootFile = join(dir, `root-${challenge}.pem`);
    writeFileSync(rootFile, root);
    const curl = await run('curl', ['-s', '--cacert', rootFile, '--resolve', `${name}:${securePort}:127.0.0.1`, `https://${name}:${securePort}/`]);
    assert.equal(curl.stdout, 'issued over acme\n', curl.stderr);
    // The plain listener still routes everything that is not a challenge.
    assert.equal(await (await fetch(`http://127.0.0.1:${webPort}/.well-known/acme-challenge/unknown`)).text(), 'plain\n');
  }

  test('HTTP-01 answered by the yard\'s http listener; the https listener serves the issued certificate', async () => {
    await issuedOn('http-01', 'web.acme.test');
  });

  test('TLS-ALPN-01 answered in front of the https listener\'s handshake', async () => {
    await issuedOn('tls-alpn-01', 'alpn.acme.test');
  });
});

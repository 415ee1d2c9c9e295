import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import tls from 'node:tls';
import { chromium, type Browser } from 'playwright-core';
import { serve, type Yard } from '../src/index.ts';
import { browserSkipReason, chromiumArgs, chromiumPath } from './helpers/browser.ts';

// A real browser over HTTPS from the local CA: Chromium is told on its command line to trust the
// CA's intermediate (by its public key, --ignore-certificate-errors-spki-list), loads a page from
// an https listener and runs its script; without that flag the same page is refused.

const skip = browserSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'sy-tls-browser-'));
let yard: Yard | undefined;
let browser: Browser | undefined;
after(async () => {
  await browser?.close();
  await yard?.stop(100);
});

/** base64 SHA-256 of the SubjectPublicKeyInfo of the intermediate the listener serves. */
function intermediateSpki(port: number): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = tls.connect({ host: '127.0.0.1', port, servername: 'localhost', rejectUnauthorized: false }, () => {
      const leaf = s.getPeerCertificate(true);
      const issuer = leaf.issuerCertificate;
      s.destroy();
      if (!issuer || issuer === leaf) return reject(new Error('no intermediate in the served chain'));
      const der = new X509Certificate(issuer.raw).publicKey.export({ type: 'spki', format: 'der' });
      resolve(createHash('sha256').update(der).digest('base64'));
    });
    s.on('error', reject);
  });
}

test('Chromium loads and runs a page over the local CA, trusted through its command line', { skip, timeout: 60_000 }, async () => {
  yard = await serve(
    {
      listeners: [
        {
          name: 'secure',
          protocol: 'http',
          address: '127.0.0.1:0',
          tls: { issuer: 'internal' },
          routes: [
            {
              handler: {
                type: 'respond',
                contentType: 'text/html; charset=utf-8',
                body: '<!doctype html><title>tls</title><p id="out">static</p><script>document.getElementById("out").textContent = "script ran over " + location.protocol;</script>',
              },
            },
          ],
        },
      ],
    },
    { logLevel: 'silent', dataDir: join(dir, 'data') },
  );
  const port = yard.address('secure').port;
  const url = `https://localhost:${port}/`;

  const untrusting = await chromium.launch({ executablePath: chromiumPath, headless: true, args: chromiumArgs, timeout: 30_000 });
  try {
    const page = await untrusting.newPage();
    await assert.rejects(page.goto(url), /ERR_CERT_AUTHORITY_INVALID|net::ERR_CERT/);
  } finally {
    await untrusting.close();
  }

  const spki = await intermediateSpki(port);
  browser = await chromium.launch({ executablePath: chromiumPath, headless: true, args: [...chromiumArgs, `--ignore-certificate-errors-spki-list=${spki}`], timeout: 30_000 });
  const page = await browser.newPage();
  const response = await page.goto(url);
  assert.equal(response?.status(), 200);
  assert.equal(await page.textContent('#out'), 'script ran over https:');
  await page.screenshot({ path: join(dir, 'tls-page.png') });
});

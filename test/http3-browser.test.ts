import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, X509Certificate } from 'node:crypto';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { AddressInfo } from 'node:net';
import tls from 'node:tls';
import { chromium, type Browser } from 'playwright-core';
import { serve, type Yard } from '../src/index.ts';
import { browserSkipReason, chromiumArgs, chromiumPath } from './helpers/browser.ts';

// Chromium over HTTP/3: QUIC forced for the listener's origin (--origin-to-force-quic-on), the
// local CA's leaf trusted by its public key on the command line. The origin is 127.0.0.1, not
// localhost: Chromium resolves localhost to ::1 first and sends its QUIC Initial there; with the
// listener on 127.0.0.1 that datagram meets a closed port (ICMP unreachable, net error -102 in
// the net log) and the page fails with ERR_QUIC_HANDSHAKE_FAILED, without falling back to IPv4. The page comes from the static
// handler and fetches a proxied API; both must have travelled over h3, as the page itself
// (performance entries' nextHopProtocol) and the daemon's HTTP/3 request counter say.

const skip = browserSkipReason();
const dir = mkdtempSync(join(tmpdir(), 'sy-http3-browser-'));
const root = join(dir, 'www');
let yard: Yard | undefined;
let browser: Browser | undefined;
let upstream: Server | undefined;
after(async () => {
  await browser?.close();
  await yard?.stop(100);
  upstream?.close();
});

/**
 * base64 SHA-256 of the SubjectPublicKeyInfo of the local CA's intermediate, which signs the leaf
 * the listener serves: Chromium is told to trust the CA (not the one leaf), as a user would.
 */
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

async function h3Requests(y: Yard): Promise<number> {
  const text = await y.metrics.registry.metrics();
  let n = 0;
  for (const line of text.split('\n')) {
    const m = /^switchyard_http3_requests_total\{listener="web",status="200"\} (\d+)/.exec(line);
    if (m) n += Number(m[1]);
  }
  return n;
}

test('Chromium loads a static page and a proxied API over HTTP/3', { skip, timeout: 90_000 }, async () => {
  mkdirSync(root);
  writeFileSync(
    join(root, 'index.html'),
    '<!doctype html><title>h3</title><p id="out">waiting</p><script>' +
      'fetch("/api/data").then((r) => r.json()).then((j) => { document.getElementById("out").textContent = "api said " + j.said; })' +
      '.catch((e) => { document.getElementById("out").textContent = "failed " + e; });</script>',
  );
  upstream = createServer((_req, res) => {
    res.setHeader('content-type', 'application/json');
    res.end(JSON.stringify({ said: 'hello from upstream' }));
  });
  await new Promise<void>((r) => upstream!.listen(0, '127.0.0.1', r));
  yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          tls: { issuer: 'internal', names: ['localhost'] },
          http3: true,
          routes: [
            { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } },
            { match: { path: '/echo' }, handler: { type: 'echo' } },
            { match: { path: '/*' }, handler: { type: 'static', root } },
          ],
        },
      ],
      upstreams: { api: { targets: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] } },
    },
    { logLevel: 'silent', dataDir: join(dir, 'data') },
  );
  const port = yard.address('web').port;
  const spki = await intermediateSpki(port);
  const before = await h3Requests(yard);
  const netLog = join(dir, 'netlog.json');
  browser = await chromium.launch({
    executablePath: chromiumPath,
    headless: true,
    args: [
      ...chromiumArgs.filter((a) => a !== '--disable-quic'),
      '--enable-quic',
      `--origin-to-force-quic-on=127.0.0.1:${port}`,
      `--ignore-certificate-errors-spki-list=${spki}`,
      // Names resolve nowhere: the page is on 127.0.0.1 (an IP literal), and Chromium's own
      // background lookups (update and account hosts) stay off the network.
      '--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1',
      `--log-net-log=${netLog}`,
    ],
    timeout: 30_000,
  });
  const page = await browser.newPage();
  const response = await page.goto(`https://127.0.0.1:${port}/index.html`);
  assert.equal(response?.status(), 200);
  await page.waitForFunction(() => document.getElementById('out')?.textContent !== 'waiting', undefined, { timeout: 20_000 });
  assert.equal(await page.textContent('#out'), 'api said hello from upstream');
  // A request body from the browser (DATA frames of Chromium's) and a 300 KB response.
  const posted = await page.evaluate(async () => {
    const body = 'b'.repeat(200_000);
    const r = await fetch('/echo', { method: 'POST', body, headers: { 'content-type': 'text/plain' } });
    const text = await r.text();
    return { status: r.status, hasBody: text.includes('b'.repeat(1000)), length: text.length };
  });
  assert.equal(posted.status, 200);
  assert.ok(posted.hasBody && posted.length > 200_000, JSON.stringify(posted));
  const protocols = await page.evaluate(() =>
    (performance.getEntries() as PerformanceResourceTiming[]).filter((e) => 'nextHopProtocol' in e).map((e) => `${new URL(e.name).pathname} ${e.nextHopProtocol}`),
  );
  assert.ok(protocols.includes('/index.html h3'), `page: ${protocols.join(', ')} (net log: ${netLog})`);
  assert.ok(protocols.includes('/api/data h3'), `api: ${protocols.join(', ')}`);
  assert.ok(protocols.includes('/echo h3'), `echo: ${protocols.join(', ')}`);
  const after = await h3Requests(yard);
  assert.ok(after - before >= 3, `the daemon counted ${after - before} HTTP/3 requests`);
});

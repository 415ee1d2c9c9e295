import { test, after, before } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { createServer as createNetServer } from 'node:net';
import { mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Readable } from 'node:stream';
import { request } from 'undici';
import type { Browser } from 'playwright-core';
import { serve, parseConfig, ProvisionError, type Yard } from '../src/index.ts';
import { ConfigError } from '../src/config/errors.ts';
import { browserSkipReason, launchChromium } from './helpers/browser.ts';

// Error pages on a real yard: a file page for 404 (static's, and no route's) shown in Chromium,
// a template for 5xx (a proxy to a closed port), 413 (declared and chunked bodies), a route's own
// 429 page in front of a rate limit, the refusal's headers kept, HEAD without a body, an
// upstream's own 404 untouched, and config errors naming the field.

const PAGE_404 = '<!doctype html><html><head><title>Lost</title><style>body { color: #333 }</style></head><body><h1 id="msg">Nothing here, {sorry}</h1></body></html>\n';

let yard: Yard;
let base: string;
let dir: string;
let upstream: Server;
const skip = browserSkipReason();

async function deadPort(): Promise<number> {
  const s = createNetServer();
  await new Promise<void>((r) => s.listen(0, '127.0.0.1', r));
  const p = (s.address() as { port: number }).port;
  await new Promise((r) => s.close(r));
  return p;
}

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sy-error-pages-'));
  writeFileSync(join(dir, '404.html'), PAGE_404);
  writeFileSync(join(dir, 'a.txt'), 'a\n');
  writeFileSync(join(dir, 'tpl.html'), '<p>{status} for {path} (id {request_id}) {{kept}} {header.x-note}</p>\n');
  upstream = createServer((req, res) => {
    res.writeHead(404, { 'content-type': 'text/plain', 'x-from': 'upstream' });
    res.end('the upstream says 404\n');
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  const up = (upstream.address() as { port: number }).port;
  const dead = await deadPort();
  yard = await serve(
    parseConfig({
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          limits: { maxBodySize: 1024 },
          middleware: {
            errorPages: {
              // Relative to the yard's baseDir (the config file's folder).
              404: { file: './404.html' },
              413: { template: 'too large: {status} {reason} at {path}\n', contentType: 'text/plain; charset=utf-8' },
              '5xx': { template: '<h1>{status} {reason}</h1><p>request {request_id}</p><p>{header.x-note}</p>' },
              default: { template: '<p>{status} on {route}</p>' },
            },
          },
          routes: [
            { name: 'files', match: { path: '/files/*' }, handler: { type: 'static', root: dir } },
            {
              name: 'tpl',
              match: { path: '/tpl/*' },
              handler: { type: 'static', root: dir },
              middleware: { errorPages: { 404: { file: 'tpl.html', placeholders: true } } },
            },
            { name: 'echo', match: { path: '/echo/*' }, handler: { type: 'echo' } },
            { name: 'dead', match: { path: '/dead/*' }, handler: { type: 'proxy', upstream: 'dead' } },
            { name: 'up', match: { path: '/up/*' }, handler: { type: 'proxy', upstream: 'up' } },
            {
              name: 'limited',
              match: { path: '/limited' },
              handler: { type: 'respond', body: 'ok\n' },
              middleware: {
                rateLimit: { rate: 1, per: '1h', burst: 1 },
                errorPages: { 429: { template: '<p id="m">slow down, {client_ip}</p>' } },
              },
            },
          ],
        },
      ],
      upstreams: {
        up: { targets: [`http://127.0.0.1:${up}`] },
        dead: { targets: [`http://127.0.0.1:${dead}`], outlier: false, retry: { attempts: 0 } },
      },
      logging: { level: 'silent', accessLog: false },
    }),
    { logLevel: 'silent', baseDir: dir },
  );
  base = `http://127.0.0.1:${yard.address('web').port}`;
});

after(async () => {
  await yard?.stop(100);
  await new Promise((r) => upstream?.close(r));
  rmSync(dir, { recursive: true, force: true });
});

test('404 of static: the file page, byte for byte, as text/html with its length', async () => {
  const r = await request(`${base}/files/missing.txt`);
  assert.equal(r.statusCode, 404);
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(PAGE_404)));
  assert.ok(r.headers['x-request-id'], 'the refusal keeps the headers set before it');
  assert.equal(await r.body.text(), PAGE_404, 'a file without placeholders: true goes out as it is, braces and all');
  // A file that exists is not touched.
  const ok = await request(`${base}/files/a.txt`);
  assert.equal(await ok.body.text(), 'a\n');
});

test('a file page with placeholders: true is a template (HTML-escaped values, {{ for a literal brace)', async () => {
  const r = await request(`${base}/tpl/none`, { headers: { 'x-note': '<b>"x"</b>' } });
  assert.equal(r.statusCode, 404);
  assert.equal(await r.body.text(), `<p>404 for /tpl/none (id ${r.headers['x-request-id']}) {kept} &lt;b&gt;&quot;x&quot;&lt;/b&gt;</p>\n`);
});

test('404 for no route: the listener\'s page, before any route\'s middleware', async () => {
  const r = await request(`${base}/nowhere`);
  assert.equal(r.statusCode, 404);
  assert.equal(await r.body.text(), PAGE_404);
});

test('HEAD: the page\'s headers, no body', async () => {
  const r = await request(`${base}/files/missing.txt`, { method: 'HEAD' });
  assert.equal(r.statusCode, 404);
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(PAGE_404)));
  assert.equal(await r.body.text(), '');
});

test('502 from a dead upstream: the 5xx template, placeholders HTML-escaped', async () => {
  const r = await request(`${base}/dead/x`, { headers: { 'x-note': '<script>alert(1)</script>' } });
  assert.equal(r.statusCode, 502);
  assert.equal(r.headers['content-type'], 'text/html; charset=utf-8');
  const body = await r.body.text();
  assert.match(body, /^<h1>502 upstream refused connection[^<]*<\/h1><p>request \S+<\/p>/);
  assert.ok(body.includes(`request ${r.headers['x-request-id']}<`), body);
  assert.ok(body.includes('<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>'), body);
  assert.equal(r.headers['content-length'], String(Buffer.byteLength(body)));
});

test("an upstream's own 404 passes through untouched", async () => {
  const r = await request(`${base}/up/x`);
  assert.equal(r.statusCode, 404);
  assert.equal(r.headers['x-from'], 'upstream');
  assert.equal(r.headers['content-type'], 'text/plain');
  assert.equal(await r.body.text(), 'the upstream says 404\n');
});

test('413: a declared body too large (refused before routing) and a chunked one (cut off while read)', async () => {
  const declared = await request(`${base}/echo/x`, { method: 'POST', body: Buffer.alloc(4096, 1), headers: { 'content-length': '4096' } });
  assert.equal(declared.statusCode, 413);
  assert.equal(declared.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(await declared.body.text(), 'too large: 413 request body larger than 1024 bytes at /echo/x\n');
  // No Content-Length: the body is chunked, and refused only once 1024 bytes have been read.
  const chunked = await request(`${base}/echo/y`, { method: 'POST', body: Readable.from(Array.from({ length: 8 }, () => Buffer.alloc(512, 1))) });
  assert.equal(chunked.statusCode, 413);
  assert.match(await chunked.body.text(), /^too large: 413 .* at \/echo\/y\n$/);
});

test('429 of a rate limit: the route\'s own page, with Retry-After kept; other statuses of the route have no page', async () => {
  const first = await request(`${base}/limited`);
  assert.equal(first.statusCode, 200);
  await first.body.dump();
  const r = await request(`${base}/limited`);
  assert.equal(r.statusCode, 429);
  assert.ok(Number(r.headers['retry-after']) > 0);
  assert.equal(r.headers['ratelimit-limit'], '1');
  assert.equal(await r.body.text(), '<p id="m">slow down, 127.0.0.1</p>');
});

test('default: a status without its own page or class page; the Allow of a 405 is kept', async () => {
  const r = await request(`${base}/files/a.txt`, { method: 'DELETE' });
  assert.equal(r.statusCode, 405);
  assert.match(String(r.headers.allow), /GET/);
  assert.equal(await r.body.text(), '<p>405 on files</p>');
});

test('Chromium shows the 404 page', { skip }, async () => {
  let browser: Browser | undefined;
  try {
    browser = await launchChromium();
    const page = await browser.newPage();
    const response = await page.goto(`${base}/files/nope.html`);
    assert.equal(response?.status(), 404);
    assert.equal(await page.title(), 'Lost');
    assert.equal(await page.textContent('#msg'), 'Nothing here, {sorry}');
    const slow = await page.goto(`${base}/limited`);
    assert.equal(slow?.status(), 429);
    assert.equal(await page.textContent('#m'), 'slow down, 127.0.0.1');
  } finally {
    await browser?.close();
  }
});

function configError(errorPages: unknown): string {
  try {
    parseConfig({ listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', middleware: { errorPages }, routes: [{ handler: { type: 'echo' } }] }] });
  } catch (err) {
    assert.ok(err instanceof ConfigError, String(err));
    return err.message;
  }
  assert.fail('the config was accepted');
}

test('config errors name the field', async () => {
  assert.match(configError({ 404: { template: '{nope}' } }), /middleware\.errorPages\.404\.template: unknown placeholder \{nope\}.*\{status\}, \{reason\}/);
  assert.match(configError({ '6xx': { template: 'x' } }), /errorPages\.6xx: "6xx" is not a status 400-599, 4xx, 5xx or default/);
  assert.match(configError({ 404: { template: 'x', file: './a.html' } }), /errorPages\.404: give either file or template/);
  assert.match(configError({ 404: { file: './page.weird-ext' } }), /errorPages\.404\.file: no known content type/);
  // A missing file: a reload is refused, naming the field, and the running pages stay.
  const reloaded = await yard.reload(
    parseConfig({
      listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', middleware: { errorPages: { 404: { file: './missing.html' } } }, routes: [{ handler: { type: 'echo' } }] }],
      logging: { level: 'silent', accessLog: false },
    }),
  );
  assert.equal(reloaded.ok, false);
  assert.match(!reloaded.ok ? reloaded.error : '', /listeners\[0\]\.middleware\.errorPages\.404\.file: .*missing\.html not found/);
  assert.equal(await (await request(`${base}/nowhere`)).body.text(), PAGE_404);
  // A missing file: the yard refuses to start, naming the field.
  await assert.rejects(
    serve(
      parseConfig({
        listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'echo' }, middleware: { errorPages: { '5xx': { file: './gone.html' } } } }] }],
        logging: { level: 'silent', accessLog: false },
      }),
      { logLevel: 'silent', baseDir: dir },
    ),
    (err: unknown) => err instanceof ProvisionError && /listeners\[0\]\.routes\[0\]\.middleware\.errorPages\.5xx\.file/.test(err.message) && /gone\.html not found/.test(err.message),
  );
});

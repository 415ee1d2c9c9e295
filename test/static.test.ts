import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { readdir, writeFile, utimes } from 'node:fs/promises';
import { join } from 'node:path';
import { makeTree, serveTree, sequentialRequests, get, sha256, parseOne, type Tree, type Served } from './fixtures/files.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';
import { contentTypes } from '../src/handlers/static/mime.ts';

let tree: Tree;
let srv: Served;

before(async () => {
  tree = await makeTree();
  srv = await serveTree(tree);
});

after(async () => {
  await srv?.stop();
  await tree?.cleanup();
});

test('GET serves a file with type, validators, length and cache-control', async () => {
  const [r] = await sequentialRequests(srv.web, [get('/files/a.txt')]);
  assert.equal(r.status, 200);
  assert.equal(r.body.toString(), 'hello, world\n');
  assert.equal(r.headers['content-type'], 'text/plain; charset=utf-8');
  assert.equal(r.headers['content-length'], '13');
  assert.equal(r.headers['accept-ranges'], 'bytes');
  assert.equal(r.headers['cache-control'], 'public, max-age=60');
  assert.equal(r.headers['x-content-type-options'], 'nosniff');
  assert.match(r.headers.etag, /^"[0-9a-f]+-[0-9a-f]+"$/);
  assert.ok(!Number.isNaN(Date.parse(r.headers['last-modified'])));
  assert.equal(r.headers.vary, undefined, 'no Vary without precompressed siblings');
});

test('Content-Type comes from the extension', async () => {
  const rs = await sequentialRequests(srv.web, ['/files/page.html', '/files/data.json', '/files/pic.png', '/files/blob.unknownext'].map((p) => get(p)));
  assert.deepEqual(
    rs.map((r) => r.headers['content-type']),
    ['text/html; charset=utf-8', 'application/json; charset=utf-8', 'image/png', 'application/octet-stream'],
  );
});

test('Content-Type comes from mime-db: module scripts, wasm, XML types with a charset, upper-case extensions, odd names', async () => {
  const names: Record<string, string> = {
    'mod.mjs': 'text/javascript; charset=utf-8',
    'old.cjs': 'text/javascript; charset=utf-8',
    'code.wasm': 'application/wasm',
    'icon.svg': 'image/svg+xml; charset=utf-8',
    'feed.xml': 'application/xml; charset=utf-8',
    'ld.jsonld': 'application/ld+json; charset=utf-8',
    'font.woff2': 'font/woff2',
    'sub.vtt': 'text/vtt; charset=utf-8',
    'clip.webm': 'video/webm',
    'PHOTO.JPG': 'image/jpeg',
    'archive.tgz': 'application/gzip',
    'x.constructor': 'application/octet-stream',
    'x.__proto__': 'application/octet-stream',
    'trailing.': 'application/octet-stream',
  };
  for (const name of Object.keys(names)) await writeFile(join(tree.root, name), 'x');
  const rs = await sequentialRequests(srv.web, Object.keys(names).map((n) => get(`/files/${encodeURIComponent(n)}`)));
  assert.deepEqual(
    Object.fromEntries(Object.keys(names).map((n, i) => [n, `${rs[i].status} ${rs[i].headers['content-type']}`])),
    Object.fromEntries(Object.entries(names).map(([n, t]) => [n, `200 ${t}`])),
  );
});

test('config mimeTypes win over the database, with or without the dot, and are sent as given', () => {
  const typeOf = contentTypes({ '.ts': 'text/plain; charset=utf-8', MD: 'text/x-notes', webp: 'image/x-mine' });
  assert.equal(typeOf('a.ts'), 'text/plain; charset=utf-8', 'mime-db says video/mp2t');
  assert.equal(typeOf('README.md'), 'text/x-notes');
  assert.equal(typeOf('p.webp'), 'image/x-mine');
  assert.equal(typeOf('p.WEBP'), 'image/x-mine', 'again, from the per-extension cache');
  assert.equal(typeOf('p.png'), 'image/png');
  assert.equal(contentTypes()('a.ts'), 'video/mp2t', 'another lookup does not see these overrides');
  assert.equal(typeOf('.webp'), 'application/octet-stream', 'a dotfile has no extension');
});

test('HEAD has the headers of GET and no body, also on the sendfile path', async () => {
  for (const path of ['/files/a.txt', '/files/big.bin']) {
    const raw = await rawExchange(srv.web, `HEAD ${path} HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n`);
    const text = raw.toString('latin1');
    assert.equal(statusOf(raw), 200);
    const headEnd = text.indexOf('\r\n\r\n');
    assert.equal(raw.length, headEnd + 4, `no byte after the head for ${path}`);
    const len = /content-length: (\d+)/i.exec(text)?.[1];
    assert.equal(Number(len), path === '/files/a.txt' ? 13 : tree.big.length);
  }
  const curl = await run('curl', ['-sS', '-I', `http://127.0.0.1:${srv.web}/files/big.bin`]);
  assert.match(curl.stdout, /^HTTP\/1\.1 200/);
});

test('methods other than GET and HEAD get 405 with Allow', async () => {
  for (const m of ['POST', 'PUT', 'DELETE', 'OPTIONS']) {
    const [r] = await sequentialRequests(srv.web, [`${m} /files/a.txt HTTP/1.1\r\nhost: t\r\ncontent-length: 0\r\n\r\n`]);
    assert.equal(r.status, 405, m);
    assert.equal(r.headers.allow, 'GET, HEAD');
  }
});

test('a directory without its slash redirects; with it, index.html is served', async () => {
  const [redirect, index, query] = await sequentialRequests(srv.web, [get('/files/sub'), get('/files/sub/'), get('/files/sub?x=1')]);
  assert.equal(redirect.status, 301);
  assert.equal(redirect.headers.location, '/files/sub/');
  assert.equal(index.status, 200);
  assert.equal(index.body.toString(), '<p>sub index</p>\n');
  assert.equal(index.headers['content-type'], 'text/html; charset=utf-8');
  assert.equal(query.headers.location, '/files/sub/?x=1');
});

test('a directory without index is 404 unless listings are on; a file asked as a directory is 404', async () => {
  const [noListing, fileAsDir, missing] = await sequentialRequests(srv.web, [get('/files/noindex/'), get('/files/a.txt/'), get('/files/nope.txt')]);
  assert.equal(noListing.status, 404);
  assert.equal(fileAsDir.status, 404);
  assert.equal(missing.status, 404);
});

test('listing: HTML escapes names, JSON by ?format=json or Accept, dotfiles hidden', async () => {
  const [html, json, byAccept] = await sequentialRequests(srv.web, [
    get('/list/noindex/'),
    get('/list/noindex/?format=json'),
    get('/list/', { accept: 'application/json' }),
  ]);
  assert.equal(html.status, 200);
  assert.equal(html.headers['content-type'], 'text/html; charset=utf-8');
  const page = html.body.toString();
  assert.ok(page.includes('&lt;b&gt;&amp;x.txt'), 'name is HTML-escaped');
  assert.ok(!page.includes('<b>&x'), 'raw name never appears');
  assert.ok(page.includes('href="./%3Cb%3E%26x.txt"'), 'href is URL-encoded');
  assert.equal(json.headers['content-type'], 'application/json; charset=utf-8');
  const parsed = JSON.parse(json.body.toString()) as { entries: { name: string; type: string; size: number }[] };
  assert.deepEqual(parsed.entries.map((e) => e.name).sort(), ['<b>&x.txt', 'plain.txt']);
  assert.equal(parsed.entries.find((e) => e.name === 'plain.txt')?.size, 5);
  const top = JSON.parse(byAccept.body.toString()) as { entries: { name: string }[] };
  const names = top.entries.map((e) => e.name);
  assert.ok(names.includes('a.txt') && names.includes('sub'));
  assert.ok(!names.some((n) => n.startsWith('.')), 'dotfiles are not listed');
});

test('precompressed siblings follow Accept-Encoding and q-values, with Vary', async () => {
  const ask = (ae?: string) => get('/files/app.js', ae === undefined ? {} : { 'accept-encoding': ae });
  const rs = await sequentialRequests(srv.web, [
    ask('gzip, deflate, br'),
    ask('gzip'),
    ask('br;q=0, gzip'),
    ask('gzip;q=0.9, br;q=0.5'),
    ask(),
    ask('identity'),
    ask('*'),
  ]);
  const seen = rs.map((r) => [r.headers['content-encoding'] ?? 'identity', r.body.toString()]);
  assert.deepEqual(seen, [
    ['br', 'BROTLI-BYTES'],
    ['gzip', 'GZIP-BYTES-LONGER'],
    ['gzip', 'GZIP-BYTES-LONGER'],
    ['gzip', 'GZIP-BYTES-LONGER'],
    ['identity', 'console.log("identity");\n'],
    ['identity', 'console.log("identity");\n'],
    ['br', 'BROTLI-BYTES'],
  ]);
  for (const r of rs) assert.equal(r.headers.vary, 'accept-encoding');
  assert.equal(rs[0].headers['content-type'], 'text/javascript; charset=utf-8', 'type of the original, not of .br');
  assert.notEqual(rs[0].headers.etag, rs[4].headers.etag, 'each coding has its own ETag');
  assert.notEqual(rs[1].headers.etag, rs[4].headers.etag);
  const [onlyGz] = await sequentialRequests(srv.web, [get('/files/only-gz.css', { 'accept-encoding': 'br, gzip' })]);
  assert.equal(onlyGz.headers['content-encoding'], 'gzip');
  assert.equal(onlyGz.body.toString(), 'GZ-CSS');
});

test('Vary from middleware (CORS) and from precompression are both kept', async () => {
  const { stdout } = await run('curl', ['-sS', '-D', '-', '-o', '/dev/null', '-H', 'origin: http://a.example', '-H', 'accept-encoding: br', `http://127.0.0.1:${srv.web}/cors/app.js`]);
  const vary = [...stdout.matchAll(/^vary: (.*)\r$/gim)].map((m) => m[1].toLowerCase()).join(', ');
  assert.match(vary, /origin/);
  assert.match(vary, /accept-encoding/);
  assert.match(stdout, /^content-encoding: br\r$/im);
});

test('large file over sendfile: exact bytes, and keep-alive works afterwards', async () => {
  const rs = await sequentialRequests(srv.web, [get('/files/big.bin'), get('/files/a.txt'), get('/files/big.bin'), get('/nosendfile/big.bin')]);
  assert.deepEqual(rs.map((r) => r.status), [200, 200, 200, 200]);
  assert.equal(sha256(rs[0].body), sha256(tree.big));
  assert.equal(rs[1].body.toString(), 'hello, world\n');
  assert.equal(sha256(rs[2].body), sha256(tree.big));
  assert.equal(sha256(rs[3].body), sha256(tree.big));
  const metrics = await srv.yard.metrics.text();
  const sent = Number(/switchyard_total_bytes_sent\{listener="web"\} (\d+)/.exec(metrics)?.[1] ?? 0);
  assert.ok(sent >= 3 * tree.big.length, `bytes sent through sendfile are counted (${sent})`);
});

test('pipelined requests for large files come back whole and in order', async () => {
  const raw = await rawExchange(srv.web, get('/files/big.bin') + get('/files/a.txt') + get('/files/big.bin', { connection: 'close' }), { timeoutMs: 10_000 });
  let buf = raw;
  const bodies: Buffer[] = [];
  for (let i = 0; i < 3; i++) {
    const p = parseOne(buf, false);
    assert.ok(p, `response ${i + 1} is complete`);
    assert.equal(p.response.status, 200);
    bodies.push(p.response.body);
    buf = buf.subarray(p.used);
  }
  assert.equal(sha256(bodies[0]), sha256(tree.big));
  assert.equal(bodies[1].toString(), 'hello, world\n');
  assert.equal(sha256(bodies[2]), sha256(tree.big));
  assert.equal(buf.length, 0);
});

test('hot cache: edits show after revalidation, and at once where revalidate is 0', async () => {
  const file = join(tree.root, 'changing.txt');
  await writeFile(file, 'version one');
  const [a1, f1] = await sequentialRequests(srv.web, [get('/files/changing.txt'), get('/fresh/changing.txt')]);
  assert.equal(a1.body.toString(), 'version one');
  assert.equal(f1.body.toString(), 'version one');
  await writeFile(file, 'version two!');
  await utimes(file, new Date(), new Date(Date.now() + 5000));
  const [f2] = await sequentialRequests(srv.web, [get('/fresh/changing.txt')]);
  assert.equal(f2.body.toString(), 'version two!');
  await new Promise((r) => setTimeout(r, 1100)); // default revalidate: 1s
  const [a2] = await sequentialRequests(srv.web, [get('/files/changing.txt')]);
  assert.equal(a2.body.toString(), 'version two!');
  assert.notEqual(a2.headers.etag, a1.headers.etag);
  const metrics = await srv.yard.metrics.text();
  assert.match(metrics, /switchyard_file_cache_hits_total\{listener="web"\} [1-9]/);
});

test('a client that disconnects mid-download leaves no file descriptor behind', async () => {
  const fds = async () => (await readdir('/proc/self/fd')).length;
  // Warm up: first request opens lazily-created handles (koffi, libuv).
  await sequentialRequests(srv.web, [get('/files/big.bin')]);
  const baseline = await fds();
  await Promise.all(
    Array.from({ length: 8 }, (_, i) =>
      new Promise<void>((resolve) => {
        const s = connect({ port: srv.web, host: '127.0.0.1' });
        s.on('connect', () => s.write(get(i % 2 ? '/files/big.bin' : '/nosendfile/big.bin')));
        s.once('data', () => {
          s.resetAndDestroy();
          resolve();
        });
        s.on('error', () => resolve());
      }),
    ),
  );
  let now = await fds();
  for (let i = 0; i < 50 && now > baseline; i++) {
    await new Promise((r) => setTimeout(r, 40));
    now = await fds();
  }
  assert.ok(now <= baseline, `fds back to ${baseline} (now ${now})`);
  // And the server still serves.
  const [r] = await sequentialRequests(srv.web, [get('/files/a.txt')]);
  assert.equal(r.status, 200);
});

test('garbage request paths get 400, never a crash', async () => {
  const [bad, ok] = await sequentialRequests(srv.web, [get('/files/%zz'), get('/files/a.txt')]);
  assert.equal(bad.status, 400);
  assert.equal(ok.status, 200);
});

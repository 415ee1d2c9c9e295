import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, mkdirSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo, Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as zlib from 'node:zlib';
import { request } from 'undici';
import { ZSTD_AVAILABLE } from '../src/middleware/compress.ts';
import { ConfigError, parseConfig } from '../src/index.ts';
import { killDaemon, startDaemon, type Daemon } from './helpers/daemon.ts';
import { connected, rawExchange, run, statusOf } from './helpers/net.ts';

// The compress middleware in a real daemon: static files (from the memory cache, from disk past
// the cache, with precompressed siblings) and proxied answers, over HTTP/1.1 and h2c, read by
// curl --compressed and by undici with an explicit Accept-Encoding decoded here with node:zlib.

const dir = mkdtempSync(join(tmpdir(), 'sy-compress-'));
const root = join(dir, 'root');
mkdirSync(root);

/** JSON of about 20 KiB: served from the memory cache. */
const json = Buffer.from(JSON.stringify(Array.from({ length: 300 }, (_, i) => ({ id: i, name: `item ${i}`, tags: ['alpha', 'beta', 'gamma'], ok: i % 2 === 0 }))));
/** About 300 KiB: still from the memory cache in one end(body), but past what is compressed at once. */
const mid = Buffer.from(JSON.stringify(Array.from({ length: 4000 }, (_, i) => ({ id: i, note: `row ${i} of the middle-sized file` }))));
/** 32 MiB of base64 text (compresses to about 3/4): far past the memory cache, so static would sendfile it. */
const big = Buffer.from(randomBytes(24 * 1024 * 1024).toString('base64'));
const small = Buffer.from('tiny text under the minimum size\n');
const png = randomBytes(20_000);
const upstreamJson = Buffer.from(JSON.stringify({ rows: Array.from({ length: 200 }, (_, i) => ({ i, text: 'upstream row' })) }));
const upstreamPre = zlib.gzipSync(Buffer.from('already gzipped by the upstream '.repeat(100)));

writeFileSync(join(root, 'data.json'), json);
writeFileSync(join(root, 'big.txt'), big);
writeFileSync(join(root, 'mid.json'), mid);
writeFileSync(join(root, 'small.txt'), small);
writeFileSync(join(root, 'pic.png'), png);
writeFileSync(join(root, 'app.js'), 'console.log("identity");\n'.repeat(100));
writeFileSync(join(root, 'app.js.gz'), 'GZIP-SIBLING-BYTES');

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');
const bigSha = sha(big);

let upstream: Server;
let daemon: Daemon;
let port: number;

before(async () => {
  upstream = createServer((req, res) => {
    if (req.url === '/api/json') {
      res.writeHead(200, { 'content-type': 'application/json', 'content-length': upstreamJson.length });
      res.end(upstreamJson);
    } else if (req.url === '/api/pre') {
      res.writeHead(200, { 'content-type': 'text/plain', 'content-encoding': 'gzip', 'content-length': upstreamPre.length });
      res.end(upstreamPre);
    } else if (req.url === '/api/chunked') {
      res.writeHead(200, { 'content-type': 'text/plain; charset=utf-8' });
      for (let i = 0; i < 50; i++) res.write(`line ${i} of a body without a length\n`);
      res.end();
    } else {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve) => upstream.listen(0, '127.0.0.1', resolve));
  const upstreamPort = (upstream.address() as AddressInfo).port;
  const config = {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        http2: { h2c: true },
        middleware: { compress: { minSize: '1KiB' } },
        routes: [
          { match: { path: '/files/*' }, handler: { type: 'static', root } },
          { match: { path: '/nt/*' }, handler: { type: 'static', root, cacheControl: 'public, no-transform' } },
          { match: { path: '/gzip/*' }, handler: { type: 'static', root }, middleware: { compress: { encodings: ['gzip'], level: { gzip: 1 } } } },
          { match: { path: '/off/*' }, handler: { type: 'static', root }, middleware: { compress: false } },
          { match: { path: '/cors/*' }, handler: { type: 'static', root }, middleware: { cors: { origins: ['http://a.example'] } } },
          { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } },
        ],
      },
    ],
    upstreams: { api: { targets: [`http://127.0.0.1:${upstreamPort}`] } },
  };
  const file = join(dir, 'switchyard.json');
  writeFileSync(file, JSON.stringify(config));
  daemon = await startDaemon([file, '--log-level', 'warn'], { cwd: dir });
  port = daemon.port('web');
});

after(async () => {
  await killDaemon(daemon);
  await new Promise<void>((resolve) => (upstream ? upstream.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Buffer;
}

async function get(path: string, headers: Record<string, string> = {}, method: 'GET' | 'HEAD' = 'GET'): Promise<Answer> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { method, headers, headersTimeout: 20_000, bodyTimeout: 20_000 });
  const body = Buffer.from(await r.body.arrayBuffer());
  return { status: r.statusCode, headers: r.headers, body };
}

function decode(coding: string, body: Buffer): Buffer {
  switch (coding) {
    case 'gzip':
      return zlib.gunzipSync(body);
    case 'br':
      return zlib.brotliDecompressSync(body);
    case 'zstd':
      return (zlib as unknown as { zstdDecompressSync(b: Buffer): Buffer }).zstdDecompressSync(body);
    default:
      throw new Error(`unexpected coding ${coding}`);
  }
}

function varies(a: Answer): boolean {
  const v = a.headers.vary;
  return (Array.isArray(v) ? v.join(',') : (v ?? '')).toLowerCase().includes('accept-encoding');
}

const CODINGS = ZSTD_AVAILABLE ? ['gzip', 'br', 'zstd'] : ['gzip', 'br'];

test('each coding the client asks for alone: the body decodes to the original, with Vary, no length, a weak ETag, no Accept-Ranges', async () => {
  for (const coding of CODINGS) {
    for (const path of ['/files/data.json', '/files/mid.json', '/files/big.txt']) {
      const a = await get(path, { 'accept-encoding': coding });
      assert.equal(a.status, 200, `${coding} ${path}`);
      assert.equal(a.headers['content-encoding'], coding, `${coding} ${path}`);
      assert.equal(a.headers['content-length'], undefined);
      assert.equal(a.headers['accept-ranges'], undefined);
      assert.ok(varies(a), 'Vary: Accept-Encoding');
      assert.match(String(a.headers.etag), /^W\/"/);
      const plain = decode(coding, a.body);
      if (path === '/files/data.json') assert.ok(plain.equals(json));
      else if (path === '/files/mid.json') assert.ok(plain.equals(mid));
      else assert.equal(sha(plain), bigSha);
      assert.ok(a.body.length < plain.length, 'smaller than the original');
    }
  }
});

test('zstd is offered only where node:zlib has it', async () => {
  const a = await get('/files/data.json', { 'accept-encoding': 'zstd' });
  if (ZSTD_AVAILABLE) assert.equal(a.headers['content-encoding'], 'zstd');
  else {
    assert.equal(a.headers['content-encoding'], undefined);
    assert.ok(a.body.equals(json));
  }
  assert.ok(varies(a));
});

test('curl --compressed over HTTP/1.1 and h2c: memory-cached and disk files, and a proxied answer, decode to the originals', async () => {
  for (const transport of [[], ['--http2-prior-knowledge']]) {
    for (const [path, expected] of [['/files/data.json', sha(json)], ['/files/big.txt', bigSha], ['/api/json', sha(upstreamJson)]] as const) {
      const out = join(dir, 'curl.out');
      const r = await run('curl', ['-sS', '--compressed', ...transport, '-D', '-', '-o', out, `http://127.0.0.1:${port}${path}`], { timeoutMs: 60_000 });
      assert.equal(r.code, 0, r.stderr);
      assert.match(r.stdout, /^content-encoding: (gzip|br|zstd)\r?$/im, `${transport.join(' ')} ${path}: ${r.stdout}`);
      assert.match(r.stdout, /^vary: .*accept-encoding/im);
      assert.equal(sha(readFileSync(out)), expected, `${transport.join(' ')} ${path}`);
    }
  }
});

test('q-values: q=0 refuses a coding, the highest q wins, `*` covers the rest, nothing acceptable is identity', async () => {
  const refused = await get('/files/data.json', { 'accept-encoding': 'gzip;q=0, br;q=0, zstd;q=0' });
  assert.equal(refused.headers['content-encoding'], undefined);
  assert.ok(refused.body.equals(json));
  assert.ok(varies(refused), 'Vary even when the client takes none');

  const preferGzip = await get('/files/data.json', { 'accept-encoding': 'br;q=0.5, gzip;q=0.9, zstd;q=0.1' });
  assert.equal(preferGzip.headers['content-encoding'], 'gzip');

  const star = await get('/files/data.json', { 'accept-encoding': 'gzip;q=0, *;q=0.3' });
  assert.equal(star.headers['content-encoding'], ZSTD_AVAILABLE ? 'zstd' : 'br');
  assert.ok(decode(String(star.headers['content-encoding']), star.body).equals(json));

  const identity = await get('/files/data.json', { 'accept-encoding': 'identity' });
  assert.equal(identity.headers['content-encoding'], undefined);
  assert.equal(identity.headers['content-length'], String(json.length));

  // A route offering gzip only: a client preferring br still gets gzip.
  const gzipOnly = await get('/gzip/data.json', { 'accept-encoding': 'br, gzip;q=0.5' });
  assert.equal(gzipOnly.headers['content-encoding'], 'gzip');
  assert.ok(zlib.gunzipSync(gzipOnly.body).equals(json));
});

test('what is not compressed: ranges, images, bodies under minSize, no-transform, a route with compress: false', async () => {
  const range = await get('/files/data.json', { 'accept-encoding': 'gzip', range: 'bytes=0-99' });
  assert.equal(range.status, 206);
  assert.equal(range.headers['content-encoding'], undefined);
  assert.ok(range.body.equals(json.subarray(0, 100)));

  const bigRange = await get('/files/big.txt', { 'accept-encoding': 'gzip', range: 'bytes=1000-1999' });
  assert.equal(bigRange.status, 206);
  assert.equal(bigRange.headers['content-encoding'], undefined);
  assert.ok(bigRange.body.equals(big.subarray(1000, 2000)));

  const image = await get('/files/pic.png', { 'accept-encoding': 'gzip, br' });
  assert.equal(image.headers['content-encoding'], undefined);
  assert.equal(image.headers.vary, undefined, 'no Vary: an image is never compressed');
  assert.ok(image.body.equals(png));

  const tiny = await get('/files/small.txt', { 'accept-encoding': 'gzip' });
  assert.equal(tiny.headers['content-encoding'], undefined);
  assert.equal(tiny.headers['content-length'], String(small.length));
  assert.ok(varies(tiny), 'Vary: the same URL could be compressed once it grows');
  assert.ok(tiny.body.equals(small));

  const noTransform = await get('/nt/data.json', { 'accept-encoding': 'gzip' });
  assert.equal(noTransform.headers['content-encoding'], undefined);
  assert.ok(noTransform.body.equals(json));

  const off = await get('/off/data.json', { 'accept-encoding': 'gzip' });
  assert.equal(off.headers['content-encoding'], undefined);
  assert.equal(off.headers.vary, undefined);
  assert.ok(off.body.equals(json));
});

test('a precompressed sibling is served as it is, not compressed again', async () => {
  const a = await get('/files/app.js', { 'accept-encoding': 'gzip' });
  assert.equal(a.headers['content-encoding'], 'gzip');
  assert.equal(a.body.toString(), 'GZIP-SIBLING-BYTES');
  // Without a sibling for br, the identity file is compressed on the fly.
  const b = await get('/files/app.js', { 'accept-encoding': 'br' });
  assert.equal(b.headers['content-encoding'], 'br');
  assert.equal(zlib.brotliDecompressSync(b.body).toString(), 'console.log("identity");\n'.repeat(100));
});

test('proxied answers: an uncompressed one is compressed (with or without a length), a compressed one passes as it is', async () => {
  const a = await get('/api/json', { 'accept-encoding': 'gzip' });
  assert.equal(a.status, 200);
  assert.equal(a.headers['content-encoding'], 'gzip');
  assert.ok(zlib.gunzipSync(a.body).equals(upstreamJson));
  assert.ok(varies(a));

  const chunked = await get('/api/chunked', { 'accept-encoding': 'br' });
  assert.equal(chunked.headers['content-encoding'], 'br');
  assert.match(zlib.brotliDecompressSync(chunked.body).toString(), /^line 0 of a body without a length\n[^]*line 49 of/);

  const pre = await get('/api/pre', { 'accept-encoding': 'gzip, br' });
  assert.equal(pre.headers['content-encoding'], 'gzip');
  assert.ok(pre.body.equals(upstreamPre), 'the upstream bytes, untouched');
});

test('HEAD gets the head GET gets (Content-Encoding, Vary, no Content-Length) and no body', async () => {
  for (const path of ['/files/data.json', '/files/big.txt']) {
    const getA = await get(path, { 'accept-encoding': 'gzip' });
    const raw = await rawExchange(port, `HEAD ${path} HTTP/1.1\r\nhost: t\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n`);
    const text = raw.toString('latin1');
    assert.equal(statusOf(raw), 200);
    assert.equal(raw.length, text.indexOf('\r\n\r\n') + 4, `no byte after the head for ${path}`);
    assert.match(text, /\r\ncontent-encoding: gzip\r\n/i);
    assert.match(text, /\r\nvary: .*accept-encoding/i);
    assert.doesNotMatch(text, /\r\ncontent-length:/i);
    assert.match(text, new RegExp(`\\r\\netag: ${String(getA.headers.etag).replace(/[/"]/g, '\\$&')}\\r\\n`, 'i'));
  }
});

test('config: bad fields are errors naming them; zstd alone is refused where Node has none', () => {
  const issues = (compress: unknown) => {
    try {
      parseConfig({ listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', middleware: { compress }, routes: [{ handler: { type: 'echo' } }] }] });
    } catch (err) {
      assert.ok(err instanceof ConfigError, String(err));
      return err.issues.map((i) => `${i.path}: ${i.message}`).join('\n');
    }
    return '';
  };
  assert.equal(issues(true), '');
  assert.equal(issues({ encodings: ['br', 'gzip'], minSize: '2KiB', types: ['text/*', 'Application/JSON'], level: { gzip: 9, br: 5 } }), '');
  assert.match(issues({ types: ['json'] }), /compress\.types\[0\]: .*media type/);
  assert.match(issues({ level: { gzip: 12 } }), /compress\.level\.gzip/);
  assert.match(issues({ encodings: ['deflate'] }), /compress\.encodings\[0\]/);
  assert.match(issues({ encodings: ['gzip', 'gzip'] }), /compress\.encodings: expected each coding at most once/);
  assert.match(issues({ minSize: 'lots' }), /compress\.minSize: expected a size/);
  assert.match(issues({ bogus: 1 }), /bogus/);
  if (ZSTD_AVAILABLE) assert.equal(issues({ encodings: ['zstd'] }), '');
  else assert.match(issues({ encodings: ['zstd'] }), /compress\.encodings: zstd needs Node 22\.15 or later/);
});

test('Vary joins one set before (CORS: Origin) instead of replacing it', async () => {
  const a = await get('/cors/data.json', { 'accept-encoding': 'gzip', origin: 'http://a.example' });
  assert.equal(a.headers['content-encoding'], 'gzip');
  const vary = ([] as string[]).concat(a.headers.vary ?? []).join(',').toLowerCase();
  assert.match(vary, /origin/);
  assert.match(vary, /accept-encoding/);
  assert.equal(vary.match(/accept-encoding/g)?.length, 1, `Accept-Encoding once: ${vary}`);
  assert.ok(zlib.gunzipSync(a.body).equals(json));
});

test('HTTP/2 HEAD (curl -I over h2c) gets the head of the compressed GET', async () => {
  for (const path of ['/files/data.json', '/files/big.txt']) {
    const r = await run('curl', ['-sS', '-I', '--http2-prior-knowledge', '-H', 'accept-encoding: br', `http://127.0.0.1:${port}${path}`]);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^HTTP\/2 200/);
    assert.match(r.stdout, /^content-encoding: br\r?$/im);
    assert.match(r.stdout, /^vary: .*accept-encoding/im);
    assert.doesNotMatch(r.stdout, /^content-length:/im);
  }
});

/** The daemon's resident memory, bytes. */
function rss(pid: number): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

test('a large body to clients that do not read is not buffered: the compressor waits for the socket', async () => {
  const pid = daemon.child.pid!;
  const CLIENTS = 4;
  const before = rss(pid);
  const sockets: Socket[] = [];
  try {
    for (let i = 0; i < CLIENTS; i++) {
      const s = await connected(port);
      s.pause();
      s.write('GET /gzip/big.txt HTTP/1.1\r\nhost: t\r\naccept-encoding: gzip\r\nconnection: close\r\n\r\n');
      sockets.push(s);
    }
    // Had the compressed output (about 24 MiB per client) been buffered, the daemon would grow by
    // about 96 MiB within these samples; backpressure keeps it at a few socket buffers each.
    let peak = before;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, rss(pid));
    }
    assert.ok(peak - before < 48 * 1024 * 1024, `daemon RSS grew ${((peak - before) / 2 ** 20).toFixed(1)} MiB with ${CLIENTS} stalled clients`);
    // Now read them all: every body is whole.
    const hashes = await Promise.all(sockets.map((s) => readGzipBody(s)));
    for (const h of hashes) assert.equal(h, bigSha);
  } finally {
    for (const s of sockets) s.destroy();
  }
});

test('HTTP/2 streams that are not read hold the compressor back too; read later, every body is whole', async () => {
  const pid = daemon.child.pid!;
  const STREAMS = 4;
  const before = rss(pid);
  const session = http2.connect(`http://127.0.0.1:${port}`);
  session.on('error', () => {});
  try {
    const streams = Array.from({ length: STREAMS }, () => {
      const s = session.request({ ':path': '/gzip/big.txt', 'accept-encoding': 'gzip' });
      s.pause();
      return s;
    });
    let peak = before;
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      peak = Math.max(peak, rss(pid));
    }
    assert.ok(peak - before < 48 * 1024 * 1024, `daemon RSS grew ${((peak - before) / 2 ** 20).toFixed(1)} MiB with ${STREAMS} stalled streams`);
    const hashes = await Promise.all(
      streams.map(
        (s) =>
          new Promise<string>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error('body not read within 60s')), 60_000);
            s.once('response', (h) => {
              if (h['content-encoding'] !== 'gzip') reject(new Error(`content-encoding ${String(h['content-encoding'])}`));
            });
            const hash = createHash('sha256');
            const gunzip = zlib.createGunzip();
            gunzip.on('data', (d: Buffer) => hash.update(d));
            gunzip.on('end', () => {
              clearTimeout(timer);
              resolve(hash.digest('hex'));
            });
            gunzip.on('error', reject);
            s.on('error', reject);
            s.pipe(gunzip);
            s.resume();
          }),
      ),
    );
    for (const h of hashes) assert.equal(h, bigSha);
  } finally {
    session.destroy();
  }
});

/** Reads one chunked, gzip-coded HTTP/1.1 response from a paused socket; resolves the decoded body's sha256. */
function readGzipBody(socket: Socket): Promise<string> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('body not read within 60s'));
    }, 60_000);
    let head: Buffer | undefined = Buffer.alloc(0);
    let pending: Buffer = Buffer.alloc(0);
    const gunzip = zlib.createGunzip();
    const hash = createHash('sha256');
    gunzip.on('data', (d: Buffer) => hash.update(d));
    gunzip.on('end', () => {
      clearTimeout(timer);
      resolve(hash.digest('hex'));
    });
    gunzip.on('error', reject);
    // Chunked framing: size line, data, CRLF; the 0-size chunk ends it.
    const dechunk = () => {
      for (;;) {
        const eol = pending.indexOf('\r\n');
        if (eol === -1) return;
        const size = parseInt(pending.subarray(0, eol).toString('latin1'), 16);
        if (size === 0) {
          gunzip.end();
          return;
        }
        if (pending.length < eol + 2 + size + 2) return;
        gunzip.write(pending.subarray(eol + 2, eol + 2 + size));
        pending = pending.subarray(eol + 2 + size + 2);
      }
    };
    socket.on('data', (d: Buffer) => {
      if (head !== undefined) {
        head = Buffer.concat([head, d]);
        const end = head.indexOf('\r\n\r\n');
        if (end === -1) return;
        const text = head.subarray(0, end).toString('latin1');
        if (!/\r\ncontent-encoding: gzip/i.test(text) || !/\r\ntransfer-encoding: chunked/i.test(text)) {
          reject(new Error(`unexpected head: ${text}`));
          return;
        }
        pending = head.subarray(end + 4);
        head = undefined;
      } else pending = pending.length === 0 ? d : Buffer.concat([pending, d]);
      dechunk();
    });
    socket.on('error', reject);
    socket.resume();
  });
}

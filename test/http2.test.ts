import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createHash, randomBytes } from 'node:crypto';
import { mkdtempSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { serve, type Yard } from '../src/index.ts';
import { ErrorCode, Flag, FrameType, H2Client, headersFrame, parseGoaway, requestBlock, Setting, settingsFrame, statusOf, windowUpdateFrame } from './helpers/h2-frames.ts';
import { rawExchange, run } from './helpers/net.ts';

// HTTP/2 with real clients: curl (prior knowledge, Upgrade: h2c, and ALPN h2 over TLS from the
// local CA), nghttp and h2load. The same routes, middleware and handlers answer HTTP/1.1 and
// HTTP/2 alike; a plain listener without h2c turns an HTTP/2 preface away and goes on; and a
// drain lets a stream in flight finish while new ones are refused.

const dir = mkdtempSync(join(tmpdir(), 'sy-http2-'));
const dataDir = join(dir, 'data');
const root = join(dir, 'public');
const BIG = randomBytes(5 * 1024 * 1024 + 123);
const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz\n';
const yards: Yard[] = [];
let yard: Yard;
let caRoot: string;

before(async () => {
  mkdirSync(root);
  writeFileSync(join(root, 'digits.txt'), DIGITS);
  writeFileSync(join(root, 'big.bin'), BIG);
  const middleware = { requestId: true, cors: true };
  const routes = [
    { match: { path: '/hello' }, handler: { type: 'respond', body: 'hello\n' } },
    { match: { path: '/static/*' }, handler: { type: 'static', root } },
  ];
  yard = await start([
    { name: 'h1', protocol: 'http', address: '127.0.0.1:0', middleware, routes },
    { name: 'h2c', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, middleware, routes },
    { name: 'tls', protocol: 'http', address: '127.0.0.1:0', tls: { issuer: 'internal', names: ['localhost'] }, middleware, routes },
  ]);
  caRoot = join(dataDir, 'pki', 'local', 'root.crt');
});

after(async () => {
  for (const y of yards) await y.stop(100);
});

async function start(listeners: unknown[]): Promise<Yard> {
  const y = await serve({ listeners }, { logLevel: 'silent', dataDir, baseDir: dir });
  yards.push(y);
  return y;
}

const sha = (b: Buffer) => createHash('sha256').update(b).digest('hex');

type Transport = 'h1' | 'h2c' | 'upgrade' | 'tls-h2' | 'tls-h1';
const TRANSPORTS: Transport[] = ['h1', 'h2c', 'upgrade', 'tls-h2', 'tls-h1'];
const VERSION: Record<Transport, string> = { h1: '1.1', h2c: '2', upgrade: '2', 'tls-h2': '2', 'tls-h1': '1.1' };

function base(t: Transport): { url: string; args: string[] } {
  switch (t) {
    case 'h1':
      return { url: `http://127.0.0.1:${yard.address('h1').port}`, args: ['--http1.1'] };
    case 'h2c':
      return { url: `http://127.0.0.1:${yard.address('h2c').port}`, args: ['--http2-prior-knowledge'] };
    case 'upgrade':
      return { url: `http://127.0.0.1:${yard.address('h2c').port}`, args: ['--http2'] };
    case 'tls-h2':
      return { url: `https://localhost:${yard.address('tls').port}`, args: ['--cacert', caRoot] };
    case 'tls-h1':
      return { url: `https://localhost:${yard.address('tls').port}`, args: ['--cacert', caRoot, '--http1.1'] };
  }
}

interface Curled {
  version: string;
  status: number;
  headers: Record<string, string>;
  body: Buffer;
  /** Every status line curl saw (an Upgrade shows its 101 first). */
  statusLines: string[];
}

let calls = 0;
/** curl over transport `t`; the last response's head from -D, its body from -o. */
async function curl(t: Transport, path: string, ...args: string[]): Promise<Curled> {
  const { url, args: pre } = base(t);
  const n = ++calls;
  const head = join(dir, `head-${n}`);
  const body = join(dir, `body-${n}`);
  const r = await run('curl', ['-sS', ...pre, '-D', head, '-o', body, '-w', '%{http_version}', ...args, url + path], { timeoutMs: 20_000 });
  assert.equal(r.code, 0, `curl ${t} ${path}: ${r.stderr}`);
  const lines = readFileSync(head, 'latin1').split('\r\n');
  const statusLines = lines.filter((l) => l.startsWith('HTTP/'));
  const last = lines.lastIndexOf(statusLines[statusLines.length - 1]);
  const headers: Record<string, string> = {};
  for (const l of lines.slice(last + 1)) {
    const i = l.indexOf(':');
    if (i > 0) headers[l.slice(0, i).toLowerCase()] = l.slice(i + 1).trim();
  }
  let bodyBytes: Buffer;
  try {
    bodyBytes = readFileSync(body);
  } catch {
    bodyBytes = Buffer.alloc(0); // curl writes no file for an empty body
  }
  return { version: r.stdout, status: Number(statusLines[statusLines.length - 1].split(' ')[1]), headers, body: bodyBytes, statusLines };
}

test('curl: h2c by prior knowledge, h2c by Upgrade (101, then the answer on stream 1), h2 over TLS through ALPN', async () => {
  const prior = await curl('h2c', '/hello');
  assert.equal(prior.version, '2');
  assert.equal(prior.body.toString(), 'hello\n');
  assert.deepEqual(prior.statusLines, ['HTTP/2 200 ']);

  const up = await curl('upgrade', '/hello');
  assert.equal(up.version, '2');
  assert.equal(up.statusLines[0].trim(), 'HTTP/1.1 101 Switching Protocols');
  assert.equal(up.statusLines[1].trim(), 'HTTP/2 200');
  assert.equal(up.body.toString(), 'hello\n');

  const tls = await curl('tls-h2', '/hello');
  assert.equal(tls.version, '2', 'curl picks h2 from the ALPN offer');
  assert.equal(tls.body.toString(), 'hello\n');
  assert.equal((await curl('tls-h1', '/hello')).version, '1.1', 'http/1.1 is still offered');
  // Several requests on one connection (over TLS: curl 7.88 cannot reuse a prior-knowledge
  // connection, its bug #10634, fixed in 8.0).
  const { url, args } = base('tls-h2');
  const many = await run('curl', ['-sS', ...args, '-w', '%{http_version} %{num_connects}\n', `${url}/hello`, `${url}/static/digits.txt`, `${url}/hello`]);
  assert.equal(many.stdout, `hello\n2 1\n${DIGITS}2 0\nhello\n2 0\n`, many.stderr);
});

test('the same routes, middleware and handlers over HTTP/1.1 and HTTP/2: respond, static (304, 206, a big file, HEAD), 404, request id, CORS', async () => {
  for (const t of TRANSPORTS) {
    const at = (what: string) => `${t}: ${what}`;
    const hello = await curl(t, '/hello', '-H', 'Origin: http://app.test');
    assert.equal(hello.version, VERSION[t], at('version'));
    assert.equal(hello.status, 200, at('respond'));
    assert.equal(hello.body.toString(), 'hello\n', at('respond body'));
    assert.match(hello.headers['x-request-id'] ?? '', /^\S+$/, at('request id given'));
    assert.equal(hello.headers['access-control-allow-origin'], '*', at('CORS on a simple request'));
    const kept = await curl(t, '/hello', '-H', 'X-Request-Id: from-the-client-1');
    assert.equal(kept.headers['x-request-id'], 'from-the-client-1', at('request id kept'));
    const preflight = await curl(t, '/hello', '-X', 'OPTIONS', '-H', 'Origin: http://app.test', '-H', 'Access-Control-Request-Method: PUT');
    assert.equal(preflight.status, 204, at('preflight'));
    assert.match(preflight.headers['access-control-allow-methods'] ?? '', /PUT/, at('preflight methods'));

    const file = await curl(t, '/static/digits.txt');
    assert.equal(file.status, 200, at('static'));
    assert.equal(file.body.toString(), DIGITS);
    const etag = file.headers.etag;
    assert.ok(etag, at('etag'));
    const notModified = await curl(t, '/static/digits.txt', '-H', `If-None-Match: ${etag}`);
    assert.equal(notModified.status, 304, at('If-None-Match'));
    assert.equal(notModified.body.length, 0);
    assert.equal(notModified.headers.etag, etag);
    const since = await curl(t, '/static/digits.txt', '-H', `If-Modified-Since: ${file.headers['last-modified']}`);
    assert.equal(since.status, 304, at('If-Modified-Since'));

    const range = await curl(t, '/static/digits.txt', '-r', '2-5');
    assert.equal(range.status, 206, at('range'));
    assert.equal(range.headers['content-range'], `bytes 2-5/${DIGITS.length}`);
    assert.equal(range.body.toString(), '2345');
    const multi = await curl(t, '/static/digits.txt', '-r', '0-1,10-11');
    assert.equal(multi.status, 206, at('multiple ranges'));
    assert.match(multi.headers['content-type'] ?? '', /^multipart\/byteranges; boundary=/);
    assert.match(multi.body.toString(), /content-range: bytes 0-1\/37\r\n\r\n01\r\n[\s\S]*content-range: bytes 10-11\/37\r\n\r\nab\r\n/i);
    const unsatisfiable = await curl(t, '/static/digits.txt', '-r', '100-200');
    assert.equal(unsatisfiable.status, 416, at('416'));

    const big = await curl(t, '/static/big.bin');
    assert.equal(big.status, 200, at('big file'));
    assert.equal(big.body.length, BIG.length, at('big file size'));
    assert.equal(sha(big.body), sha(BIG), at('big file bytes'));
    const bigRange = await curl(t, '/static/big.bin', '-r', '1000000-3999999');
    assert.equal(bigRange.status, 206);
    assert.ok(bigRange.body.equals(BIG.subarray(1_000_000, 4_000_000)), at('big range bytes'));

    const head = await curl(t, '/static/big.bin', '-I');
    assert.equal(head.status, 200, at('HEAD'));
    assert.equal(head.headers['content-length'], String(BIG.length), at('HEAD length'));

    const missing = await curl(t, '/static/nothing-here.txt');
    assert.equal(missing.status, 404, at('404'));
    const unrouted = await curl(t, '/elsewhere');
    assert.equal(unrouted.status, 404, at('no route'));
    if (VERSION[t] === '2') {
      for (const name of ['connection', 'keep-alive', 'transfer-encoding']) assert.equal(hello.headers[name], undefined, at(`no ${name} on HTTP/2`));
    }
  }
});

test('nghttp: the SETTINGS the listener sends and a request, frame by frame, over h2c and TLS', async () => {
  for (const url of [`http://127.0.0.1:${yard.address('h2c').port}/hello`, `https://localhost:${yard.address('tls').port}/hello`]) {
    const r = await run('nghttp', ['-nv', url]);
    assert.equal(r.code, 0, r.stderr + r.stdout);
    const out = r.stdout;
    assert.match(out, /recv SETTINGS frame <length=\d+, flags=0x00, stream_id=0>/);
    assert.match(out, /\[SETTINGS_MAX_CONCURRENT_STREAMS\(0x03\):128\]/);
    assert.match(out, /\[SETTINGS_INITIAL_WINDOW_SIZE\(0x04\):65536\]/);
    assert.match(out, /\[SETTINGS_MAX_HEADER_LIST_SIZE\(0x06\):16384\]/);
    assert.match(out, /\[SETTINGS_ENABLE_CONNECT_PROTOCOL\(0x08\):1\]/);
    assert.match(out, /recv WINDOW_UPDATE frame <length=4, flags=0x00, stream_id=0>\s+\(window_size_increment=983041\)/, 'the connection window raised to 1 MiB');
    assert.match(out, /recv \(stream_id=13\) :status: 200/);
    assert.match(out, /recv \(stream_id=13\) x-request-id: \S+/);
    // The body's one DATA frame ends the stream: no empty frame (or trailers) after it.
    assert.match(out, /recv DATA frame <length=6, flags=0x01, stream_id=13>\s+; END_STREAM/);
    assert.doesNotMatch(out, /recv DATA frame <length=0/);
    assert.match(out, /send GOAWAY frame/);
  }
  // HEAD: the length of the file, its headers ending the stream, and no DATA.
  const head = await run('nghttp', ['-nv', '-H', ':method: HEAD', `http://127.0.0.1:${yard.address('h2c').port}/static/big.bin`]);
  assert.equal(head.code, 0, head.stderr);
  assert.match(head.stdout, new RegExp(`recv \\(stream_id=13\\) content-length: ${BIG.length}\n`));
  assert.match(head.stdout, /recv HEADERS frame <length=\d+, flags=0x05, stream_id=13>\s+; END_STREAM \| END_HEADERS/);
  assert.doesNotMatch(head.stdout, /recv DATA frame/);
  // Statistics for several requests on one connection.
  const base = `http://127.0.0.1:${yard.address('h2c').port}`;
  const stats = await run('nghttp', ['-ns', `${base}/hello`, `${base}/static/digits.txt`, `${base}/static/big.bin`]);
  assert.equal(stats.code, 0, stats.stderr);
  for (const path of ['/hello', '/static/digits.txt', '/static/big.bin']) assert.match(stats.stdout, new RegExp(`\\s${path.replace(/\./g, '\\.')}\\n`));
});

test('h2load: 2000 requests over 4 connections, 16 streams each at once, all answered 2xx (h2c and TLS)', async () => {
  for (const url of [`http://127.0.0.1:${yard.address('h2c').port}/hello`, `https://localhost:${yard.address('tls').port}/static/digits.txt`]) {
    const r = await run('h2load', ['-n', '2000', '-c', '4', '-m', '16', url], { timeoutMs: 60_000 });
    assert.equal(r.code, 0, r.stderr + r.stdout);
    assert.match(r.stdout, /requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed, 0 errored, 0 timeout/, r.stdout);
    assert.match(r.stdout, /status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx/);
    if (url.startsWith('https')) assert.match(r.stdout, /Application protocol: h2/);
  }
});

test('a plain listener without h2c: the HTTP/2 preface gets 400 and the connection closes; the listener goes on', async () => {
  const port = yard.address('h1').port;
  const preface = Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1'), settingsFrame([])]);
  const got = (await rawExchange(port, preface)).toString('latin1');
  assert.match(got, /^HTTP\/1\.1 400 /);
  assert.match(got, /connection: close/i);
  const prior = await run('curl', ['-sS', '--http2-prior-knowledge', `http://127.0.0.1:${port}/hello`]);
  assert.notEqual(prior.code, 0, 'curl gets no HTTP/2 answer');
  // Upgrade: h2c is not taken either: the request is answered over HTTP/1.1.
  const up = await curl('h1', '/hello', '--http2');
  assert.deepEqual(up.statusLines.map((l) => l.trim()), ['HTTP/1.1 200 OK']);
  assert.equal(up.body.toString(), 'hello\n');
  assert.equal((await curl('h1', '/hello')).status, 200);
  // And a TLS listener with http2.enabled false offers only http/1.1.
  const y = await start([{ name: 'only1', protocol: 'http', address: '127.0.0.1:0', tls: { issuer: 'internal' }, http2: { enabled: false }, routes: [{ handler: { type: 'respond', body: 'one\n' } }] }]);
  const r = await run('curl', ['-sS', '--cacert', caRoot, '-w', '%{http_version}', `https://localhost:${y.address('only1').port}/`]);
  assert.equal(r.stdout, 'one\n1.1', r.stderr);
});

test('drain: a stream in flight finishes, the client sees GOAWAY, new streams and connections are refused', async () => {
  const y = await start([{ name: 'd', protocol: 'http', address: '127.0.0.1:0', http2: { h2c: true }, routes: [{ match: { path: '/static/*' }, handler: { type: 'static', root } }, { handler: { type: 'respond', body: 'ok\n' } }] }]);
  const port = y.address('d').port;
  // A raw client holding its window at zero: its stream stays in flight until it says so.
  const c = await H2Client.connect(port, { settings: [[Setting.INITIAL_WINDOW_SIZE, 0]] });
  c.request(1, '/static/big.bin');
  assert.equal(statusOf((await c.response(1))!), 200);
  // And curl, downloading at 2 MB/s.
  const url = `http://127.0.0.1:${port}/static/big.bin`;
  const curlDone = run('curl', ['-sS', '--http2-prior-knowledge', '--limit-rate', '2M', '-o', join(dir, 'drained.bin'), '-w', '%{http_code} %{size_download}', url], { timeoutMs: 30_000 });
  await new Promise((resolve) => setTimeout(resolve, 300));

  const stopping = y.stop(20_000);
  const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY);
  assert.ok(goaway, 'GOAWAY');
  const g = parseGoaway(goaway);
  assert.equal(g.errorCode, ErrorCode.NO_ERROR);
  assert.equal(g.lastStreamId, 1, 'the last stream taken is the one in flight');
  // A new stream on the draining connection is not served.
  c.write(headersFrame(3, requestBlock('127.0.0.1', '/')));
  // A new connection is not accepted.
  await assert.rejects(rawExchange(port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', { timeoutMs: 1000 }), /ECONNREFUSED/);
  // The stream in flight gets the room it needs and finishes, whole.
  c.write(Buffer.concat([settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1 << 24]]), windowUpdateFrame(0, 1 << 24)]));
  const end = await c.streamEnd(1, 20_000);
  assert.ok(end && end.type === FrameType.DATA && (end.flags & Flag.END_STREAM) !== 0, 'stream 1 ended normally');
  assert.equal(c.dataBytes.get(1), BIG.length);
  assert.equal(c.frames.some((f) => f.type === FrameType.HEADERS && f.streamId === 3), false, 'stream 3 was never answered');
  assert.ok(await c.closedWithin(10_000), 'then the connection closes');

  const fetched = await curlDone;
  assert.equal(fetched.code, 0, fetched.stderr);
  assert.equal(fetched.stdout, `200 ${BIG.length}`);
  assert.equal(sha(readFileSync(join(dir, 'drained.bin'))), sha(BIG));
  assert.deepEqual(await stopping, { cutOff: 0 }, 'nothing was cut off');
});

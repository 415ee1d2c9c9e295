import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { request } from 'undici';
import { serve, type Yard } from '../src/index.ts';
import { killDaemon, startDaemon, type Daemon } from './helpers/daemon.ts';
import { rawExchange, run, statusOf } from './helpers/net.ts';

// The objects handler through real clients: curl for what users type, undici for programs, a
// raw socket for paths curl would tidy up, and a daemon killed with SIGKILL mid-upload.

let dir: string;
let yard: Yard;
let port: number;
const root = () => join(dir, 'store');

before(async () => {
  dir = mkdtempSync(join(tmpdir(), 'sy-objects-'));
  yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          routes: [
            { match: { path: '/s3/*' }, handler: { type: 'objects', root: 'store' } },
            { match: { path: '/full/*' }, handler: { type: 'objects', root: 'store', verifyOnRead: 'full' } },
            { match: { path: '/small/*' }, handler: { type: 'objects', root: 'small', maxObjectSize: '1KiB' } },
            { match: { path: '/expire/*' }, handler: { type: 'objects', root: 'expire', multipart: { uploadTimeout: '1s' } } },
          ],
        },
      ],
    },
    { baseDir: dir, logLevel: 'silent' },
  );
  port = yard.address('web').port;
  for (const b of ['/s3/photos', '/s3/list', '/s3/multi', '/small/tiny', '/expire/old']) assert.equal((await req('PUT', b)).status, 200, b);
});

after(async () => {
  await yard?.stop(2000);
  if (dir) rmSync(dir, { recursive: true, force: true });
});

interface Answer {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

async function req(method: string, path: string, body?: Buffer | string, headers: Record<string, string> = {}): Promise<Answer> {
  const r = await request(`http://127.0.0.1:${port}${path}`, { method: method as 'GET', body, headers });
  const buf = Buffer.from(await r.body.arrayBuffer());
  const h: Record<string, string> = {};
  for (const [k, v] of Object.entries(r.headers)) h[k] = Array.isArray(v) ? v.join(', ') : String(v);
  return { status: r.statusCode, headers: h, body: buf };
}

/** curl, head and body apart; `code` is curl's exit code (18: the transfer ended short). */
async function curl(path: string, ...args: string[]): Promise<Answer & { code: number }> {
  const { stdout, code } = await run('curl', ['-sS', '-D', '-', ...args, `http://127.0.0.1:${port}${path}`], { timeoutMs: 20000 });
  const raw = Buffer.from(stdout, 'latin1');
  const end = raw.indexOf('\r\n\r\n');
  const lines = raw.subarray(0, Math.max(0, end)).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  return { code, status: Number(lines[0]?.split(' ')[1]), headers, body: end === -1 ? Buffer.alloc(0) : raw.subarray(end + 4) };
}

const sha256 = (b: Buffer | string) => createHash('sha256').update(b).digest();
const md5 = (b: Buffer | string) => createHash('md5').update(b).digest();
const tmpFiles = (r: string) => readdirSync(join(r, '.staging', 'tmp'));

test('buckets: PUT into a missing bucket is 404 NoSuchBucket; PUT /bucket creates it; HEAD and DELETE', async () => {
  const missing = await req('PUT', '/s3/nobucket/k', 'x');
  assert.equal(missing.status, 404);
  assert.equal(missing.headers['x-objects-error'], 'NoSuchBucket');
  assert.equal((await req('HEAD', '/s3/fresh-bucket')).status, 404);
  assert.equal((await req('PUT', '/s3/fresh-bucket')).status, 200);
  assert.equal((await req('HEAD', '/s3/fresh-bucket')).status, 200);
  assert.equal((await req('PUT', '/s3/fresh-bucket/k', 'x')).status, 200);
  assert.equal((await req('DELETE', '/s3/fresh-bucket')).status, 409);
  assert.equal((await req('DELETE', '/s3/fresh-bucket/k')).status, 204);
  assert.equal((await req('DELETE', '/s3/fresh-bucket')).status, 204);
  assert.equal((await req('HEAD', '/s3/fresh-bucket')).status, 404);
  assert.equal((await req('PUT', '/s3/Bad_Name')).status, 400);
  const names = JSON.parse((await req('GET', '/s3/')).body.toString()) as { buckets: { name: string }[] };
  assert.ok(names.buckets.some((b) => b.name === 'photos'));
});

test('put, get, head, delete with curl: content type kept, ETag is the SHA-256', async () => {
  const body = Buffer.from('a picture, more or less\n');
  const put = await curl('/s3/photos/2024/june/cat.txt', '-X', 'PUT', '-H', 'content-type: text/x-cat', '--data-binary', body.toString());
  assert.equal(put.status, 200);
  assert.equal(put.headers.etag, `"${sha256(body).toString('hex')}"`);
  const got = await curl('/s3/photos/2024/june/cat.txt');
  assert.equal(got.status, 200);
  assert.deepEqual(got.body, body);
  assert.equal(got.headers['content-type'], 'text/x-cat');
  assert.equal(got.headers['x-amz-checksum-sha256'], sha256(body).toString('base64'));
  const head = await curl('/s3/photos/2024/june/cat.txt', '-I');
  assert.equal(head.status, 200);
  assert.equal(head.headers['content-length'], String(body.length));
  // Overwrite, then delete: the old body file goes with it.
  assert.equal((await req('PUT', '/s3/photos/2024/june/cat.txt', 'v2')).body.length, 0);
  assert.equal((await req('GET', '/s3/photos/2024/june/cat.txt')).body.toString(), 'v2');
  assert.equal(readdirSync(join(root(), 'photos', '2024.d', 'june.d')).filter((n) => n.endsWith('.b')).length, 1);
  assert.equal((await curl('/s3/photos/2024/june/cat.txt', '-X', 'DELETE')).status, 204);
  assert.equal((await curl('/s3/photos/2024/june/cat.txt')).status, 404);
  assert.equal(existsSync(join(root(), 'photos', '2024.d')), false, 'empty parent directories removed');
  // A key and a key below it live side by side.
  assert.equal((await req('PUT', '/s3/photos/a', 'file a')).status, 200);
  assert.equal((await req('PUT', '/s3/photos/a/b', 'file a/b')).status, 200);
  assert.equal((await req('GET', '/s3/photos/a')).body.toString(), 'file a');
  assert.equal((await req('GET', '/s3/photos/a/b')).body.toString(), 'file a/b');
});

test('checksums: good x-amz-checksum-sha256 and Content-MD5 are kept, bad ones are 400 BadDigest and store nothing', async () => {
  const body = 'checked bytes';
  const ok = await req('PUT', '/s3/photos/sum-ok', body, { 'x-amz-checksum-sha256': sha256(body).toString('base64'), 'content-md5': md5(body).toString('base64') });
  assert.equal(ok.status, 200);
  const badSha = await req('PUT', '/s3/photos/sum-bad', body, { 'x-amz-checksum-sha256': sha256('other').toString('base64') });
  assert.equal(badSha.status, 400);
  assert.equal(badSha.headers['x-objects-error'], 'BadDigest');
  const badMd5 = await curl('/s3/photos/sum-bad', '-X', 'PUT', '--data-binary', body, '-H', `content-md5: ${md5('other').toString('base64')}`);
  assert.equal(badMd5.status, 400);
  assert.match(badMd5.body.toString(), /BadDigest/);
  assert.equal((await req('PUT', '/s3/photos/sum-bad', body, { 'content-md5': 'not base64!' })).status, 400);
  assert.equal((await req('GET', '/s3/photos/sum-bad')).status, 404);
  assert.deepEqual(tmpFiles(root()), []);
  // Overwriting with a bad digest keeps the old object.
  assert.equal((await req('PUT', '/s3/photos/sum-ok', 'new', { 'x-amz-checksum-sha256': sha256('wrong').toString('base64') })).status, 400);
  assert.equal((await req('GET', '/s3/photos/sum-ok')).body.toString(), body);
});

test('size limit: 413 from Content-Length before reading, and while streaming a chunked body', async () => {
  const big = Buffer.alloc(4096, 0x61);
  const declared = await curl('/small/tiny/k', '-X', 'PUT', '--data-binary', big.toString());
  assert.equal(declared.status, 413);
  const chunked = await curl('/small/tiny/k', '-X', 'PUT', '-H', 'transfer-encoding: chunked', '--data-binary', big.toString());
  assert.equal(chunked.status, 413);
  assert.equal((await req('GET', '/small/tiny/k')).status, 404);
  assert.deepEqual(tmpFiles(join(dir, 'small')), []);
  assert.equal((await req('PUT', '/small/tiny/k', Buffer.alloc(1024))).status, 200);
});

test('key validation: traversal, NUL, empty segments and long keys are 400; nothing lands outside the root', async () => {
  const paths = [
    '/s3/photos/../../escape',
    '/s3/photos/a/../../escape',
    '/s3/photos/%2e%2e/%2e%2e/escape',
    '/s3/photos/..%2f..%2fescape',
    '/s3/photos/a/%2E%2E',
    '/s3/photos/a%00b',
    '/s3/photos/a%2F%2Fb',
    '/s3/photos/%2Fa',
    '/s3/photos/a/',
    '/s3/photos/./a',
    '/s3/photos/%ff%fe',
    '/s3/photos/' + 'k'.repeat(1025),
    '/s3/photos/' + 'k'.repeat(201),
    '/s3/..%2fstore/x',
  ];
  for (const p of paths) {
    const raw = await rawExchange(port, `PUT ${p} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\nConnection: close\r\n\r\nbad`);
    const status = statusOf(raw);
    assert.ok(status === 400, `${p}: ${status}`);
  }
  assert.equal(existsSync(join(dir, 'escape')), false);
  assert.equal(existsSync(join(root(), 'escape')), false);
  // curl's own spelling, without path tidying.
  assert.equal((await curl('/s3/photos/../escape', '--path-as-is', '-X', 'PUT', '--data-binary', 'x')).status, 400);
  // Allowed: spaces, unicode, an encoded slash (a separator of the key, as in S3).
  assert.equal((await req('PUT', '/s3/photos/%C3%A9t%C3%A9%20photo/x%2Fy', 'ok')).status, 200);
  assert.equal((await req('GET', '/s3/photos/%C3%A9t%C3%A9%20photo/x/y')).body.toString(), 'ok');
});

test('ranges and conditional requests, with curl', async () => {
  const body = '0123456789abcdefghij';
  const put = await req('PUT', '/s3/photos/digits', body, { 'content-type': 'text/plain' });
  const etag = put.headers.etag;
  const r = await curl('/s3/photos/digits', '-r', '5-9');
  assert.equal(r.status, 206);
  assert.equal(r.body.toString(), '56789');
  assert.equal(r.headers['content-range'], 'bytes 5-9/20');
  assert.equal((await curl('/s3/photos/digits', '-r', '-3')).body.toString(), 'hij');
  const multi = await curl('/s3/photos/digits', '-r', '0-1,18-19');
  assert.equal(multi.status, 206);
  assert.match(multi.headers['content-type'], /^multipart\/byteranges/);
  assert.equal((await curl('/s3/photos/digits', '-r', '50-60')).status, 416);
  assert.equal((await curl('/s3/photos/digits', '-H', `if-none-match: ${etag}`)).status, 304);
  assert.equal((await curl('/s3/photos/digits', '-H', 'if-none-match: "other"')).status, 200);
  assert.equal((await curl('/s3/photos/digits', '-H', 'if-match: "other"')).status, 412);
  assert.equal((await curl('/s3/photos/digits', '-H', `if-match: ${etag}`)).status, 200);
  assert.equal((await curl('/s3/photos/digits', '-r', '0-1', '-H', 'if-range: "old"')).status, 200);
});

test('list: byte order, prefix, pagination with continuation tokens, delimiter', async () => {
  const keys = ['a', 'a-b', 'a/b', 'a/c/d', 'b', 'b/x', 'z', 'é'];
  for (const k of keys) assert.equal((await req('PUT', `/s3/list/${encodeURIComponent(k).replace(/%2F/g, '/')}`, k)).status, 200, k);
  const sorted = [...keys].sort((x, y) => Buffer.compare(Buffer.from(x), Buffer.from(y)));
  type Page = { contents: { key: string; size: number; etag: string }[]; commonPrefixes: { prefix: string }[]; isTruncated: boolean; nextContinuationToken?: string };
  const page = async (q: string): Promise<Page> => JSON.parse((await req('GET', `/s3/list?list-type=2&${q}`)).body.toString()) as Page;
  const all = await page('');
  assert.deepEqual(all.contents.map((c) => c.key), sorted);
  assert.equal(all.contents[0].size, 1);
  assert.equal(all.contents[0].etag, `"${sha256('a').toString('hex')}"`);
  const seen: string[] = [];
  let token: string | undefined;
  for (let i = 0; i < 10; i++) {
    const p = await page(`max-keys=3${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`);
    assert.ok(p.contents.length <= 3);
    seen.push(...p.contents.map((c) => c.key));
    if (!p.isTruncated) break;
    token = p.nextContinuationToken;
  }
  assert.deepEqual(seen, sorted);
  assert.deepEqual((await page('prefix=a/')).contents.map((c) => c.key), ['a/b', 'a/c/d']);
  const delim = await page('delimiter=/');
  assert.deepEqual(delim.contents.map((c) => c.key), ['a', 'a-b', 'b', 'z', 'é']);
  assert.deepEqual(delim.commonPrefixes.map((c) => c.prefix), ['a/', 'b/']);
  const paged: string[] = [];
  token = undefined;
  for (let i = 0; i < 10; i++) {
    const p = await page(`delimiter=/&max-keys=2${token ? `&continuation-token=${encodeURIComponent(token)}` : ''}`);
    paged.push(...p.contents.map((c) => c.key), ...p.commonPrefixes.map((c) => c.prefix));
    if (!p.isTruncated) break;
    token = p.nextContinuationToken;
  }
  assert.deepEqual(paged.sort(), ['a', 'a-b', 'a/', 'b', 'b/', 'z', 'é'].sort());
  assert.equal(paged.length, 7, 'a common prefix is listed once across pages');
  assert.equal((await req('GET', '/s3/list?list-type=2&continuation-token=garbage')).status, 400);
  assert.equal((await req('GET', '/s3/list?delimiter=-')).status, 400);
  assert.equal((await req('GET', '/s3/nolist?list-type=2')).status, 404);
});

test('corruption: a flipped byte cuts the GET short (curl sees a partial transfer), verifyOnRead full answers 500', async () => {
  const body = Buffer.alloc(300 * 1024);
  for (let i = 0; i < body.length; i++) body[i] = i % 251;
  assert.equal((await req('PUT', '/s3/photos/fragile.bin', body)).status, 200);
  assert.deepEqual((await req('GET', '/s3/photos/fragile.bin')).body, body);
  const dirPath = join(root(), 'photos');
  const meta = JSON.parse(readFileSync(join(dirPath, 'fragile.bin.m'), 'utf8')) as { body: string };
  const file = join(dirPath, meta.body);
  const stored = readFileSync(file);
  stored[1000] ^= 0xff;
  writeFileSync(file, stored);
  const before = await yard.metrics.text();
  const got = await curl('/s3/photos/fragile.bin');
  assert.equal(got.status, 200);
  assert.equal(got.code, 18, 'curl reports a transfer that ended before Content-Length');
  assert.ok(got.body.length < body.length);
  const full = await req('GET', '/full/photos/fragile.bin');
  assert.equal(full.status, 500);
  assert.match(full.body.toString(), /CorruptObject/);
  assert.equal((await req('HEAD', '/full/photos/fragile.bin')).status, 500);
  const after = await yard.metrics.text();
  const count = (t: string) => Number(/switchyard_objects_corrupt_total\{listener="web"\} (\d+)/.exec(t)?.[1] ?? 0);
  assert.equal(count(after) - count(before), 3);
  // A truncated body file is caught before anything is sent.
  writeFileSync(file, stored.subarray(0, 100));
  assert.equal((await req('GET', '/s3/photos/fragile.bin')).status, 500);
});

test('multipart: initiate, parts, complete; wrong etag and missing part refused; abort', async () => {
  const init = JSON.parse((await req('POST', '/s3/multi/big/file.bin?uploads', undefined, { 'content-type': 'application/x-big' })).body.toString()) as { uploadId: string };
  assert.match(init.uploadId, /^[0-9a-f]{32}$/);
  const parts = [Buffer.alloc(200 * 1024, 1), Buffer.alloc(300 * 1024, 2), Buffer.from('tail')];
  const etags: string[] = [];
  for (let i = 0; i < parts.length; i++) {
    const r = await req('PUT', `/s3/multi/big/file.bin?partNumber=${i + 1}&uploadId=${init.uploadId}`, parts[i]);
    assert.equal(r.status, 200);
    etags.push(r.headers.etag);
  }
  assert.equal((await req('GET', '/s3/multi/big/file.bin')).status, 404, 'nothing visible before complete');
  const wrong = await req('POST', `/s3/multi/big/file.bin?uploadId=${init.uploadId}`, JSON.stringify({ parts: [{ partNumber: 1, etag: '"00"' }] }));
  assert.equal(wrong.status, 400);
  const missing = await req('POST', `/s3/multi/big/file.bin?uploadId=${init.uploadId}`, JSON.stringify({ parts: [{ partNumber: 4 }] }));
  assert.equal(missing.status, 400);
  assert.equal((await req('PUT', `/s3/multi/big/file.bin?partNumber=1&uploadId=${'0'.repeat(32)}`, 'x')).status, 404);
  const done = await req('POST', `/s3/multi/big/file.bin?uploadId=${init.uploadId}`, JSON.stringify({ parts: parts.map((_, i) => ({ partNumber: i + 1, etag: etags[i] })) }));
  assert.equal(done.status, 200, done.body.toString());
  const whole = Buffer.concat(parts);
  const got = await req('GET', '/s3/multi/big/file.bin');
  assert.deepEqual(got.body, whole);
  assert.equal(got.headers.etag, `"${sha256(whole).toString('hex')}"`);
  assert.equal(got.headers['content-type'], 'application/x-big');
  assert.deepEqual(readdirSync(join(root(), '.staging', 'uploads')), []);
  // Abort
  const second = JSON.parse((await req('POST', '/s3/multi/other?uploads')).body.toString()) as { uploadId: string };
  assert.equal((await req('PUT', `/s3/multi/other?partNumber=1&uploadId=${second.uploadId}`, 'x')).status, 200);
  assert.equal((await req('DELETE', `/s3/multi/other?uploadId=${second.uploadId}`)).status, 204);
  assert.equal((await req('PUT', `/s3/multi/other?partNumber=2&uploadId=${second.uploadId}`, 'x')).status, 404);
  assert.equal((await req('GET', '/s3/multi/other')).status, 404);
});

test('multipart: an abandoned upload is removed after multipart.uploadTimeout', async () => {
  const init = JSON.parse((await req('POST', '/expire/old/k?uploads')).body.toString()) as { uploadId: string };
  assert.equal((await req('PUT', `/expire/old/k?partNumber=1&uploadId=${init.uploadId}`, 'part')).status, 200);
  const uploads = join(dir, 'expire', '.staging', 'uploads');
  assert.deepEqual(readdirSync(uploads), [init.uploadId]);
  const deadline = Date.now() + 10_000;
  while (readdirSync(uploads).length > 0 && Date.now() < deadline) await sleep(100);
  assert.deepEqual(readdirSync(uploads), []);
  assert.equal((await req('POST', `/expire/old/k?uploadId=${init.uploadId}`, JSON.stringify({ parts: [{ partNumber: 1 }] }))).status, 404);
});

test('crash: SIGKILL mid-upload leaves no object, and the temp file is removed at the next start', async () => {
  const crashDir = mkdtempSync(join(tmpdir(), 'sy-objects-crash-'));
  let daemon: Daemon | undefined;
  let uploader: ReturnType<typeof spawn> | undefined;
  try {
    const store = join(crashDir, 'store');
    const config = { listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', limits: { maxBodySize: '64MiB' }, routes: [{ handler: { type: 'objects', root: store } }] }] };
    const file = join(crashDir, 'switchyard.json');
    writeFileSync(file, JSON.stringify(config));
    daemon = await startDaemon([file, '--log-level', 'info'], { cwd: crashDir });
    let p = daemon.port('web');
    const base = () => `http://127.0.0.1:${p}`;
    assert.equal((await request(`${base()}/crash`, { method: 'PUT' })).statusCode, 200);
    // 8 MiB announced, sent at 64 KiB/s: the daemon dies long before the end.
    const payload = join(crashDir, 'payload');
    writeFileSync(payload, Buffer.alloc(8 * 1024 * 1024, 0x78));
    uploader = spawn('curl', ['-sS', '--limit-rate', '64k', '-X', 'PUT', '--data-binary', `@${payload}`, `${base()}/crash/big.bin`], { stdio: 'ignore' });
    const tmp = join(store, '.staging', 'tmp');
    const deadline = Date.now() + 10_000;
    while (Date.now() < deadline) {
      const names = readdirSync(tmp);
      if (names.length > 0 && readFileSync(join(tmp, names[0])).length > 0) break;
      await sleep(50);
    }
    assert.equal(readdirSync(tmp).length, 1, 'the upload is being received into a temp file');
    daemon.child.kill('SIGKILL');
    await daemon.exited;
    uploader.kill('SIGKILL');
    assert.equal(readdirSync(tmp).length, 1, 'the killed daemon left its temp file behind');
    // What a crash between a body's rename and its metadata's leaves: a body nothing names.
    const orphan = join(store, 'crash', 'big.bin.0badf00d-000000000000.b');
    writeFileSync(orphan, 'left behind');

    daemon = await startDaemon([file, '--log-level', 'info'], { cwd: crashDir });
    p = daemon.port('web');
    assert.deepEqual(readdirSync(tmp), [], 'temp files removed at start');
    assert.equal((await request(`${base()}/crash/big.bin`)).statusCode, 404);
    const list = await request(`${base()}/crash?list-type=2`);
    assert.deepEqual((JSON.parse(await list.body.text()) as { contents: unknown[] }).contents, []);
    assert.match(daemon.stdout() + daemon.stderr(), /removed temp files of an earlier run/);
    const sweepDeadline = Date.now() + 10_000;
    while (existsSync(orphan) && Date.now() < sweepDeadline) await sleep(50);
    assert.equal(existsSync(orphan), false, 'a body no metadata names is removed at start');
  } finally {
    uploader?.kill('SIGKILL');
    await killDaemon(daemon);
    rmSync(crashDir, { recursive: true, force: true });
  }
});

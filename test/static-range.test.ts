import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { makeTree, serveTree, sha256, type Tree, type Served } from './fixtures/files.ts';
import { run } from './helpers/net.ts';

// Range and conditional requests, asked the way a real client asks them: with curl.

let tree: Tree;
let srv: Served;
const DIGITS = '0123456789abcdefghij';

before(async () => {
  tree = await makeTree();
  srv = await serveTree(tree);
});

after(async () => {
  await srv?.stop();
  await tree?.cleanup();
});

interface CurlResult {
  status: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** curl with headers dumped to stdout, body after; latin1 keeps bytes as they came. */
async function curl(path: string, ...args: string[]): Promise<CurlResult> {
  // -I prints the head itself; otherwise -D - puts the head before the body on stdout.
  const dump = args.includes('-I') ? [] : ['-D', '-'];
  const { stdout, stderr, code } = await run('curl', ['-sS', ...dump, ...args, `http://127.0.0.1:${srv.web}${path}`]);
  assert.equal(code, 0, `curl failed: ${stderr}`);
  const raw = Buffer.from(stdout, 'latin1');
  const end = raw.indexOf('\r\n\r\n');
  const lines = raw.subarray(0, end).toString('latin1').split('\r\n');
  const headers: Record<string, string> = {};
  for (const l of lines.slice(1)) headers[l.slice(0, l.indexOf(':')).toLowerCase()] = l.slice(l.indexOf(':') + 1).trim();
  return { status: Number(lines[0].split(' ')[1]), headers, body: raw.subarray(end + 4) };
}

test('single ranges: first-last, open-ended, suffix, clamped', async () => {
  const cases: [string, number, string, string][] = [
    ['0-4', 206, '01234', 'bytes 0-4/20'],
    ['15-', 206, 'fghij', 'bytes 15-19/20'],
    ['-3', 206, 'hij', 'bytes 17-19/20'],
    ['10-999', 206, 'abcdefghij', 'bytes 10-19/20'],
    ['-999', 206, DIGITS, 'bytes 0-19/20'],
    ['19-19', 206, 'j', 'bytes 19-19/20'],
  ];
  for (const [range, status, body, cr] of cases) {
    const r = await curl('/files/digits.txt', '-r', range);
    assert.equal(r.status, status, range);
    assert.equal(r.body.toString(), body, range);
    assert.equal(r.headers['content-range'], cr, range);
    assert.equal(r.headers['content-length'], String(body.length), range);
  }
});

test('unsatisfiable range: 416 with Content-Range bytes */size', async () => {
  for (const range of ['20-30', '100-']) {
    const r = await curl('/files/digits.txt', '-r', range);
    assert.equal(r.status, 416, range);
    assert.equal(r.headers['content-range'], 'bytes */20');
  }
  const empty = await curl('/files/empty.txt', '-r', '0-0');
  assert.equal(empty.status, 416);
  assert.equal(empty.headers['content-range'], 'bytes */0');
  const zeroSuffix = await curl('/files/digits.txt', '-H', 'range: bytes=-0');
  assert.equal(zeroSuffix.status, 416);
});

test('ranges that are malformed or of another unit are ignored: 200 whole', async () => {
  for (const h of ['range: bytes=5-1', 'range: items=0-1', 'range: bytes=abc', 'range: bytes=-', 'range: bytes=']) {
    const r = await curl('/files/digits.txt', '-H', h);
    assert.equal(r.status, 200, h);
    assert.equal(r.body.toString(), DIGITS, h);
  }
});

test('multi-range: 206 multipart/byteranges with one part per range', async () => {
  const r = await curl('/files/digits.txt', '-r', '0-1,5-6,-2');
  assert.equal(r.status, 206);
  const m = /^multipart\/byteranges; boundary=(\S+)$/.exec(r.headers['content-type']);
  assert.ok(m, r.headers['content-type']);
  assert.equal(Number(r.headers['content-length']), r.body.length);
  const parts = r.body.toString('latin1').split(`--${m[1]}`);
  assert.equal(parts.at(-1), '--\r\n', 'closing delimiter');
  const got = parts.slice(1, -1).map((p) => {
    const [head, body] = p.split('\r\n\r\n');
    return [/content-range: (.*)/i.exec(head)?.[1], body.replace(/\r\n$/, ''), /content-type: (.*)/i.exec(head)?.[1]];
  });
  assert.deepEqual(got, [
    ['bytes 0-1/20', '01', 'text/plain; charset=utf-8'],
    ['bytes 5-6/20', '56', 'text/plain; charset=utf-8'],
    ['bytes 18-19/20', 'ij', 'text/plain; charset=utf-8'],
  ]);
});

test('multi-range on the sendfile-sized file streams the right parts', async () => {
  const r = await curl('/files/big.bin', '-r', '0-9,2000000-2000009');
  assert.equal(r.status, 206);
  const boundary = /boundary=(\S+)/.exec(r.headers['content-type'])![1];
  const text = r.body.toString('latin1');
  const bodies = text.split(`--${boundary}`).slice(1, -1).map((p) => Buffer.from(p.split('\r\n\r\n')[1].replace(/\r\n$/, ''), 'latin1'));
  assert.deepEqual(bodies[0], tree.big.subarray(0, 10));
  assert.deepEqual(bodies[1], tree.big.subarray(2000000, 2000010));
});

test('abusive multi-range (too many, overlapping, or bloated) gets 200 with the whole body', async () => {
  const many = Array.from({ length: 17 }, (_, i) => `${i}-${i}`).join(',');
  const cases = [many, '0-5,3-8', '0-19,0-19', '-15,0-10'];
  for (const range of cases) {
    const r = await curl('/files/digits.txt', '-r', range);
    assert.equal(r.status, 200, range);
    assert.equal(r.body.toString(), DIGITS, range);
  }
  const sixteen = Array.from({ length: 16 }, (_, i) => `${i}-${i}`).join(',');
  assert.equal((await curl('/files/digits.txt', '-r', sixteen)).status, 206, '16 ranges are still served');
});

test('ranges on the sendfile path use the offset', async () => {
  const r = await curl('/files/big.bin', '-r', '1048570-2097159');
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-range'], `bytes 1048570-2097159/${tree.big.length}`);
  assert.equal(sha256(r.body), sha256(tree.big.subarray(1048570, 2097160)));
  const tail = await curl('/files/big.bin', '-r', '-100');
  assert.deepEqual(tail.body, tree.big.subarray(tree.big.length - 100));
  const streamed = await curl('/nosendfile/big.bin', '-r', '1048570-2097159');
  assert.equal(sha256(streamed.body), sha256(tree.big.subarray(1048570, 2097160)));
});

test('HEAD with Range: the 206 head, no body', async () => {
  for (const path of ['/files/digits.txt', '/files/big.bin']) {
    const r = await curl(path, '-I', '-r', '2-5');
    assert.equal(r.status, 206);
    assert.equal(r.headers['content-length'], '4');
    assert.equal(r.body.length, 0);
  }
});

test('Range on a precompressed variant counts bytes of that variant', async () => {
  const r = await curl('/files/app.js', '-H', 'accept-encoding: br', '-r', '0-5');
  assert.equal(r.status, 206);
  assert.equal(r.headers['content-encoding'], 'br');
  assert.equal(r.headers['content-range'], `bytes 0-5/${'BROTLI-BYTES'.length}`);
  assert.equal(r.body.toString(), 'BROTLI');
});

test('If-None-Match: 304 without a body when the tag matches (also weak and *), 200 otherwise', async () => {
  const first = await curl('/files/a.txt');
  const etag = first.headers.etag;
  for (const inm of [etag, `"nope", ${etag}`, `W/${etag}`, '*']) {
    const r = await curl('/files/a.txt', '-H', `if-none-match: ${inm}`);
    assert.equal(r.status, 304, inm);
    assert.equal(r.body.length, 0);
    assert.equal(r.headers.etag, etag);
    assert.equal(r.headers['cache-control'], 'public, max-age=60');
  }
  const other = await curl('/files/a.txt', '-H', 'if-none-match: "other"');
  assert.equal(other.status, 200);
  const big = await curl('/files/big.bin', '-I');
  const big304 = await curl('/files/big.bin', '-H', `if-none-match: ${big.headers.etag}`);
  assert.equal(big304.status, 304);
  assert.equal(big304.body.length, 0);
});

test('If-Modified-Since: 304 when not modified since; If-None-Match wins over it', async () => {
  const first = await curl('/files/a.txt');
  const lm = first.headers['last-modified'];
  assert.equal((await curl('/files/a.txt', '-H', `if-modified-since: ${lm}`)).status, 304);
  assert.equal((await curl('/files/a.txt', '-H', 'if-modified-since: Thu, 01 Jan 1970 00:00:00 GMT')).status, 200);
  assert.equal((await curl('/files/a.txt', '-H', 'if-modified-since: not a date')).status, 200);
  // A mismatching If-None-Match means "changed" even though the date says otherwise.
  const both = await curl('/files/a.txt', '-H', `if-modified-since: ${lm}`, '-H', 'if-none-match: "other"');
  assert.equal(both.status, 200);
  // curl's own -z sends If-Modified-Since.
  assert.equal((await curl('/files/a.txt', '-z', lm)).status, 304);
});

test('If-Range: the range applies only to the current representation', async () => {
  const first = await curl('/files/digits.txt');
  const { etag } = first.headers;
  const lm = first.headers['last-modified'];
  const same = await curl('/files/digits.txt', '-r', '0-1', '-H', `if-range: ${etag}`);
  assert.equal(same.status, 206);
  assert.equal(same.body.toString(), '01');
  const stale = await curl('/files/digits.txt', '-r', '0-1', '-H', 'if-range: "old"');
  assert.equal(stale.status, 200);
  assert.equal(stale.body.toString(), DIGITS);
  const weak = await curl('/files/digits.txt', '-r', '0-1', '-H', `if-range: W/${etag}`);
  assert.equal(weak.status, 200, 'a weak tag never satisfies If-Range');
  const byDate = await curl('/files/digits.txt', '-r', '0-1', '-H', `if-range: ${lm}`);
  assert.equal(byDate.status, 206);
  const oldDate = await curl('/files/digits.txt', '-r', '0-1', '-H', 'if-range: Thu, 01 Jan 1970 00:00:00 GMT');
  assert.equal(oldDate.status, 200);
});

test('If-Match and If-Unmodified-Since: 412 when they fail', async () => {
  const { etag } = (await curl('/files/a.txt')).headers;
  assert.equal((await curl('/files/a.txt', '-H', 'if-match: "other"')).status, 412);
  assert.equal((await curl('/files/a.txt', '-H', `if-match: ${etag}`)).status, 200);
  assert.equal((await curl('/files/a.txt', '-H', 'if-unmodified-since: Thu, 01 Jan 1970 00:00:00 GMT')).status, 412);
});

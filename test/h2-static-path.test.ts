import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type ClientHttp2Session, type IncomingHttpHeaders } from 'node:http2';
import { createServer, type AddressInfo } from 'node:net';
import { DEFAULT_SESSION_OPTIONS, H2ServerSession } from '../src/listeners/http/h2-engine/session.ts';
import { fieldsToRecord, type H2ServerStream } from '../src/listeners/http/h2-engine/stream.ts';
import { H2Request, H2Response } from '../src/listeners/http/h2-exchange.ts';
import { BodyCache } from '../src/handlers/static/body-cache.ts';
import { Catalog } from '../src/handlers/static/catalog.ts';
import { FsRoot } from '../src/handlers/fs-root.ts';

// What the cheaper HTTP/2 static path relies on: a frozen head passed to the engine as it is (and never
// changed), the body cache's second chance, and one look at the disk for a path however many
// requests want it at once.

interface Answer {
  status: number;
  headers: IncomingHttpHeaders;
  body: string;
}

function get(session: ClientHttp2Session, path: string): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = session.request({ ':path': path });
    const chunks: Buffer[] = [];
    let headers: IncomingHttpHeaders = {};
    req.on('response', (h) => (headers = h));
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => resolve({ status: Number(headers[':status']), headers, body: Buffer.concat(chunks).toString() }));
    req.on('error', reject);
    req.setTimeout(5000, () => req.close());
    req.end();
  });
}

const HEAD = Object.freeze({ 'content-type': 'text/plain', etag: '"5-1"', 'content-length': '5' });
const HEAD_KEYS = Object.keys(HEAD);

test('a frozen head goes to every response as it is: other statuses, fields set before, and the head itself untouched', async (t) => {
  const seen: Record<string, unknown> = {};
  const owner = { streamClosed: () => {} };
  const server = createServer((socket) => {
    new H2ServerSession(socket, DEFAULT_SESSION_OPTIONS, { onStream: (stream, raw) => onStream(stream, raw, socket) });
  });
  const onStream = (stream: H2ServerStream, raw: string[], socket: import('node:net').Socket) => {
    const headers = fieldsToRecord(raw);
    const req = new H2Request(stream, headers, raw, socket);
    const res = new H2Response(stream, req, owner);
    try {
      switch (headers[':path']) {
        case '/plain':
          res.writeHead(200, HEAD);
          // Only its own properties are fields, though a frozen head is a plain object.
          seen.constructorField = res.getHeader('constructor');
          seen.hasConstructor = res.hasHeader('constructor');
          seen.etag = res.getHeader('ETag');
          seen.names = res.getHeaderNames();
          res.end('hello');
          break;
        case '/not-found':
          res.writeHead(404, HEAD);
          res.end('hello');
          break;
        case '/set-before':
          res.setHeader('x-before', '1');
          res.writeHead(200, HEAD);
          res.end('hello');
          break;
        case '/not-frozen':
          res.writeHead(200, { 'X-Upper': 'v', 'content-length': '5' });
          res.end('hello');
          break;
        case '/bad-name':
          try {
            res.writeHead(200, Object.freeze({ 'bad name': 'v' }));
          } catch (err) {
            seen.badName = (err as { code?: string }).code;
          }
          res.writeHead(500);
          res.end();
          break;
        default:
          res.writeHead(400);
          res.end();
      }
    } catch (err) {
      seen.error = err;
      stream.close();
    }
  };
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const session = connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  t.after(() => {
    session.destroy();
    server.close();
  });

  const plain = await get(session, '/plain');
  assert.equal(plain.status, 200);
  assert.equal(plain.body, 'hello');
  assert.equal(plain.headers['content-type'], 'text/plain');
  assert.equal(plain.headers.etag, '"5-1"');
  assert.ok(plain.headers.date, 'Date is added to a borrowed head too');
  assert.equal(seen.constructorField, undefined);
  assert.equal(seen.hasConstructor, false);
  assert.equal(seen.etag, '"5-1"');
  assert.deepEqual(seen.names, HEAD_KEYS);

  const notFound = await get(session, '/not-found');
  assert.equal(notFound.status, 404, 'a status other than 200 with the same head');
  assert.equal(notFound.headers.etag, '"5-1"');

  const before = await get(session, '/set-before');
  assert.equal(before.status, 200);
  assert.equal(before.headers['x-before'], '1', 'a field set before writeHead stays');
  assert.equal(before.headers.etag, '"5-1"');

  const copied = await get(session, '/not-frozen');
  assert.equal(copied.headers['x-upper'], 'v', 'a head that is not frozen is copied (names lower-cased)');

  const bad = await get(session, '/bad-name');
  assert.equal(bad.status, 500);
  assert.equal(seen.badName, 'ERR_INVALID_HTTP_TOKEN', 'a frozen head with a bad name is refused as any other');

  assert.equal(seen.error, undefined);
  assert.deepEqual(Object.keys(HEAD), HEAD_KEYS, 'the handler\'s head gained no field (no :status)');
  assert.ok(Object.isFrozen(HEAD));
});

const ID = (ino: number) => ({ ino, size: 10, mtimeMs: 1 });

test('body cache: an entry asked for since it was stored gets a second chance before eviction', () => {
  const cache = new BodyCache(30, 10);
  cache.set('/a', ID(1), Buffer.alloc(10));
  cache.set('/b', ID(2), Buffer.alloc(10));
  cache.set('/c', ID(3), Buffer.alloc(10));
  assert.ok(cache.get('/a', ID(1)));
  cache.set('/d', ID(4), Buffer.alloc(10));
  assert.equal(cache.get('/b', ID(2)), undefined, 'the oldest entry not asked for is the one evicted');
  assert.ok(cache.get('/a', ID(1)), 'the used one stayed');
  assert.ok(cache.get('/c', ID(3)));
  assert.ok(cache.get('/d', ID(4)));
  assert.equal(cache.size, 30);
  // Every entry used (queue c, a, d): one full turn of second chances, then the front goes all the same.
  cache.set('/e', ID(5), Buffer.alloc(10));
  assert.equal(cache.size, 30);
  assert.equal(cache.get('/c', ID(3)), undefined);
  assert.ok(cache.get('/a', ID(1)));
  assert.ok(cache.get('/e', ID(5)));
});

test('body cache: without hits the oldest entry goes first; another identity is a miss', () => {
  const cache = new BodyCache(20, 10);
  cache.set('/a', ID(1), Buffer.alloc(10));
  cache.set('/b', ID(2), Buffer.alloc(10));
  cache.set('/c', ID(3), Buffer.alloc(10));
  assert.equal(cache.get('/a', ID(1)), undefined);
  assert.ok(cache.get('/b', ID(2)));
  assert.equal(cache.get('/c', ID(9)), undefined, 'a replaced file (other inode) is not served from the cache');
});

test('catalog: requests for one path while its entry is being looked up share that look', async (t) => {
  const dir = await mkdtemp(join(tmpdir(), 'sy-catalog-'));
  t.after(() => rm(dir, { recursive: true, force: true }));
  await writeFile(join(dir, 'f.txt'), 'hello');
  const root = await FsRoot.open(dir, { dotfiles: 'deny', symlinks: 'within-root' });
  let lookups = 0;
  const lookup = root.lookup.bind(root);
  root.lookup = (segments) => {
    lookups++;
    return lookup(segments);
  };
  const catalog = new Catalog(root, {
    index: ['index.html'],
    listing: false,
    precompressed: true,
    revalidate: 60_000,
    maxEntries: 10,
    contentType: () => 'text/plain',
    cacheControl: undefined,
  });
  const targets = await Promise.all(Array.from({ length: 50 }, () => catalog.resolve('/f.txt', Date.now())));
  assert.ok(targets.every((x) => x.kind === 'file' && x === targets[0]), 'one answer for all');
  // The file and its two precompressed siblings: one look.
  assert.equal(lookups, 3);
  assert.ok(catalog.fresh('/f.txt', Date.now()));

  // forget() while a look is in progress: the next request looks again.
  catalog.forget('/f.txt');
  const first = catalog.resolve('/f.txt', Date.now());
  catalog.forget('/f.txt');
  const second = catalog.resolve('/f.txt', Date.now());
  assert.notEqual(first, second);
  await Promise.all([first, second]);
  assert.equal(lookups, 9);

  // A path that names nothing is shared too, and not remembered.
  const missing = await Promise.all(Array.from({ length: 10 }, () => catalog.resolve('/nope.txt', Date.now())));
  assert.ok(missing.every((x) => x.kind === 'not-found'));
  assert.equal(lookups, 10);
  await catalog.resolve('/nope.txt', Date.now());
  assert.equal(lookups, 11);
});

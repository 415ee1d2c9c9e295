import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import { mkdirSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import type { AddressInfo } from 'node:net';
import { serve, type Yard } from '../src/index.ts';
import { Http3Client } from '../src/http3/client.ts';
import { H3 } from '../src/http3/errors.ts';
import { encodeFrame, FRAME, FrameReader } from '../src/http3/frames.ts';
import { decodeFieldSection } from '../src/http3/qpack.ts';
import { parseConfig } from '../src/config/index.ts';
import { runCli } from './helpers/daemon.ts';

// HTTP/3 on an https listener, through the project's own client over real UDP sockets on
// loopback: the same routes, middleware and handlers as HTTP/1.1 and HTTP/2 (static with ETag and
// Range, echo with a body, respond, a proxy to an HTTP/1.1 upstream, 404), the header limit
// (431), Alt-Svc on the TCP side, and the listener's metrics.

const dir = mkdtempSync(join(tmpdir(), 'sy-http3-'));
const root = join(dir, 'www');
const dataDir = join(dir, 'data');
const DIGITS = '0123456789abcdefghijklmnopqrstuvwxyz\n';
const BIG = Buffer.alloc(300_000, 'abcdefghij');
let yard: Yard;
let upstream: Server;
let port: number;
let ca: string;
let client: Http3Client;

before(async () => {
  mkdirSync(root);
  writeFileSync(join(root, 'digits.txt'), DIGITS);
  writeFileSync(join(root, 'big.bin'), BIG);
  upstream = createServer((req, res) => {
    if (req.url === '/api/trailers') {
      res.writeHead(200, { 'content-type': 'text/plain', trailer: 'x-checksum' });
      res.write('body with trailers');
      res.addTrailers({ 'x-checksum': 'abc123' });
      res.end();
      return;
    }
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('content-type', 'application/json');
      res.end(JSON.stringify({ url: req.url, method: req.method, version: req.httpVersion, host: req.headers.host, proto: req.headers['x-forwarded-proto'], body: Buffer.concat(chunks).toString() }));
    });
  });
  await new Promise<void>((r) => upstream.listen(0, '127.0.0.1', r));
  yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          tls: { issuer: 'internal', names: ['localhost'] },
          http3: { maxFieldSectionSize: 4096 },
          middleware: { requestId: true },
          routes: [
            { match: { path: '/hello' }, handler: { type: 'respond', body: 'hello over h3\n' } },
            { match: { path: '/ruled' }, handler: { type: 'respond', body: 'ruled\n' }, middleware: { headers: { response: { set: { 'x-rule': 'on' }, remove: ['x-request-id'] } } } },
            { match: { path: '/echo' }, handler: { type: 'echo' } },
            { match: { path: '/api/*' }, handler: { type: 'proxy', upstream: 'api' } },
            { match: { path: '/static/*' }, handler: { type: 'static', root } },
          ],
        },
      ],
      upstreams: { api: { targets: [`http://127.0.0.1:${(upstream.address() as AddressInfo).port}`] } },
    },
    { logLevel: 'silent', dataDir, baseDir: dir },
  );
  port = yard.address('web').port;
  ca = readFileSync(join(dataDir, 'pki', 'local', 'root.crt'), 'utf8');
  client = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost' });
});

after(async () => {
  await client?.close();
  await yard?.stop(100);
  upstream?.close();
});

test('respond handler over HTTP/3, with the middleware (request id) and a Date', async () => {
  const res = await client.request({ path: '/hello' });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'hello over h3\n');
  assert.match(String(res.headers['x-request-id']), /.+/);
  assert.ok(res.headers.date);
  assert.equal(res.headers['alt-svc'], undefined, 'HTTP/3 responses do not advertise themselves');
});

test('static file: whole body with ETag, a conditional 304, a Range 206, HEAD, a large file', async () => {
  const full = await client.request({ path: '/static/digits.txt' });
  assert.equal(full.status, 200);
  assert.equal(full.body.toString(), DIGITS);
  const etag = String(full.headers.etag);
  assert.match(etag, /^(W\/)?"/);
  const cached = await client.request({ path: '/static/digits.txt', headers: { 'if-none-match': etag } });
  assert.equal(cached.status, 304);
  assert.equal(cached.body.length, 0);
  const part = await client.request({ path: '/static/digits.txt', headers: { range: 'bytes=10-15' } });
  assert.equal(part.status, 206);
  assert.equal(part.body.toString(), 'abcdef');
  assert.equal(part.headers['content-range'], `bytes 10-15/${DIGITS.length}`);
  const head = await client.request({ method: 'HEAD', path: '/static/digits.txt' });
  assert.equal(head.status, 200);
  assert.equal(head.body.length, 0);
  assert.equal(head.headers['content-length'], String(DIGITS.length));
  const big = await client.request({ path: '/static/big.bin' });
  assert.equal(big.status, 200);
  assert.ok(big.body.equals(BIG), `big body: ${big.body.length} bytes`);
});

test('POST to echo with a body', async () => {
  const body = 'x'.repeat(70_000) + 'end';
  const res = await client.request({ method: 'POST', path: '/echo?a=1', headers: { 'content-type': 'text/plain', 'content-length': String(body.length) }, body });
  assert.equal(res.status, 200);
  const echoed = JSON.parse(res.body.toString()) as Record<string, unknown>;
  assert.equal(echoed.method, 'POST');
  assert.match(String(echoed.url ?? echoed.path), /\/echo/);
  assert.ok(JSON.stringify(echoed).includes('end'), 'the body came back');
});

test('proxied route to an HTTP/1.1 upstream: path, Host and body forwarded', async () => {
  const get = await client.request({ path: '/api/items?x=1' });
  assert.equal(get.status, 200);
  const seen = JSON.parse(get.body.toString()) as Record<string, string>;
  assert.equal(seen.url, '/api/items?x=1');
  assert.equal(seen.method, 'GET');
  assert.equal(seen.version, '1.1');
  // The client's :authority (127.0.0.1:port) is the Host the upstream gets.
  assert.equal(seen.host, `127.0.0.1:${port}`);
  assert.equal(seen.proto, 'https');
  assert.equal(seen.body, '');
  const post = await client.request({ method: 'POST', path: '/api/items', body: 'payload without a length' });
  assert.equal(post.status, 200);
  assert.equal((JSON.parse(post.body.toString()) as Record<string, string>).body, 'payload without a length');
});

test('proxied route: the upstream trailers reach the HTTP/3 client', async () => {
  const res = await client.request({ path: '/api/trailers', headers: { te: 'trailers' } });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'body with trailers');
  assert.deepEqual(res.trailers, { 'x-checksum': 'abc123' });
});

test('unknown path is 404; a header section over maxFieldSectionSize is 431 and the connection goes on', async () => {
  const missing = await client.request({ path: '/nothing/here' });
  assert.equal(missing.status, 404);
  const huge = await client.request({ path: '/hello', rawFields: [['x-big', 'v'.repeat(5000)]] });
  assert.equal(huge.status, 431);
  const many = await client.request({ path: '/hello', rawFields: Array.from({ length: 150 }, (_, i) => [`x-f${i}`, 'vvvvvvvv'] as [string, string]) });
  assert.equal(many.status, 431);
  const after = await client.request({ path: '/hello' });
  assert.equal(after.status, 200);
});

test('the TCP side advertises HTTP/3 with Alt-Svc on the same port', async () => {
  const head = await new Promise<string>((resolve, reject) => {
    const s = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ca, ALPNProtocols: ['http/1.1'] }, () => {
      s.write(`GET /hello HTTP/1.1\r\nHost: localhost:${port}\r\nConnection: close\r\n\r\n`);
    });
    let text = '';
    s.on('data', (c: Buffer) => (text += c.toString('latin1')));
    s.on('end', () => resolve(text));
    s.on('error', reject);
  });
  assert.match(head, /^HTTP\/1\.1 200/);
  assert.match(head, new RegExp(`\\r\\nalt-svc: h3=":${port}"; ma=86400\\r\\n`, 'i'));
});

test('h3 requests are in the listener request metrics and the HTTP/3 counter', async () => {
  const text = await yard.metrics.registry.metrics();
  const h3 = text.split('\n').filter((l) => l.startsWith('switchyard_http3_requests_total{'));
  assert.ok(h3.some((l) => /listener="web",status="200"} [1-9]/.test(l)), h3.join('\n'));
  assert.ok(h3.some((l) => /status="404"} [1-9]/.test(l)), h3.join('\n'));
  assert.ok(h3.some((l) => /status="431"} [1-9]/.test(l)), `refusals before the phases are counted too: ${h3.join('\n')}`);
  assert.match(text, /switchyard_total_requests\{listener="web",route="[^"]*static[^"]*",status="206"\} [1-9]/);
  // The QUIC endpoint counts under the listener's name: our client's bidirectional streams.
  assert.match(text, /switchyard_quic_streams_total\{listener="web",kind="bidi",initiator="peer"\} [1-9]/);
});

test('http3 without tls is a config error naming the field', () => {
  assert.throws(
    () => parseConfig({ listeners: [{ name: 'plain', protocol: 'http', address: '127.0.0.1:0', http3: true, routes: [{ handler: { type: 'respond', body: 'x' } }] }] }),
    (err: Error) => /http3/.test(err.message) && /tls/.test(err.message),
  );
});

test('switchyard connect https://... --http3: GET, and a POST with -d to echo', { timeout: 60_000 }, async () => {
  const caFile = join(dataDir, 'pki', 'local', 'root.crt');
  const get = await runCli(['connect', `https://localhost:${port}/hello`, '--http3', '--ca', caFile], { timeoutMs: 30_000 });
  assert.equal(get.code, 0, get.stderr);
  assert.match(get.stdout, /^HTTP\/3 200 OK\r\n/);
  assert.match(get.stdout, /\r\n\r\nhello over h3\n$/);
  const post = await runCli(['connect', `https://localhost:${port}/echo`, '--http3', '--ca', caFile, '-d', 'a=1&b=2'], { timeoutMs: 30_000 });
  assert.equal(post.code, 0, post.stderr);
  assert.match(post.stdout, /^HTTP\/3 200/);
  assert.ok(post.stdout.includes('a=1&b=2'), post.stdout);
  const wrong = await runCli(['connect', `http://127.0.0.1:${port}/hello`, '--http3'], { timeoutMs: 30_000 });
  assert.notEqual(wrong.code, 0);
  assert.match(wrong.stderr, /--http3 applies to https URLs only/);
});

test('response header rules apply to HTTP/3 responses', async () => {
  const res = await client.request({ path: '/ruled' });
  assert.equal(res.status, 200);
  assert.equal(res.headers['x-rule'], 'on');
  assert.equal(res.headers['x-request-id'], undefined);
});

test('a malformed request (upper-case field name) is 400 and the connection goes on', async () => {
  const res = await client.request({ path: '/hello', rawFields: [['X-Upper', 'v']] });
  assert.equal(res.status, 400);
  assert.match(res.body.toString(), /lower-case/);
  assert.equal((await client.request({ path: '/hello' })).status, 200);
});

test('a field section that references the dynamic table closes the connection with QPACK_DECOMPRESSION_FAILED', { timeout: 30_000 }, async () => {
  const other = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost' });
  const stream = other.quic.openBidi();
  stream.on('error', () => {});
  // Required Insert Count 1: a dynamic table we said has capacity 0.
  stream.end(encodeFrame(FRAME.HEADERS, Buffer.from([0x02, 0x00, 0x80])));
  const info = await other.quic.closed;
  assert.equal(info.by, 'peer');
  assert.equal(info.isApp, true);
  assert.equal(info.code, H3.QPACK_DECOMPRESSION_FAILED);
});

test('a stopping listener sends GOAWAY, lets the request in flight finish, then closes with H3_NO_ERROR', { timeout: 60_000 }, async () => {
  let release: (() => void) | undefined;
  let arrived: (() => void) | undefined;
  const got = new Promise<void>((r) => (arrived = r));
  const slow = createServer((_req, res) => {
    arrived?.();
    release = () => res.end('late but whole');
  });
  await new Promise<void>((r) => slow.listen(0, '127.0.0.1', r));
  const d = await serve(
    {
      listeners: [{ name: 'drain', protocol: 'http', address: '127.0.0.1:0', tls: { issuer: 'internal', names: ['localhost'] }, http3: true, routes: [{ handler: { type: 'proxy', upstream: 'slow' } }] }],
      upstreams: { slow: { targets: [`http://127.0.0.1:${(slow.address() as AddressInfo).port}`] } },
    },
    { logLevel: 'silent', dataDir, baseDir: dir },
  );
  try {
    const c = await Http3Client.connect({ host: '127.0.0.1', port: d.address('drain').port, ca, serverName: 'localhost' });
    const goaway = new Promise<number>((r) => c.session.once('goaway', r));
    const pending = c.request({ path: '/wait' });
    await got;
    const stopping = d.stop(20_000);
    assert.equal(await goaway, 4, 'GOAWAY names the first request stream id not taken (stream 0 was)');
    release?.();
    const res = await pending;
    assert.equal(res.status, 200);
    assert.equal(res.body.toString(), 'late but whole');
    // Closed once the answer is in: by the client, which has nothing more to ask, or by the
    // server's linger; either way with H3_NO_ERROR.
    const info = await c.quic.closed;
    assert.equal(info.code, H3.NO_ERROR, `closed by ${info.by} with ${info.code}`);
    assert.equal(info.isApp, true);
    await stopping;
  } finally {
    await d.stop(100);
    slow.close();
  }
});

test('the peer QPACK streams and unknown stream types are accepted; a dynamic-table insertion is QPACK_ENCODER_STREAM_ERROR', { timeout: 30_000 }, async () => {
  /** A unidirectional stream of ours with `bytes` on it (its errors are the connection's, checked below). */
  const uni = (conn: Http3Client, bytes: number[]) => {
    const s = conn.quic.openUni();
    s.on('error', () => {});
    s.write(Buffer.from(bytes));
  };
  const c = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost' });
  try {
    // Encoder stream: Set Dynamic Table Capacity 0 (001 00000); decoder stream: a Stream
    // Cancellation (01 000000); a reserved stream type (0x21) with bytes nobody reads.
    uni(c, [0x02, 0x20]);
    uni(c, [0x03, 0x40]);
    uni(c, [0x21, 1, 2, 3, 4]);
    const res = await c.request({ path: '/hello' });
    assert.equal(res.status, 200);
  } finally {
    await c.close();
  }
  const bad = await Http3Client.connect({ host: '127.0.0.1', port, ca, serverName: 'localhost' });
  // Insert With Literal Name (01xxxxxx) on the encoder stream: we offered a table of capacity 0.
  uni(bad, [0x02, 0x41, 0x61, 0x01, 0x62]);
  const info = await bad.quic.closed;
  assert.equal(info.by, 'peer');
  assert.equal(info.code, H3.QPACK_ENCODER_STREAM_ERROR);
});

test('a request head that does not arrive within limits.headerTimeout gets 408', { timeout: 30_000 }, async () => {
  const d = await serve(
    { listeners: [{ name: 'slowhead', protocol: 'http', address: '127.0.0.1:0', tls: { issuer: 'internal', names: ['localhost'] }, http3: true, limits: { headerTimeout: '300ms' }, routes: [{ handler: { type: 'respond', body: 'x' } }] }] },
    { logLevel: 'silent', dataDir, baseDir: dir },
  );
  const c = await Http3Client.connect({ host: '127.0.0.1', port: d.address('slowhead').port, ca, serverName: 'localhost' });
  try {
    const stream = c.quic.openBidi();
    stream.on('error', () => {});
    // A HEADERS frame that says 100 bytes and brings 3: the rest never comes.
    stream.write(Buffer.from([FRAME.HEADERS, 100, 0, 0, 0xd1]));
    const statuses: string[] = [];
    const reader = new FrameReader({ frame: (_t, p) => statuses.push(String(decodeFieldSection(p, { maxSectionSize: 4096, maxFields: 50 }).find(([n]) => n === ':status')?.[1])), data: () => {}, oversized: () => {} }, 4096);
    await new Promise<void>((resolve, reject) => {
      stream.on('data', (chunk: Buffer) => reader.push(chunk));
      stream.once('end', resolve);
      stream.once('close', resolve);
      setTimeout(() => reject(new Error('no answer within 20 s')), 20_000).unref();
    });
    assert.deepEqual(statuses, ['408']);
  } finally {
    await c.close();
    await d.stop(100);
  }
});

test('a reload that replaces the listener (new TLS names) brings HTTP/3 back on the same port once the old one has drained', { timeout: 60_000 }, async () => {
  const config = (names: string[]) => ({
    listeners: [{ name: 'swap', protocol: 'http', address: '127.0.0.1:0', tls: { issuer: 'internal', names }, http3: true, routes: [{ handler: { type: 'respond', body: names.join(',') } }] }],
  });
  const d = await serve(config(['localhost']), { logLevel: 'silent', dataDir, baseDir: dir });
  try {
    const p = d.address('swap').port;
    const first = await Http3Client.connect({ host: '127.0.0.1', port: p, ca, serverName: 'localhost' });
    assert.equal((await first.request({ path: '/' })).body.toString(), 'localhost');
    // Same port, other names: the listener is built anew while the old one drains its QUIC
    // connection (our client closes it after the GOAWAY), then gives the UDP port back.
    const next = config(['localhost', 'h3.test']);
    next.listeners[0].address = `127.0.0.1:${p}`;
    const result = await d.reload(parseConfig(next, 'test'));
    assert.equal(result.ok, true, JSON.stringify(result));
    let body = '';
    for (let i = 0; i < 80 && body !== 'localhost,h3.test'; i++) {
      try {
        const c = await Http3Client.connect({ host: '127.0.0.1', port: p, ca, serverName: 'localhost', timeout: 2000 });
        body = (await c.request({ path: '/' })).body.toString();
        await c.close();
      } catch {
        await new Promise((r) => setTimeout(r, 250));
      }
    }
    assert.equal(body, 'localhost,h3.test', 'the new listener serves HTTP/3');
    await first.close();
  } finally {
    await d.stop(100);
  }
});

test('a large body the handler never reads: the response still arrives whole', { timeout: 30_000 }, async () => {
  const res = await client.request({ method: 'POST', path: '/hello', body: Buffer.alloc(3 * 1024 * 1024, 1) });
  assert.equal(res.status, 200);
  assert.equal(res.body.toString(), 'hello over h3\n');
  assert.equal((await client.request({ path: '/hello' })).status, 200, 'the connection goes on');
});

// 0-RTT (docs/http3.md): a resumed client's requests in early data. A recording upstream behind
// a proxy route says what reached the handlers; the echo route shows the request headers.
async function earlyYard(http3: true | { earlyData: true }, seen: { method?: string; early?: string | string[] }[]) {
  const up = createServer((req, res) => {
    seen.push({ method: req.method, early: req.headers['early-data'] });
    res.end('upstream\n');
  });
  await new Promise<void>((r) => up.listen(0, '127.0.0.1', r));
  const d = await serve(
    {
      listeners: [
        {
          name: 'early',
          protocol: 'http',
          address: '127.0.0.1:0',
          tls: { issuer: 'internal', names: ['localhost'] },
          http3,
          routes: [
            { match: { path: '/echo' }, handler: { type: 'echo' } },
            { match: { path: '/up/*' }, handler: { type: 'proxy', upstream: 'rec' } },
          ],
        },
      ],
      upstreams: { rec: { targets: [`http://127.0.0.1:${(up.address() as AddressInfo).port}`] } },
    },
    { logLevel: 'silent', dataDir, baseDir: dir },
  );
  return { d, up, port: d.address('early').port };
}

/** A first connection's session ticket (it arrives after the handshake: bounded wait). */
async function ticketFrom(p: number): Promise<Uint8Array> {
  const first = await Http3Client.connect({ host: '127.0.0.1', port: p, ca, serverName: 'localhost' });
  try {
    assert.equal((await first.request({ path: '/echo' })).status, 200);
    for (let i = 0; i < 250 && first.sessionTicket() === undefined; i++) await new Promise((r) => setTimeout(r, 20));
    const ticket = first.sessionTicket();
    assert.ok(ticket, 'the first connection got a session ticket');
    return ticket;
  } finally {
    await first.close();
  }
}

test('http3.earlyData: a resumed client GETs in 0-RTT (Early-Data: 1 for handlers and upstreams); a POST in 0-RTT gets 425 and reaches nothing', { timeout: 30_000 }, async () => {
  const seen: { method?: string; early?: string | string[] }[] = [];
  const { d, up, port: p } = await earlyYard({ earlyData: true }, seen);
  try {
    const session = await ticketFrom(p);
    const c = await Http3Client.connect({ host: '127.0.0.1', port: p, ca, serverName: 'localhost', session, earlyData: true });
    try {
      assert.equal(c.quic.established, false, 'connect() resolved in early data, before the handshake completed');
      // Both sent before any await: they go out as 0-RTT.
      const get = c.request({ path: '/echo', headers: { 'x-probe': 'early' } });
      const post = c.request({ method: 'POST', path: '/up/write', body: 'replayable' });
      const upGet = c.request({ path: '/up/read' });
      const echoed = await get;
      assert.equal(echoed.status, 200);
      const body = JSON.parse(echoed.body.toString()) as { headers: Record<string, string> };
      assert.equal(body.headers['early-data'], '1');
      assert.equal(body.headers['x-probe'], 'early');
      const refused = await post;
      assert.equal(refused.status, 425);
      assert.match(refused.body.toString(), /too early/);
      assert.equal((await upGet).status, 200);
      assert.equal(c.quic.resumed, true);
      // After the handshake the same POST is served, and not marked early.
      const again = await c.request({ method: 'POST', path: '/up/write', body: 'after' });
      assert.equal(again.status, 200);
      assert.deepEqual(seen, [
        { method: 'GET', early: '1' },
        { method: 'POST', early: undefined },
      ]);
    } finally {
      await c.close();
    }
  } finally {
    await d.stop(100);
    up.close();
  }
});

test('http3: true does not take early data: a resumed client that tries 0-RTT is served after the handshake, unmarked', { timeout: 30_000 }, async () => {
  const seen: { method?: string; early?: string | string[] }[] = [];
  const { d, up, port: p } = await earlyYard(true, seen);
  try {
    const session = await ticketFrom(p);
    const c = await Http3Client.connect({ host: '127.0.0.1', port: p, ca, serverName: 'localhost', session, earlyData: true });
    try {
      const echoed = await c.request({ path: '/echo' });
      assert.equal(echoed.status, 200);
      const body = JSON.parse(echoed.body.toString()) as { headers: Record<string, string> };
      assert.equal(body.headers['early-data'], undefined);
      const post = await c.request({ method: 'POST', path: '/up/write', body: 'x' });
      assert.equal(post.status, 200);
      assert.deepEqual(seen, [{ method: 'POST', early: undefined }]);
    } finally {
      await c.close();
    }
  } finally {
    await d.stop(100);
    up.close();
  }
});

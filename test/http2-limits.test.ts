import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect } from 'node:http2';
import { mkdtempSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { killDaemon, startDaemon, type Daemon } from './helpers/daemon.ts';
import {
  continuationFrame,
  frame,
  encodeHeaders,
  ErrorCode,
  Flag,
  FrameType,
  H2Client,
  headersFrame,
  parseGoaway,
  parseSettings,
  pingFrame,
  requestBlock,
  rstCode,
  rstStreamFrame,
  Setting,
  settingsFrame,
  statusOf,
  windowUpdateFrame,
  type Frame,
} from './helpers/h2-frames.ts';
import { run } from './helpers/net.ts';

// Every HTTP/2 limit of an h2c listener, attacked with raw frames (helpers/h2-frames.ts) the
// way a broken or hostile client would send them: streams past maxConcurrentStreams, header
// lists past maxHeaderSize, flow-control windows (small and zero), a header block that never
// ends (slow, and as a CONTINUATION flood), rapid reset, SETTINGS and PING floods. Each test
// checks what the attacking connection gets, frame by frame, and that a well-behaved client on
// the same listener is served all the while. Loops are bounded in frames and time; nothing
// asserts on timing. The daemon runs in its own process, as in production: a flooding client
// and the server must not share an event loop, or the server only ever reads the flood in the
// pauses the client allows it.

const dir = mkdtempSync(join(tmpdir(), 'sy-h2-limits-'));
const root = join(dir, 'public');
const MEDIUM = 100 * 1024;
const BIG = 3 * 1024 * 1024;
const MAX_HEADER = 4096;
const IDLE = 1000;
let daemon: Daemon;
/**
 * Listener `h2`: the limits below; `idle`: the same with idleTimeout 1 s; `wide`: maxHeaderSize 1 MiB;
 * `resets`: the same with maxConcurrentStreams at its default (128), for the reset tests; `admin`: /metrics.
 */
let port: number;
let widePort: number;
let idlePort: number;
let resetsPort: number;
let adminPort: number;

before(async () => {
  mkdirSync(root);
  writeFileSync(join(root, 'medium.bin'), Buffer.alloc(MEDIUM, 'm'));
  writeFileSync(join(root, 'big.bin'), Buffer.alloc(BIG, 'b'));
  const http2 = {
    h2c: true,
    maxConcurrentStreams: 4,
    maxResets: { rate: 10, per: '1s', burst: 20 },
    maxPings: { rate: 5, per: '1s', burst: 10 },
    maxSettings: { rate: 5, per: '1s', burst: 10 },
  };
  const routes = [
    { match: { path: '/files/*' }, handler: { type: 'static', root } },
    { handler: { type: 'respond', body: 'ok\n' } },
  ];
  const config = {
    listeners: [
      { name: 'h2', protocol: 'http', address: '127.0.0.1:0', http2, limits: { maxHeaderSize: MAX_HEADER }, routes },
      { name: 'idle', protocol: 'http', address: '127.0.0.1:0', http2, limits: { maxHeaderSize: MAX_HEADER, idleTimeout: IDLE }, routes },
      { name: 'wide', protocol: 'http', address: '127.0.0.1:0', http2, limits: { maxHeaderSize: 1024 * 1024 }, routes },
      // Node 22 and 24 count a stream the client has reset toward maxConcurrentStreams until node
      // has torn it down, some turns of its event loop later (Node 20 had by the next HEADERS in
      // the same read), and refuse new streams past it with RST_STREAM ENHANCE_YOUR_CALM before
      // the listener sees them. With 4 streams that is what a burst of resets meets first; here the
      // listener's own reset bucket is.
      { name: 'resets', protocol: 'http', address: '127.0.0.1:0', http2: { ...http2, maxConcurrentStreams: 128 }, limits: { maxHeaderSize: MAX_HEADER }, routes },
      { name: 'admin', protocol: 'http', address: '127.0.0.1:0', routes: [{ handler: { type: 'metrics' } }] },
    ],
  };
  const file = join(dir, 'switchyard.json');
  writeFileSync(file, JSON.stringify(config));
  daemon = await startDaemon([file, '--log-level', 'warn'], { cwd: dir });
  port = daemon.port('h2');
  idlePort = daemon.port('idle');
  widePort = daemon.port('wide');
  resetsPort = daemon.port('resets');
  adminPort = daemon.port('admin');
});

after(async () => {
  await killDaemon(daemon);
});

/** The daemon's resident memory, from /proc. */
function rssBytes(): number {
  const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${daemon.child.pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : 0;
}

/** A GET with node's own HTTP/2 client on a new connection: the well-behaved bystander. */
function wellBehaved(p: number, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const session = h2connect(`http://127.0.0.1:${p}`);
    session.on('error', reject);
    const req = session.request({ ':path': path });
    let body = '';
    let status = 0;
    req.setEncoding('utf8');
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('data', (d: string) => (body += d));
    req.on('end', () => {
      session.close();
      resolve({ status, body });
    });
    req.on('error', reject);
    req.end();
  });
}

/** A connection opened before an attack, asked again once it is over. */
async function bystander(p: number): Promise<{ again: () => Promise<number>; close: () => void }> {
  const session = h2connect(`http://127.0.0.1:${p}`);
  session.on('error', () => {});
  const get = () =>
    new Promise<number>((resolve, reject) => {
      const req = session.request({ ':path': '/' });
      let status = 0;
      req.on('response', (h) => (status = Number(h[':status'])));
      req.on('end', () => resolve(status));
      req.on('error', reject);
      req.resume();
      req.end();
    });
  assert.equal(await get(), 200);
  return { again: get, close: () => session.close() };
}

async function othersUnaffected(p: number, before: { again: () => Promise<number>; close: () => void }): Promise<void> {
  assert.equal(await before.again(), 200, 'a connection opened before the attack is still served');
  before.close();
  assert.deepEqual(await wellBehaved(p), { status: 200, body: 'ok\n' }, 'a new connection is served');
}

/** A counter of the daemon, read from the admin listener's /metrics with curl (0 while it has no sample). */
async function metric(name: string, labels: string): Promise<number> {
  const r = await run('curl', ['-sS', `http://127.0.0.1:${adminPort}/metrics`]);
  assert.equal(r.code, 0, r.stderr);
  const line = r.stdout.split('\n').find((l) => l.startsWith(`${name}{${labels}} `));
  return line ? Number(line.slice(line.lastIndexOf(' ') + 1)) : 0;
}

const floods = (kind: string, listener = 'h2') => metric('switchyard_http2_flood_closes_total', `listener="${listener}",kind="${kind}"`);
const bytesReceived = (listener: string) => metric('switchyard_total_bytes_received', `listener="${listener}"`);

/** Waits for the server to have processed everything sent so far (our SETTINGS ACK included): a PING round trip. */
async function roundTrip(c: H2Client, tag: number): Promise<void> {
  const data = Buffer.alloc(8, tag);
  c.write(pingFrame(data));
  const ack = await c.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0 && f.payload.equals(data));
  assert.ok(ack, 'PING answered');
}

/** Connects and waits until the server has our ACK of its SETTINGS: its limits now hold for us. */
async function settled(p: number, settings: [number, number][] = []): Promise<H2Client> {
  const c = await H2Client.connect(p, { settings });
  assert.ok(await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK)), 'server SETTINGS');
  await roundTrip(c, 0xee);
  return c;
}

/** A header block as HEADERS (END_STREAM) and as many CONTINUATION frames of 16 KiB as it takes. */
function headerFrames(streamId: number, block: Buffer): Buffer {
  const frames: Buffer[] = [];
  for (let i = 0; i < block.length; i += 16_384) {
    const part = block.subarray(i, i + 16_384);
    const last = i + 16_384 >= block.length;
    frames.push(i === 0 ? headersFrame(streamId, part, { endHeaders: last }) : continuationFrame(streamId, part, last));
  }
  return Buffer.concat(frames);
}

const isRst = (id: number) => (f: Frame) => f.type === FrameType.RST_STREAM && f.streamId === id;
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

test('SETTINGS: what the listener advertises', async () => {
  const c = await H2Client.connect(port);
  const s = await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK));
  assert.ok(s);
  const settings = parseSettings(s);
  assert.equal(settings.get(Setting.MAX_CONCURRENT_STREAMS), 4);
  assert.equal(settings.get(Setting.MAX_HEADER_LIST_SIZE), MAX_HEADER);
  assert.equal(settings.get(Setting.INITIAL_WINDOW_SIZE), 64 * 1024);
  assert.equal(settings.get(0x8), 1, 'SETTINGS_ENABLE_CONNECT_PROTOCOL');
  // The connection window is raised to connectionWindowSize (1 MiB) by a WINDOW_UPDATE on stream 0.
  const wu = await c.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === 0);
  assert.ok(wu);
  assert.equal(65_535 + wu.payload.readUInt32BE(0), 1024 * 1024);
  c.destroy();
});

test('max concurrent streams: sent before the client knows the limit, the extra streams get REFUSED_STREAM and the others complete', async () => {
  const other = await bystander(port);
  // A zero window keeps each response open (headers sent, no DATA) until we give it room.
  const c = await H2Client.connect(port, { settings: [[Setting.INITIAL_WINDOW_SIZE, 0]] });
  // Written with the preface, before the server's SETTINGS can have been seen (let alone acknowledged).
  for (let i = 0; i < 6; i++) c.request(1 + 2 * i, '/files/medium.bin');
  for (const id of [9, 11]) {
    const rst = await c.waitFor(isRst(id));
    assert.ok(rst, `stream ${id} reset`);
    assert.equal(rstCode(rst), ErrorCode.REFUSED_STREAM);
  }
  for (const id of [1, 3, 5, 7]) assert.equal(statusOf((await c.response(id))!), 200, `stream ${id} answered`);
  // Room for all four: they finish, whole.
  c.write(Buffer.concat([settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]), windowUpdateFrame(0, 1 << 20)]));
  for (const id of [1, 3, 5, 7]) {
    const end = await c.streamEnd(id);
    assert.ok(end && end.type === FrameType.DATA, `stream ${id} ended with its data`);
    assert.equal(c.dataBytes.get(id), MEDIUM);
  }
  assert.equal(c.closed, false);
  assert.equal(c.frames.some((f) => (f.type === FrameType.HEADERS || f.type === FrameType.DATA) && f.streamId > 7), false, 'nothing served on a refused stream');
  c.destroy();
  await othersUnaffected(port, other);
});

test('max concurrent streams: refused streams over and over (a client that never acknowledges the limit) end the connection after 100', async () => {
  const other = await bystander(port);
  const c = await H2Client.connect(port, { settings: [[Setting.INITIAL_WINDOW_SIZE, 0]], ackSettings: false });
  for (let i = 0; i < 4; i++) c.request(1 + 2 * i, '/files/medium.bin');
  assert.ok(await c.response(7), 'four streams open');
  // One write of 150 (not a loop until the end: node closes this connection at once, no
  // lingering, and a client still sending would lose the frames that say why to a TCP reset).
  const extra: Buffer[] = [];
  for (let i = 0; i < 150; i++) extra.push(headersFrame(9 + 2 * i, requestBlock('127.0.0.1', '/')));
  c.write(Buffer.concat(extra));
  assert.ok(await c.closedWithin(5000), 'the connection is closed');
  const refused = c.frames.filter((f) => f.type === FrameType.RST_STREAM && rstCode(f) === ErrorCode.REFUSED_STREAM).length;
  assert.ok(refused >= 100 && refused < 110, `${refused} streams refused before the end`);
  assert.ok(c.goaway(), 'GOAWAY');
  await othersUnaffected(port, other);
});

test('max concurrent streams: a client past the limit it has acknowledged loses its connection (nghttp2: a connection error), no one else does', async () => {
  const other = await bystander(port);
  const c = await settled(port, [[Setting.INITIAL_WINDOW_SIZE, 0]]);
  for (let i = 0; i < 4; i++) c.request(1 + 2 * i, '/files/medium.bin');
  assert.ok(await c.response(7), 'four streams open');
  c.request(9, '/');
  assert.ok(await c.closedWithin(5000), 'the connection is closed');
  const goaway = c.goaway();
  assert.ok(goaway, 'with a GOAWAY');
  const g = parseGoaway(goaway);
  assert.notEqual(g.errorCode, ErrorCode.NO_ERROR);
  assert.equal(g.lastStreamId, 7, 'stream 9 was never taken');
  assert.equal(c.frames.some((f) => f.type === FrameType.HEADERS && f.streamId === 9), false);
  await othersUnaffected(port, other);
});

test('header list over maxHeaderSize, after the client acknowledged it: RST_STREAM ENHANCE_YOUR_CALM for that stream; the connection goes on', async () => {
  const c = await settled(port);
  c.request(1, '/', { extra: [['x-big', 'a'.repeat(MAX_HEADER)]] });
  c.request(3, '/');
  const rst = await c.waitFor(isRst(1));
  assert.ok(rst, 'stream 1 reset');
  assert.equal(rstCode(rst), ErrorCode.ENHANCE_YOUR_CALM);
  assert.equal(c.frames.some((f) => f.type === FrameType.HEADERS && f.streamId === 1), false, 'no response on it');
  assert.equal(statusOf((await c.response(3))!), 200);
  // Just under the limit (RFC 9113 §6.5.2 size: octets of names and values, plus 32 per field) passes.
  const base = [':method', 'GET', ':scheme', 'http', ':authority', '127.0.0.1', ':path', '/'];
  let size = 0;
  for (let i = 0; i < base.length; i += 2) size += base[i].length + base[i + 1].length + 32;
  const room = MAX_HEADER - size - 32 - 'x-fit'.length;
  c.request(5, '/', { extra: [['x-fit', 'a'.repeat(room)]] });
  assert.equal(statusOf((await c.response(5))!), 200, 'a list of exactly maxHeaderSize is taken');
  c.request(7, '/', { extra: [['x-fit', 'a'.repeat(room + 1)]] });
  assert.equal(rstCode((await c.waitFor(isRst(7)))!), ErrorCode.ENHANCE_YOUR_CALM, 'one octet more is not');
  assert.equal(c.closed, false);
  c.destroy();
});

test('header list over maxHeaderSize, sent before the client knew the limit: 431 (the daemon checks it; nghttp2 would not yet)', async () => {
  const c = await H2Client.connect(port);
  c.request(1, '/', { extra: [['x-big', 'a'.repeat(3 * MAX_HEADER)]] });
  c.request(3, '/');
  const res = await c.response(1);
  assert.ok(res);
  assert.equal(statusOf(res), 431);
  assert.equal(statusOf((await c.response(3))!), 200);
  c.destroy();
  // curl sends its first request before it has the server's SETTINGS; its next ones after.
  const big = 'a'.repeat(2 * MAX_HEADER);
  const url = `http://127.0.0.1:${port}/`;
  const r = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code} ', '-H', `x-big: ${big}`, url]);
  assert.equal(r.stdout.trim(), '431');
  const ok = await run('curl', ['-s', '--http2-prior-knowledge', '-o', '/dev/null', '-w', '%{http_code}', '-H', `x-small: ${'a'.repeat(1000)}`, url]);
  assert.equal(ok.stdout, '200');
});

test('more than 2000 header fields (the four pseudo-header fields count): RST_STREAM ENHANCE_YOUR_CALM, before or after the ACK', async () => {
  const fields = (n: number): [string, string][] => Array.from({ length: n }, (_, i) => [`x-${i}`, 'v']);
  for (const early of [true, false]) {
    const c = early ? await H2Client.connect(widePort) : await settled(widePort);
    c.write(headerFrames(1, requestBlock('127.0.0.1', '/', 'GET', fields(1996))));
    c.write(headerFrames(3, requestBlock('127.0.0.1', '/', 'GET', fields(1997))));
    assert.equal(statusOf((await c.response(1))!), 200, '2000 fields in all are taken');
    assert.equal(rstCode((await c.waitFor(isRst(3)))!), ErrorCode.ENHANCE_YOUR_CALM, '2001 are not');
    c.request(5, '/');
    assert.equal(statusOf((await c.response(5))!), 200, 'the connection goes on');
    c.destroy();
  }
});

/** A request whose one header field is `size` octets. */
const hugeFieldRequest = (size: number): Buffer => headerFrames(1, requestBlock('127.0.0.1', '/', 'GET', [['x-huge', 'a'.repeat(size)]]));

test('protocol errors nghttp2 answers with a GOAWAY (a header field over 64 KiB, DATA on stream 0): the connection is closed by idleTimeout at the latest', async () => {
  for (const [what, bytes, code] of [
    ['a 70 KB header field', hugeFieldRequest(70_000), ErrorCode.COMPRESSION_ERROR],
    ['DATA on stream 0', frame(FrameType.DATA, 0, 0, Buffer.from('x')), ErrorCode.PROTOCOL_ERROR],
  ] as const) {
    const c = await H2Client.connect(idlePort);
    c.write(bytes);
    const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY);
    assert.ok(goaway, `${what}: GOAWAY`);
    assert.equal(parseGoaway(goaway).errorCode, code, what);
    // Node leaves the TCP connection open after such a GOAWAY; the idle timeout closes it.
    assert.ok(await c.closedWithin(10 * IDLE), `${what}: the connection is closed`);
    assert.deepEqual(await wellBehaved(idlePort), { status: 200, body: 'ok\n' });
  }
});

test('flow control: a client advertising a small window gets no more than it, and more once it opens the window', async () => {
  const c = await settled(port, [[Setting.INITIAL_WINDOW_SIZE, 1000]]);
  c.request(1, '/files/big.bin');
  assert.ok(await c.waitFor(() => c.dataBytes.get(1) === 1000), 'the stream window is filled');
  await roundTrip(c, 1);
  await sleep(200);
  assert.equal(c.dataBytes.get(1), 1000, 'and not one byte past it');
  c.write(windowUpdateFrame(1, 3000));
  assert.ok(await c.waitFor(() => c.dataBytes.get(1) === 4000));
  await roundTrip(c, 2);
  await sleep(200);
  assert.equal(c.dataBytes.get(1), 4000);
  // The connection window (65,535 until the client raises it) holds all streams together.
  c.write(settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 1 << 20]]));
  assert.ok(await c.waitFor(() => c.dataBytes.get(1) === 65_535), 'the connection window is filled');
  await roundTrip(c, 3);
  await sleep(200);
  assert.equal(c.dataBytes.get(1), 65_535);
  c.write(Buffer.concat([windowUpdateFrame(0, BIG), windowUpdateFrame(1, BIG)]));
  assert.ok(await c.streamEnd(1), 'the rest comes once both windows open');
  assert.equal(c.dataBytes.get(1), BIG);
  c.destroy();
});

test('a zero window stalls the stream: it is reset (CANCEL) after idleTimeout, then the idle connection is closed', async () => {
  const c = await settled(idlePort, [[Setting.INITIAL_WINDOW_SIZE, 0]]);
  c.request(1, '/files/big.bin');
  assert.equal(statusOf((await c.response(1))!), 200);
  const rst = await c.waitFor(isRst(1), 10 * IDLE);
  assert.ok(rst, 'the stalled stream is reset');
  assert.equal(rstCode(rst), ErrorCode.CANCEL);
  assert.equal(c.dataBytes.get(1) ?? 0, 0);
  // Meanwhile (this listener's connections idle out after 1 s, so no bystander from before).
  assert.deepEqual(await wellBehaved(idlePort), { status: 200, body: 'ok\n' });
  assert.ok(await c.closedWithin(10 * IDLE), 'the session is not held');
  assert.equal(parseGoaway(c.goaway()!).errorCode, ErrorCode.NO_ERROR);
  assert.deepEqual(await wellBehaved(idlePort), { status: 200, body: 'ok\n' });
});

test('a header block that never ends (HEADERS without END_HEADERS, then silence) does not hold the connection', async () => {
  const c = await settled(idlePort);
  c.write(headersFrame(1, requestBlock('127.0.0.1', '/'), { endHeaders: false }));
  assert.deepEqual(await wellBehaved(idlePort), { status: 200, body: 'ok\n' });
  assert.ok(await c.closedWithin(10 * IDLE), 'closed after the idle timeout and one more');
  assert.ok(c.goaway(), 'GOAWAY first');
  assert.deepEqual(await wellBehaved(idlePort), { status: 200, body: 'ok\n' });
});

test('CONTINUATION flood: the connection is closed after a few frames, with little read and no memory kept', async () => {
  const other = await bystander(port);
  const readBefore = await bytesReceived('h2');
  const rssBefore = rssBytes();
  const c = await settled(port);
  c.write(headersFrame(1, requestBlock('127.0.0.1', '/'), { endHeaders: false }));
  // Full-size frames: 16 KiB of header block each, at most 8 MiB in all.
  const fragment = encodeHeaders([['x-a', 'a'.repeat(16_384 - 10)]]);
  let sent = 0;
  const started = Date.now();
  while (!c.closed && sent < 512 && Date.now() - started < 10_000) {
    if (!(await c.send(continuationFrame(1, fragment)))) break;
    sent++;
  }
  assert.ok(await c.closedWithin(5000), 'the connection is closed');
  assert.equal(c.frames.some((f) => f.type === FrameType.HEADERS), false, 'the block never made a request');
  // nghttp2 (1.61) ends the connection at the 9th CONTINUATION of one block; what the daemon read
  // of the flood is bounded by that, not by what the client pushed into the kernel's buffers.
  await sleep(100);
  const read = (await bytesReceived('h2')) - readBefore;
  assert.ok(read < 1024 * 1024, `read ${read} bytes of a flood of ${sent} frames`);
  const grown = rssBytes() - rssBefore;
  assert.ok(grown < 32 * 1024 * 1024, `the daemon grew by ${grown} bytes`);
  await othersUnaffected(port, other);
});

test('CONTINUATION: eight frames after HEADERS are taken, the ninth ends the connection (GOAWAY)', async () => {
  const c = await settled(port);
  c.write(headersFrame(1, requestBlock('127.0.0.1', '/'), { endHeaders: false }));
  for (let i = 0; i < 8; i++) c.write(continuationFrame(1, encodeHeaders([[`x-${i}`, 'v']]), i === 7));
  assert.equal(statusOf((await c.response(1))!), 200, 'a block of HEADERS and 8 CONTINUATION frames is a request');
  c.write(headersFrame(3, requestBlock('127.0.0.1', '/'), { endHeaders: false }));
  for (let i = 0; i < 9; i++) c.write(continuationFrame(3, encodeHeaders([[`x-${i}`, 'v']])));
  assert.ok(await c.closedWithin(5000));
  assert.ok(c.goaway(), 'GOAWAY');
  assert.notEqual(parseGoaway(c.goaway()!).errorCode, ErrorCode.NO_ERROR);
  assert.equal(c.frames.some((f) => f.type === FrameType.HEADERS && f.streamId === 3), false);
});

/** Sends `make(i)` until the server closes the connection, at most `max` times and 10 s. */
async function flood(c: H2Client, max: number, make: (i: number) => Buffer): Promise<number> {
  let i = 0;
  const started = Date.now();
  while (!c.closed && i < max && Date.now() - started < 10_000) {
    if (!(await c.send(make(i)))) break;
    i++;
    // Let replies be read between bursts, as a client would.
    if (i % 64 === 0) await new Promise((resolve) => setImmediate(resolve));
  }
  return i;
}

async function assertCalmedDown(c: H2Client, sent: number, max: number): Promise<void> {
  assert.ok(await c.closedWithin(5000), 'the connection is closed');
  assert.ok(sent < max, `closed before the flood ran out (${sent} of ${max} sent)`);
  const goaway = c.goaway();
  assert.ok(goaway, 'the client got a GOAWAY');
  assert.equal(parseGoaway(goaway).errorCode, ErrorCode.ENHANCE_YOUR_CALM);
}

test('rapid reset (HEADERS then RST_STREAM, over and over): GOAWAY ENHANCE_YOUR_CALM, counted', async () => {
  const other = await bystander(resetsPort);
  const before = await floods('resets', 'resets');
  const c = await settled(resetsPort);
  const max = 5000;
  const sent = await flood(c, max, (i) => Buffer.concat([headersFrame(1 + 2 * i, requestBlock('127.0.0.1', '/')), rstStreamFrame(1 + 2 * i, ErrorCode.CANCEL)]));
  await assertCalmedDown(c, sent, max);
  assert.equal(await floods('resets', 'resets'), before + 1);
  await othersUnaffected(resetsPort, other);
});

test('SETTINGS flood: GOAWAY ENHANCE_YOUR_CALM, counted', async () => {
  const other = await bystander(port);
  const before = await floods('settings');
  const c = await settled(port);
  const max = 5000;
  const sent = await flood(c, max, () => settingsFrame([[Setting.INITIAL_WINDOW_SIZE, 65_535]]));
  await assertCalmedDown(c, sent, max);
  assert.equal(await floods('settings'), before + 1);
  await othersUnaffected(port, other);
});

test('PING flood: GOAWAY ENHANCE_YOUR_CALM, counted', async () => {
  const other = await bystander(port);
  const before = await floods('pings');
  const c = await settled(port);
  const max = 5000;
  const sent = await flood(c, max, (i) => pingFrame(Buffer.alloc(8, i & 0xff)));
  await assertCalmedDown(c, sent, max);
  assert.equal(await floods('pings'), before + 1);
  await othersUnaffected(port, other);
});

test('within the limits nothing is cut: resets, pings and settings at the allowed burst', async () => {
  const c = await settled(resetsPort);
  // 20 resets, 10 pings and 10 SETTINGS are each a full bucket (one PING and one SETTINGS ACK already spent by settled()).
  for (let i = 0; i < 15; i++) c.write(Buffer.concat([headersFrame(1 + 2 * i, requestBlock('127.0.0.1', '/')), rstStreamFrame(1 + 2 * i)]));
  for (let i = 0; i < 5; i++) c.write(pingFrame(Buffer.alloc(8, i)));
  for (let i = 0; i < 5; i++) c.write(settingsFrame([]));
  c.request(101, '/');
  assert.equal(statusOf((await c.response(101))!), 200);
  assert.equal(c.closed, false);
  assert.equal(c.goaway(), undefined);
  c.destroy();
});

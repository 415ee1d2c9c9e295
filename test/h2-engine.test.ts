import { test } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net';
import { DEFAULT_SESSION_OPTIONS, H2ServerSession, type H2SessionOptions } from '../src/listeners/http/h2-engine/session.ts';
import { fieldsToRecord, type H2ServerStream } from '../src/listeners/http/h2-engine/stream.ts';
import {
  dataFrame,
  encodeHeaders,
  ErrorCode,
  Flag,
  frame,
  FrameType,
  H2Client,
  headersFrame,
  parseGoaway,
  pingFrame,
  requestBlock,
  rstCode,
  Setting,
  statusOf,
  windowUpdateFrame,
  type Frame,
} from './helpers/h2-frames.ts';

// The downstream HTTP/2 engine on its own (src/listeners/http/h2-engine/), attacked with raw
// frames: what RFC 9113 makes a stream error (malformed requests: §8.1.1, §8.2, §8.3; flow
// control per stream) and what a connection error, request bodies under flow control both ways,
// trailers, and memory held for a client that does not read. The listener's own limits (floods,
// idle, 431) are http2-limits.test.ts's.

interface Engine {
  port: number;
  server: Server;
  sessions: H2ServerSession[];
  close(): void;
}

type Handler = (stream: H2ServerStream, headers: Record<string, string | string[]>) => void;

/** Echoes the body's length (or answers 'ok'); other handlers by path. */
const defaultHandler: Handler = (stream, headers) => {
  // Never reads the body: the stream window is not opened again.
  if (headers[':path'] === '/no-read') return;
  // Answers without reading the body.
  if (headers[':path'] === '/refuse') {
    stream.respond({ ':status': 413 });
    stream.end('too large');
    return;
  }
  if (headers[':method'] === 'POST') {
    let n = 0;
    stream.on('data', (c: Buffer) => (n += c.length));
    stream.on('end', () => {
      stream.respond({ ':status': 200 });
      stream.end(String(n));
    });
    return;
  }
  stream.respond({ ':status': 200, 'content-type': 'text/plain' });
  stream.end('ok');
};

async function engine(handler: Handler = defaultHandler, options: Partial<H2SessionOptions> = {}): Promise<Engine> {
  const sessions: H2ServerSession[] = [];
  const server = createServer((socket: Socket) => {
    socket.on('error', () => {});
    sessions.push(new H2ServerSession(socket, { ...DEFAULT_SESSION_OPTIONS, ...options }, { onStream: (s, fields) => handler(s, fieldsToRecord(fields)) }));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    server,
    sessions,
    close: () => {
      for (const s of sessions) s.socket.destroy();
      server.close();
    },
  };
}

const isRst = (id: number) => (f: Frame) => f.type === FrameType.RST_STREAM && f.streamId === id;

function body(c: H2Client, id: number): string {
  return Buffer.concat(c.frames.filter((f) => f.type === FrameType.DATA && f.streamId === id).map((f) => f.payload)).toString();
}

test('malformed requests are stream errors (RST_STREAM PROTOCOL_ERROR), never seen by the handler; the connection goes on', async (t) => {
  let seen = 0;
  const e = await engine((s, h) => {
    seen++;
    defaultHandler(s, h);
  });
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  const base: [string, string][] = [[':method', 'GET'], [':scheme', 'http'], [':authority', 'a'], [':path', '/']];
  const cases: [string, [string, string][]][] = [
    ['an uppercase name', [...base, ['X-Upper', 'v']]],
    ['a connection-specific field', [...base, ['connection', 'keep-alive']]],
    ['te other than trailers', [...base, ['te', 'gzip']]],
    ['no :path', base.filter(([n]) => n !== ':path')],
    ['an empty :path', [...base.filter(([n]) => n !== ':path'), [':path', '']]],
    ['a pseudo-header after a regular field', [[':method', 'GET'], [':scheme', 'http'], ['x-a', '1'], [':path', '/']]],
    ['an unknown pseudo-header', [...base, [':foo', 'bar']]],
    ['a :method twice', [...base, [':method', 'POST']]],
    ['a response pseudo-header', [...base, [':status', '200']]],
    ['CONNECT with a :path', [[':method', 'CONNECT'], [':authority', 'a:1'], [':path', '/']]],
    ['a CR in a value', [...base, ['x-a', 'a\rb']]],
    ['a content-length that is not a number', [...base, ['content-length', '1x']]],
    ['HEADERS with END_STREAM and a content-length above 0', [...base, ['content-length', '5']]],
  ];
  let id = 1;
  for (const [what, fields] of cases) {
    c.write(headersFrame(id, encodeHeaders(fields), { endStream: true }));
    const rst = await c.waitFor(isRst(id));
    assert.ok(rst, `${what}: reset`);
    assert.equal(rstCode(rst), ErrorCode.PROTOCOL_ERROR, what);
    id += 2;
  }
  assert.equal(seen, 0, 'no malformed request reached the handler');
  c.request(id, '/');
  assert.equal(statusOf((await c.response(id))!), 200, 'the connection still serves');
  assert.equal(c.goaway(), undefined);
});

test('content-length against DATA: more or less than declared resets the stream; exactly that much is served', async (t) => {
  const e = await engine();
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  const post = (id: number, length: string) => c.write(headersFrame(id, requestBlock('a', '/', 'POST', [['content-length', length]]), { endStream: false }));
  post(1, '3');
  c.write(dataFrame(1, Buffer.from('abcd'), true));
  assert.equal(rstCode((await c.waitFor(isRst(1)))!), ErrorCode.PROTOCOL_ERROR, 'more than declared');
  post(3, '5');
  c.write(dataFrame(3, Buffer.from('ab'), true));
  assert.equal(rstCode((await c.waitFor(isRst(3)))!), ErrorCode.PROTOCOL_ERROR, 'less than declared');
  post(5, '4');
  c.write(dataFrame(5, Buffer.from('ab')));
  c.write(dataFrame(5, Buffer.from('cd'), true));
  assert.ok(await c.streamEnd(5));
  assert.equal(statusOf((await c.response(5))!), 200);
  assert.equal(body(c, 5), '4');
});

test('connection errors: GOAWAY with the code RFC 9113 gives, then the connection closes', async (t) => {
  const e = await engine();
  t.after(() => e.close());
  const cases: [string, (c: H2Client) => void, number][] = [
    ['DATA on an idle stream', (c) => c.write(dataFrame(5, Buffer.from('x'))), ErrorCode.PROTOCOL_ERROR],
    ['HEADERS on an even stream', (c) => c.write(headersFrame(2, requestBlock('a'), { endStream: true })), ErrorCode.PROTOCOL_ERROR],
    [
      'a request on a lower stream id than one before',
      (c) => {
        c.request(5, '/');
        c.request(3, '/');
      },
      ErrorCode.PROTOCOL_ERROR,
    ],
    ['a frame above SETTINGS_MAX_FRAME_SIZE', (c) => c.write(frame(FrameType.DATA, 0, 1, Buffer.alloc(16_385))), ErrorCode.FRAME_SIZE_ERROR],
    ['a connection window above 2^31-1', (c) => c.write(windowUpdateFrame(0, 0x7fffffff)), ErrorCode.FLOW_CONTROL_ERROR],
    ['a PING of 7 bytes', (c) => c.write(frame(FrameType.PING, 0, 0, Buffer.alloc(7))), ErrorCode.FRAME_SIZE_ERROR],
    ['a SETTINGS frame on a stream', (c) => c.write(frame(FrameType.SETTINGS, 0, 1)), ErrorCode.PROTOCOL_ERROR],
    ['PUSH_PROMISE from a client', (c) => c.write(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, 1, Buffer.alloc(4))), ErrorCode.PROTOCOL_ERROR],
    ['a HEADERS frame between HEADERS and its CONTINUATION', (c) => c.write(Buffer.concat([headersFrame(1, requestBlock('a'), { endHeaders: false }), headersFrame(3, requestBlock('a'))])), ErrorCode.PROTOCOL_ERROR],
    ['an HPACK index outside the tables', (c) => c.write(headersFrame(1, Buffer.of(0xff, 0x7f), { endStream: true })), ErrorCode.COMPRESSION_ERROR],
  ];
  for (const [what, attack, code] of cases) {
    const c = await H2Client.connect(e.port);
    attack(c);
    const g = await c.waitFor((f) => f.type === FrameType.GOAWAY);
    assert.ok(g, `${what}: GOAWAY`);
    assert.equal(parseGoaway(g).errorCode, code, what);
    assert.ok(await c.closedWithin(5000), `${what}: closed`);
  }
  // Not HTTP/2 at all: GOAWAY PROTOCOL_ERROR (after our SETTINGS), then the close.
  const got = await new Promise<Buffer>((resolve) => {
    const chunks: Buffer[] = [];
    const s = connect({ port: e.port, host: '127.0.0.1' }, () => s.write('GET / HTTP/1.1\r\nhost: a\r\n\r\n'));
    s.on('data', (d: Buffer) => chunks.push(d));
    s.on('error', () => {});
    s.on('close', () => resolve(Buffer.concat(chunks)));
    setTimeout(() => s.destroy(), 5000).unref();
  });
  let at = 0;
  let goaway: Buffer | undefined;
  while (at + 9 <= got.length) {
    const len = got.readUIntBE(at, 3);
    if (got[at + 3] === FrameType.GOAWAY) goaway = got.subarray(at + 9, at + 9 + len);
    at += 9 + len;
  }
  assert.ok(goaway, 'a GOAWAY for a connection that is not HTTP/2');
  assert.equal(goaway.readUInt32BE(4), ErrorCode.PROTOCOL_ERROR);
});

test('a stream window overrun by the client resets that stream (FLOW_CONTROL_ERROR); a body larger than the windows is credited as it is read', async (t) => {
  const e = await engine(defaultHandler, { initialWindowSize: 16_384 });
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  // Our SETTINGS acknowledged: the stream window is 16 KiB.
  c.write(pingFrame(Buffer.alloc(8, 1)));
  await c.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0);
  c.write(headersFrame(1, requestBlock('a', '/no-read', 'POST'), { endStream: false }));
  c.write(dataFrame(1, Buffer.alloc(16_384)));
  c.write(dataFrame(1, Buffer.alloc(1)));
  assert.equal(rstCode((await c.waitFor(isRst(1)))!), ErrorCode.FLOW_CONTROL_ERROR);
  // 1 MiB in 16 KiB frames, each sent once the server has opened the windows for it.
  c.write(headersFrame(3, requestBlock('a', '/', 'POST'), { endStream: false }));
  const total = 1 << 20;
  let sent = 0;
  let credit = 16_384;
  let creditConn = 65_535 - 16_385;
  let seenUpdates = 0;
  const started = Date.now();
  while (sent < total && Date.now() - started < 10_000) {
    const updates = c.frames.filter((f) => f.type === FrameType.WINDOW_UPDATE);
    for (const u of updates.slice(seenUpdates)) {
      if (u.streamId === 3) credit += u.payload.readUInt32BE(0);
      if (u.streamId === 0) creditConn += u.payload.readUInt32BE(0);
    }
    seenUpdates = updates.length;
    const n = Math.min(16_384, credit, creditConn, total - sent);
    if (n <= 0) {
      await c.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && c.frames.filter((x) => x.type === FrameType.WINDOW_UPDATE).length > seenUpdates, 2000);
      continue;
    }
    c.write(dataFrame(3, Buffer.alloc(n), sent + n === total));
    sent += n;
    credit -= n;
    creditConn -= n;
  }
  assert.equal(sent, total, 'the windows were opened as the body was read');
  assert.ok(await c.streamEnd(3));
  assert.equal(body(c, 3), String(total));
});

test('trailers both ways: a request\'s are taken, a response asks for its own with waitForTrailers', async (t) => {
  let requestTrailers: Record<string, string | string[]> | undefined;
  const e = await engine((stream) => {
    stream.on('trailers', (tr: Record<string, string | string[]>) => (requestTrailers = tr));
    stream.on('data', () => {});
    stream.on('end', () => {
      stream.respond({ ':status': 200, 'content-type': 'application/grpc' }, { waitForTrailers: true });
      stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0' }));
      stream.end(Buffer.from('body'));
    });
  });
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  c.write(headersFrame(1, requestBlock('a', '/', 'POST', [['te', 'trailers']]), { endStream: false }));
  c.write(dataFrame(1, Buffer.from('x')));
  c.write(headersFrame(1, encodeHeaders([['x-check', 'yes']]), { endStream: true }));
  const end = await c.streamEnd(1);
  assert.ok(end && end.type === FrameType.HEADERS, 'the response ends with a trailers HEADERS frame');
  assert.equal(requestTrailers?.['x-check'], 'yes');
  assert.equal(body(c, 1), 'body');
  // A trailer block with a pseudo-header is malformed.
  c.write(headersFrame(3, requestBlock('a', '/', 'POST'), { endStream: false }));
  c.write(headersFrame(3, encodeHeaders([[':path', '/x']]), { endStream: true }));
  assert.equal(rstCode((await c.waitFor(isRst(3)))!), ErrorCode.PROTOCOL_ERROR);
});

test('a client that does not read: queued output stays bounded whatever the handler writes or the client asks for', async (t) => {
  const chunk = Buffer.alloc(64 * 1024, 'z');
  let written = 0;
  const e = await engine(
    (stream) => {
      stream.respond({ ':status': 200 });
      // A handler that keeps to backpressure, as the listener's do.
      const pump = () => {
        while (!stream.closed && written < 256 * 1024 * 1024) {
          written += chunk.length;
          if (!stream.write(chunk)) return void stream.once('drain', pump);
        }
      };
      pump();
    },
    { maxQueuedOutput: 256 * 1024 },
  );
  t.after(() => e.close());
  // Windows as large as HTTP/2 allows, then the client stops reading.
  const c = await H2Client.connect(e.port, { settings: [[Setting.INITIAL_WINDOW_SIZE, 0x7fffffff]] });
  t.after(() => c.destroy());
  c.write(windowUpdateFrame(0, 0x7fffffff - 65_535));
  c.request(1, '/');
  await c.waitFor((f) => f.type === FrameType.DATA);
  c.socket.pause();
  const started = Date.now();
  let last = -1;
  // Until the handler stops making progress (the socket's buffers are full), 10 s at most.
  while (Date.now() - started < 10_000) {
    await new Promise((resolve) => setTimeout(resolve, 200));
    if (written === last) break;
    last = written;
  }
  const s = e.sessions[0];
  const held = s.out.pending + s.socket.writableLength;
  assert.ok(held < 4 * 1024 * 1024, `held ${held} bytes for a client that does not read (handler wrote ${written})`);
  assert.ok(written < 32 * 1024 * 1024, `the handler was held back (wrote ${written})`);
  // PINGs answered into a full socket end the session rather than pile up.
  const ping = pingFrame(Buffer.alloc(8));
  const flood = Buffer.concat(Array.from({ length: 4096 }, () => ping));
  for (let i = 0; i < 32 && !s.destroyed; i++) {
    c.write(flood);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  assert.ok(s.destroyed, 'the session ended');
});

test('a response that ends before the request body was read asks the client to stop sending it (RST_STREAM NO_ERROR after the response)', async (t) => {
  const e = await engine();
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  c.write(headersFrame(1, requestBlock('a', '/refuse', 'POST'), { endStream: false }));
  c.write(dataFrame(1, Buffer.alloc(1000)));
  const rst = await c.waitFor(isRst(1));
  assert.ok(rst, 'reset once answered');
  assert.equal(rstCode(rst), ErrorCode.NO_ERROR);
  assert.equal(statusOf((await c.response(1))!), 413);
  const order = c.frames.filter((f) => f.streamId === 1).map((f) => f.type);
  assert.ok(order.indexOf(FrameType.RST_STREAM) > order.indexOf(FrameType.DATA), 'after the whole response');
  assert.equal(body(c, 1), 'too large');
  // A body that is read is not cut: the POST echo reads all of it.
  c.write(headersFrame(3, requestBlock('a', '/', 'POST'), { endStream: false }));
  c.write(dataFrame(3, Buffer.alloc(1000), true));
  assert.ok(await c.streamEnd(3));
  assert.equal(body(c, 3), '1000');
});

test('an idle session gives back its output slab (trim) and serves the next requests byte for byte; bytes not yet flushed keep it', async (t) => {
  const big = Buffer.alloc(60_000);
  for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251;
  let trimmedWhilePending = -1;
  const e = await engine((s, h) => {
    if (h[':path'] === '/big') {
      s.respond({ ':status': 200 });
      s.end(big);
      return;
    }
    if (h[':path'] === '/trim-now') {
      // The head is in the slab, not yet handed to the socket (flushed at the end of the read).
      s.respond({ ':status': 200 });
      trimmedWhilePending = e.sessions[0].trim();
      s.end('kept');
      return;
    }
    defaultHandler(s, h);
  });
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  c.request(1, '/');
  assert.ok(await c.streamEnd(1));
  assert.equal(body(c, 1), 'ok');
  const s = e.sessions[0];
  const held = s.out.held;
  assert.ok(held > 0, 'a session that wrote holds a slab');
  assert.equal(s.trim(), held, 'trimmed: the slab is given back');
  assert.equal(s.out.held, 0);
  assert.equal(s.trim(), 0, 'nothing more to give back');
  // A response of nearly a slab, on a fresh one.
  c.request(3, '/big');
  assert.ok(await c.streamEnd(3));
  assert.equal(statusOf((await c.response(3))!), 200);
  assert.ok(Buffer.concat(c.frames.filter((f) => f.type === FrameType.DATA && f.streamId === 3).map((f) => f.payload)).equals(big), 'the large body byte for byte');
  s.trim();
  assert.equal(s.out.held, 0);
  c.request(5, '/trim-now');
  assert.ok(await c.streamEnd(5));
  assert.equal(trimmedWhilePending, 0, 'nothing given back while bytes wait in the slab');
  assert.equal(statusOf((await c.response(5))!), 200);
  assert.equal(body(c, 5), 'kept');
  c.request(7, '/');
  assert.ok(await c.streamEnd(7));
  assert.equal(body(c, 7), 'ok');
  assert.equal(c.goaway(), undefined);
});

test('trim copies an incomplete frame out of the large read it came in (a few bytes must not hold the whole chunk)', async (t) => {
  const e = await engine();
  t.after(() => e.close());
  const c = await H2Client.connect(e.port);
  t.after(() => c.destroy());
  assert.ok(await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK)));
  // One write: an ignored frame type of 16,000 bytes, a PING (its ACK says the chunk was read),
  // then 4,000 bytes of another ignored frame of 8,000.
  const unfinished = frame(0xfa, 0, 0, Buffer.alloc(8000, 0x61));
  c.write(Buffer.concat([frame(0xfa, 0, 0, Buffer.alloc(16_000)), pingFrame(Buffer.from('12345678')), unfinished.subarray(0, 4000)]));
  assert.ok(await c.waitFor((f) => f.type === FrameType.PING && (f.flags & Flag.ACK) !== 0));
  const s = e.sessions[0];
  s.out.release();
  const freed = s.trim();
  assert.ok(freed >= 16_000, `the chunk is let go (${freed} bytes)`);
  assert.equal(s.trim(), 0, 'copied once');
  // The frame completes from the copy, and the connection goes on in step.
  c.write(unfinished.subarray(4000));
  c.request(1, '/');
  assert.ok(await c.streamEnd(1));
  assert.equal(body(c, 1), 'ok');
  assert.equal(c.goaway(), undefined);
});

import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect as h2connect, type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2';
import { once } from 'node:events';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { serve, type Yard } from '../src/index.ts';
import { createServer, type AddressInfo } from 'node:net';
import { pino } from 'pino';
import { Http2Front, sweepPeriod } from '../src/listeners/http/h2.ts';
import { ErrorCode, Flag, FrameType, H2Client, rstCode, Setting, statusOf, type Frame } from './helpers/h2-frames.ts';

// The HTTP/2 listener gives a stream node's idle timer only when the stream is still open at
// two of its sweeps in a row (h2.ts, sweepPeriod): a stream that stalls is still reset with
// CANCEL once idleTimeout has passed without progress, and a stream whose timing is not the
// listener's (an open WebSocket, which has no idle timeout of its own) is never given one. Nothing here
// asserts on timing: each wait is an upper bound for something that must happen, or a pause
// after which something must still work.

/** Long enough that the stalled stream's reset (by 1.5 IDLE) cannot be mistaken for the connection's close (2 IDLE) under a loaded test machine. */
const IDLE = 1000;
const closers: (() => unknown)[] = [];
after(async () => {
  for (const c of closers.reverse()) await c();
});

const dir = mkdtempSync(join(tmpdir(), 'sy-h2-sweep-'));
/** Served with respondWithFD (past the body cache), so nghttp2 holds it back by itself at a zero window. */
const BIG = 4 * 1024 * 1024;
writeFileSync(join(dir, 'big.bin'), Buffer.alloc(BIG, 'b'));
writeFileSync(join(dir, 'small.txt'), 'small\n');

async function yard(): Promise<number> {
  const y: Yard = await serve(
    {
      listeners: [
        {
          name: 'web',
          protocol: 'http',
          address: '127.0.0.1:0',
          http2: { h2c: true },
          limits: { idleTimeout: IDLE },
          routes: [
            { match: { path: '/ws' }, handler: { type: 'ws-echo' } },
            { handler: { type: 'static', root: dir } },
          ],
        },
      ],
    },
    { logLevel: 'silent' },
  );
  closers.push(() => y.stop(100));
  return y.address('web').port;
}

async function session(port: number): Promise<ClientHttp2Session> {
  const s = h2connect(`http://127.0.0.1:${port}`);
  closers.push(() => s.destroy());
  s.on('error', () => {});
  await once(s, 'remoteSettings');
  return s;
}

test('the sweep runs a quarter of the idle timeout apart, at most a second', () => {
  assert.equal(sweepPeriod(300), 75);
  assert.equal(sweepPeriod(60_000), 1000);
  assert.equal(sweepPeriod(2), 1);
});

test('a stream stalled by the client (window 0) is reset (CANCEL) once idle, before its idle connection is closed', async () => {
  const port = await yard();
  const c = await H2Client.connect(port, { settings: [[Setting.INITIAL_WINDOW_SIZE, 0]] });
  closers.push(() => c.destroy());
  assert.ok(await c.waitFor((f) => f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK)), 'server SETTINGS');
  c.request(1, '/big.bin');
  const head = await c.response(1);
  assert.ok(head, 'response HEADERS');
  assert.equal(statusOf(head), 200);
  // Timed from the second sweep it is open at, at the latest, the stream is reset within
  // idleTimeout and two sweep periods (at most 1.5 idleTimeout); the connection, idle as well,
  // gets GOAWAY after idleTimeout and is closed one idleTimeout later, taking its streams with
  // it without a reset. waitFor gives up when the connection closes: the reset must come first.
  const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === 1, 10 * IDLE);
  assert.ok(rst, 'the stalled stream is reset before the connection is closed');
  assert.equal(rstCode(rst), ErrorCode.CANCEL);
  assert.equal(c.dataBytes.get(1) ?? 0, 0, 'nothing was sent past the window');
});

/** A masked client text frame (payload under 126 bytes). */
function clientText(text: string): Buffer {
  const payload = Buffer.from(text);
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** Reads one unmasked server text frame (payload under 126 bytes). */
function serverText(stream: ClientHttp2Stream): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      if (buf.length >= 2 && buf.length >= 2 + (buf[1] & 0x7f)) {
        stream.off('data', onData);
        stream.off('close', onClose);
        resolve(buf.subarray(2, 2 + (buf[1] & 0x7f)).toString());
      }
    };
    const onClose = () => reject(new Error(`stream closed (code ${stream.rstCode}) before a frame`));
    stream.on('data', onData);
    stream.once('close', onClose);
  });
}

test('an open WebSocket over HTTP/2 is never given the idle timer: quiet for several idle timeouts, it still echoes', async () => {
  const s = await session(await yard());
  const ws = s.request({ ':method': 'CONNECT', ':protocol': 'websocket', ':scheme': 'http', ':path': '/ws', ':authority': 'localhost', 'sec-websocket-version': '13' });
  ws.on('error', () => {});
  const [headers] = (await once(ws, 'response')) as [Record<string, unknown>];
  assert.equal(headers[':status'], 200);
  ws.write(clientText('before'));
  assert.equal(await serverText(ws), 'before');
  // The WebSocket stays quiet for three idle timeouts, long enough for many sweeps and for any
  // idle timer they could have set to fire; meanwhile other streams keep the connection busy
  // (a connection with no frame either way for idleTimeout is closed, WebSocket or not).
  for (let i = 0; i < 9; i++) {
    await sleep(IDLE / 3);
    const get = s.request({ ':path': '/small.txt' });
    get.resume();
    await once(get, 'end');
  }
  assert.equal(ws.closed, false, 'the WebSocket stream is still open');
  ws.write(clientText('after'));
  assert.equal(await serverText(ws), 'after');
  ws.close();
});

test('a session quiet for a sweep gives back its output slab (also with no idle timeout) and serves the next request', async (t) => {
  const front = new Http2Front({
    listener: 'trim',
    config: {
      enabled: true,
      h2c: true,
      maxConcurrentStreams: 128,
      initialWindowSize: 64 * 1024,
      connectionWindowSize: 1024 * 1024,
      maxResets: { rate: 100, per: 1000, burst: 200 },
      maxPings: { rate: 10, per: 1000, burst: 20 },
      maxSettings: { rate: 10, per: 1000, burst: 20 },
    },
    maxHeaderSize: 16 * 1024,
    // No idle timeout: nothing closes the session, the sweep only trims.
    idleTimeout: 0,
    log: pino({ level: 'silent' }),
    onRequest: (_req, res) => res.end('ok'),
    onFlood: () => {},
  });
  const server = createServer((socket) => {
    socket.on('error', () => {});
    front.accept(socket);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  t.after(() => {
    front.destroy();
    server.close();
  });
  const c = await H2Client.connect((server.address() as AddressInfo).port);
  t.after(() => c.destroy());
  const data = (id: number) => Buffer.concat(c.frames.filter((f: Frame) => f.type === FrameType.DATA && f.streamId === id).map((f) => f.payload)).toString();
  c.request(1, '/');
  assert.ok(await c.streamEnd(1));
  assert.equal(data(1), 'ok');
  // Trimmed within a few sweeps (a second apart without an idle timeout).
  for (let i = 0; i < 100 && front.outputHeld > 0; i++) await sleep(50);
  assert.equal(front.outputHeld, 0, 'no slab held by the quiet session');
  assert.equal(front.size, 1, 'the session is still open');
  c.request(3, '/');
  assert.ok(await c.streamEnd(3));
  assert.equal(statusOf((await c.response(3))!), 200);
  assert.equal(data(3), 'ok');
});

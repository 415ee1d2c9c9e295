import assert from 'node:assert/strict';
import { once } from 'node:events';
import { createServer, type Server, type Socket } from 'node:net';
import { after, test } from 'node:test';
import type { Dispatcher } from 'undici';
import { classify } from '../src/handlers/proxy/errors.ts';
import { HEADERS_TOO_LARGE, NOT_PROCESSED, PROTOCOL_VIOLATION } from '../src/upstream/h2/errors.ts';
import { Http2Dispatcher } from '../src/upstream/h2-dispatcher.ts';
import { HpackDecoder } from '../src/protocol/h2/hpack.ts';
import {
  continuationFrame,
  dataFrame,
  encodeHeaders,
  ErrorCode,
  Flag,
  frame,
  FrameType,
  goawayFrame,
  headersFrame,
  PREFACE,
  rstStreamFrame,
  Setting,
  settingsAck,
  settingsFrame,
  windowUpdateFrame,
  type Frame,
} from './helpers/h2-frames.ts';

// The HTTP/2 upstream client (src/upstream/h2/) against a scripted target: a net.Server that
// writes frames by hand and records what the client sends, for the cases a well-behaved server
// never produces (small windows, GOAWAY mid-flight, refused streams, oversize header lists,
// PUSH_PROMISE, malformed frames) and for flow control both ways.

/** One connection of the scripted target: the frames the client sent, and a way to answer. */
class TargetConnection {
  readonly frames: Frame[] = [];
  private buf = Buffer.alloc(0);
  private prefaceSeen = false;
  private waiters: (() => void)[] = [];
  private readonly decoder = new HpackDecoder(4096, 1 << 20);
  closed = false;

  constructor(
    readonly socket: Socket,
    /** Acknowledge the client's SETTINGS (as every target must, RFC 9113 §6.5.3). */
    private readonly ackSettings = true,
  ) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('close', () => {
      this.closed = true;
      this.wake();
    });
    socket.on('error', () => {});
  }

  send(...frames: Buffer[]): void {
    if (!this.socket.destroyed) this.socket.write(Buffer.concat(frames));
  }

  /** The first frame (from index `from`) matching `pred`; fails the test after 5 s. */
  async waitFor(pred: (f: Frame) => boolean, what: string, from = 0): Promise<Frame> {
    const deadline = Date.now() + 5000;
    for (;;) {
      const f = this.frames.slice(from).find(pred);
      if (f) return f;
      if (this.closed) throw new Error(`the client closed the connection before ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no ${what} within 5 s`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiters.push(() => {
          clearTimeout(t);
          resolve();
        });
      });
    }
  }

  /** The request fields of a HEADERS frame (HPACK state follows the client's blocks in order). */
  headersOf(f: Frame): Map<string, string> {
    const fields = this.decoder.decode(f.payload);
    const m = new Map<string, string>();
    for (let i = 0; i < fields.length; i += 2) m.set(fields[i], fields[i + 1]);
    return m;
  }

  async untilClosed(): Promise<void> {
    if (!this.closed) await Promise.race([once(this.socket, 'close'), new Promise((r) => setTimeout(r, 5000))]);
  }

  dataBytes(stream: number): number {
    return this.frames.filter((f) => f.type === FrameType.DATA && f.streamId === stream).reduce((n, f) => n + f.payload.length, 0);
  }

  private onData(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d]);
    if (!this.prefaceSeen) {
      if (this.buf.length < PREFACE.length) return;
      assert.deepEqual(this.buf.subarray(0, PREFACE.length), PREFACE, 'the client starts with the preface');
      this.buf = this.buf.subarray(PREFACE.length);
      this.prefaceSeen = true;
    }
    while (this.buf.length >= 9) {
      const length = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + length) break;
      const f: Frame = { type: this.buf[3], flags: this.buf[4], streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: Buffer.from(this.buf.subarray(9, 9 + length)) };
      this.frames.push(f);
      if (this.ackSettings && f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0) this.send(settingsAck());
      this.buf = this.buf.subarray(9 + length);
    }
    this.wake();
  }

  private wake(): void {
    for (const w of this.waiters.splice(0)) w();
  }
}

/** A scripted HTTP/2 target: every connection gets `settings` as its first frame. */
async function target(settings: [number, number][] = [], options: { ackSettings?: boolean } = {}): Promise<{ server: Server; port: number; connections: TargetConnection[]; next(): Promise<TargetConnection> }> {
  const connections: TargetConnection[] = [];
  const waiting: ((c: TargetConnection) => void)[] = [];
  const server = createServer((socket) => {
    const c = new TargetConnection(socket, options.ackSettings ?? true);
    connections.push(c);
    c.send(settingsFrame(settings));
    waiting.shift()?.(c);
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => server.close());
  let taken = 0;
  return {
    server,
    port: (server.address() as { port: number }).port,
    connections,
    next: () => {
      const i = taken++;
      if (connections[i]) return Promise.resolve(connections[i]);
      return new Promise((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no connection from the client within 5 s')), 5000);
        waiting.push((c) => {
          clearTimeout(t);
          resolve(c);
        });
      });
    },
  };
}

function pool(port: number, options: { headersTimeout?: number; bodyTimeout?: number; maxSessions?: number; connectTimeout?: number } = {}): Http2Dispatcher {
  const d = new Http2Dispatcher({
    protocol: 'http:',
    host: '127.0.0.1',
    port,
    id: `127.0.0.1:${port}`,
    connectTimeout: options.connectTimeout ?? 5000,
    headersTimeout: options.headersTimeout ?? 0,
    bodyTimeout: options.bodyTimeout ?? 0,
    maxSessions: options.maxSessions ?? 1,
  });
  after(() => d.destroy());
  return d;
}

/** What a request's handler saw. */
class Recorder implements Dispatcher.DispatchHandler {
  statuses: number[] = [];
  headers: string[] = [];
  chunks: Buffer[] = [];
  trailers: unknown = undefined;
  error: (Error & { code?: string }) | undefined;
  resume: (() => void) | undefined;
  abort: ((err?: Error) => void) | undefined;
  /** onData returns false (pauses) for the first `pauseAfter` chunks... -1: never. */
  pauseOnData = false;
  readonly done: Promise<void>;
  private settle!: () => void;

  constructor() {
    this.done = new Promise((resolve) => (this.settle = resolve));
  }
  onConnect(abort: (err?: Error) => void): void {
    this.abort = abort;
  }
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    this.statuses.push(status);
    if (status >= 200) {
      this.headers = raw as unknown as string[];
      this.resume = resume;
    }
    return true;
  }
  onData(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return !this.pauseOnData;
  }
  onComplete(trailers: unknown): void {
    this.trailers = trailers;
    this.settle();
  }
  onError(err: Error): void {
    this.error = err;
    this.settle();
  }
  get bytes(): number {
    return this.chunks.reduce((n, c) => n + c.length, 0);
  }
  async finished(): Promise<void> {
    await Promise.race([this.done, new Promise((_, reject) => setTimeout(() => reject(new Error('the request did not end within 5 s')), 5000))]);
  }
}

function request(d: Http2Dispatcher, body: Buffer | AsyncIterable<Buffer> | null = null, method = body ? 'POST' : 'GET'): Recorder {
  const r = new Recorder();
  d.dispatch({ method, path: '/x', headers: ['host', 'example.test', 'content-type', 'application/grpc'], body } as unknown as Dispatcher.DispatchOptions, r);
  return r;
}

const status = (code: string, extra: [string, string][] = []): Buffer => encodeHeaders([[':status', code], ...extra]);
const isHeaders = (f: Frame): boolean => f.type === FrameType.HEADERS;
const settle = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

test('a request and its answer: headers, 103 first, body and trailers; :authority from Host', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d, Buffer.from('ping'));
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  const fields = c.headersOf(h);
  assert.equal(fields.get(':method'), 'POST');
  assert.equal(fields.get(':authority'), 'example.test');
  assert.equal(fields.get(':path'), '/x');
  assert.equal(fields.has('host'), false);
  await c.waitFor((f) => f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0, 'the body with END_STREAM');
  assert.equal(c.dataBytes(h.streamId), 4);
  c.send(
    headersFrame(h.streamId, status('103', [['link', '</a.css>; rel=preload']]), { endStream: false }),
    headersFrame(h.streamId, status('200', [['content-type', 'application/grpc']]), { endStream: false }),
    dataFrame(h.streamId, Buffer.from('pong')),
    headersFrame(h.streamId, encodeHeaders([['grpc-status', '0'], ['grpc-message', 'ok']])),
  );
  await r.finished();
  assert.equal(r.error, undefined);
  assert.deepEqual(r.statuses, [103, 200]);
  assert.deepEqual(r.headers, ['content-type', 'application/grpc']);
  assert.equal(Buffer.concat(r.chunks).toString(), 'pong');
  assert.deepEqual(r.trailers, { 'grpc-status': '0', 'grpc-message': 'ok' });
});

test('the target\'s small window: the client sends no more than it allows, pulls the body lazily and goes on after WINDOW_UPDATE', async () => {
  const t = await target([[Setting.INITIAL_WINDOW_SIZE, 10]]);
  const d = pool(t.port);
  let pulled = 0;
  async function* body(): AsyncGenerator<Buffer> {
    for (let i = 0; i < 6; i++) {
      pulled++;
      yield Buffer.alloc(10, 97 + i);
    }
  }
  const r = request(d, body());
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  await c.waitFor((f) => f.type === FrameType.DATA, 'DATA');
  await settle(200);
  assert.equal(c.dataBytes(h.streamId), 10, 'only the stream window was sent');
  assert.ok(pulled <= 2, `the body was pulled ${pulled} times while the window was closed`);
  c.send(windowUpdateFrame(h.streamId, 25));
  await c.waitFor(() => c.dataBytes(h.streamId) >= 35, '25 more bytes');
  await settle(200);
  assert.equal(c.dataBytes(h.streamId), 35);
  assert.ok(pulled <= 5, `pulled ${pulled} times with 35 bytes of window`);
  c.send(windowUpdateFrame(h.streamId, 100));
  await c.waitFor((f) => f.type === FrameType.DATA && (f.flags & Flag.END_STREAM) !== 0, 'END_STREAM');
  assert.equal(c.dataBytes(h.streamId), 60);
  assert.equal(pulled, 6);
  c.send(headersFrame(h.streamId, status('204')));
  await r.finished();
  assert.deepEqual(r.statuses, [204]);
});

test('a paused handler: no window credit goes back until it resumes, so the target stops after one window', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  r.pauseOnData = true;
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  const window = c.frames.filter((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0).map((f) => {
    for (let i = 0; i < f.payload.length; i += 6) if (f.payload.readUInt16BE(i) === Setting.INITIAL_WINDOW_SIZE) return f.payload.readUInt32BE(i + 2);
    return 65535;
  })[0];
  assert.ok(window !== undefined && window >= 65535 && window <= 16 << 20, `the client's stream window: ${window}`);
  const piece = Buffer.alloc(16384, 120);
  c.send(headersFrame(h.streamId, status('200'), { endStream: false }));
  for (let sent = 0; sent < window; sent += piece.length) c.send(dataFrame(h.streamId, piece.subarray(0, Math.min(piece.length, window - sent))));
  await settle(300); // the client reads all of it
  const updates = (): Frame[] => c.frames.filter((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === h.streamId);
  assert.equal(r.chunks.length, 1, 'the handler got one chunk and paused');
  assert.equal(updates().length, 0, 'no credit for the stream while paused');
  assert.equal(r.error, undefined);
  r.pauseOnData = false;
  r.resume!();
  await c.waitFor((f) => f.type === FrameType.WINDOW_UPDATE && f.streamId === h.streamId, 'WINDOW_UPDATE after resume');
  assert.equal(r.bytes, window, 'the held bytes reached the handler');
  c.send(dataFrame(h.streamId, Buffer.from('end'), true));
  await r.finished();
  assert.equal(r.error, undefined);
  assert.equal(r.bytes, window + 3);
});

test('a paused handler past the end: the response completes only after resume, with its trailers', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  r.pauseOnData = true;
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  c.send(headersFrame(h.streamId, status('200'), { endStream: false }), dataFrame(h.streamId, Buffer.from('a')), dataFrame(h.streamId, Buffer.from('b')), headersFrame(h.streamId, encodeHeaders([['grpc-status', '0']])));
  await settle(200);
  assert.equal(r.trailers, undefined, 'not complete while paused');
  assert.equal(r.chunks.length, 1);
  r.pauseOnData = false;
  r.resume!();
  await r.finished();
  assert.equal(Buffer.concat(r.chunks).toString(), 'ab');
  assert.deepEqual(r.trailers, { 'grpc-status': '0' });
});

test('GOAWAY mid-flight: streams above its last id fail as not sent, the one below finishes, the next request opens a new connection', async () => {
  const t = await target();
  const d = pool(t.port);
  const first = request(d);
  const c = await t.next();
  const h1 = await c.waitFor(isHeaders, 'first HEADERS');
  const second = request(d, Buffer.from('body'));
  const h3 = await c.waitFor((f) => isHeaders(f) && f.streamId !== h1.streamId, 'second HEADERS');
  c.send(goawayFrame(h1.streamId, ErrorCode.NO_ERROR));
  await second.finished();
  assert.equal(second.error?.code, NOT_PROCESSED, `the refused request: ${second.error}`);
  const e = classify(second.error, true);
  assert.equal(e.sent, false, 'not processed: safe to send again');
  assert.equal(e.retryable, true);
  assert.ok(h3.streamId > h1.streamId);
  assert.equal(d.stats.connected, 0, 'the connection left the pool');
  c.send(headersFrame(h1.streamId, status('200'), { endStream: false }), dataFrame(h1.streamId, Buffer.from('done'), true));
  await first.finished();
  assert.equal(first.error, undefined);
  assert.equal(Buffer.concat(first.chunks).toString(), 'done');
  await c.untilClosed();
  assert.equal(c.closed, true, 'the drained connection closes');
  const third = request(d);
  const c2 = await t.next();
  const h = await c2.waitFor(isHeaders, 'HEADERS on the new connection');
  c2.send(headersFrame(h.streamId, status('204')));
  await third.finished();
  assert.deepEqual(third.statuses, [204]);
});

test('destroy() ends a connection that is draining after GOAWAY too, and fails its stream still in flight', async () => {
  const t = await target();
  const d = pool(t.port);
  const first = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  c.send(goawayFrame(h.streamId, ErrorCode.NO_ERROR));
  // The connection left the pool with the first request still on it.
  for (let i = 0; i < 100 && d.stats.connected > 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.equal(d.stats.connected, 0, 'the connection left the pool');
  await d.destroy();
  await first.finished();
  assert.ok(first.error, 'the stream in flight failed');
  await c.untilClosed();
  assert.equal(c.closed, true, 'the draining connection was closed by destroy()');
});

test('REFUSED_STREAM: safe to send again when the body is at hand; a streamed body fails as a reset', async () => {
  const t = await target();
  const d = pool(t.port);
  const held = request(d, Buffer.from('x'));
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  c.send(rstStreamFrame(h.streamId, ErrorCode.REFUSED_STREAM));
  await held.finished();
  assert.equal(classify(held.error, true).sent, false);
  assert.equal(classify(held.error, true).kind, 'UPSTREAM_RESET');
  async function* body(): AsyncGenerator<Buffer> {
    yield Buffer.from('y');
  }
  const streamed = request(d, body());
  const h2 = await c.waitFor((f) => isHeaders(f) && f.streamId !== h.streamId, 'second HEADERS');
  c.send(rstStreamFrame(h2.streamId, ErrorCode.REFUSED_STREAM));
  await streamed.finished();
  assert.equal(streamed.error?.code, 'ECONNRESET');
  assert.equal(classify(streamed.error, true).sent, true, 'its body was read: only a copy could go again');
  assert.equal(d.stats.connected, 1, 'a refused stream does not cost the connection');
});

test('an oversize response header list fails its stream only: RST_STREAM, and the connection goes on', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  const block = status('200', [['x-big', 'v'.repeat(70 * 1024)]]);
  const parts: Buffer[] = [];
  for (let i = 0; i < block.length; i += 16384) parts.push(block.subarray(i, i + 16384));
  c.send(headersFrame(h.streamId, parts[0], { endStream: true, endHeaders: false }), ...parts.slice(1).map((p, i) => continuationFrame(h.streamId, p, i === parts.length - 2)));
  await r.finished();
  assert.equal(r.error?.code, 'UND_ERR_HEADERS_OVERFLOW');
  assert.deepEqual(r.statuses, []);
  await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === h.streamId, 'RST_STREAM');
  const next = request(d);
  const h2 = await c.waitFor((f) => isHeaders(f) && f.streamId !== h.streamId, 'the next HEADERS on the same connection');
  c.send(headersFrame(h2.streamId, status('204')));
  await next.finished();
  assert.deepEqual(next.statuses, [204]);
  assert.equal(t.connections.length, 1);
});

test('PUSH_PROMISE is a connection error: GOAWAY PROTOCOL_ERROR, the request fails as an invalid response', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  const promise = Buffer.concat([Buffer.from([0, 0, 0, 2]), encodeHeaders([[':method', 'GET'], [':path', '/p'], [':scheme', 'http'], [':authority', 'x']])]);
  c.send(frame(FrameType.PUSH_PROMISE, Flag.END_HEADERS, h.streamId, promise));
  await r.finished();
  assert.equal(classify(r.error, true).kind, 'UPSTREAM_PROTOCOL', String(r.error));
  const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY, 'GOAWAY');
  assert.equal(goaway.payload.readUInt32BE(4), ErrorCode.PROTOCOL_ERROR);
  await c.untilClosed();
  assert.equal(c.closed, true);
  assert.equal(d.stats.connected, 0);
});

test('a malformed frame fails every stream on the connection with GOAWAY FRAME_SIZE_ERROR', async () => {
  const t = await target();
  const d = pool(t.port);
  const a = request(d);
  const b = request(d);
  const c = await t.next();
  await c.waitFor((f) => isHeaders(f) && f.streamId === 3, 'two HEADERS');
  c.send(frame(FrameType.WINDOW_UPDATE, 0, 0, Buffer.from([0, 0, 1])));
  await a.finished();
  await b.finished();
  for (const r of [a, b]) assert.equal(classify(r.error, true).kind, 'UPSTREAM_PROTOCOL', String(r.error));
  const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY, 'GOAWAY');
  assert.equal(goaway.payload.readUInt32BE(4), ErrorCode.FRAME_SIZE_ERROR);
});

test('a header block in too many CONTINUATION frames ends the connection (ENHANCE_YOUR_CALM)', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  c.send(headersFrame(h.streamId, Buffer.alloc(0), { endStream: false, endHeaders: false }), ...Array.from({ length: 200 }, () => continuationFrame(h.streamId, Buffer.alloc(0))));
  await r.finished();
  assert.equal(classify(r.error, true).kind, 'UPSTREAM_PROTOCOL');
  const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY, 'GOAWAY');
  assert.equal(goaway.payload.readUInt32BE(4), ErrorCode.ENHANCE_YOUR_CALM);
});

test('DATA beyond the window the client gave is a flow-control error', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  const settings = c.frames.find((f) => f.type === FrameType.SETTINGS && (f.flags & Flag.ACK) === 0)!;
  let window = 65535;
  for (let i = 0; i < settings.payload.length; i += 6) if (settings.payload.readUInt16BE(i) === Setting.INITIAL_WINDOW_SIZE) window = settings.payload.readUInt32BE(i + 2);
  r.pauseOnData = true;
  c.send(headersFrame(h.streamId, status('200'), { endStream: false }));
  const piece = Buffer.alloc(16384);
  for (let sent = 0; sent <= window; sent += piece.length) c.send(dataFrame(h.streamId, piece));
  await r.finished();
  assert.equal(classify(r.error, true).kind, 'UPSTREAM_PROTOCOL', String(r.error));
  const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === h.streamId, 'RST_STREAM');
  assert.equal(rst.payload.readUInt32BE(0), ErrorCode.FLOW_CONTROL_ERROR);
});

test('timeouts: no head within headersTimeout, no body bytes within bodyTimeout; the stream is cancelled', async () => {
  const t = await target();
  const d = pool(t.port, { headersTimeout: 150, bodyTimeout: 150 });
  const silent = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  await silent.finished();
  assert.equal(silent.error?.code, 'UND_ERR_HEADERS_TIMEOUT');
  const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === h.streamId, 'RST_STREAM');
  assert.equal(rst.payload.readUInt32BE(0), ErrorCode.CANCEL);
  const stalled = request(d);
  const h2 = await c.waitFor((f) => isHeaders(f) && f.streamId !== h.streamId, 'second HEADERS');
  c.send(headersFrame(h2.streamId, status('200'), { endStream: false }), dataFrame(h2.streamId, Buffer.from('a')));
  await stalled.finished();
  assert.deepEqual(stalled.statuses, [200]);
  assert.equal(stalled.error?.code, 'UND_ERR_BODY_TIMEOUT');
});

test('abort from the handler cancels the stream (RST_STREAM CANCEL); a refused connection passes ECONNREFUSED', async () => {
  const t = await target();
  const d = pool(t.port);
  const r = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  r.abort!(new Error('client went away'));
  await r.finished();
  assert.equal(r.error?.message, 'client went away');
  const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === h.streamId, 'RST_STREAM');
  assert.equal(rst.payload.readUInt32BE(0), ErrorCode.CANCEL);

  const closedPort = await new Promise<number>((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as { port: number }).port;
      s.close(() => resolve(p));
    });
  });
  const refused = request(pool(closedPort));
  await refused.finished();
  assert.equal(refused.error?.code, 'ECONNREFUSED');
});

test('a target that answers in HTTP/1.1 is refused with a clear error', async () => {
  const server = createServer((s) => {
    s.on('error', () => {});
    s.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n');
  });
  server.listen(0, '127.0.0.1');
  await once(server, 'listening');
  after(() => server.close());
  const r = request(pool((server.address() as { port: number }).port));
  await r.finished();
  assert.match(String(r.error?.message), /does not answer with HTTP\/2/);
  assert.equal(classify(r.error, false).kind, 'UPSTREAM_PROTOCOL');
});

test('against node:http2 (nghttp2 decodes our HPACK): 300 requests with changing fields evict and reuse table entries, also under a smaller table', async () => {
  const { createServer: createH2Server } = await import('node:http2');
  for (const headerTableSize of [4096, 256]) {
    const server = createH2Server({ settings: { headerTableSize } });
    server.on('stream', (stream, headers) => {
      stream.respond({ ':status': 200, 'x-seen': `${headers[':path']}|${headers['x-v']}|${headers['x-same']}|${headers[':authority']}` }, { endStream: true });
    });
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    const port = (server.address() as { port: number }).port;
    const d = pool(port);
    for (let i = 0; i < 300; i++) {
      const r = new Recorder();
      d.dispatch({ method: 'GET', path: `/p${i % 7}`, headers: ['x-v', `value-${i}-${'z'.repeat(i % 50)}`, 'x-same', 'constant', 'host', `h${i % 3}.test`], body: null } as unknown as Dispatcher.DispatchOptions, r);
      await r.finished();
      assert.equal(r.error, undefined, `request ${i}: ${r.error}`);
      const seen = r.headers[r.headers.indexOf('x-seen') + 1];
      assert.equal(seen, `/p${i % 7}|value-${i}-${'z'.repeat(i % 50)}|constant|h${i % 3}.test`, `request ${i} with a ${headerTableSize}-byte table`);
    }
    await d.destroy();
    await new Promise((resolve) => server.close(resolve));
  }
});

/** A literal field with incremental indexing and a new name (RFC 7541 §6.2.1): it enters the target's dynamic table and ours. */
function indexedLiteral(name: string, value: string): Buffer {
  return Buffer.concat([Buffer.of(0x40, name.length), Buffer.from(name, 'latin1'), Buffer.of(value.length), Buffer.from(value, 'latin1')]);
}

test('a malformed response head or trailers (uppercase or invalid names, CR/LF in a value or white space at its ends, connection-specific fields, misplaced pseudo-headers) fails its stream with RST_STREAM PROTOCOL_ERROR; the connection goes on', async () => {
  const t = await target();
  const d = pool(t.port);
  const heads: [string, Buffer][] = [
    ['an uppercase name', status('200', [['X-Upper', 'v']])],
    ['a name with a space', status('200', [['x bad', 'v']])],
    ['a colon inside a name', status('200', [['x:y', 'v']])],
    ['CR LF in a value', status('200', [['x-split', 'a\r\nset-cookie: s=1']])],
    ['a value with a leading space', status('200', [['x-pad', ' v']])],
    ['a value with a trailing tab', status('200', [['x-pad', 'v\t']])],
    ['connection', status('200', [['connection', 'keep-alive']])],
    ['keep-alive', status('200', [['keep-alive', 'timeout=5']])],
    ['proxy-connection', status('200', [['proxy-connection', 'close']])],
    ['transfer-encoding', status('200', [['transfer-encoding', 'chunked']])],
    ['upgrade', status('200', [['upgrade', 'h2c']])],
    ['a request pseudo-header', status('200', [[':path', '/']])],
    ['a pseudo-header after a field', encodeHeaders([['x-a', '1'], [':status', '200']])],
    // Added to the dynamic table by the block before: the reference alone carries the flaw.
    ['an uppercase name from the dynamic table', Buffer.concat([status('200'), Buffer.of(0x80 | 62)])],
  ];
  const first = request(d);
  const c = await t.next();
  let from = 0;
  for (const [what, block] of heads) {
    const r = from === 0 ? first : request(d);
    const h = await c.waitFor((f) => isHeaders(f) && f.streamId > from, `HEADERS (${what})`);
    from = h.streamId;
    const sent = what === 'an uppercase name' ? Buffer.concat([status('200'), indexedLiteral('X-Table', 'v')]) : block;
    c.send(headersFrame(h.streamId, sent));
    await r.finished();
    assert.equal(r.error?.code, PROTOCOL_VIOLATION, `${what}: ${r.error}`);
    assert.equal(classify(r.error, true).kind, 'UPSTREAM_PROTOCOL', what);
    assert.equal(classify(r.error, true).status, 502, what);
    assert.deepEqual(r.statuses, [], `${what}: no head reached the handler`);
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === h.streamId, `RST_STREAM (${what})`);
    assert.equal(rst.payload.readUInt32BE(0), ErrorCode.PROTOCOL_ERROR, what);
  }
  const trailers: [string, [string, string][]][] = [
    ['an uppercase trailer name', [['Grpc-Status', '0']]],
    ['a connection-specific trailer', [['grpc-status', '0'], ['transfer-encoding', 'chunked']]],
    ['a pseudo-header in trailers', [[':status', '200']]],
  ];
  for (const [what, fields] of trailers) {
    const r = request(d);
    const h = await c.waitFor((f) => isHeaders(f) && f.streamId > from, `HEADERS (${what})`);
    from = h.streamId;
    c.send(headersFrame(h.streamId, status('200'), { endStream: false }), dataFrame(h.streamId, Buffer.from('a')), headersFrame(h.streamId, encodeHeaders(fields)));
    await r.finished();
    assert.deepEqual(r.statuses, [200], what);
    assert.equal(r.error?.code, PROTOCOL_VIOLATION, `${what}: ${r.error}`);
    const rst = await c.waitFor((f) => f.type === FrameType.RST_STREAM && f.streamId === h.streamId, `RST_STREAM (${what})`);
    assert.equal(rst.payload.readUInt32BE(0), ErrorCode.PROTOCOL_ERROR, what);
  }
  const good = request(d);
  const h = await c.waitFor((f) => isHeaders(f) && f.streamId > from, 'the next HEADERS on the same connection');
  c.send(headersFrame(h.streamId, status('200', [['x-fine', 'v'], ['te', 'trailers']]), { endStream: false }), headersFrame(h.streamId, encodeHeaders([['grpc-status', '0']])));
  await good.finished();
  assert.equal(good.error, undefined);
  assert.deepEqual(good.headers, ['x-fine', 'v', 'te', 'trailers']);
  assert.equal(t.connections.length, 1);
  assert.equal(c.frames.some((f) => f.type === FrameType.GOAWAY), false, 'stream errors only');
});

test('our SETTINGS unacknowledged within the connect timeout: GOAWAY SETTINGS_TIMEOUT, the streams fail as a broken connection; acknowledged, the connection lasts past it', async () => {
  const silent = await target([], { ackSettings: false });
  const d = pool(silent.port, { connectTimeout: 300 });
  const r = request(d);
  const c = await silent.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  const goaway = await c.waitFor((f) => f.type === FrameType.GOAWAY, 'GOAWAY');
  assert.equal(goaway.payload.readUInt32BE(4), ErrorCode.SETTINGS_TIMEOUT);
  await r.finished();
  assert.equal(r.error?.code, 'ECONNRESET', String(r.error));
  assert.match(String(r.error?.message), /did not acknowledge our SETTINGS/);
  const e = classify(r.error, true);
  assert.equal(e.kind, 'UPSTREAM_RESET');
  assert.equal(e.sent, true, `stream ${h.streamId} reached the target: sent again only when that is safe`);
  assert.equal(d.stats.connected, 0, 'the connection left the pool');
  await c.untilClosed();
  assert.equal(c.closed, true);

  const acking = await target();
  const d2 = pool(acking.port, { connectTimeout: 300 });
  const slow = request(d2);
  const c2 = await acking.next();
  const h2 = await c2.waitFor(isHeaders, 'HEADERS');
  await settle(800);
  c2.send(headersFrame(h2.streamId, status('204')));
  await slow.finished();
  assert.equal(slow.error, undefined);
  assert.deepEqual(slow.statuses, [204]);
  assert.equal(c2.frames.some((f) => f.type === FrameType.GOAWAY), false);
});

test('a request header list above the target\'s SETTINGS_MAX_HEADER_LIST_SIZE is not sent: it fails as never sent, the connection goes on', async () => {
  // :method GET, :scheme http, :path /x, :authority example.test and content-type application/grpc: 238 bytes as HTTP/2 counts them (32 per field), x-big 237 more.
  const t = await target([[Setting.MAX_HEADER_LIST_SIZE, 400]]);
  const d = pool(t.port);
  const big = new Recorder();
  d.dispatch({ method: 'GET', path: '/x', headers: ['host', 'example.test', 'content-type', 'application/grpc', 'x-big', 'v'.repeat(200)], body: null } as unknown as Dispatcher.DispatchOptions, big);
  await big.finished();
  assert.equal(big.error?.code, HEADERS_TOO_LARGE, String(big.error));
  assert.match(String(big.error?.message), /header list is 475 bytes .* above the 400 .*SETTINGS_MAX_HEADER_LIST_SIZE/);
  assert.equal(big.abort, undefined, 'the stream was never opened');
  const e = classify(big.error, false);
  assert.equal(e.sent, false);
  assert.equal(e.retryable, false, 'no target of the group would take it either');
  assert.equal(e.status, 431);
  assert.equal(e.where, 'downstream', 'not held against the target');
  const fits = request(d);
  const c = await t.next();
  const h = await c.waitFor(isHeaders, 'HEADERS');
  c.send(headersFrame(h.streamId, status('204')));
  await fits.finished();
  assert.deepEqual(fits.statuses, [204]);
  assert.equal(c.frames.filter(isHeaders).length, 1, 'only the request that fits was sent');
  assert.equal(h.streamId, 1);
});

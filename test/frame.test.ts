import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { connect, createServer, type Socket } from 'node:net';
import { createServer as createTlsServer, connect as tlsConnect } from 'node:tls';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import { createHash } from 'node:crypto';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { serve, parseConfig, ConfigError, type Yard } from '../src/index.ts';
import { mulberry32 as prng } from '../src/upstream/balancers/random.ts';
import { FrameDecoder, FrameError, encodeFrame, frameHeader, readFrames, writeFrame } from '../src/protocol/index.ts';

// The length-prefixed frame codec (src/protocol/frame.ts) and the frame-echo handler, over real
// TCP, unix and TLS sockets; then a seeded fuzz run against a frame-echo listener.

const execFileP = promisify(execFile);

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'switchyard-frame-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

// ---- helpers ------------------------------------------------------------------------------


function bytes(n: number, rnd: () => number): Buffer {
  const b = Buffer.allocUnsafe(n);
  let i = 0;
  for (; i + 4 <= n; i += 4) b.writeUInt32LE((rnd() * 4294967296) >>> 0, i);
  for (; i < n; i++) b[i] = (rnd() * 256) | 0;
  return b;
}

const sha = (b: Uint8Array) => createHash('sha256').update(b).digest('hex');

interface Started {
  yard: Yard;
  port: number;
  logs: { level: number; msg: string }[];
}

/** A yard with one frame-echo listener, its debug log captured. */
async function startFrameEcho(handler: Record<string, unknown> = {}, listener: Record<string, unknown> = { protocol: 'tcp', address: '127.0.0.1:0' }): Promise<Started> {
  const logs: { level: number; msg: string }[] = [];
  const sink = new Writable({
    write(chunk: Buffer, _enc, cb) {
      for (const line of chunk.toString().split('\n').filter(Boolean)) logs.push(JSON.parse(line));
      cb();
    },
  });
  const yard = await serve({ listeners: [{ name: 'frames', ...listener, handler: { type: 'frame-echo', ...handler } }] } as never, { logger: pino({ level: 'debug' }, sink) });
  const a = yard.boundAddress('frames');
  return { yard, port: 'port' in a ? a.port : 0, logs };
}

/** Everything a socket receives until it closes. */
function collect(socket: Socket): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    socket.on('data', (d: Buffer) => chunks.push(d));
    socket.on('error', () => {});
    socket.on('close', () => resolve(Buffer.concat(chunks)));
  });
}

function decodeAll(wire: Buffer, maxFrameSize = 0xffffffff): Uint8Array[] {
  return new FrameDecoder({ maxFrameSize, allowEmpty: true }).push(wire);
}

function opened(options: { port: number } | { path: string }): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', ...options } as never);
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

async function waitFor(what: string, cond: () => boolean, timeoutMs = 5000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

function errorFrame(len: number, max: number): Buffer {
  return encodeFrame(Buffer.from(JSON.stringify({ type: 'error', code: 'FRAME_TOO_LARGE', message: `frame of ${len} bytes is over the limit of ${max}` })));
}

// ---- the decoder --------------------------------------------------------------------------

test('decoder: frames split at every byte offset come out whole', () => {
  const rnd = prng(1);
  const payloads = [bytes(100, rnd), Buffer.alloc(0), bytes(1, rnd), bytes(300, rnd)];
  const wire = Buffer.concat(payloads.map(encodeFrame));
  for (let cut = 0; cut <= wire.length; cut++) {
    const d = new FrameDecoder({ maxFrameSize: 1024, allowEmpty: true });
    const got = [...d.push(wire.subarray(0, cut)), ...d.push(wire.subarray(cut))];
    assert.deepEqual(got.map((f) => Buffer.from(f)), payloads, `cut at ${cut}`);
    assert.equal(d.partial, false);
  }
  // Two cuts, every pair inside the first frame's header and body.
  for (let a = 0; a < 110; a++) {
    for (let b = a; b < 110; b += 7) {
      const d = new FrameDecoder({ maxFrameSize: 1024, allowEmpty: true });
      const got = [...d.push(wire.subarray(0, a)), ...d.push(wire.subarray(a, b)), ...d.push(wire.subarray(b))];
      assert.deepEqual(got.map((f) => Buffer.from(f)), payloads, `cuts at ${a}, ${b}`);
    }
  }
  // One byte at a time, across a frame large enough that its buffer grows as it arrives.
  const big = bytes(300_000, rnd);
  const d = new FrameDecoder({ maxFrameSize: 1 << 20 });
  const frame = encodeFrame(big);
  const out: Uint8Array[] = [];
  for (let i = 0; i < frame.length; i += 1 + (i % 13)) out.push(...d.push(frame.subarray(i, i + 1 + (i % 13))));
  assert.equal(out.length, 1);
  assert.equal(sha(out[0]), sha(big));
});

test('decoder: many frames in one chunk, and a partial one at its end', () => {
  const rnd = prng(2);
  const payloads = Array.from({ length: 1000 }, (_, i) => bytes(i % 50, rnd));
  const wire = Buffer.concat([...payloads.map(encodeFrame), frameHeader(10), Buffer.from('abc')]);
  const d = new FrameDecoder({ maxFrameSize: 64, allowEmpty: true });
  const got = d.push(wire);
  assert.equal(got.length, 1000);
  assert.deepEqual(got.map((f) => Buffer.from(f)), payloads);
  assert.equal(d.partial, true);
  assert.deepEqual(d.push(Buffer.from('defghij')).map((f) => Buffer.from(f).toString()), ['abcdefghij']);
  assert.equal(d.partial, false);
});

test('decoder: zero-length frames when allowed, FRAME_EMPTY when refused', () => {
  const allowed = new FrameDecoder({ maxFrameSize: 10, allowEmpty: true });
  assert.deepEqual(allowed.push(Buffer.concat([frameHeader(0), frameHeader(0)])).map((f) => f.byteLength), [0, 0]);
  const refused = new FrameDecoder({ maxFrameSize: 10 });
  assert.throws(() => refused.push(frameHeader(0)), (e: FrameError) => e instanceof FrameError && e.code === 'SWITCHYARD_FRAME_EMPTY');
  // Split header, same answer.
  const split = new FrameDecoder({ maxFrameSize: 10 });
  split.push(Buffer.from([0, 0]));
  assert.throws(() => split.push(Buffer.from([0, 0])), (e: FrameError) => e.code === 'SWITCHYARD_FRAME_EMPTY');
});

test('decoder: an oversize length is refused on its four header bytes, before anything is allocated', () => {
  // Byte by byte: the first three bytes are accepted, the fourth completes the header and throws.
  const d = new FrameDecoder({ maxFrameSize: 1024 * 1024 });
  const header = frameHeader(0xffffffff);
  for (let i = 0; i < 3; i++) assert.deepEqual(d.push(header.subarray(i, i + 1)), []);
  assert.throws(
    () => d.push(header.subarray(3)),
    (e: FrameError) => e.code === 'SWITCHYARD_FRAME_TOO_LARGE' && e.message === 'frame of 4294967295 bytes is over the limit of 1048576',
  );
  assert.equal(d.buffered, 0);
  // One over the limit is refused, exactly the limit is not.
  assert.throws(() => new FrameDecoder({ maxFrameSize: 1000 }).push(frameHeader(1001)), FrameError);
  const at = new FrameDecoder({ maxFrameSize: 1000 }).push(Buffer.concat([frameHeader(1000), Buffer.alloc(1000, 7)]));
  assert.equal(at[0].byteLength, 1000);
  // Good frames before the bad header in the same chunk are handed over with the error.
  try {
    new FrameDecoder({ maxFrameSize: 10 }).push(Buffer.concat([encodeFrame(Buffer.from('a')), encodeFrame(Buffer.from('bb')), frameHeader(11)]));
    assert.fail('no error');
  } catch (e) {
    assert.ok(e instanceof FrameError);
    assert.deepEqual(e.frames.map((f) => Buffer.from(f).toString()), ['a', 'bb']);
  }
});

test('decoder: memory follows the bytes that arrived, not the lengths announced', () => {
  const arrayBuffers = () => process.memoryUsage().arrayBuffers;
  const before = arrayBuffers();
  // 64 peers each announce a 512 MiB frame (under a 1 GiB limit) and send 10 bytes of it: an
  // eager decoder would hold 32 GiB here.
  const decoders = Array.from({ length: 64 }, () => new FrameDecoder({ maxFrameSize: 1024 ** 3 }));
  for (const d of decoders) d.push(Buffer.concat([frameHeader(512 * 1024 * 1024), Buffer.alloc(10)]));
  const grown = arrayBuffers() - before;
  assert.ok(grown < 16 * 1024 * 1024, `64 announced 512 MiB frames took ${grown} bytes`);
  for (const d of decoders) assert.ok(d.partial && d.buffered <= 64 * 1024, String(d.buffered));
  // As payload arrives the buffer grows with it, and never beyond the announced length.
  const d = decoders[0];
  d.push(Buffer.alloc(3 * 1024 * 1024));
  assert.ok(d.buffered >= 3 * 1024 * 1024 && d.buffered <= 8 * 1024 * 1024, String(d.buffered));
  const small = new FrameDecoder({ maxFrameSize: 1 << 20 });
  small.push(Buffer.concat([frameHeader(100_000), Buffer.alloc(99_999)]));
  assert.ok(small.buffered <= 100_000);
  assert.equal(small.push(Buffer.alloc(1))[0].byteLength, 100_000);
});

test('writeFrame: a large payload goes out uncopied, header and payload in one writev', () => {
  const writes: Buffer[][] = [];
  const sink = new Writable({
    writev(chunks, cb) {
      writes.push(chunks.map((c) => c.chunk as Buffer));
      cb();
    },
    write(chunk: Buffer, _enc, cb) {
      writes.push([chunk]);
      cb();
    },
  });
  const big = Buffer.alloc(1024 * 1024, 1);
  writeFrame(sink, big);
  assert.equal(writes.length, 1);
  assert.equal(writes[0].length, 2);
  assert.deepEqual(writes[0][0], frameHeader(big.length));
  assert.equal(writes[0][1].buffer, big.buffer, 'the payload was copied');
  writeFrame(sink, Buffer.from('small'));
  assert.deepEqual(writes[1], [encodeFrame(Buffer.from('small'))]);
});

// ---- readFrames over real streams ---------------------------------------------------------

/** A server that echoes frames with readFrames/writeFrame, waiting for 'drain' when it must. */
function frameEchoOn(socket: Socket, maxFrameSize: number): void {
  socket.on('error', () => {});
  readFrames(
    socket,
    { maxFrameSize, allowEmpty: true, onEnd: () => socket.end() },
    (frame) => (writeFrame(socket, frame) ? undefined : new Promise<void>((r) => socket.once('drain', r))),
    () => socket.destroy(),
  );
}

/** Sends frames and reads the same number back with readFrames. */
function roundTrip(socket: Socket, payloads: Buffer[], maxFrameSize: number): Promise<Uint8Array[]> {
  return new Promise((resolve, reject) => {
    const got: Uint8Array[] = [];
    readFrames(
      socket,
      { maxFrameSize, allowEmpty: true },
      (f) => {
        got.push(Buffer.from(f));
        if (got.length === payloads.length) resolve(got);
      },
      reject,
    );
    for (const p of payloads) writeFrame(socket, p);
  });
}

test('readFrames/writeFrame over TLS and unix sockets: small, empty and 4 MiB frames', async () => {
  const key = join(dir, 'key.pem');
  const cert = join(dir, 'cert.pem');
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1']);
  const rnd = prng(3);
  const payloads = [bytes(10, rnd), Buffer.alloc(0), bytes(4 * 1024 * 1024, rnd), bytes(20_000, rnd), bytes(1, rnd)];
  const max = 8 * 1024 * 1024;

  const tlsServer = createTlsServer({ key: await readFile(key), cert: await readFile(cert) }, (s) => frameEchoOn(s as unknown as Socket, max));
  await new Promise<void>((r) => tlsServer.listen(0, '127.0.0.1', r));
  const port = (tlsServer.address() as { port: number }).port;
  const client = tlsConnect({ port, host: '127.0.0.1', ca: await readFile(cert) });
  await new Promise<void>((r, j) => client.once('secureConnect', r).once('error', j));
  const got = await roundTrip(client as unknown as Socket, payloads, max);
  assert.deepEqual(got.map(sha), payloads.map(sha));
  client.destroy();
  tlsServer.close();

  const path = join(dir, 'codec.sock');
  const unixServer = createServer((s) => frameEchoOn(s, max));
  await new Promise<void>((r) => unixServer.listen(path, r));
  const u = await opened({ path });
  assert.deepEqual((await roundTrip(u, payloads, max)).map(sha), payloads.map(sha));
  u.destroy();
  unixServer.close();
});

test('readFrames: one frame at a time to an async consumer, clean end, truncated end', async () => {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const accepted = new Promise<Socket>((r) => server.once('connection', r));
  const client = await opened({ port });
  const peer = await accepted;
  const seen: string[] = [];
  let inside = 0;
  let most = 0;
  const ended = new Promise<void>((resolve, reject) =>
    readFrames(
      peer,
      { maxFrameSize: 100, onEnd: resolve },
      async (f) => {
        inside++;
        most = Math.max(most, inside);
        await new Promise((r) => setTimeout(r, 1));
        seen.push(Buffer.from(f).toString());
        inside--;
      },
      reject,
    ),
  );
  const words = Array.from({ length: 200 }, (_, i) => `w${i}`);
  client.end(Buffer.concat(words.map((w) => encodeFrame(Buffer.from(w)))));
  await ended;
  assert.deepEqual(seen, words);
  assert.equal(most, 1, 'onFrame ran concurrently');

  const second = new Promise<Socket>((r) => server.once('connection', r));
  const c2 = await opened({ port });
  const p2 = await second;
  const failed = new Promise<Error>((resolve) => readFrames(p2, { maxFrameSize: 100 }, () => {}, resolve));
  c2.end(Buffer.concat([encodeFrame(Buffer.from('ok')), frameHeader(50), Buffer.from('short')]));
  const err = (await failed) as FrameError;
  assert.equal(err.code, 'SWITCHYARD_FRAME_TRUNCATED');
  p2.destroy();
  server.close();
});

// ---- the frame-echo handler ---------------------------------------------------------------

test('frame-echo: frames come back whole; a half-close gets the rest of the echoes, then the server closes', async () => {
  const s = await startFrameEcho();
  try {
    const client = await opened({ port: s.port });
    const done = collect(client);
    const rnd = prng(4);
    const payloads = [Buffer.from('hello'), Buffer.alloc(0), bytes(1024 * 1024, rnd), bytes(70_000, rnd)];
    for (const p of payloads) writeFrame(client, p);
    client.end();
    const got = decodeAll(await done);
    assert.deepEqual(got.map(sha), payloads.map(sha));
  } finally {
    await s.yard.stop();
  }
});

test('frame-echo: an oversize length gets one FRAME_TOO_LARGE error frame after the good echoes, then close', async () => {
  const s = await startFrameEcho({ maxFrameSize: '1KiB' });
  try {
    const client = await opened({ port: s.port });
    const done = collect(client);
    // The good frame and the bad header in one write: the echo must not be lost to the error.
    client.write(Buffer.concat([encodeFrame(Buffer.from('before')), frameHeader(1025), Buffer.alloc(100)]));
    const wire = await done;
    assert.deepEqual(wire, Buffer.concat([encodeFrame(Buffer.from('before')), errorFrame(1025, 1024)]));
    const error = JSON.parse(Buffer.from(decodeAll(wire)[1]).toString());
    assert.deepEqual(error, { type: 'error', code: 'FRAME_TOO_LARGE', message: 'frame of 1025 bytes is over the limit of 1024' });
    // Exactly the limit is fine.
    const c2 = await opened({ port: s.port });
    const d2 = collect(c2);
    c2.end(encodeFrame(Buffer.alloc(1024, 9)));
    assert.equal(decodeAll(await d2)[0].byteLength, 1024);
  } finally {
    await s.yard.stop();
  }
});

test('frame-echo: EOF in the middle of a frame is logged at debug and the connection closed', async () => {
  const s = await startFrameEcho();
  try {
    const client = await opened({ port: s.port });
    const done = collect(client);
    client.end(Buffer.concat([encodeFrame(Buffer.from('whole')), frameHeader(100), Buffer.from('only part')]));
    assert.deepEqual(decodeAll(await done).map((f) => Buffer.from(f).toString()), ['whole']);
    const line = s.logs.find((l) => /middle of a frame/.test(l.msg));
    assert.ok(line, JSON.stringify(s.logs));
    assert.equal(line.level, 20);
  } finally {
    await s.yard.stop();
  }
});

test('frame-echo: a client that does not read is not read from, and gets every echo once it reads', async () => {
  const s = await startFrameEcho();
  try {
    const client = await opened({ port: s.port });
    const frame = bytes(1024 * 1024, prng(5));
    const count = 96;
    // The same buffer 96 times: writeFrame does not copy it, so the client holds 1 MiB, not 96.
    for (let i = 0; i < count; i++) writeFrame(client, frame);
    client.pause();
    // Wait until the client's queue stops moving; a server that kept reading would empty it.
    let last = -1;
    let still = 0;
    await waitFor('the client queue to settle', () => {
      still = client.writableLength === last ? still + 1 : 0;
      last = client.writableLength;
      return still >= 50 || client.writableLength === 0;
    }, 20_000);
    assert.ok(client.writableLength > 32 * 1024 * 1024, `the server read on: only ${client.writableLength} bytes still queued at the client`);
    // Now read: every echo arrives intact.
    const got: string[] = [];
    const all = new Promise<void>((resolve, reject) =>
      readFrames(client, { maxFrameSize: 2 * 1024 * 1024 }, (f) => {
        got.push(sha(f));
        if (got.length === count) resolve();
      }, reject),
    );
    client.resume();
    await all;
    assert.ok(got.every((h) => h === sha(frame)));
    client.destroy();
  } finally {
    await s.yard.stop();
  }
});

test('frame-echo: a stop closes idle connections at a frame boundary instead of waiting out the grace', async () => {
  const s = await startFrameEcho();
  const client = await opened({ port: s.port });
  const done = collect(client);
  const echoed = new Promise<void>((r) => client.once('data', () => r()));
  client.write(encodeFrame(Buffer.from('ping')));
  await echoed;
  const result = await s.yard.stop(10_000);
  assert.equal(result.cutOff, 0);
  assert.deepEqual(decodeAll(await done).map((f) => Buffer.from(f).toString()), ['ping']);
});

test('frame-echo over a unix listener, with its error frame', async () => {
  const path = join(dir, 'frames.sock');
  const s = await startFrameEcho({ maxFrameSize: 100 }, { protocol: 'unix', path });
  try {
    const client = await opened({ path });
    const done = collect(client);
    client.write(Buffer.concat([encodeFrame(Buffer.from('over unix')), encodeFrame(Buffer.alloc(100, 1))]));
    client.end(frameHeader(101));
    assert.deepEqual(await done, Buffer.concat([encodeFrame(Buffer.from('over unix')), encodeFrame(Buffer.alloc(100, 1)), errorFrame(101, 100)]));
  } finally {
    await s.yard.stop();
  }
});

test('frame-echo config: maxFrameSize takes sizes; bad values name the field', () => {
  const ok = parseConfig({ listeners: [{ name: 'f', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'frame-echo', maxFrameSize: '64KiB' } }] });
  assert.equal((ok.listeners[0] as unknown as { handler: { maxFrameSize: number } }).handler.maxFrameSize, 64 * 1024);
  for (const bad of ['lots', 2 ** 33, -1]) {
    assert.throws(
      () => parseConfig({ listeners: [{ name: 'f', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'frame-echo', maxFrameSize: bad } }] }),
      (e: ConfigError) => e instanceof ConfigError && e.issues.some((i) => /maxFrameSize/.test(i.path)),
    );
  }
});

// ---- fuzz ---------------------------------------------------------------------------------

test('fuzz: random frames in random TCP splits, beside garbage connections; the listener keeps serving', async (t) => {
  const seed = Number(process.env.FRAME_FUZZ_SEED ?? 0x5eed_f4a3);
  t.diagnostic(`seed ${seed} (rerun with FRAME_FUZZ_SEED=${seed})`);
  const rnd = prng(seed);
  const pick = (n: number) => Math.floor(rnd() * n);
  const MAX = 256 * 1024;
  const ITERATIONS = 300;
  const GARBAGE = 300;

  setFlagsFromString('--expose-gc');
  const gc = runInNewContext('gc') as () => void;
  const footprint = () => {
    gc();
    const m = process.memoryUsage();
    return { heap: m.heapUsed + m.arrayBuffers, rss: m.rss };
  };
  const s = await startFrameEcho({ maxFrameSize: MAX });
  const start = footprint();
  try {
    const size = () => {
      const r = rnd();
      if (r < 0.4) return pick(64);
      if (r < 0.55) return pick(4096);
      if (r < 0.7) return 4096 + pick(100_000);
      if (r < 0.97) return pick(MAX + 1);
      return rnd() < 0.5 ? MAX : 0;
    };

    // The good client: one connection, each iteration a batch of frames cut into random writes.
    const goodClient = async () => {
      const client = await opened({ port: s.port });
      client.setNoDelay(true);
      const decoder = new FrameDecoder({ maxFrameSize: MAX, allowEmpty: true });
      let received: Uint8Array[] = [];
      let wake: (() => void) | undefined;
      client.on('data', (d: Buffer) => {
        for (const f of decoder.push(d)) received.push(Buffer.from(f));
        wake?.();
      });
      const closed = new Promise<void>((r) => client.once('close', () => r()));
      let bytesSent = 0;
      for (let it = 0; it < ITERATIONS; it++) {
        const payloads = Array.from({ length: 1 + pick(8) }, () => bytes(size(), rnd));
        const wire = Buffer.concat(payloads.map(encodeFrame));
        bytesSent += wire.length;
        const mode = pick(3);
        let off = 0;
        while (off < wire.length) {
          const n = mode === 0 ? wire.length : mode === 1 ? 1 + pick(Math.min(wire.length - off, 16)) : 1 + pick(wire.length - off);
          const ok = client.write(wire.subarray(off, off + n));
          off += n;
          if (!ok) await new Promise((r) => client.once('drain', r));
          else if (rnd() < 0.3) await new Promise((r) => setImmediate(r));
        }
        while (received.length < payloads.length) {
          await new Promise<void>((resolve, reject) => {
            const timer = setTimeout(() => reject(new Error(`seed ${seed}: iteration ${it}: ${received.length}/${payloads.length} echoes after 10 s`)), 10_000);
            wake = () => {
              clearTimeout(timer);
              resolve();
            };
          });
        }
        assert.equal(received.length, payloads.length, `seed ${seed}: iteration ${it}: extra frames`);
        for (let i = 0; i < payloads.length; i++) assert.ok(Buffer.from(received[i]).equals(payloads[i]), `seed ${seed}: iteration ${it}: frame ${i} (${payloads[i].length} bytes) differs`);
        received = [];
      }
      client.end();
      await closed;
      return bytesSent;
    };

    // Garbage: what a server must answer is what a correct decoder makes of the same bytes.
    const expectedReply = (garbage: Buffer): Buffer => {
      try {
        return Buffer.concat(decodeAll(garbage, MAX).map(encodeFrame));
      } catch (e) {
        const fe = e as FrameError;
        return Buffer.concat([...fe.frames.map(encodeFrame), errorFrame(Number(/of (\d+) bytes/.exec(fe.message)![1]), MAX)]);
      }
    };
    const garbageOne = async (n: number) => {
      const kind = pick(6);
      let garbage: Buffer;
      switch (kind) {
        case 0: garbage = bytes(1 + pick(2000), rnd); break;
        case 1: garbage = Buffer.concat([frameHeader(MAX + 1 + pick(0xffffffff - MAX)), bytes(pick(5000), rnd)]); break;
        case 2: garbage = Buffer.concat([encodeFrame(bytes(pick(100), rnd)), encodeFrame(bytes(pick(100), rnd)), frameHeader(0xffffffff)]); break;
        case 3: { const len = 1 + pick(MAX); garbage = Buffer.concat([frameHeader(len), bytes(pick(len), rnd)]); break; }
        case 4: garbage = bytes(1 + pick(5000), rnd); break;
        default: garbage = frameHeader(1 + pick(MAX)); break;
      }
      const socket = await opened({ port: s.port });
      const reply = collect(socket);
      if (kind === 4) {
        // Gone without a goodbye (a reset): the server only has to survive it.
        socket.write(garbage, () => socket.resetAndDestroy());
        await reply;
        return;
      }
      const cut = pick(garbage.length);
      socket.write(garbage.subarray(0, cut));
      socket.end(garbage.subarray(cut));
      const got = await reply;
      const want = expectedReply(garbage);
      assert.ok(got.equals(want), `seed ${seed}: garbage connection ${n} (kind ${kind}, ${garbage.length} bytes: ${garbage.subarray(0, 8).toString('hex')}…): got ${got.length} bytes, expected ${want.length}`);
    };
    const garbageRun = async () => {
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < GARBAGE) await garbageOne(next++);
      }));
    };

    const [bytesSent] = await Promise.all([goodClient(), garbageRun()]);
    t.diagnostic(`good client sent ${(bytesSent / 1024 / 1024).toFixed(1)} MiB in ${ITERATIONS} batches`);

    // Still serving, nothing left open, nothing logged above debug.
    const after = await opened({ port: s.port });
    const last = collect(after);
    after.end(encodeFrame(Buffer.from('still here')));
    assert.deepEqual(decodeAll(await last).map((f) => Buffer.from(f).toString()), ['still here']);
    await waitFor('every fuzz connection to close', () => s.yard.inFlight() === 0);
    const loud = s.logs.filter((l) => l.level > 30);
    assert.deepEqual(loud, [], `seed ${seed}: the listener logged problems`);
    const end = footprint();
    t.diagnostic(`heap + buffers grew by ${((end.heap - start.heap) / 1048576).toFixed(1)} MiB, RSS by ${((end.rss - start.rss) / 1048576).toFixed(1)} MiB`);
    assert.ok(end.heap - start.heap < 32 * 1024 * 1024, `seed ${seed}: heap + buffers grew by ${((end.heap - start.heap) / 1048576).toFixed(1)} MiB`);
    assert.ok(end.rss - start.rss < 400 * 1024 * 1024, `seed ${seed}: RSS grew by ${((end.rss - start.rss) / 1048576).toFixed(1)} MiB`);
  } finally {
    await s.yard.stop();
  }
});

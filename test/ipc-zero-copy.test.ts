import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { once } from 'node:events';
import { existsSync } from 'node:fs';
import { Worker } from 'node:worker_threads';
import { IpcError } from '../src/ipc/errors.ts';
import { createShmThreadChannel, openShmThreadChannel } from '../src/ipc/transports/shm-thread.ts';
import { createShmChannel } from '../src/ipc/transports/shm.ts';
import type { RingChannel } from '../src/ipc/transports/ring-channel.ts';

// The synchronous zero-copy calls of the shared-memory channels: views into the ring on receive
// (receiveViewSync / tryReceiveView / receiveWith, released after use) and slots written in place
// on send (reserve / commit). No timing is asserted; every wait is bounded.

const isCode = (code: string) => (err: unknown) => err instanceof IpcError && err.code === code;
const uniq = (what: string) => `test-zc-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;
const WAIT_MS = 30_000;

/** Resolves with the exit code, or 'timeout' after `ms` (the timer does not outlive it). */
async function exitWithin(exited: Promise<unknown[]>, ms: number): Promise<number | string> {
  let timer: NodeJS.Timeout | undefined;
  const r = await Promise.race([exited.then((a) => a[0] as number), new Promise<string>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms)))]);
  clearTimeout(timer);
  return r;
}

/** Seeded generator, so a failure replays. */
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Both ends of one small shm-thread channel, in this thread. */
function pair(capacity: number, maxMessageSize: number): { a: RingChannel; b: RingChannel } {
  const { channel, peer } = createShmThreadChannel({ capacity, maxMessageSize });
  return { a: channel, b: openShmThreadChannel(peer) };
}

const byteAt = (seq: number, i: number) => (seq * 7 + i) & 0xff;

test('views: contents right across the ring end, in order; wrapped payloads counted from the ring positions', async () => {
  const cap = 1024;
  const { a, b } = pair(cap, 300);
  const rnd = mulberry32(7);
  let tail = 0; // where the next record starts, as the ring counts it
  let wrapped = 0;
  let inFlight: number[] = [];
  let got = 0;
  for (let seq = 0; seq < 5000; seq++) {
    const len = 4 + Math.floor(rnd() * 296);
    if ((tail & (cap - 1)) + 4 + len > cap) wrapped++;
    tail += (4 + len + 3) & ~3;
    if (seq % 3 === 0) {
      const m = new Uint8Array(len);
      new DataView(m.buffer).setUint32(0, seq, true);
      for (let i = 4; i < len; i++) m[i] = byteAt(seq, i);
      a.sendSync(m, WAIT_MS);
    } else {
      const s = a.reserve(len, WAIT_MS);
      s.setUint32(0, seq);
      const bytes = s.bytes();
      for (let i = 4; i < len; i++) bytes[i] = byteAt(seq, i);
      s.commit();
    }
    inFlight.push(len);
    // Read in bursts, so the reader trails the writer by a varying distance.
    if (rnd() < 0.3 || inFlight.length > 2) {
      for (const want of inFlight) {
        const v = b.receiveViewSync(WAIT_MS)!;
        assert.equal(v.length, want);
        const s = v.getUint32(0);
        assert.equal(s, got);
        const bytes = v.bytes();
        for (let i = 4; i < want; i++) if (bytes[i] !== byteAt(s, i)) assert.fail(`message ${s} byte ${i}`);
        v.release();
        got++;
      }
      inFlight = [];
    }
  }
  for (const want of inFlight) {
    const r = b.receiveWith((v) => [v.length, v.getUint32(0)], WAIT_MS);
    assert.deepEqual(r, [want, got++]);
  }
  assert.equal(got, 5000);
  assert.ok(wrapped > 100, `payloads that ran over the ring's end: ${wrapped}`);
  assert.equal(b.tryReceiveView(), undefined);
  await a.close();
  await b.close();
});

test('release: the space comes back only on release; a released view throws; copy() outlives it', async () => {
  const p = pair(256, 64);
  const fill = () => {
    let k = 0;
    for (;;) {
      const s = p.a.tryReserve(60);
      if (!s) return k;
      s.setUint8(0, k);
      s.setUint8(59, 0xee);
      s.commit();
      k++;
      assert.ok(k < 100, 'a 256-byte ring cannot hold 100 messages of 60 bytes');
    }
  };
  const filled = fill();
  assert.ok(filled >= 3, `filled ${filled}`);
  assert.equal(p.a.tryReserve(60), undefined, 'full');
  const v = p.b.tryReceiveView()!;
  assert.equal(v.getUint8(0), 0);
  const kept = v.copy();
  assert.equal(p.a.tryReserve(60), undefined, 'still full while the view is held');
  v.release();
  assert.equal(v.released, true);
  assert.throws(() => v.getUint8(0), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.throws(() => v.bytes(), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.throws(() => v.copy(), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.throws(() => v.release(), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.equal(kept[0], 0);
  assert.equal(kept[59], 0xee);
  const s = p.a.tryReserve(60);
  assert.ok(s, 'released space is writable again');
  s.cancel();
  assert.throws(() => s.setUint8(0, 1), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.throws(() => s.commit(), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  // A cancelled slot sends nothing: the reader sees the filled messages, then nothing.
  for (let k = 1; k < filled; k++) assert.equal(p.b.receiveWith((w) => w.getUint8(0), WAIT_MS), k);
  assert.equal(p.b.tryReceiveView(), undefined);
  await p.a.close();
  await p.b.close();
});

test('misuse fails loudly: a second view while one is held, async calls across held views, bounds, double commit, close', async () => {
  const { a, b } = pair(4096, 128);
  a.sendSync(new Uint8Array([1, 2, 3]));
  a.sendSync(new Uint8Array([4, 5, 6]));
  const v = b.receiveViewSync(WAIT_MS)!;
  assert.throws(() => b.receiveViewSync(WAIT_MS), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  assert.throws(() => b.tryReceiveView(), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  assert.throws(() => b.tryReceive(), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  await assert.rejects(b.receive(), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  assert.throws(() => v.getUint8(3), RangeError);
  assert.throws(() => v.getUint32(0), RangeError, 'a 4-byte read of a 3-byte message');
  assert.throws(() => v.getUint8(-1), RangeError);
  assert.deepEqual([...v.bytes()], [1, 2, 3]);
  v.release();
  // The async API still works after the view is given back, and sees the next message.
  assert.deepEqual([...(await b.receive())!], [4, 5, 6]);

  const s = a.reserve(8, WAIT_MS);
  assert.throws(() => a.reserve(8, WAIT_MS), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  assert.throws(() => a.sendSync(new Uint8Array(1)), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  assert.throws(() => a.trySend(new Uint8Array(1)), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  await assert.rejects(a.send(new Uint8Array(1)), isCode('SWITCHYARD_IPC_VIEW_HELD'));
  assert.throws(() => s.setFloat64(1, 1.5), RangeError);
  assert.throws(() => s.commit(9), RangeError);
  assert.throws(() => s.commit(0), RangeError);
  s.setFloat64(0, 1.5);
  s.commit(8);
  assert.throws(() => s.commit(), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.equal(b.receiveWith((w) => w.getFloat64(0), WAIT_MS), 1.5);

  assert.throws(() => a.reserve(0), isCode('SWITCHYARD_IPC_EMPTY_MESSAGE'));
  assert.throws(() => a.reserve(129), isCode('SWITCHYARD_IPC_MESSAGE_TOO_LARGE'));
  assert.throws(() => b.receiveViewSync(20), isCode('SWITCHYARD_IPC_TIMEOUT'), 'nothing sent: the wait ends with a timeout');

  // A view still held when its channel closes is dead: its memory may be unmapped.
  a.sendSync(new Uint8Array([9]));
  const held = b.receiveViewSync(WAIT_MS)!;
  await b.close();
  assert.throws(() => held.getUint8(0), isCode('SWITCHYARD_IPC_VIEW_RELEASED'));
  assert.throws(() => b.receiveViewSync(1), isCode('SWITCHYARD_IPC_CLOSED'));
  // The writer's next view-less call sees the closed peer.
  assert.throws(() => {
    for (let i = 0; i < 10_000; i++) a.sendSync(new Uint8Array(100), 1000);
  }, isCode('SWITCHYARD_IPC_PEER_GONE'));
  await a.close();
});

test('receiveViewSync: the clean end after the peer closes, once everything it sent was read', async () => {
  const { a, b } = pair(4096, 64);
  a.sendSync(new Uint8Array([1]));
  a.sendSync(new Uint8Array([2]));
  await a.close();
  assert.equal(b.receiveWith((v) => v.getUint8(0), WAIT_MS), 1);
  assert.equal(b.receiveWith((v) => v.getUint8(0), WAIT_MS), 2);
  assert.equal(b.receiveViewSync(WAIT_MS), undefined);
  await b.close();
});

// ---- across threads and processes: ordered, complete, with backpressure ----
// The far side reads every message in place, checks its sequence number and bytes, pauses now
// and then (so the ring fills and the writer must wait), and answers one summary message.

const CONSUMER = `
function consume(ch, pauseEvery) {
  const pause = new Int32Array(new SharedArrayBuffer(4));
  let count = 0, bytes = 0, bad = 0, outOfOrder = 0;
  for (;;) {
    const v = ch.receiveViewSync(${WAIT_MS});
    if (v === undefined) throw new Error('writer closed before the end marker');
    const seq = v.getUint32(0);
    if (seq === 0xffffffff) { v.release(); break; }
    if (seq !== count) outOfOrder++;
    const b = v.bytes();
    for (let i = 4; i < v.length; i++) if (b[i] !== ((seq * 7 + i) & 0xff)) bad++;
    count++;
    bytes += v.length;
    v.release();
    if (count % pauseEvery === 0) Atomics.wait(pause, 0, 0, 2);
  }
  const s = ch.reserve(24, ${WAIT_MS});
  s.setUint32(0, count); s.setUint32(4, bad); s.setUint32(8, outOfOrder); s.setFloat64(16, bytes);
  s.commit();
  for (;;) { const v = ch.receiveViewSync(${WAIT_MS}); if (v === undefined) break; v.release(); }
}
`;

interface Summary {
  count: number;
  bad: number;
  outOfOrder: number;
  bytes: number;
  waits: number;
}

/** Writes `n` messages (4 to 300 bytes), half with reserve/commit, half with sendSync; counts how often the ring was full. */
function produce(ch: RingChannel, n: number): { bytes: number; waits: number } {
  const rnd = mulberry32(11);
  let bytes = 0;
  let waits = 0;
  const scratch = new Uint8Array(300);
  const dv = new DataView(scratch.buffer);
  for (let seq = 0; seq < n; seq++) {
    const len = 4 + Math.floor(rnd() * 297);
    bytes += len;
    if (seq & 1) {
      let s = ch.tryReserve(len);
      if (!s) {
        waits++;
        s = ch.reserve(len, WAIT_MS);
      }
      s.setUint32(0, seq);
      const b = s.bytes();
      for (let i = 4; i < len; i++) b[i] = byteAt(seq, i);
      s.commit();
    } else {
      dv.setUint32(0, seq, true);
      for (let i = 4; i < len; i++) scratch[i] = byteAt(seq, i);
      const m = scratch.subarray(0, len);
      if (!ch.trySend(m)) {
        waits++;
        ch.sendSync(m, WAIT_MS);
      }
    }
  }
  const end = ch.reserve(4, WAIT_MS);
  end.setUint32(0, 0xffffffff);
  end.commit();
  return { bytes, waits };
}

function summary(ch: RingChannel, produced: { bytes: number; waits: number }): Summary {
  return ch.receiveWith((v) => ({ count: v.getUint32(0), bad: v.getUint32(4), outOfOrder: v.getUint32(8), bytes: v.getFloat64(16), waits: produced.waits }), WAIT_MS)!;
}

const N = 100_000;

test(`between processes: ${N} messages in order through a 4 KiB ring, the writer held back while the reader pauses`, { timeout: 120_000 }, async () => {
  const name = uniq('proc');
  const ch = createShmChannel(name, { capacity: 4096, maxMessageSize: 512 });
  const shmUrl = new URL('../src/ipc/transports/shm.ts', import.meta.url).href;
  const code = `import { openShmChannel } from ${JSON.stringify(shmUrl)};\n${CONSUMER}\nconst ch = openShmChannel(${JSON.stringify(name)});\nconsume(ch, 5000);\nawait ch.close();\n`;
  const child = spawn(process.execPath, ['--import', 'tsx', '--input-type=module', '-e', code], { stdio: ['ignore', 'inherit', 'inherit'] });
  const exited = once(child, 'exit');
  try {
    const produced = produce(ch, N);
    const s = summary(ch, produced);
    assert.equal(s.count, N, 'every message arrived');
    assert.equal(s.outOfOrder, 0, 'in the order written');
    assert.equal(s.bad, 0, 'every byte as written');
    assert.equal(s.bytes, produced.bytes);
    assert.ok(s.waits > 0, 'the writer found the ring full and waited (backpressure, no buffer grew)');
  } finally {
    await ch.close();
    const exitCode = await exitWithin(exited, 20_000);
    if (exitCode === 'timeout') child.kill('SIGKILL');
    assert.equal(exitCode, 0, 'the reader finished cleanly');
  }
  assert.equal(existsSync(ch.path), false, 'segment removed');
});

test(`between threads: ${N} messages in order through a 4 KiB ring, the writer held back while the reader pauses`, { timeout: 120_000 }, async () => {
  const { channel, peer } = createShmThreadChannel({ capacity: 4096, maxMessageSize: 512 });
  const tsxApi = import.meta.resolve('tsx/esm/api');
  const threadUrl = new URL('../src/ipc/transports/shm-thread.ts', import.meta.url).href;
  const code = `const { workerData } = require('node:worker_threads');\n${CONSUMER}\nimport(${JSON.stringify(tsxApi)}).then(({ register }) => { register(); return import(${JSON.stringify(threadUrl)}); }).then(async (m) => { const ch = m.openShmThreadChannel(workerData); consume(ch, 5000); await ch.close(); });`;
  const worker = new Worker(code, { eval: true, workerData: peer });
  const exited = once(worker, 'exit');
  try {
    const produced = produce(channel, N);
    const s = summary(channel, produced);
    assert.equal(s.count, N);
    assert.equal(s.outOfOrder, 0);
    assert.equal(s.bad, 0);
    assert.equal(s.bytes, produced.bytes);
    assert.ok(s.waits > 0, 'the writer found the ring full and waited');
  } finally {
    await channel.close();
    const exitCode = await exitWithin(exited, 20_000);
    if (exitCode === 'timeout') await worker.terminate();
    assert.equal(exitCode, 0);
  }
});

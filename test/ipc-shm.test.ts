import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, statSync } from 'node:fs';
import { once } from 'node:events';
import { Worker } from 'node:worker_threads';
import { Ring, ringBytes } from '../src/ipc/ring.ts';
import { IpcError } from '../src/ipc/errors.ts';
import { createShmThreadChannel } from '../src/ipc/transports/shm-thread.ts';
import { createShmChannel, type ShmChannel } from '../src/ipc/transports/shm.ts';
import { hashUpdate, messageStream, mulberry32, pattern } from './fixtures/ipc-shm-child.ts';

const CHILD = new URL('./fixtures/ipc-shm-child.ts', import.meta.url).pathname;
const WORKER = new URL('./fixtures/ipc-shm-worker.ts', import.meta.url);
// tsx's loader does not reach worker threads on Node 20 by itself: register it in the worker first.
const TSX_API = import.meta.resolve('tsx/esm/api');
const BOOT = `import(${JSON.stringify(TSX_API)}).then(({ register }) => { register(); return import(${JSON.stringify(WORKER.href)}); })`;

const isCode = (code: string) => (err: unknown) => err instanceof IpcError && err.code === code;
const uniq = (what: string) => `test-${what}-${process.pid}-${Math.random().toString(36).slice(2, 8)}`;

// ---- the ring itself, on an ordinary SharedArrayBuffer ----

test('ring: wrap-around with seeded random sizes from 1 to near capacity keeps every byte', () => {
  const cap = 4096;
  const ring = Ring.init(new SharedArrayBuffer(ringBytes(cap)), 0, cap);
  const rnd = mulberry32(42);
  const queue: Uint8Array[] = [];
  let wrote = 0;
  let read = 0;
  let splits = 0;
  for (let step = 0; step < 20_000; step++) {
    if (rnd() < 0.55) {
      const size = 1 + Math.floor(rnd() * (ring.maxMessageSize));
      const m = new Uint8Array(size);
      for (let i = 0; i < size; i++) m[i] = (wrote * 31 + i) & 0xff;
      const before = Atomics.load(ring.ctl, 16) >>> 0;
      if (ring.tryWrite(m)) {
        if (((before & (cap - 1)) + 4 + size) > cap) splits++;
        queue.push(m);
        wrote++;
      } else {
        assert.ok(ring.used() + ((4 + size + 3) & ~3) > cap, 'refused only when it does not fit');
      }
    } else {
      const got = ring.tryRead();
      const want = queue.shift();
      assert.deepEqual(got, want);
      if (got) read++;
    }
  }
  assert.ok(splits > 50, `payloads split over the end (${splits})`);
  assert.ok(read > 1000);
});

test('ring: full and empty, oversize and empty messages refused', () => {
  const cap = 64;
  const ring = Ring.init(new SharedArrayBuffer(ringBytes(cap)), 0, cap);
  assert.equal(ring.tryRead(), undefined);
  assert.ok(ring.isEmpty());
  assert.throws(() => ring.tryWrite(new Uint8Array(0)), RangeError);
  assert.throws(() => ring.tryWrite(new Uint8Array(cap - 3)), RangeError);
  assert.ok(ring.tryWrite(new Uint8Array(cap - 4).fill(7)), 'a message of capacity-4 fits an empty ring');
  assert.equal(ring.tryWrite(new Uint8Array(1)), false, 'full');
  assert.equal(ring.tryRead()!.length, cap - 4);
  for (let i = 0; i < 8; i++) assert.ok(ring.tryWrite(new Uint8Array([i])));
  assert.equal(ring.tryWrite(new Uint8Array([9])), false);
  for (let i = 0; i < 8; i++) assert.deepEqual(ring.tryRead(), new Uint8Array([i]));
  assert.ok(ring.isEmpty());
  // counters wrap modulo 2^32
  Atomics.store(ring.ctl, 0, -8);
  Atomics.store(ring.ctl, 16, -8);
  for (let i = 0; i < 5; i++) assert.ok(ring.tryWrite(new Uint8Array([i, i, i, i, i])));
  assert.equal(ring.tryWrite(new Uint8Array([5, 5, 5, 5, 5])), false);
  for (let i = 0; i < 5; i++) assert.deepEqual(ring.tryRead(), new Uint8Array([i, i, i, i, i]));
  assert.ok(ring.isEmpty());
});

// ---- between threads ----

async function withWorker(mode: 'echo' | 'sink', options: Parameters<typeof createShmThreadChannel>[0], body: (ch: ReturnType<typeof createShmThreadChannel>['channel']) => Promise<void>) {
  const { channel, peer } = createShmThreadChannel(options);
  const w = new Worker(BOOT, { eval: true, workerData: { peer, mode } });
  const result = once(w, 'message');
  await body(channel);
  await channel.close();
  const [r] = (await result) as [{ count: number; bytes: number; hash: string }];
  await w.terminate();
  return r;
}

test('shm-thread: round trip, empty/oversize refused, random sizes echoed', async () => {
  const next = messageStream(7, 60_000);
  const sent = createHash('sha256');
  const r = await withWorker('echo', { capacity: 65536, maxMessageSize: 60_000 }, async (ch) => {
    await assert.rejects(ch.send(new Uint8Array(0)), isCode('SWITCHYARD_IPC_EMPTY_MESSAGE'));
    await assert.rejects(ch.send(new Uint8Array(60_001)), isCode('SWITCHYARD_IPC_MESSAGE_TOO_LARGE'));
    await ch.send(new Uint8Array([1, 2, 3]));
    assert.deepEqual(await ch.receive(), new Uint8Array([1, 2, 3]));
    hashUpdate(sent, new Uint8Array([1, 2, 3]));
    const msgs: Uint8Array[] = [];
    for (let i = 0; i < 500; i++) msgs.push(next(i));
    const sending = (async () => {
      for (const m of msgs) {
        hashUpdate(sent, m);
        await ch.send(m);
      }
    })();
    for (const m of msgs) assert.deepEqual(await ch.receive(), m);
    await sending;
  });
  assert.equal(r.count, 501);
  assert.equal(r.hash, sent.digest('hex'));
});

test('shm-thread: 1 GiB in 64 KiB messages arrive intact', async () => {
  const p = pattern();
  const sent = createHash('sha256');
  const n = 16384;
  const r = await withWorker('sink', {}, async (ch) => {
    for (let i = 0; i < n; i++) {
      const m = p.subarray((i * 4099) % (p.length - 65536), ((i * 4099) % (p.length - 65536)) + 65536);
      hashUpdate(sent, m);
      await ch.send(m);
    }
  });
  assert.equal(r.count, n);
  assert.equal(r.bytes, n * 65536);
  assert.equal(r.hash, sent.digest('hex'));
});

// ---- between processes ----

function startChild(args: string[]): { child: ChildProcess; result: Promise<Record<string, unknown>>; lines: AsyncIterator<Record<string, unknown>> } {
  const child = spawn(process.execPath, ['--import', 'tsx', CHILD, ...args], { stdio: ['ignore', 'pipe', 'inherit'] });
  const queue: Record<string, unknown>[] = [];
  const waiters: ((v: IteratorResult<Record<string, unknown>>) => void)[] = [];
  let buf = '';
  child.stdout!.setEncoding('utf8').on('data', (d: string) => {
    buf += d;
    let i;
    while ((i = buf.indexOf('\n')) >= 0) {
      const o = JSON.parse(buf.slice(0, i)) as Record<string, unknown>;
      buf = buf.slice(i + 1);
      const w = waiters.shift();
      if (w) w({ value: o, done: false });
      else queue.push(o);
    }
  });
  const lines: AsyncIterator<Record<string, unknown>> = {
    next: () => (queue.length ? Promise.resolve({ value: queue.shift()!, done: false }) : new Promise((r) => waiters.push(r))),
  };
  const result = (async () => {
    const [code] = (await once(child, 'exit')) as [number | null];
    if (code !== 0 && code !== null) throw new Error(`child exited with ${code}`);
    return queue[queue.length - 1] ?? {};
  })();
  return { child, result, lines };
}

test('shm: random-size messages with wrap-around between two processes, hashed on both sides; 0600; unlinked', async () => {
  const name = uniq('random');
  const ch = createShmChannel(name, { capacity: 65536, maxMessageSize: 65000 });
  assert.equal(statSync(ch.path).mode & 0o777, 0o600);
  const { result } = startChild(['echo', name]);
  const next = messageStream(99, 65000);
  const sent = createHash('sha256');
  const msgs: Uint8Array[] = [];
  for (let i = 0; i < 2000; i++) msgs.push(next(i));
  const sending = (async () => {
    for (const m of msgs) {
      hashUpdate(sent, m);
      await ch.send(m);
    }
  })();
  for (const m of msgs) assert.deepEqual(await ch.receive(), m);
  await sending;
  await ch.close();
  const r = await result;
  assert.equal(r.count, 2000);
  assert.equal(r.hash, sent.digest('hex'));
  assert.equal(existsSync(ch.path), false, 'segment removed after close');
});

const BIG = Number(process.env.SWITCHYARD_SHM_TEST_BYTES ?? 1024 * 1024 * 1024);

test(`shm: ${BIG / 2 ** 20} MiB between two processes in 64 KiB messages, hash on both sides`, async () => {
  const name = uniq('bulk');
  const ch = createShmChannel(name);
  const { result } = startChild(['sink', name]);
  const p = pattern();
  const sent = createHash('sha256');
  const n = BIG / 65536;
  for (let i = 0; i < n; i++) {
    const off = (i * 4099) % (p.length - 65536);
    const m = p.subarray(off, off + 65536);
    hashUpdate(sent, m);
    await ch.send(m);
  }
  await ch.close();
  const r = await result;
  assert.equal(r.count, n);
  assert.equal(r.bytes, BIG);
  assert.equal(r.hash, sent.digest('hex'));
});

test('shm: reader of a peer SIGKILLed mid-stream gets PEER_GONE, not a hang', async () => {
  const name = uniq('kill-r');
  const ch: ShmChannel = createShmChannel(name, { capacity: 65536, maxMessageSize: 16384 });
  const { child } = startChild(['source', name, '5', '0']);
  let got = 0;
  for (; got < 200; got++) assert.ok(await ch.receive());
  child.kill('SIGKILL');
  await once(child, 'exit');
  let err: unknown;
  try {
    for (let i = 0; i < 100_000; i++) {
      if ((await ch.receive()) === undefined) break;
    }
  } catch (e) {
    err = e;
  }
  assert.ok(isCode('SWITCHYARD_IPC_PEER_GONE')(err), `PEER_GONE expected, got ${String(err)}`);
  await ch.close();
  assert.equal(existsSync(ch.path), false);
});

test('shm: writer to a peer SIGKILLed while the ring is full gets PEER_GONE', async () => {
  const name = uniq('kill-w');
  const ch = createShmChannel(name, { capacity: 65536, maxMessageSize: 1024 });
  const { child, lines } = startChild(['stall', name]);
  await lines.next();
  const m = new Uint8Array(1000).fill(1);
  let sends = 0;
  while (ch.trySend(m)) sends++;
  assert.ok(sends > 10 && sends < 100);
  const blocked = ch.send(m);
  setTimeout(() => child.kill('SIGKILL'), 50);
  await assert.rejects(blocked, isCode('SWITCHYARD_IPC_PEER_GONE'));
  await ch.close();
  assert.equal(existsSync(ch.path), false);
});

test('shm: the opener ends cleanly when the creator closes, and sends after close are refused', async () => {
  const name = uniq('close');
  const ch = createShmChannel(name, { capacity: 65536, maxMessageSize: 1024 });
  const { result, lines } = startChild(['sink', name]);
  await lines.next(); // opened: closing before that would unlink the name under it
  for (let i = 0; i < 100; i++) await ch.send(new Uint8Array([i + 1]));
  await ch.close();
  await assert.rejects(ch.send(new Uint8Array([1])), isCode('SWITCHYARD_IPC_CLOSED'));
  assert.equal(await ch.receive(), undefined);
  const r = await result;
  assert.equal(r.count, 100);
  assert.equal(existsSync(ch.path), false);
});

test('a segment its creator has named but not sized yet is "not ready", never mapped past its end (SIGBUS)', async () => {
  const { writeFileSync, rmSync } = await import('node:fs');
  const { openShmChannel } = await import('../src/ipc/transports/shm.ts');
  const { shmCreate, shmOpen, shmUnlink, ShmError } = await import('../src/sys/shm.ts');
  // What another process sees between shmCreate's shm_open and its ftruncate: the name, 0 bytes.
  const name = `unsized-${process.pid}`;
  const file = `/dev/shm/switchyard-${name}`;
  writeFileSync(file, '', { mode: 0o600 });
  try {
    assert.throws(() => openShmChannel(name), (err: unknown) => err instanceof IpcError && err.code === 'SWITCHYARD_IPC_PROTOCOL' && /not ready yet/.test(err.message));
  } finally {
    rmSync(file, { force: true });
  }
  // A segment smaller than asked for is refused, not mapped.
  const seg = shmCreate(`/switchyard-short-${process.pid}`, 4096);
  try {
    assert.throws(() => shmOpen(`/switchyard-short-${process.pid}`, 8192), (err: unknown) => err instanceof ShmError && err.code === 'ESHORT');
    const whole = shmOpen(`/switchyard-short-${process.pid}`, 4096);
    assert.equal(whole.buffer.byteLength, 4096);
    whole.unmap();
  } finally {
    seg.unmap();
    shmUnlink(`/switchyard-short-${process.pid}`);
  }
});

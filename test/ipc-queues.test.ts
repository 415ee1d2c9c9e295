import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { IpcError } from '../src/ipc/errors.ts';
import { MpmcChannel, PriorityQueue, select, openMessageQueue, unlinkMessageQueue } from '../src/ipc/queue/index.ts';
import { nextSignal, onSignals } from '../src/ipc/signals.ts';

// In-process channels, select and the priority queue, then POSIX message queues across two
// processes. No timing assertions: timeouts are only checked to fire, loops are bounded.

const isTimeout = (e: unknown): boolean => e instanceof IpcError && e.code === 'SWITCHYARD_IPC_TIMEOUT';
const isClosed = (e: unknown): boolean => e instanceof IpcError && e.code === 'SWITCHYARD_IPC_CLOSED';

test('mpmc: FIFO order', async () => {
  const ch = new MpmcChannel<number>(100);
  for (let i = 0; i < 50; i++) await ch.send(i);
  const got: number[] = [];
  for (let i = 0; i < 50; i++) got.push((await ch.receive())!);
  assert.deepEqual(got, Array.from({ length: 50 }, (_, i) => i));
});

test('mpmc: backpressure: trySend false when full, send waits until a receive frees room', async () => {
  const ch = new MpmcChannel<string>(2);
  assert.equal(ch.trySend('a'), true);
  assert.equal(ch.trySend('b'), true);
  assert.equal(ch.trySend('c'), false);
  let sent = false;
  const p = ch.send('c').then(() => (sent = true));
  await new Promise((r) => setImmediate(r));
  assert.equal(sent, false, 'send waits while full');
  assert.equal(ch.waitingSenders, 1);
  assert.deepEqual(ch.tryReceive(), { ok: true, value: 'a' });
  await p;
  assert.equal(sent, true);
  assert.deepEqual([await ch.receive(), await ch.receive()], ['b', 'c']);
  assert.deepEqual(ch.tryReceive(), { ok: false });
});

test('mpmc: timeouts reject with TIMEOUT and a timed-out receiver never swallows a later value', async () => {
  const ch = new MpmcChannel<number>(1);
  await assert.rejects(ch.receive({ timeoutMs: 10 }), isTimeout);
  assert.equal(ch.waitingReceivers, 0, 'the timed-out receiver was withdrawn');
  await ch.send(1);
  await assert.rejects(ch.send(2, { timeoutMs: 10 }), isTimeout);
  assert.equal(ch.waitingSenders, 0);
  assert.equal(await ch.receive(), 1);
  assert.deepEqual(ch.tryReceive(), { ok: false }, 'the timed-out send left nothing behind');
  // Aborted receiver, then a value: the next receiver gets it.
  const ac = new AbortController();
  const aborted = ch.receive({ signal: ac.signal });
  ac.abort();
  await assert.rejects(aborted);
  await ch.send(42);
  assert.equal(await ch.receive({ timeoutMs: 1000 }), 42);
});

test('mpmc: close drains then resolves undefined; send after close is CLOSED', async () => {
  const ch = new MpmcChannel<number>(4);
  await ch.send(1);
  await ch.send(2);
  ch.close();
  await assert.rejects(ch.send(3), isClosed);
  assert.throws(() => ch.trySend(3), isClosed);
  const got: number[] = [];
  for await (const v of ch) got.push(v);
  assert.deepEqual(got, [1, 2]);
  assert.equal(await ch.receive(), undefined);
  // Waiting receivers are released by close; waiting senders are rejected.
  const ch2 = new MpmcChannel<number>(0);
  const r = ch2.receive();
  const ch3 = new MpmcChannel<number>(0);
  const s = ch3.send(1);
  ch2.close();
  ch3.close();
  assert.equal(await r, undefined);
  await assert.rejects(s, isClosed);
  assert.throws(() => ch.trySend(undefined as unknown as number), TypeError);
});

test('mpmc: waiting receivers are served in arrival order', async () => {
  const ch = new MpmcChannel<number>(1);
  const order: string[] = [];
  const rs = ['r0', 'r1', 'r2'].map((n) => ch.receive().then((v) => order.push(`${n}=${v}`)));
  for (let i = 0; i < 3; i++) await ch.send(i);
  await Promise.all(rs);
  assert.deepEqual(order, ['r0=0', 'r1=1', 'r2=2']);
});

test('mpmc: many producers and consumers deliver every value exactly once', async () => {
  for (const capacity of [0, 1, 7, Infinity]) {
    const ch = new MpmcChannel<number>(capacity);
    const P = 5;
    const N = 400;
    const seen = new Map<number, number>();
    const consumers = Array.from({ length: 4 }, async () => {
      for await (const v of ch) {
        seen.set(v, (seen.get(v) ?? 0) + 1);
        if (v % 3 === 0) await new Promise((r) => setImmediate(r));
      }
    });
    const producers = Array.from({ length: P }, async (_, p) => {
      for (let i = 0; i < N; i++) {
        await ch.send(p * N + i);
        if (i % 5 === 0) await new Promise((r) => setImmediate(r));
      }
    });
    await Promise.all(producers);
    ch.close();
    await Promise.all(consumers);
    assert.equal(seen.size, P * N, `capacity ${capacity}: every value arrived`);
    for (const [, n] of seen) assert.equal(n, 1);
  }
});

test('select: both always-ready channels get a fair share', async () => {
  const a = new MpmcChannel<string>();
  const b = new MpmcChannel<string>();
  const N = 400;
  for (let i = 0; i < N; i++) {
    a.trySend('a');
    b.trySend('b');
  }
  const counts = [0, 0];
  for (let i = 0; i < N; i++) {
    const r = await select([{ channel: a, op: 'receive' }, { channel: b, op: 'receive' }]);
    counts[r.index]++;
  }
  // Uniform choice: expected 200 each; 100 is ~10 standard deviations away.
  assert.ok(counts[0] > 100 && counts[1] > 100, `fair share: ${counts}`);
  assert.equal(a.size + b.size, N, 'exactly one value consumed per round');
});

test('select: timeout, default, and a send case', async () => {
  const a = new MpmcChannel<number>(1);
  const b = new MpmcChannel<number>(1);
  await assert.rejects(select([{ channel: a, op: 'receive' }, { channel: b, op: 'receive' }], { timeoutMs: 10 }), isTimeout);
  assert.equal(a.waitingReceivers + b.waitingReceivers, 0, 'withdrawn after timeout');
  assert.deepEqual(await select([{ channel: a, op: 'receive' }], { default: true }), { index: -1 });
  assert.deepEqual(await select([{ channel: a, op: 'receive' }, { channel: b, op: 'send', value: 7 }]), { index: 1 });
  assert.equal(b.tryReceive().ok, true);
  // Waits for a sender: the send case completes when a receive frees room.
  await a.send(1);
  const p = select([{ channel: a, op: 'send', value: 2 }]);
  assert.equal(await a.receive(), 1);
  assert.deepEqual(await p, { index: 0 });
  assert.equal(await a.receive(), 2);
});

test('select: no lost values: the losing channel keeps its later value', async () => {
  const a = new MpmcChannel<string>(1);
  const b = new MpmcChannel<string>(1);
  const p = select([{ channel: a, op: 'receive' }, { channel: b, op: 'receive' }]);
  await new Promise((r) => setImmediate(r));
  await a.send('A');
  assert.deepEqual(await p, { index: 0, value: 'A' });
  await b.send('B');
  assert.equal(b.waitingReceivers, 0);
  assert.deepEqual(b.tryReceive(), { ok: true, value: 'B' }, 'B is still in b, not swallowed by the finished select');
  // And after a timed-out select too.
  await assert.rejects(select([{ channel: a, op: 'receive' }, { channel: b, op: 'receive' }], { timeoutMs: 5 }), isTimeout);
  await a.send('late');
  assert.equal(await a.receive(), 'late');
  // Closed channel: receive case is ready with undefined.
  b.close();
  assert.deepEqual(await select([{ channel: a, op: 'receive' }, { channel: b, op: 'receive' }]), { index: 1, value: undefined });
});

test('priority queue: higher first, FIFO within one priority, bounded with timeouts', async () => {
  const q = new PriorityQueue<string>(8);
  const items: [string, number][] = [['p1', 1], ['p9', 9], ['p5a', 5], ['p0', 0], ['p5b', 5], ['p5c', 5], ['p9b', 9]];
  for (const [v, p] of items) await q.send(v, p);
  const got: string[] = [];
  for (let i = 0; i < items.length; i++) got.push((await q.receive())!.value);
  assert.deepEqual(got, ['p9', 'p9b', 'p5a', 'p5b', 'p5c', 'p1', 'p0']);
  await assert.rejects(q.receive({ timeoutMs: 5 }), isTimeout);
  for (let i = 0; i < 8; i++) assert.equal(q.trySend(`x${i}`, i % 3), true);
  assert.equal(q.trySend('full', 100), false);
  await assert.rejects(q.send('full', 100, { timeoutMs: 5 }), isTimeout);
  const first = await q.receive();
  assert.deepEqual(first, { value: 'x2', priority: 2 });
  q.close();
  let n = 0;
  for await (const _ of q) n++;
  assert.equal(n, 7);
});

const mqChild = fileURLToPath(new URL('./fixtures/ipc-mq-child.ts', import.meta.url));

test('posix mq: priority order across processes (9,5,5,1,0), then unlink', async () => {
  const name = `/switchyard-test-${process.pid}`;
  const q = openMessageQueue(name, { create: 'exclusive', maxMessages: 10, messageSize: 8192, mode: 0o600 });
  try {
    assert.equal(q.currentMessages(), 0);
    const child = spawn(process.execPath, ['--import', 'tsx', mqChild, name], { stdio: ['ignore', 'inherit', 'inherit'] });
    const code = await new Promise<number | null>((resolve) => child.on('exit', resolve));
    assert.equal(code, 0);
    const got: string[] = [];
    for (let i = 0; i < 5; i++) {
      const m = await q.receive({ timeoutMs: 10_000 });
      got.push(`${new TextDecoder().decode(m.data)}@${m.priority}`);
    }
    assert.deepEqual(got, ['p9@9', 'p5a@5', 'p5b@5', 'p1@1', 'p0@0']);
    assert.equal(q.tryReceive(), null);
  } finally {
    q.close();
    q.unlink();
  }
  assert.throws(() => openMessageQueue(name), (e: unknown) => e instanceof IpcError && e.code === 'SWITCHYARD_IPC_PEER_GONE', 'gone after unlink');
});

test('posix mq: send waits while full, receive waits while empty, without blocking the loop', async () => {
  const name = `/switchyard-test-wait-${process.pid}`;
  const q = openMessageQueue(name, { create: true, maxMessages: 2, messageSize: 64 });
  try {
    assert.equal(q.trySend(Buffer.from('a'), 1), true);
    assert.equal(q.trySend(Buffer.from('b'), 1), true);
    assert.equal(q.trySend(Buffer.from('c'), 1), false);
    await assert.rejects(q.send(Buffer.from('c'), 1, { timeoutMs: 10 }), isTimeout);
    const pending = q.send(Buffer.from('c'), 1, { timeoutMs: 10_000 });
    let ticks = 0;
    await new Promise<void>((r) => setImmediate(() => (ticks++, r())));
    assert.equal(ticks, 1, 'the loop keeps running while a send waits');
    assert.equal(Buffer.from((await q.receive()).data).toString(), 'a');
    await pending;
    assert.equal(Buffer.from((await q.receive()).data).toString(), 'b');
    assert.equal(Buffer.from((await q.receive()).data).toString(), 'c');
    const r = q.receive({ timeoutMs: 10_000 });
    await q.send(Buffer.from('d'), 3);
    assert.deepEqual({ ...(await r), data: Buffer.from((await r).data).toString() }, { data: 'd', priority: 3 });
    await assert.rejects(q.receive({ timeoutMs: 10 }), isTimeout);
    await assert.rejects(q.send(new Uint8Array(65)), (e: unknown) => e instanceof IpcError && e.code === 'SWITCHYARD_IPC_MESSAGE_TOO_LARGE');
  } finally {
    q.close();
    unlinkMessageQueue(name);
  }
});

test('posix mq: over the system limit is a clear error naming /proc/sys/fs/mqueue', () => {
  const name = `/switchyard-test-limit-${process.pid}`;
  try {
    assert.throws(
      () => openMessageQueue(name, { create: true, maxMessages: 100_000, messageSize: 8192 }),
      (e: unknown) => e instanceof IpcError && /\/proc\/sys\/fs\/mqueue/.test(e.message),
    );
  } finally {
    unlinkMessageQueue(name);
  }
});

const signalChild = fileURLToPath(new URL('./fixtures/ipc-signal-child.ts', import.meta.url));

test('signals: nextSignal and onSignals in this process (SIGUSR2 to itself), timeout, uncatchable refused', async (t) => {
  // Node 24's test runner starts each test file with --report-signal=SIGUSR2 (it passes on its
  // defaults), which turns on --report-on-signal: node then listens for SIGUSR2 itself (one more
  // listener than ours) and writes a diagnostic report into the working folder. Off for this test,
  // as it is outside the runner and under Node 20 and 22.
  if (process.report.reportOnSignal) {
    process.report.reportOnSignal = false;
    t.after(() => void (process.report.reportOnSignal = true));
  }
  const seen: string[] = [];
  const off = onSignals(['SIGUSR2', 'SIGHUP'], (s) => seen.push(s));
  const next = nextSignal(['SIGUSR2'], { timeoutMs: 10_000 });
  process.kill(process.pid, 'SIGUSR2');
  assert.equal(await next, 'SIGUSR2');
  for (let i = 0; i < 100 && seen.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  assert.deepEqual(seen, ['SIGUSR2']);
  off();
  off();
  assert.equal(process.listenerCount('SIGUSR2'), 0, 'all listeners removed');
  await assert.rejects(nextSignal(['SIGUSR2'], { timeoutMs: 5 }), isTimeout);
  assert.equal(process.listenerCount('SIGUSR2'), 0);
  assert.throws(() => onSignals(['SIGKILL' as 'SIGTERM'], () => {}), TypeError);
});

test('signals: a child receives SIGUSR1 then SIGTERM through signalStream', async () => {
  const child = spawn(process.execPath, ['--import', 'tsx', signalChild], { stdio: ['ignore', 'pipe', 'inherit'] });
  let out = '';
  const waitFor = async (text: string): Promise<void> => {
    for (let i = 0; i < 1000 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 10));
    assert.ok(out.includes(text), `child printed ${JSON.stringify(text)}: ${JSON.stringify(out)}`);
  };
  child.stdout.setEncoding('utf8').on('data', (d: string) => (out += d));
  const exited = new Promise<[number | null, string | null]>((resolve) => child.on('exit', (c, s) => resolve([c, s])));
  try {
    await waitFor('ready\n');
    child.kill('SIGUSR1');
    await waitFor('got SIGUSR1\n');
    child.kill('SIGTERM');
    assert.deepEqual(await exited, [0, null], 'exited normally: SIGTERM was caught');
    assert.equal(out, 'ready\ngot SIGUSR1\ngot SIGTERM\nbye\n');
  } finally {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  }
});

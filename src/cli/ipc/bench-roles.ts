import { once } from 'node:events';
import type { Readable, Writable } from 'node:stream';
import type { MessagePort } from 'node:worker_threads';
import type { Channel } from '../../ipc/channel.ts';
import type { RingChannel } from '../../ipc/transports/ring-channel.ts';

// The two workloads of `switchyard ipc bench`, each in two forms: over a Switchyard Channel
// (framed) and over the bare transport (raw baseline). The measuring side ("parent") drives;
// the other side ("peer", a child process or a worker thread) echoes, then sinks.
//
//   latency:    warmup + rounds times: send 1 byte, wait for the 1-byte echo; each round timed.
//   throughput: `bytes` in messages of `chunk` bytes, then the peer answers one byte; timed from
//               the first send to that answer.

export interface Plan {
  warmup: number;
  rounds: number;
  bytes: number;
  chunk: number;
}

export interface Measured {
  /** Round-trip times in nanoseconds, `rounds` of them. */
  samples: Float64Array;
  /** Throughput phase: bytes and nanoseconds. */
  bytes: number;
  ns: number;
}

export type Progress = (fraction: number) => void;

const ONE = new Uint8Array([1]);
const ACK = new Uint8Array([0x21]);
const now = () => process.hrtime.bigint();

// ---- framed: any Channel -------------------------------------------------------------------

export async function peerChannel(ch: Channel, plan: Plan): Promise<void> {
  for (let i = 0; i < plan.warmup + plan.rounds; i++) {
    const m = await ch.receive();
    if (m === undefined) throw new Error('parent closed during the latency phase');
    await ch.send(m);
  }
  let left = plan.bytes;
  while (left > 0) {
    const m = await ch.receive();
    if (m === undefined) throw new Error('parent closed during the throughput phase');
    left -= m.byteLength;
  }
  await ch.send(ACK);
  // Wait for the parent to close, so nothing is cut short.
  while ((await ch.receive()) !== undefined);
  await ch.close();
}

export async function measureChannel(ch: Channel, plan: Plan, progress: Progress): Promise<Measured> {
  const samples = new Float64Array(plan.rounds);
  const total = plan.warmup + plan.rounds;
  for (let i = 0; i < total; i++) {
    const t0 = now();
    await ch.send(ONE);
    const m = await ch.receive();
    const dt = Number(now() - t0);
    if (m === undefined) throw new Error('peer closed during the latency phase');
    if (i >= plan.warmup) samples[i - plan.warmup] = dt;
    if ((i & 255) === 0) progress((i / total) * 0.3);
  }
  const buf = new Uint8Array(plan.chunk).fill(0xab);
  const t0 = now();
  let sent = 0;
  let n = 0;
  while (sent < plan.bytes) {
    const size = Math.min(plan.chunk, plan.bytes - sent);
    await ch.send(size === plan.chunk ? buf : buf.subarray(0, size));
    sent += size;
    if ((++n & 63) === 0) progress(0.3 + 0.7 * (sent / plan.bytes));
  }
  const ack = await ch.receive();
  const ns = Number(now() - t0);
  if (ack === undefined) throw new Error('peer closed before acknowledging the bulk transfer');
  await ch.close();
  return { samples, bytes: plan.bytes, ns };
}

// ---- zero-copy: a shm RingChannel's synchronous path (reserve/commit out, views in) ----------
// The same workload as the framed one, through the synchronous calls: each message is written in
// place with reserve()/commit() and read in place with receiveViewSync()/release(), no promise
// and no copy on the receiving side (the raw ring's receiver copies each message out; here the
// receiver reads its first byte and length only, which is what zero-copy buys).

/** A spinning side gives up after this long without an answer (the other side is gone). */
const VIEW_TIMEOUT_MS = 10_000;

export function peerView(ch: RingChannel, plan: Plan): void {
  for (let i = 0; i < plan.warmup + plan.rounds; i++) {
    const v = ch.receiveViewSync(VIEW_TIMEOUT_MS);
    if (v === undefined) throw new Error('parent closed during the latency phase');
    const s = ch.reserve(v.length, VIEW_TIMEOUT_MS);
    s.setUint8(0, v.getUint8(0));
    v.release();
    s.commit();
  }
  let left = plan.bytes;
  while (left > 0) {
    const v = ch.receiveViewSync(VIEW_TIMEOUT_MS);
    if (v === undefined) throw new Error('parent closed during the throughput phase');
    if (v.getUint8(0) !== 0xab) throw new Error('bulk message with the wrong contents');
    left -= v.length;
    v.release();
  }
  const s = ch.reserve(1, VIEW_TIMEOUT_MS);
  s.setUint8(0, ACK[0]);
  s.commit();
  // Wait for the parent to close, so nothing is cut short.
  for (;;) {
    const v = ch.receiveViewSync(VIEW_TIMEOUT_MS);
    if (v === undefined) break;
    v.release();
  }
}

export async function measureView(ch: RingChannel, plan: Plan, progress: Progress): Promise<Measured> {
  const samples = new Float64Array(plan.rounds);
  const total = plan.warmup + plan.rounds;
  for (let i = 0; i < total; i++) {
    const t0 = now();
    const s = ch.reserve(1, VIEW_TIMEOUT_MS);
    s.setUint8(0, 1);
    s.commit();
    const v = ch.receiveViewSync(VIEW_TIMEOUT_MS);
    const dt = Number(now() - t0);
    if (v === undefined) throw new Error('peer closed during the latency phase');
    v.release();
    if (i >= plan.warmup) samples[i - plan.warmup] = dt;
  }
  progress(0.3);
  const buf = new Uint8Array(plan.chunk).fill(0xab);
  const t0 = now();
  let sent = 0;
  while (sent < plan.bytes) {
    const size = Math.min(plan.chunk, plan.bytes - sent);
    const s = ch.reserve(size, VIEW_TIMEOUT_MS);
    s.bytes().set(size === plan.chunk ? buf : buf.subarray(0, size));
    s.commit();
    sent += size;
  }
  const ack = ch.receiveViewSync(VIEW_TIMEOUT_MS);
  const ns = Number(now() - t0);
  if (ack === undefined) throw new Error('peer closed before acknowledging the bulk transfer');
  ack.release();
  progress(1);
  await ch.close();
  return { samples, bytes: plan.bytes, ns };
}

// ---- raw: a byte stream (socket, pipe, FIFO) without framing ---------------------------------

export function peerRawStream(input: Readable, output: Writable, plan: Plan): Promise<void> {
  return new Promise((resolve, reject) => {
    let echo = plan.warmup + plan.rounds;
    let sink = plan.bytes;
    input.on('data', (c: Buffer) => {
      let off = 0;
      if (echo > 0) {
        const n = Math.min(echo, c.length);
        output.write(c.subarray(0, n));
        echo -= n;
        off = n;
      }
      if (off < c.length && sink > 0) {
        sink -= c.length - off;
        if (sink <= 0) output.write(ACK, () => resolve());
      }
    });
    input.on('error', reject);
    output.on('error', reject);
    input.on('end', () => (sink > 0 ? reject(new Error('parent went away')) : resolve()));
  });
}

export async function measureRawStream(input: Readable, output: Writable, plan: Plan, progress: Progress): Promise<Measured> {
  let got = 0;
  let want = 0;
  let wake: (() => void) | undefined;
  let failure: Error | undefined;
  const fail = (e: Error) => {
    failure = e;
    if (wake) wake();
  };
  input.on('data', (c: Buffer) => {
    got += c.length;
    if (wake && got >= want) {
      const w = wake;
      wake = undefined;
      w();
    }
  });
  input.on('error', fail);
  output.on('error', fail);
  input.on('end', () => fail(new Error('peer closed the stream')));
  const until = async (n: number) => {
    if (got < n && !failure) await new Promise<void>((r) => ((want = n), (wake = r)));
    if (failure && got < n) throw failure;
  };
  const one = Buffer.from(ONE);
  const samples = new Float64Array(plan.rounds);
  const total = plan.warmup + plan.rounds;
  for (let i = 0; i < total; i++) {
    const t0 = now();
    output.write(one);
    await until(i + 1);
    const dt = Number(now() - t0);
    if (i >= plan.warmup) samples[i - plan.warmup] = dt;
    if ((i & 255) === 0) progress((i / total) * 0.3);
  }
  const base = got;
  const buf = Buffer.alloc(plan.chunk, 0xab);
  const t0 = now();
  let sent = 0;
  let n = 0;
  while (sent < plan.bytes) {
    const size = Math.min(plan.chunk, plan.bytes - sent);
    const ok = output.write(size === plan.chunk ? buf : buf.subarray(0, size));
    sent += size;
    if (!ok) await once(output, 'drain');
    if ((++n & 63) === 0) progress(0.3 + 0.7 * (sent / plan.bytes));
  }
  await until(base + 1);
  const ns = Number(now() - t0);
  return { samples, bytes: plan.bytes, ns };
}

// ---- raw: a MessagePort (structured clone copies each Uint8Array) ---------------------------
// postMessage never waits, so the bulk phase uses a credit window (the peer answers every
// WINDOW messages) to keep at most 4 * WINDOW messages in flight, as a Channel's backpressure would.

const WINDOW = 16;

export function peerRawPort(port: MessagePort, plan: Plan): Promise<void> {
  return new Promise((resolve) => {
    let echo = plan.warmup + plan.rounds;
    let sink = plan.bytes;
    let count = 0;
    port.on('message', (m: Uint8Array) => {
      if (echo > 0) {
        echo--;
        port.postMessage(m);
        return;
      }
      sink -= m.byteLength;
      count++;
      if (sink <= 0) {
        port.postMessage('done');
        resolve();
      } else if (count % WINDOW === 0) port.postMessage('credit');
    });
  });
}

export async function measureRawPort(port: MessagePort, plan: Plan, progress: Progress): Promise<Measured> {
  let next: ((m: unknown) => void) | undefined;
  let credits = 0;
  let creditWake: (() => void) | undefined;
  let done: (() => void) | undefined;
  let isDone = false;
  port.on('message', (m: unknown) => {
    if (m === 'credit') {
      credits += WINDOW;
      creditWake?.();
      creditWake = undefined;
    } else if (m === 'done') {
      isDone = true;
      done?.();
    } else next?.(m);
  });
  const samples = new Float64Array(plan.rounds);
  const total = plan.warmup + plan.rounds;
  const one = new Uint8Array(ONE);
  for (let i = 0; i < total; i++) {
    const t0 = now();
    const p = new Promise((r) => (next = r));
    port.postMessage(one);
    await p;
    const dt = Number(now() - t0);
    if (i >= plan.warmup) samples[i - plan.warmup] = dt;
    if ((i & 255) === 0) progress((i / total) * 0.3);
  }
  next = undefined;
  const buf = new Uint8Array(plan.chunk).fill(0xab);
  const t0 = now();
  let sent = 0;
  let msgs = 0;
  while (sent < plan.bytes) {
    while (msgs - credits >= 4 * WINDOW) await new Promise<void>((r) => (creditWake = r));
    const size = Math.min(plan.chunk, plan.bytes - sent);
    port.postMessage(size === plan.chunk ? buf : buf.subarray(0, size));
    sent += size;
    if ((++msgs & 63) === 0) progress(0.3 + 0.7 * (sent / plan.bytes));
  }
  if (!isDone) await new Promise<void>((r) => (done = r));
  const ns = Number(now() - t0);
  return { samples, bytes: plan.bytes, ns };
}

// ---- raw: SharedArrayBuffer between threads (spin for latency, a slot ring for bulk) ---------
// Layout (Int32 indexes): 0 ping seq, 1 pong seq, 2 ring head, 3 ring tail; the ring's SLOTS
// slots of `chunk` bytes follow at byte 64. Latency spins on both sides (as the shm transport's
// "spin" mode does); the bulk ring waits with Atomics.wait when full or empty (on a SharedArrayBuffer between
// threads) or spins (on a shm_open + mmap segment between processes, where Atomics.wait is refused).

export const SAB_SLOTS = 16;
/** A spinning side gives up after this long without an answer (the other side is gone). */
const SPIN_LIMIT_NS = 10_000_000_000n;

/** Atomics.wait on a SharedArrayBuffer; on an mmap'd (non-shared) buffer, where it is not allowed, plain spinning. */
function sleep(ctl: Int32Array, index: number, value: number): void {
  if (ctl.buffer instanceof SharedArrayBuffer) Atomics.wait(ctl, index, value, 50);
}

function spinUntil(ctl: Int32Array, index: number, value: number): void {
  if (Atomics.load(ctl, index) === value) return;
  const start = now();
  for (let n = 1; Atomics.load(ctl, index) !== value; n++) {
    if ((n & 0xfffff) === 0 && now() - start > SPIN_LIMIT_NS) throw new Error('the other thread stopped answering');
  }
}

export function sabSize(chunk: number): number {
  return 64 + SAB_SLOTS * chunk;
}

export function peerRawSab(sab: ArrayBufferLike, plan: Plan): void {
  const ctl = new Int32Array(sab, 0, 16);
  const total = plan.warmup + plan.rounds;
  for (let i = 1; i <= total; i++) {
    spinUntil(ctl, 0, i);
    Atomics.store(ctl, 1, i);
  }
  const dst = new Uint8Array(plan.chunk);
  let left = plan.bytes;
  let tail = 0;
  while (left > 0) {
    let head = Atomics.load(ctl, 2);
    const since = now();
    while (head === tail) {
      if (now() - since > SPIN_LIMIT_NS) throw new Error('the other thread stopped sending');
      sleep(ctl, 2, head);
      head = Atomics.load(ctl, 2);
    }
    const slot = tail % SAB_SLOTS;
    const size = Math.min(plan.chunk, left);
    dst.set(new Uint8Array(sab, 64 + slot * plan.chunk, size));
    left -= size;
    Atomics.store(ctl, 3, ++tail);
    Atomics.notify(ctl, 3);
  }
  Atomics.store(ctl, 1, -1);
  Atomics.notify(ctl, 1);
}

export function measureRawSab(sab: ArrayBufferLike, plan: Plan, progress: Progress): Measured {
  const ctl = new Int32Array(sab, 0, 16);
  const samples = new Float64Array(plan.rounds);
  const total = plan.warmup + plan.rounds;
  for (let i = 1; i <= total; i++) {
    const t0 = now();
    Atomics.store(ctl, 0, i);
    spinUntil(ctl, 1, i);
    const dt = Number(now() - t0);
    if (i > plan.warmup) samples[i - 1 - plan.warmup] = dt;
  }
  progress(0.3);
  const src = new Uint8Array(plan.chunk).fill(0xab);
  const t0 = now();
  let sent = 0;
  let head = 0;
  while (sent < plan.bytes) {
    let tail = Atomics.load(ctl, 3);
    const since = now();
    while (head - tail >= SAB_SLOTS) {
      if (now() - since > SPIN_LIMIT_NS) throw new Error('the other thread stopped reading');
      sleep(ctl, 3, tail);
      tail = Atomics.load(ctl, 3);
    }
    const size = Math.min(plan.chunk, plan.bytes - sent);
    new Uint8Array(sab, 64 + (head % SAB_SLOTS) * plan.chunk, size).set(size === plan.chunk ? src : src.subarray(0, size));
    sent += size;
    Atomics.store(ctl, 2, ++head);
    Atomics.notify(ctl, 2);
  }
  const since = now();
  while (Atomics.load(ctl, 1) !== -1) {
    if (now() - since > SPIN_LIMIT_NS) throw new Error('the other thread did not finish');
    sleep(ctl, 1, Atomics.load(ctl, 1));
  }
  const ns = Number(now() - t0);
  return { samples, bytes: plan.bytes, ns };
}

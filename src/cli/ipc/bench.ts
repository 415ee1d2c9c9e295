import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, openSync, rmSync, constants as fsc } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { MessageChannel, Worker, type MessagePort } from 'node:worker_threads';
import type { Channel } from '../../ipc/channel.ts';
import type { RingChannel } from '../../ipc/transports/ring-channel.ts';
import type { ChannelServer } from '../../ipc/server.ts';
import { O_CLOEXEC, closeFd, pipe2 } from '../../sys/pipe.ts';
import { mkfifo } from '../../sys/fifo.ts';
import { loadIpcModule, pick } from './load.ts';
import { measureChannel, measureRawPort, measureRawSab, measureRawStream, measureView, sabSize, type Measured, type Plan, type Progress } from './bench-roles.ts';
import type { PeerSpec } from './bench-child.ts';

// `switchyard ipc bench`: every transport, framed (Switchyard's Channel) and raw (the same
// transport bare), between two processes (threads for worker and shm-thread). A transport whose
// module is missing or fails is a row saying so, never a number.

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';
const childScript = fileURLToPath(new URL(`./bench-child${ext}`, import.meta.url));

/** node flags for a peer: the parent's own (so --import tsx carries over), tsx added if needed. */
function nodeArgs(): string[] {
  const args = [...process.execArgv];
  if (ext === '.ts' && !args.some((a) => a.includes('tsx'))) args.unshift('--import', import.meta.resolve('tsx'));
  return args;
}

export type Mode = 'raw' | 'framed';
export type Form = 'processes' | 'threads';

export interface TransportDef {
  name: string;
  form: Form;
  /**
   * Published figures for this kernel mechanism used from native code (average latency,
   * throughput for 100 MB on localhost): quoted for scale beside the measurement, not measured.
   */
  published: { latency: string; throughput: string };
  /** Said in the notes column of the framed row: how this row differs from a plain Channel. */
  note?: string;
  run(mode: Mode, plan: Plan, progress: Progress): Promise<Measured>;
}

class Unavailable extends Error {}

interface Peer {
  child?: ChildProcess;
  worker?: Worker;
  done: Promise<void>;
  kill(): void;
}

function spawnPeer(spec: PeerSpec, extraFds: number[] = []): Peer {
  const child = spawn(process.execPath, [...nodeArgs(), childScript, JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'pipe', ...extraFds] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += d));
  const done = new Promise<void>((resolve, reject) => {
    child.once('error', reject);
    child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(stderr.trim().split('\n').pop() || `peer exited with ${signal ?? code}`))));
  });
  done.catch(() => {});
  return { child, done, kill: () => child.kill('SIGKILL') };
}

function startWorker(data: unknown, transfer: Transferable[] = []): Peer {
  // Under tsx a worker does not inherit the loader hooks: register tsx inside it first.
  const worker =
    ext === '.ts'
      ? new Worker(
          `import(${JSON.stringify(import.meta.resolve('tsx/esm/api'))}).then((m) => { m.register(); return import(${JSON.stringify(new URL(`./bench-child${ext}`, import.meta.url).href)}); });`,
          { eval: true, workerData: data, transferList: transfer as never[] },
        )
      : new Worker(childScript, { workerData: data, transferList: transfer as never[] });
  const done = new Promise<void>((resolve, reject) => {
    worker.once('error', reject);
    worker.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`peer thread exited with ${code}`))));
  });
  done.catch(() => {});
  return { worker, done, kill: () => void worker.terminate() };
}

async function withPeer(peer: Peer, work: () => Promise<Measured>): Promise<Measured> {
  try {
    const m = await Promise.race([work(), peer.done.then(() => new Promise<never>(() => {}))]);
    await peer.done;
    return m;
  } catch (err) {
    // Prefer the peer's own reason when it died first.
    const why = await Promise.race([peer.done.then(() => undefined, (e: Error) => e), new Promise<undefined>((r) => setTimeout(r, 200))]);
    peer.kill();
    throw why ?? err;
  }
}

async function firstChannel(server: ChannelServer): Promise<Channel> {
  const it = server.accept()[Symbol.asyncIterator]();
  const r = await it.next();
  if (r.done) throw new Error('server closed before the peer connected');
  return r.value;
}

function listenRaw(listenArgs: [number, string] | [string]): Promise<net.Server> {
  const server = net.createServer({ noDelay: true });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(...(listenArgs as [number, string]), () => resolve(server));
  });
}

function acceptRaw(server: net.Server, peer: Peer): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    server.once('connection', (s: net.Socket) => {
      s.setNoDelay(true);
      resolve(s);
    });
    peer.done.then(() => reject(new Error('peer exited before connecting')), reject);
  });
}

function scratchDir(): string {
  return mkdtempSync(path.join(os.tmpdir(), 'switchyard-ipc-bench-'));
}

const tcp: TransportDef = {
  name: 'tcp',
  form: 'processes',
  published: { latency: '50-100 µs', throughput: '1 GB/s' },
  async run(mode, plan, progress) {
    if (mode === 'raw') {
      const server = await listenRaw([0, '127.0.0.1']);
      const peer = spawnPeer({ transport: 'tcp', mode, plan, port: (server.address() as net.AddressInfo).port });
      try {
        return await withPeer(peer, async () => {
          const s = await acceptRaw(server, peer);
          try {
            return await measureRawStream(s, s, plan, progress);
          } finally {
            s.destroy();
          }
        });
      } finally {
        server.close();
      }
    }
    const f = pick<(a: { host: string; port: number }) => Promise<ChannelServer & { port: number }>>(await loadIpcModule('transports/tcp'), ['listenTcp']);
    if ('reason' in f) throw new Unavailable(f.reason);
    const server = await f.fn({ host: '127.0.0.1', port: 0 });
    const peer = spawnPeer({ transport: 'tcp', mode, plan, port: server.port });
    try {
      return await withPeer(peer, async () => measureChannel(await firstChannel(server), plan, progress));
    } finally {
      await server.close();
    }
  },
};

const unix: TransportDef = {
  name: 'unix',
  form: 'processes',
  published: { latency: '1-2 µs', throughput: '10 GB/s' },
  async run(mode, plan, progress) {
    const dir = scratchDir();
    const sock = path.join(dir, 'bench.sock');
    try {
      if (mode === 'raw') {
        const server = await listenRaw([sock]);
        const peer = spawnPeer({ transport: 'unix', mode, plan, path: sock });
        try {
          return await withPeer(peer, async () => {
            const s = await acceptRaw(server, peer);
            try {
              return await measureRawStream(s, s, plan, progress);
            } finally {
              s.destroy();
            }
          });
        } finally {
          server.close();
        }
      }
      const f = pick<(p: string) => Promise<ChannelServer>>(await loadIpcModule('transports/unix'), ['listenUnix']);
      if ('reason' in f) throw new Unavailable(f.reason);
      const server = await f.fn(sock);
      const peer = spawnPeer({ transport: 'unix', mode, plan, path: sock });
      try {
        return await withPeer(peer, async () => measureChannel(await firstChannel(server), plan, progress));
      } finally {
        await server.close();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

const pipe: TransportDef = {
  name: 'pipe',
  form: 'processes',
  published: { latency: '5-10 µs', throughput: '1 GB/s' },
  async run(mode, plan, progress) {
    if (mode === 'raw') {
      // Two pipe2() pipes, default 64 KiB buffers, as the framed transport uses by default.
      const [toChildR, toChildW] = pipe2(O_CLOEXEC);
      const [fromChildR, fromChildW] = pipe2(O_CLOEXEC);
      const peer = spawnPeer({ transport: 'pipe', mode, plan }, [toChildR, fromChildW]);
      closeFd(toChildR);
      closeFd(fromChildW);
      const output = new net.Socket({ fd: toChildW, readable: false, writable: true });
      const input = new net.Socket({ fd: fromChildR, readable: true, writable: false });
      try {
        return await withPeer(peer, () => measureRawStream(input, output, plan, progress));
      } finally {
        input.destroy();
        output.destroy();
      }
    }
    const f = pick<(cmd: string, args: string[], o: object) => { child: ChildProcess; channel: Channel }>(await loadIpcModule('transports/pipe'), ['spawnWithPipes']);
    if ('reason' in f) throw new Unavailable(f.reason);
    const spec: PeerSpec = { transport: 'pipe', mode, plan };
    const { child, channel } = f.fn(process.execPath, [...nodeArgs(), childScript, JSON.stringify(spec)], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr?.on('data', (d) => (stderr += d));
    const done = new Promise<void>((resolve, reject) =>
      child.once('exit', (code, signal) => (code === 0 ? resolve() : reject(new Error(stderr.trim().split('\n').pop() || `peer exited with ${signal ?? code}`)))),
    );
    done.catch(() => {});
    return withPeer({ child, done, kill: () => child.kill('SIGKILL') }, () => measureChannel(channel, plan, progress));
  },
};

const fifo: TransportDef = {
  name: 'fifo',
  form: 'processes',
  published: { latency: '5-10 µs (pipe)', throughput: '1 GB/s (pipe)' },
  async run(mode, plan, progress) {
    const dir = scratchDir();
    try {
      if (mode === 'framed') {
        const f = pick<(p: string) => Promise<Channel>>(await loadIpcModule('transports/fifo'), ['createFifoChannel']);
        if ('reason' in f) throw new Unavailable(f.reason);
        const base = path.join(dir, 'bench');
        const opening = f.fn(base);
        opening.catch(() => {});
        const peer = spawnPeer({ transport: 'fifo', mode, plan, path: base });
        return await withPeer(peer, async () => measureChannel(await opening, plan, progress));
      }
      const paths: [string, string] = [path.join(dir, 'to-child'), path.join(dir, 'to-parent')];
      for (const p of paths) mkfifo(p, 0o600);
      // O_RDWR so no open waits for the other side; each socket is used one way only.
      const open = (p: string, read: boolean) => new net.Socket({ fd: openSync(p, fsc.O_RDWR | fsc.O_NONBLOCK), readable: read, writable: !read });
      const output = open(paths[0], false);
      const input = open(paths[1], true);
      const peer = spawnPeer({ transport: 'fifo', mode, plan, paths });
      try {
        return await withPeer(peer, () => measureRawStream(input, output, plan, progress));
      } finally {
        input.destroy();
        output.destroy();
      }
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  },
};

const worker: TransportDef = {
  name: 'worker',
  form: 'threads',
  published: { latency: '—', throughput: '—' },
  async run(mode, plan, progress) {
    const { port1, port2 } = new MessageChannel();
    if (mode === 'framed') {
      const f = pick<(p: MessagePort, o: object) => Channel>(await loadIpcModule('transports/worker'), ['workerChannel']);
      if ('reason' in f) throw new Unavailable(f.reason);
      // transfer: false, so messages are copied as in the raw baseline (and the sender's buffer survives).
      const channel = f.fn(port1, { transfer: false });
      const peer = startWorker({ spec: { transport: 'worker', mode, plan }, port: port2 }, [port2]);
      return withPeer(peer, () => measureChannel(channel, plan, progress));
    }
    const peer = startWorker({ spec: { transport: 'worker', mode, plan }, port: port2 }, [port2]);
    try {
      return await withPeer(peer, () => measureRawPort(port1, plan, progress));
    } finally {
      port1.close();
    }
  },
};

const shmThread: TransportDef = {
  name: 'shm-thread',
  form: 'threads',
  published: { latency: '0.1 µs', throughput: '20 GB/s' },
  async run(mode, plan, progress) {
    if (mode === 'framed') {
      const f = pick<(o: object) => { channel: Channel; peer: unknown }>(await loadIpcModule('transports/shm-thread'), ['createShmThreadChannel']);
      if ('reason' in f) throw new Unavailable(f.reason);
      const { channel, peer: attach } = f.fn({});
      const peer = startWorker({ spec: { transport: 'shm-thread', mode, plan }, attach });
      return withPeer(peer, () => measureChannel(channel, plan, progress));
    }
    const sab = new SharedArrayBuffer(sabSize(plan.chunk));
    const peer = startWorker({ spec: { transport: 'shm-thread', mode, plan }, sab });
    // Wait for the thread to be up before spinning on the main thread (which blocks its loop).
    await Promise.race([new Promise<void>((resolve) => peer.worker!.once('online', resolve)), peer.done.then(() => Promise.reject(new Error('peer thread ended early')))]);
    return withPeer(peer, async () => measureRawSab(sab, plan, progress));
  },
};

function shmDef(name: string, shmMode: 'spin' | 'futex' | 'view'): TransportDef {
  return {
    name,
    note: shmMode === 'view' ? 'synchronous zero-copy: reserve/commit, receiveViewSync/release' : undefined,
    form: 'processes',
    published: { latency: '0.1 µs', throughput: '20 GB/s' },
    async run(mode, plan, progress) {
      if (mode === 'raw') {
        if (shmMode === 'futex') throw new Unavailable('no raw baseline: the raw ring only spins, so it is the raw row of shm');
        // shm-view measures the raw ring again, so its ratio compares figures of the same run.
        // The same shm_open + mmap segment, a fixed-slot ring without the Channel, both sides spinning.
        const sys = await import('../../sys/shm.ts');
        if (!sys.shmAvailable()) throw new Unavailable('shm_open/mmap not reachable through koffi here');
        const segName = `/switchyard-bench-raw-${process.pid}`;
        const seg = sys.shmCreate(segName, sabSize(plan.chunk), 0o600);
        try {
          const peer = spawnPeer({ transport: 'shm', mode, plan, name: segName });
          return await withPeer(peer, async () => measureRawSab(seg.buffer, plan, progress));
        } finally {
          seg.unmap();
          sys.shmUnlink(segName);
        }
      }
      const f = pick<(n: string, o: object) => RingChannel>(await loadIpcModule('transports/shm'), ['createShmChannel']);
      if ('reason' in f) throw new Unavailable(f.reason);
      const segment = `bench-${process.pid}-${name}`;
      if (shmMode === 'view') {
        // The synchronous calls spin a bounded time, then sleep on the futex whatever the mode.
        const channel = f.fn(segment, { mode: 'futex' });
        const peer = spawnPeer({ transport: 'shm-view', mode, plan, name: segment });
        return withPeer(peer, () => measureView(channel, plan, progress));
      }
      const channel = f.fn(segment, { mode: shmMode });
      const peer = spawnPeer({ transport: 'shm', mode, plan, name: segment, shmMode });
      return withPeer(peer, () => measureChannel(channel, plan, progress));
    },
  };
}

/**
 * shm: spin mode (both sides busy-wait, as the raw ring does); shm-futex: the default mode;
 * shm-view: the synchronous zero-copy calls (bounded spin, then futex), against the raw ring.
 */
export const TRANSPORTS: TransportDef[] = [tcp, unix, pipe, fifo, worker, shmThread, shmDef('shm', 'spin'), shmDef('shm-futex', 'futex'), shmDef('shm-view', 'view')];

// ---- running and reporting -----------------------------------------------------------------

export interface Figures {
  p50us: number;
  p99us: number;
  mbps: number;
  rounds: number;
  bytes: number;
  /** Each run's figures, when there were several (the figures above are their medians). */
  runs?: Figures[];
}

export type Outcome = { ok: true; figures: Figures } | { ok: false; unavailable: boolean; reason: string };

export interface Row {
  transport: string;
  form: Form;
  published: { latency: string; throughput: string };
  /** How the framed row differs from a plain Channel, when it does. */
  note?: string;
  raw: Outcome;
  framed: Outcome;
}

function percentile(sorted: Float64Array, q: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))];
}

function figuresOf(m: Measured): Figures {
  const s = Float64Array.from(m.samples).sort();
  return { p50us: percentile(s, 0.5) / 1000, p99us: percentile(s, 0.99) / 1000, mbps: m.bytes / (m.ns / 1e9) / 1e6, rounds: s.length, bytes: m.bytes };
}

export interface BenchOptions {
  transports: string[];
  plan: Plan;
  /** Per measurement (raw or framed of one transport). */
  timeoutMs: number;
  /** Interleaved repetitions; the table shows medians. */
  runs?: number;
  progress: (label: string, fraction: number) => void;
  step: (label: string, outcome: Outcome) => void;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

/** Per metric, the median over runs. */
function medianFigures(runs: Figures[]): Figures {
  return {
    p50us: median(runs.map((r) => r.p50us)),
    p99us: median(runs.map((r) => r.p99us)),
    mbps: median(runs.map((r) => r.mbps)),
    rounds: runs[0].rounds,
    bytes: runs[0].bytes,
    runs,
  };
}

/** Runs raw then framed of each transport, `runs` times over (interleaved: raw, framed, raw, framed, ...). */
export async function runBench(options: BenchOptions): Promise<Row[]> {
  const rows: Row[] = [];
  const runs = options.runs ?? 1;
  for (const name of options.transports) {
    const def = TRANSPORTS.find((t) => t.name === name)!;
    const row: Row = { transport: def.name, form: def.form, published: def.published, note: def.note, raw: { ok: false, unavailable: true, reason: 'not run' }, framed: { ok: false, unavailable: true, reason: 'not run' } };
    const got: Record<Mode, Figures[]> = { raw: [], framed: [] };
    const stopped: Partial<Record<Mode, Outcome>> = {};
    for (let run = 1; run <= runs; run++) {
      for (const mode of ['raw', 'framed'] as const) {
        if (stopped[mode]) continue;
        const label = `${def.name} ${mode}${runs > 1 ? ` (run ${run}/${runs})` : ''}`;
        options.progress(label, 0);
        let outcome: Outcome;
        let timer: NodeJS.Timeout | undefined;
        try {
          const timeout = new Promise<never>((_, reject) => {
            timer = setTimeout(() => reject(new Error(`did not finish within ${options.timeoutMs / 1000} s`)), options.timeoutMs);
          });
          const m = await Promise.race([def.run(mode, options.plan, (f) => options.progress(label, f)), timeout]);
          const f = figuresOf(m);
          got[mode].push(f);
          outcome = { ok: true, figures: f };
        } catch (err) {
          outcome = { ok: false, unavailable: err instanceof Unavailable, reason: (err as Error).message };
          stopped[mode] = outcome;
        } finally {
          clearTimeout(timer);
        }
        options.progress(label, 1);
        options.step(label, outcome);
      }
    }
    for (const mode of ['raw', 'framed'] as const) row[mode] = stopped[mode] ?? { ok: true, figures: medianFigures(got[mode]) };
    rows.push(row);
  }
  return rows;
}

const fmt = (n: number, digits = 1) => (n >= 100 ? n.toFixed(0) : n.toFixed(n < 1 ? 2 : digits));

function cell(o: Outcome, f: (x: Figures) => string): string {
  return o.ok ? f(o.figures) : '—';
}

export function ratios(row: Row): { latency?: number; throughput?: number } {
  if (!row.raw.ok || !row.framed.ok) return {};
  return { latency: row.framed.figures.p50us / row.raw.figures.p50us, throughput: row.raw.figures.mbps / row.framed.figures.mbps };
}

/** The targets the full run judges: framed within this factor of raw, and the shm ring's own. */
const MAX_FRAMED_OVER_RAW = 1.2;
const SHM_MAX_P50_US = 1;
const SHM_MIN_MBPS = 10_000;

const verdict = (ok: boolean) => (ok ? 'met' : 'not met');

/** Each target with its verdict, or why there is none. */
function targetLines(rows: Row[], plan: Plan, quick: boolean): string[] {
  if (quick) {
    return [
      `not judged on a --quick run: ${plan.rounds} round trips and ${formatBytes(plan.bytes)} of bulk are too few to time a ratio (quick ratios swing widely from run to run). ` +
        `A full run (\`switchyard ipc bench\`) judges framed within ${MAX_FRAMED_OVER_RAW.toFixed(1)}x of raw per transport, and the shm ring at <= ${SHM_MAX_P50_US} µs p50 and >= ${SHM_MIN_MBPS / 1000} GB/s.`,
    ];
  }
  const lines: string[] = [];
  for (const r of rows) {
    const rt = ratios(r);
    if (rt.latency !== undefined) {
      const worst = Math.max(rt.latency, rt.throughput!);
      lines.push(`${r.transport}: framed within ${MAX_FRAMED_OVER_RAW.toFixed(1)}x of raw: ${verdict(worst <= MAX_FRAMED_OVER_RAW)} (${worst.toFixed(2)}x)`);
    } else lines.push(`${r.transport}: framed within ${MAX_FRAMED_OVER_RAW.toFixed(1)}x of raw: not compared (${r.raw.ok ? 'no framed figure' : 'no raw baseline'})`);
  }
  const s = rows.find((r) => r.transport === 'shm');
  if (s?.framed.ok) {
    lines.push(`shm ring round trip <= ${SHM_MAX_P50_US} µs: ${verdict(s.framed.figures.p50us <= SHM_MAX_P50_US)} (${fmt(s.framed.figures.p50us)} µs p50)`);
    lines.push(`shm ring >= ${SHM_MIN_MBPS / 1000} GB/s: ${verdict(s.framed.figures.mbps >= SHM_MIN_MBPS)} (${fmt(s.framed.figures.mbps, 0)} MB/s)`);
  } else lines.push(`shm ring targets (<= ${SHM_MAX_P50_US} µs, >= ${SHM_MIN_MBPS / 1000} GB/s): not measured`);
  const v = rows.find((r) => r.transport === 'shm-view');
  if (v?.framed.ok) {
    lines.push(`shm ring, zero-copy calls, round trip <= ${SHM_MAX_P50_US} µs: ${verdict(v.framed.figures.p50us <= SHM_MAX_P50_US)} (${fmt(v.framed.figures.p50us)} µs p50)`);
    lines.push(`shm ring, zero-copy calls, >= ${SHM_MIN_MBPS / 1000} GB/s: ${verdict(v.framed.figures.mbps >= SHM_MIN_MBPS)} (${fmt(v.framed.figures.mbps, 0)} MB/s)`);
  } else if (v) lines.push(`shm ring, zero-copy calls (<= ${SHM_MAX_P50_US} µs, >= ${SHM_MIN_MBPS / 1000} GB/s): not measured`);
  return lines;
}

/**
 * Markdown table: one row per transport and mode, framed/raw ratios on the framed row, then the
 * targets. A `quick` run's figures are a smoke test: its targets are not judged.
 */
export function formatTable(rows: Row[], plan: Plan, runs = 1, quick = false): string {
  const out: string[] = [];
  out.push(
    `1-byte round trips: ${plan.rounds} timed after ${plan.warmup} warm-up; bulk: ${formatBytes(plan.bytes)} in ${formatBytes(plan.chunk)} messages` +
      (runs > 1 ? `; ${runs} interleaved runs (raw, framed, raw, framed, ...), each figure the median of its runs. ` : '. ') +
      `Ratio = framed/raw (latency p50; throughput as raw MB/s over framed MB/s), target <= ${MAX_FRAMED_OVER_RAW.toFixed(2)}x.`,
  );
  out.push('');
  out.push('| transport | between | mode | RTT p50 µs | RTT p99 µs | MB/s | framed/raw (lat, thr) | published native latency | published native throughput | notes |');
  out.push('|:--|:--|:--|--:|--:|--:|:--|:--|:--|:--|');
  for (const r of rows) {
    for (const mode of ['raw', 'framed'] as const) {
      const o = r[mode];
      const rt = ratios(r);
      const ratio = mode === 'framed' && rt.latency !== undefined ? `${rt.latency.toFixed(2)}x, ${rt.throughput!.toFixed(2)}x` : '';
      const note = o.ok ? (mode === 'framed' ? (r.note ?? '') : '') : `${o.unavailable ? 'not available' : 'FAILED'}: ${o.reason}`;
      out.push(
        `| ${r.transport} | ${r.form} | ${mode} | ${cell(o, (f) => fmt(f.p50us))} | ${cell(o, (f) => fmt(f.p99us))} | ${cell(o, (f) => fmt(f.mbps, 0))} | ${ratio} | ${mode === 'framed' ? r.published.latency : ''} | ${mode === 'framed' ? r.published.throughput : ''} | ${note.replace(/\|/g, '\\|')} |`,
      );
    }
  }
  out.push('', 'Targets:', ...targetLines(rows, plan, quick).map((c) => `- ${c}`));
  out.push(
    '',
    'Published native columns: the figures usually quoted for each kernel mechanism used from native code (average latency, throughput for 100 MB on localhost), for scale; not measured here and not targets. FIFO is listed under the pipe figures; worker ports have none.',
  );
  return out.join('\n');
}

export function formatBytes(n: number): string {
  const units = ['B', 'KiB', 'MiB', 'GiB'];
  let i = 0;
  while (n >= 1024 && i < units.length - 1 && n % 1024 === 0) {
    n /= 1024;
    i++;
  }
  return `${n} ${units[i]}`;
}

import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { ListenerSummary } from '../handlers/types.ts';
import { Metrics } from '../observe/metrics.ts';
import type { ReloadResult, Yard } from './yard.ts';
import type { HandOverResult } from './upgrade.ts';

// `workers: N` (docs/operations.md, "Workers"): `serve` becomes a primary that serves nothing
// itself and runs N worker processes with node:cluster, each a whole daemon (a Yard) started from
// the same command line. A worker's listen() asks the primary, which binds each address once and
// hands the same listening socket to every worker (cluster.SCHED_NONE): all of them accept on it
// and the kernel spreads the connections, with no hop through the primary. (NODE_CLUSTER_SCHED_POLICY=rr
// makes the primary accept and pass each connection on instead.) udp sockets are shared the same way.
//
//   primary                                   worker k (env SWITCHYARD_WORKER=k)
//   fork k  -------------------------------->  {ask config} (a config loaded at run time, or its file's)
//                                              Yard.start; its listen() calls bind through the primary
//           <--------------------------------  {ready listeners}
//   SIGHUP: {reload-source} to one worker ---> reads the file, {ask reload config}
//   {apply config} to every worker ----------> Yard.reloadHere, {applied result}
//   SIGTERM/SIGINT: SIGTERM to every worker -> drains and exits 0; the primary exits once all have
//   SIGUSR2: a new set of workers; once all are ready the old ones drain and exit
//   a worker that dies is forked again after 100 ms, doubling up to 10 s (back to 100 ms after a minute up)
//
// Metrics: the admin listener's /metrics (in whichever worker answers) asks the primary, which
// collects every worker's registry (prom-client's AggregatorRegistry: counters, gauges and
// histogram buckets summed) and answers with the sum.

/** Set in a worker's environment: its slot, 1..N. */
export const WORKER_ENV = 'SWITCHYARD_WORKER';

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** A worker up this long resets its slot's backoff. */
const BACKOFF_RESET_MS = 60_000;
/** How long a worker has to start and report ready. */
const READY_TIMEOUT_MS = 60_000;

type ToPrimary =
  | { sy: 'ready'; listeners: ListenerSummary[] }
  | { sy: 'ask'; id: number; what: 'config' | 'metrics' | 'upgrade' }
  | { sy: 'ask'; id: number; what: 'reload'; config: Config }
  | { sy: 'applied'; id: number; result: ReloadResult };

type ToWorker =
  | { sy: 'answer'; id: number; ok: true; value: unknown }
  | { sy: 'answer'; id: number; ok: false; error: string }
  | { sy: 'apply'; id: number; config: Config }
  | { sy: 'reload-source' };

/** `workers:` as a number of processes. */
export function workerCount(workers: Config['workers']): number {
  return workers === 'auto' ? availableParallelism() : workers;
}

/** This process's slot when it is a worker of a primary (1..N), else undefined. */
export function workerSlot(): number | undefined {
  if (!cluster.isWorker) return undefined;
  const n = Number(process.env[WORKER_ENV]);
  return Number.isInteger(n) && n > 0 ? n : undefined;
}

// ---------------------------------------------------------------------------------------------
// Primary

interface Rec {
  slot: number;
  worker: Worker;
  /** serving: one of the N; candidate: started by an upgrade, not yet serving; retiring: draining. */
  role: 'serving' | 'candidate' | 'retiring';
  ready: boolean;
  startedAt: number;
  listeners?: ListenerSummary[];
  /** Settles when it is ready (true) or has exited before (false, with why). */
  readyWait: Promise<{ ok: true } | { ok: false; error: string }>;
  settleReady: (r: { ok: true } | { ok: false; error: string }) => void;
}

export interface PrimaryOptions {
  count: number;
  log: Logger;
  /** The workers' stop grace (they enforce it); the primary gives up waiting 5 s after it. */
  grace: number;
  /** Log files: SIGUSR1 reopens the primary's own too. */
  reopen?: () => void;
  onStopping?: () => void;
}

export class Primary {
  private readonly recs = new Set<Rec>();
  private readonly delays = new Map<number, number>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private readonly aggregator = new AggregatorRegistry();
  private stopping = false;
  private starting = true;
  private rolling: Promise<HandOverResult> | undefined;
  private reloadChain: Promise<unknown> = Promise.resolve();
  /** The config the last reload gave every worker (a restarted worker starts from it, not its file). */
  private loaded: Config | undefined;
  private applyId = 0;
  private readonly applying = new Map<number, { pending: Set<Worker>; results: { slot: number; result: ReloadResult }[]; done: () => void }>();

  constructor(private readonly o: PrimaryOptions) {
    // One socket per address shared by all workers, unless the operator asked for round-robin.
    if (!process.env.NODE_CLUSTER_SCHED_POLICY) cluster.schedulingPolicy = cluster.SCHED_NONE;
    // Structured clone: a Config keeps its undefined fields, which reload compares.
    cluster.setupPrimary({ serialization: 'advanced' });
  }

  /** Forks the workers; resolves with worker 1's listeners once all are ready, or throws (all killed) if one fails. */
  async start(): Promise<ListenerSummary[]> {
    const recs = Array.from({ length: this.o.count }, (_, i) => this.fork(i + 1, 'serving'));
    const results = await Promise.all(recs.map((r) => r.readyWait));
    const failed = results.findIndex((r) => !r.ok);
    if (failed >= 0) {
      this.stopping = true;
      for (const r of this.recs) r.worker.process.kill('SIGKILL');
      throw new Error(`worker ${failed + 1} did not start: ${(results[failed] as { error: string }).error}`);
    }
    this.starting = false;
    this.installSignals();
    return recs[0]!.listeners ?? [];
  }

  /** The pids of the serving workers, by slot. */
  pids(): number[] {
    return [...this.recs].filter((r) => r.role === 'serving').sort((a, b) => a.slot - b.slot).map((r) => r.worker.process.pid!);
  }

  private fork(slot: number, role: Rec['role']): Rec {
    const worker = cluster.fork({ [WORKER_ENV]: String(slot) });
    let settleReady!: Rec['settleReady'];
    const readyWait = new Promise<{ ok: true } | { ok: false; error: string }>((resolve) => (settleReady = resolve));
    const rec: Rec = { slot, worker, role, ready: false, startedAt: Date.now(), readyWait, settleReady };
    this.recs.add(rec);
    const timer = setTimeout(() => {
      if (rec.ready) return;
      rec.settleReady({ ok: false, error: `not ready within ${READY_TIMEOUT_MS / 1000} s` });
      worker.process.kill('SIGKILL');
    }, READY_TIMEOUT_MS);
    worker.on('message', (m: ToPrimary) => this.onMessage(rec, m));
    worker.on('error', () => undefined); // a send to a worker that just died; its exit is handled
    worker.on('exit', (code, signal) => {
      clearTimeout(timer);
      this.onExit(rec, code, signal);
    });
    return rec;
  }

  private onExit(rec: Rec, code: number | null, signal: string | null): void {
    this.recs.delete(rec);
    const how = signal ?? `status ${code}`;
    rec.settleReady({ ok: false, error: `it exited (${how}) before it was ready` });
    for (const [id, a] of this.applying) {
      if (a.pending.delete(rec.worker)) {
        a.results.push({ slot: rec.slot, result: { ok: false, error: 'it exited during the reload' } });
        if (a.pending.size === 0) a.done();
        void id;
      }
    }
    if (this.stopping) {
      if (this.recs.size === 0) this.allGone?.();
      return;
    }
    if (rec.role !== 'serving' || this.starting) return;
    const up = Date.now() - rec.startedAt;
    const delay = up >= BACKOFF_RESET_MS ? BACKOFF_FIRST_MS : (this.delays.get(rec.slot) ?? BACKOFF_FIRST_MS);
    this.delays.set(rec.slot, Math.min(delay * 2, BACKOFF_MAX_MS));
    this.o.log.error({ worker: rec.slot, pid: rec.worker.process.pid, exit: how, restartInMs: delay }, `worker ${rec.slot} (pid ${rec.worker.process.pid}) exited (${how}); starting another in ${delay} ms`);
    const t = setTimeout(() => {
      this.timers.delete(t);
      if (this.stopping) return;
      const next = this.fork(rec.slot, 'serving');
      void next.readyWait.then((r) => {
        if (r.ok) this.o.log.info({ worker: rec.slot, pid: next.worker.process.pid }, `worker ${rec.slot} is back (pid ${next.worker.process.pid})`);
      });
    }, delay);
    this.timers.add(t);
  }

  private onMessage(rec: Rec, m: ToPrimary): void {
    if (!m || typeof m !== 'object' || !('sy' in m)) return; // prom-client's and cluster's own
    if (m.sy === 'ready') {
      rec.ready = true;
      rec.listeners = m.listeners;
      rec.settleReady({ ok: true });
    } else if (m.sy === 'applied') {
      const a = this.applying.get(m.id);
      if (a?.pending.delete(rec.worker)) {
        a.results.push({ slot: rec.slot, result: m.result });
        if (a.pending.size === 0) a.done();
      }
    } else if (m.sy === 'ask') {
      const answer = (p: Promise<unknown>) =>
        p.then(
          (value) => send(rec.worker, { sy: 'answer', id: m.id, ok: true, value }),
          (err: unknown) => send(rec.worker, { sy: 'answer', id: m.id, ok: false, error: err instanceof Error ? err.message : String(err) }),
        );
      if (m.what === 'config') void answer(Promise.resolve(rec.role === 'candidate' ? null : (this.loaded ?? null)));
      else if (m.what === 'metrics') void answer(this.aggregator.clusterMetrics());
      else if (m.what === 'reload') void answer(this.reloadAll(m.config));
      else if (m.what === 'upgrade') void answer(this.upgrade(`admin API (worker ${rec.slot})`));
    }
  }

  /** Gives `config` to every serving worker (Yard.reloadHere in each), one reload at a time. */
  reloadAll(config: Config): Promise<ReloadResult> {
    const run = this.reloadChain.then(() => this.applyEverywhere(config));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async applyEverywhere(config: Config): Promise<ReloadResult> {
    if (this.stopping) return { ok: false, error: 'the daemon is stopping' };
    const targets = [...this.recs].filter((r) => r.role === 'serving' && r.ready);
    const id = ++this.applyId;
    const results: { slot: number; result: ReloadResult }[] = [];
    await new Promise<void>((resolve) => {
      const pending = new Set(targets.map((r) => r.worker));
      this.applying.set(id, { pending, results, done: resolve });
      if (pending.size === 0) resolve();
      for (const r of targets) send(r.worker, { sy: 'apply', id, config });
    });
    this.applying.delete(id);
    const failed = results.filter((r) => !r.result.ok).sort((a, b) => a.slot - b.slot);
    if (results.some((r) => r.result.ok)) this.loaded = config;
    if (failed.length === 0) {
      const first = results.find((r) => r.result.ok)?.result as { ok: true; changed: string[] } | undefined;
      return { ok: true, changed: first?.changed ?? [] };
    }
    const errors = failed.map((f) => `worker ${f.slot}: ${(f.result as { error: string }).error}`);
    // Usually every worker refuses alike (the config is the same); say so when they did not.
    const mixed = failed.length < results.length ? ` (${results.length - failed.length} other worker(s) took the new config)` : '';
    const distinct = new Set(failed.map((f) => (f.result as { error: string }).error));
    return { ok: false, error: distinct.size === 1 && failed.length === results.length ? (failed[0]!.result as { error: string }).error : errors.join('; ') + mixed };
  }

  /**
   * SIGUSR2 / POST /upgrade: starts a new set of N workers (from the same command line and config
   * file, so code installed in place is what they run); once every one is ready the old ones
   * drain and exit. If one fails, the new set is killed and the old one goes on.
   */
  upgrade(by: string): Promise<HandOverResult> {
    if (this.rolling) return this.rolling;
    if (this.stopping) return Promise.resolve({ ok: false, error: 'the daemon is stopping' });
    this.o.log.info({ by }, `${by}: upgrading (starting ${this.o.count} new workers; the old ones drain once they are ready)`);
    this.rolling = (async (): Promise<HandOverResult> => {
      const fresh = Array.from({ length: this.o.count }, (_, i) => this.fork(i + 1, 'candidate'));
      const results = await Promise.all(fresh.map((r) => r.readyWait));
      const bad = results.findIndex((r) => !r.ok);
      if (bad >= 0 || this.stopping) {
        for (const r of fresh) if (r.worker.process.exitCode === null) r.worker.process.kill('SIGKILL');
        const error = bad >= 0 ? `new worker ${bad + 1} did not start: ${(results[bad] as { error: string }).error}` : 'the daemon is stopping';
        this.o.log.error({ upgrade: 'failed', error }, `upgrade failed: ${error}; the running workers go on`);
        return { ok: false, error };
      }
      for (const r of this.recs) {
        if (r.role !== 'serving') continue;
        r.role = 'retiring';
        r.worker.process.kill('SIGTERM');
      }
      for (const r of fresh) r.role = 'serving';
      this.loaded = undefined;
      this.delays.clear();
      this.o.log.info({ upgrade: 'done', pids: this.pids() }, `upgrade: new workers ${this.pids().join(', ')} are serving; the old ones drain and exit`);
      return { ok: true, pid: process.pid };
    })().finally(() => {
      this.rolling = undefined;
    });
    return this.rolling;
  }

  private allGone: (() => void) | undefined;

  /** Stops every worker (each drains up to the grace); resolves once all have exited, with whether all exited 0. */
  private stop(): Promise<boolean> {
    this.stopping = true;
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
    let clean = true;
    for (const r of this.recs) r.worker.once('exit', (code) => (clean &&= code === 0));
    return new Promise((resolve) => {
      const giveUp = setTimeout(() => {
        for (const r of this.recs) r.worker.process.kill('SIGKILL');
        clean = false;
      }, this.o.grace + 5_000);
      this.allGone = () => {
        clearTimeout(giveUp);
        resolve(clean);
      };
      if (this.recs.size === 0) this.allGone();
      for (const r of this.recs) r.worker.process.kill('SIGTERM');
    });
  }

  private installSignals(): void {
    const log = this.o.log;
    let received: string | undefined;
    const onStop = (signal: NodeJS.Signals) => {
      if (received) {
        log.warn({ signal }, `${signal} again: stopping the workers at once`);
        for (const r of this.recs) r.worker.process.kill('SIGTERM'); // their second: they exit at once
        process.exit(1);
      }
      received = signal;
      log.info({ signal }, `${signal}: draining ${this.recs.size} workers, up to ${this.o.grace / 1000}s (send it again to exit at once)`);
      this.o.onStopping?.();
      void this.stop().then((clean) => process.exit(clean ? 0 : 1));
    };
    process.on('SIGTERM', onStop);
    process.on('SIGINT', onStop);
    process.on('SIGHUP', () => {
      if (this.stopping) return void log.info({ signal: 'SIGHUP' }, 'SIGHUP: stopping, not reloading');
      // One worker reads the config file and asks for it to be loaded everywhere (reloadAll).
      const one = [...this.recs].find((r) => r.role === 'serving' && r.ready);
      if (!one) return void log.error({ signal: 'SIGHUP' }, 'SIGHUP: no worker is ready to read the config; not reloaded');
      log.info({ signal: 'SIGHUP', worker: one.slot }, `SIGHUP: reloading every worker (worker ${one.slot} reads the config)`);
      send(one.worker, { sy: 'reload-source' });
    });
    process.on('SIGUSR1', () => {
      try {
        this.o.reopen?.();
      } catch (err) {
        log.error({ err }, 'SIGUSR1: cannot reopen the log file');
      }
      for (const r of this.recs) r.worker.process.kill('SIGUSR1');
    });
    process.on('SIGUSR2', () => void this.upgrade('SIGUSR2'));
  }
}

function send(worker: Worker, m: ToWorker): void {
  if (worker.isConnected()) worker.send(m);
}

// ---------------------------------------------------------------------------------------------
// Worker

/** A worker's line to its primary: questions with answers, and what the primary asks of it. */
export class PrimaryLink {
  private nextId = 0;
  private readonly asks = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private yard: Yard | undefined;
  private reloadFromSource: (() => Promise<unknown>) | undefined;

  constructor() {
    process.on('message', (m: ToWorker) => this.onMessage(m));
  }

  ask<T>(what: 'config' | 'metrics' | 'upgrade', timeoutMs?: number): Promise<T>;
  ask<T>(what: 'reload', timeoutMs: number, config: Config): Promise<T>;
  ask<T>(what: 'config' | 'metrics' | 'upgrade' | 'reload', timeoutMs = 10_000, config?: Config): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asks.delete(id);
        reject(new Error(`the primary process did not answer (${what}) within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.asks.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      process.send!((what === 'reload' ? { sy: 'ask', id, what, config: config! } : { sy: 'ask', id, what }) satisfies ToPrimary);
    });
  }

  /** Reports ready with the listeners, and from now on takes the primary's reloads. */
  ready(yard: Yard, reloadFromSource: () => Promise<unknown>): void {
    this.yard = yard;
    this.reloadFromSource = reloadFromSource;
    // prom-client answers the primary's AggregatorRegistry with this registry.
    new AggregatorRegistry();
    AggregatorRegistry.setRegistries([yard.metrics.registry]);
    process.send!({ sy: 'ready', listeners: yard.listeners() } satisfies ToPrimary);
  }

  private onMessage(m: ToWorker): void {
    if (!m || typeof m !== 'object' || !('sy' in m)) return;
    if (m.sy === 'answer') {
      const a = this.asks.get(m.id);
      if (!a) return;
      this.asks.delete(m.id);
      clearTimeout(a.timer);
      if (m.ok) a.resolve(m.value);
      else a.reject(new Error(m.error));
    } else if (m.sy === 'apply') {
      const yard = this.yard;
      const done = (result: ReloadResult): void => void process.send?.({ sy: 'applied', id: m.id, result } satisfies ToPrimary);
      if (!yard) return done({ ok: false, error: 'the worker is still starting' });
      yard.reloadHere(m.config).then(done, (err: unknown) => done({ ok: false, error: err instanceof Error ? err.message : String(err) }));
    } else if (m.sy === 'reload-source') {
      void this.reloadFromSource?.();
    }
  }
}

/** A worker's metrics: its own registry as usual, but the text (the admin /metrics) is every worker's, summed by the primary. */
export class WorkerMetrics extends Metrics {
  constructor(private readonly link: PrimaryLink) {
    super();
  }

  override text(): Promise<string> {
    return this.link.ask<string>('metrics', 10_000);
  }
}

/**
 * A worker's stop: SIGTERM (from the primary) drains and exits 0, a second exits 1 at once.
 * SIGINT is left to the primary (a terminal's Ctrl-C reaches every process of the group; the
 * primary then sends SIGTERM), so that one Ctrl-C does not count twice.
 */
export function workerStopOnSignals(yard: Yard, log: Logger): void {
  let received = false;
  process.on('SIGINT', () => undefined);
  process.on('SIGTERM', () => {
    if (received) process.exit(1);
    received = true;
    yard.stop().then(
      ({ cutOff }) => {
        if (cutOff > 0) log.warn({ cutOff }, `worker stopped; ${cutOff} connection(s) cut off at the deadline`);
        process.exit(0);
      },
      (err: unknown) => {
        log.error({ err }, 'worker: error while stopping');
        process.exit(1);
      },
    );
  });
}

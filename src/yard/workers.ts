import cluster, { type Worker } from 'node:cluster';
import { availableParallelism } from 'node:os';
import { AggregatorRegistry } from 'prom-client';
import type { Logger } from 'pino';
import type { Config } from '../config/schema.ts';
import type { ListenerSummary } from '../handlers/types.ts';
import { Metrics } from '../observe/metrics.ts';
import type { ReloadResult, Yard } from './yard.ts';
import type { HandOverResult } from './upgrade.ts';
import { SystemSampler, type SystemSample } from '../observe/system.ts';
import { WorkerReporter, type ClusterRound, type CollectKind, type TargetChange, type WorkerReport } from '../handlers/admin/cluster.ts';

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
//
// The rest of the admin API the same way (src/handlers/admin/cluster.ts):
//   {ask collect snapshot|listeners|upstreams} -> the primary sends {collect} to every ready
//   worker, waits for each {report} up to COLLECT_TIMEOUT_MS (a worker that does not answer is
//   `stale`, never waited for longer) and answers with every slot's report; snapshots are taken
//   at most once per COLLECT_MIN_INTERVAL_MS whoever asks (several workers' dashboards share them).
//   {ask target drain|enable} -> {set-target} to every ready worker, an answer once every one has
//   acknowledged or TARGET_TIMEOUT_MS passed; logged once, by the primary. The primary remembers
//   the drain and applies it to a worker started later in that slot (after a crash).

/** Set in a worker's environment: its slot, 1..N. */
export const WORKER_ENV = 'SWITCHYARD_WORKER';

const BACKOFF_FIRST_MS = 100;
const BACKOFF_MAX_MS = 10_000;
/** A worker up this long resets its slot's backoff. */
const BACKOFF_RESET_MS = 60_000;
/** How long a worker has to start and report ready. */
const READY_TIMEOUT_MS = 60_000;
/** How long the primary waits for a worker's report before showing it stale. */
export const COLLECT_TIMEOUT_MS = 2_000;
/** Snapshots collected less than this long ago are handed out again rather than collected anew. */
const COLLECT_MIN_INTERVAL_MS = 900;
/** How long a drain or enable waits for every worker to acknowledge it. */
export const TARGET_TIMEOUT_MS = 5_000;
/** Largest report a worker sends (its JSON), so that a collection holds a bounded amount per worker. */
const MAX_REPORT_BYTES = 4 * 1024 * 1024;
/** The primary stops its own system sampling this long after the last snapshot collection. */
const PRIMARY_IDLE_MS = 10_000;

/** What a drain or enable through the primary did in each worker. */
export interface TargetResult {
  readonly upstream: string;
  readonly target: string;
  readonly drained: boolean;
  /** Every slot: `ok`, or why not (`no-upstream`, `no-target`, did not acknowledge in time, not running). */
  readonly workers: readonly { worker: number; pid: number; ok: boolean; error?: string }[];
}

type ToPrimary =
  | { sy: 'ready'; listeners: ListenerSummary[] }
  | { sy: 'ask'; id: number; what: 'config' | 'metrics' | 'upgrade' }
  | { sy: 'ask'; id: number; what: 'reload'; config: Config }
  | { sy: 'ask'; id: number; what: 'collect'; kind: CollectKind }
  | { sy: 'ask'; id: number; what: 'target'; upstream: string; target: string; drained: boolean; by: string }
  | { sy: 'applied'; id: number; result: ReloadResult }
  | { sy: 'report'; id: number; ok: true; value: unknown }
  | { sy: 'report'; id: number; ok: false; error: string };

type ToWorker =
  | { sy: 'answer'; id: number; ok: true; value: unknown }
  | { sy: 'answer'; id: number; ok: false; error: string }
  | { sy: 'apply'; id: number; config: Config }
  | { sy: 'reload-source' }
  | { sy: 'collect'; id: number; kind: CollectKind }
  | { sy: 'set-target'; id: number; upstream: string; target: string; drained: boolean };

/** A question the primary put to several workers, waiting for their reports. */
interface Poll {
  readonly pending: Map<Worker, Rec>;
  readonly got: Map<Rec, { ok: true; value: unknown } | { ok: false; error: string }>;
  done: () => void;
}

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
  /** Times each slot's worker was started again after it died. */
  private readonly restarts = new Map<number, number>();
  private pollId = 0;
  private readonly polls = new Map<number, Poll>();
  /** Collections under way, by kind: a second ask joins the first. */
  private readonly collecting = new Map<CollectKind, Promise<ClusterRound>>();
  /** The last snapshot collection, handed out again for COLLECT_MIN_INTERVAL_MS. */
  private lastSnapshots: ClusterRound | undefined;
  /** Each slot's last snapshot report, shown (marked stale) when its worker misses a collection. */
  private readonly lastGood = new Map<number, { pid: number; at: number; value: unknown }>();
  private readonly system = new SystemSampler();
  private systemIdle: NodeJS.Timeout | undefined;
  /** Drains made through the admin API (upstream\0target -> true), applied to workers started later. */
  private readonly drains = new Map<string, { upstream: string; target: string }>();

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
    for (const poll of this.polls.values()) {
      if (poll.pending.delete(rec.worker)) {
        poll.got.set(rec, { ok: false, error: `it exited (${how})` });
        if (poll.pending.size === 0) poll.done();
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
      this.restarts.set(rec.slot, (this.restarts.get(rec.slot) ?? 0) + 1);
      void next.readyWait.then((r) => {
        if (!r.ok) return;
        this.o.log.info({ worker: rec.slot, pid: next.worker.process.pid }, `worker ${rec.slot} is back (pid ${next.worker.process.pid})`);
        // Targets drained through the admin API stay drained in the new worker too.
        for (const d of this.drains.values()) send(next.worker, { sy: 'set-target', id: 0, upstream: d.upstream, target: d.target, drained: true });
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
    } else if (m.sy === 'report') {
      // A report after its poll timed out (a worker that was held up) finds no poll: dropped.
      const poll = this.polls.get(m.id);
      if (poll?.pending.get(rec.worker) === rec) {
        poll.pending.delete(rec.worker);
        poll.got.set(rec, m.ok ? { ok: true, value: m.value } : { ok: false, error: m.error });
        if (poll.pending.size === 0) poll.done();
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
      else if (m.what === 'collect') void answer(this.collect(m.kind));
      else if (m.what === 'target') void answer(this.setTarget(m.upstream, m.target, m.drained, m.by));
    }
  }

  /**
   * Sends `message(id)` to every serving, ready worker and waits for their reports, at most
   * `timeoutMs`: resolves with what each one answered; those missing did not answer in time.
   */
  private poll(message: (id: number) => ToWorker, timeoutMs: number): Promise<{ recs: Rec[]; got: Poll['got'] }> {
    const recs = [...this.recs].filter((r) => r.role === 'serving' && r.ready);
    const id = ++this.pollId;
    const got: Poll['got'] = new Map();
    return new Promise((resolve) => {
      const timer = setTimeout(() => finish(), timeoutMs);
      const finish = () => {
        clearTimeout(timer);
        this.polls.delete(id);
        resolve({ recs, got });
      };
      const poll: Poll = { pending: new Map(recs.map((r) => [r.worker, r])), got, done: finish };
      this.polls.set(id, poll);
      if (recs.length === 0) return finish();
      for (const r of recs) send(r.worker, message(id));
    });
  }

  /** Every slot's report of `kind` (a slot whose worker is starting, or did not answer in time, says so). */
  collect(kind: CollectKind): Promise<ClusterRound> {
    if (kind === 'snapshot' && this.lastSnapshots && Date.now() - this.lastSnapshots.at < COLLECT_MIN_INTERVAL_MS) return Promise.resolve(this.lastSnapshots);
    const running = this.collecting.get(kind);
    if (running) return running;
    const run = this.collectNow(kind).finally(() => this.collecting.delete(kind));
    this.collecting.set(kind, run);
    return run;
  }

  private async collectNow(kind: CollectKind): Promise<ClusterRound> {
    if (kind === 'snapshot') {
      this.system.start();
      if (this.systemIdle) clearTimeout(this.systemIdle);
      this.systemIdle = setTimeout(() => {
        this.system.stop();
        this.lastGood.clear();
      }, PRIMARY_IDLE_MS);
      this.systemIdle.unref();
    }
    const [{ recs, got }, primary] = await Promise.all([
      this.poll((id) => ({ sy: 'collect', id, kind }), COLLECT_TIMEOUT_MS),
      kind === 'snapshot' ? this.system.sample() : Promise.resolve<SystemSample | undefined>(undefined),
    ]);
    const at = Date.now();
    const workers: WorkerReport[] = [];
    for (let slot = 1; slot <= this.o.count; slot++) {
      const rec = recs.find((r) => r.slot === slot) ?? [...this.recs].find((r) => r.slot === slot && r.role === 'serving');
      const base = { worker: slot, pid: rec?.worker.process.pid ?? 0, restarts: this.restarts.get(slot) ?? 0 };
      const answer = rec && got.get(rec);
      if (answer?.ok) {
        if (kind === 'snapshot') this.lastGood.set(slot, { pid: base.pid, at, value: answer.value });
        workers.push({ ...base, state: 'up', at, value: answer.value });
        continue;
      }
      const asked = rec !== undefined && recs.includes(rec);
      const error = !rec
        ? 'not running (it is being started again)'
        : !asked
          ? 'starting'
          : answer
            ? answer.error
            : `did not answer within ${COLLECT_TIMEOUT_MS / 1000} s`;
      const last = kind === 'snapshot' ? this.lastGood.get(slot) : undefined;
      const stale = asked && last !== undefined && last.pid === base.pid ? { at: last.at, value: last.value } : {};
      workers.push({ ...base, state: asked ? 'stale' : 'starting', error, ...stale });
    }
    const round: ClusterRound = { at, ...(primary ? { primary } : {}), workers };
    if (kind === 'snapshot') this.lastSnapshots = round;
    return round;
  }

  /**
   * POST /upstreams/NAME/targets/T/drain|enable: applied in every serving worker; answers once all
   * acknowledged, or after TARGET_TIMEOUT_MS with those that did not. Logged here, once.
   */
  async setTarget(upstream: string, target: string, drained: boolean, by: string): Promise<TargetResult> {
    const { recs, got } = await this.poll((id) => ({ sy: 'set-target', id, upstream, target, drained }), TARGET_TIMEOUT_MS);
    const workers: TargetResult['workers'][number][] = [];
    for (let slot = 1; slot <= this.o.count; slot++) {
      const rec = recs.find((r) => r.slot === slot);
      if (!rec) {
        const later = [...this.recs].find((r) => r.slot === slot && r.role === 'serving');
        workers.push({ worker: slot, pid: later?.worker.process.pid ?? 0, ok: false, error: 'not running; a worker started in this slot later takes drains made now' });
        continue;
      }
      const a = got.get(rec);
      const pid = rec.worker.process.pid ?? 0;
      if (!a) workers.push({ worker: slot, pid, ok: false, error: `did not acknowledge within ${TARGET_TIMEOUT_MS / 1000} s` });
      else if (!a.ok) workers.push({ worker: slot, pid, ok: false, error: a.error });
      else if (a.value !== 'ok') workers.push({ worker: slot, pid, ok: false, error: a.value as TargetChange });
      else workers.push({ worker: slot, pid, ok: true });
    }
    const applied = workers.filter((w) => w.ok).map((w) => w.worker);
    if (applied.length > 0) {
      const key = `${upstream}\u0000${target}`;
      if (drained) this.drains.set(key, { upstream, target });
      else this.drains.delete(key);
      const missed = workers.filter((w) => !w.ok);
      const what = `admin: target ${drained ? 'drained' : 'enabled'}`;
      if (missed.length === 0) this.o.log.info({ by, upstream, target, workers: applied }, `${what} in every worker (${applied.length})`);
      else this.o.log.warn({ by, upstream, target, workers: applied, missed }, `${what} in workers ${applied.join(', ')}; not in ${missed.map((w) => `${w.worker} (${w.error})`).join(', ')}`);
    }
    return { upstream, target, drained, workers };
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
      // New workers start from the config file, as a new daemon does: drains made before are gone.
      this.drains.clear();
      this.lastGood.clear();
      this.restarts.clear();
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
      // A retiring worker (an upgrade's old set) is draining already: a second SIGTERM would make
      // it exit at once (1), cutting off what it still serves and making this stop unclean.
      for (const r of this.recs) if (r.role !== 'retiring') r.worker.process.kill('SIGTERM');
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

/** This worker's line to its primary (a worker process has one), once serve made it. */
let link: PrimaryLink | undefined;

/**
 * The line to the primary when this process is a worker of one (the admin API then answers for
 * every worker through it); undefined in a daemon of one process.
 */
export function primaryLink(): PrimaryLink | undefined {
  return link;
}

type Question = { what: 'config' | 'metrics' | 'upgrade' } | { what: 'reload'; config: Config } | { what: 'collect'; kind: CollectKind } | { what: 'target'; upstream: string; target: string; drained: boolean; by: string };

/** A worker's line to its primary: questions with answers, and what the primary asks of it. */
export class PrimaryLink {
  private nextId = 0;
  private readonly asks = new Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; timer: NodeJS.Timeout }>();
  private yard: Yard | undefined;
  private reporter: WorkerReporter | undefined;
  private reloadFromSource: (() => Promise<unknown>) | undefined;

  constructor() {
    process.on('message', (m: ToWorker) => this.onMessage(m));
    link = this;
  }

  ask<T>(what: 'config' | 'metrics' | 'upgrade', timeoutMs?: number): Promise<T>;
  ask<T>(what: 'reload', timeoutMs: number, config: Config): Promise<T>;
  ask<T>(what: 'config' | 'metrics' | 'upgrade' | 'reload', timeoutMs = 10_000, config?: Config): Promise<T> {
    return this.question<T>(what === 'reload' ? { what, config: config! } : { what }, timeoutMs);
  }

  /** Every worker's report of `kind`, collected by the primary (a worker that does not answer in time shows stale). */
  collect<T>(kind: CollectKind): Promise<ClusterRound<T>> {
    return this.question<ClusterRound<T>>({ what: 'collect', kind }, COLLECT_TIMEOUT_MS + 5_000);
  }

  /** Drains (or enables) a target in every worker, through the primary. */
  setTarget(upstream: string, target: string, drained: boolean, by: string): Promise<TargetResult> {
    return this.question<TargetResult>({ what: 'target', upstream, target, drained, by }, TARGET_TIMEOUT_MS + 5_000);
  }

  private question<T>(q: Question, timeoutMs: number): Promise<T> {
    const id = ++this.nextId;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.asks.delete(id);
        reject(new Error(`the primary process did not answer (${q.what}) within ${timeoutMs / 1000} s`));
      }, timeoutMs);
      this.asks.set(id, { resolve: resolve as (v: unknown) => void, reject, timer });
      process.send!({ sy: 'ask', id, ...q } satisfies ToPrimary);
    });
  }

  /** Reports ready with the listeners, and from now on takes the primary's reloads. */
  ready(yard: Yard, reloadFromSource: () => Promise<unknown>): void {
    this.yard = yard;
    this.reporter = new WorkerReporter(yard, yard.metrics);
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
    } else if (m.sy === 'collect') {
      void this.report(m.id, async () => {
        if (!this.reporter) throw new Error('the worker is still starting');
        const value = await this.reporter.report(m.kind);
        const bytes = Buffer.byteLength(JSON.stringify(value));
        if (bytes > MAX_REPORT_BYTES) throw new Error(`its ${m.kind} report is ${bytes} bytes, more than the ${MAX_REPORT_BYTES} a report may be`);
        return value;
      });
    } else if (m.sy === 'set-target') {
      void this.report(m.id, async () => {
        if (!this.reporter) throw new Error('the worker is still starting');
        return this.reporter.setTarget(m.upstream, m.target, m.drained);
      });
    }
  }

  private async report(id: number, make: () => Promise<unknown>): Promise<void> {
    let m: ToPrimary;
    try {
      m = { sy: 'report', id, ok: true, value: await make() };
    } catch (err) {
      m = { sy: 'report', id, ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    if (process.connected) process.send!(m);
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

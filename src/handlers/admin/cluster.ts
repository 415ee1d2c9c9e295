import type { YardView } from '../types.ts';
import type { Metrics } from '../../observe/metrics.ts';
import type { SystemSample } from '../../observe/system.ts';
import { VERSION } from '../../version.ts';
import {
  SnapshotBuilder,
  percentiles,
  type BreakerSnapshot,
  type DashboardSnapshot,
  type LatencyWindows,
  type ListenerSnapshot,
  type ProcessSnapshot,
  type RouteSnapshot,
  type TargetSnapshot,
  type TargetState,
  type Traffic,
  type UpstreamSnapshot,
  type WorkerStatus,
} from './dashboard.ts';

// The admin API of a daemon with `workers: N` (docs/operations.md, "Workers"): the answering
// worker asks the primary (src/yard/workers.ts), which asks every worker over the cluster IPC
// channel and hands back each one's report, or why there is none (it did not answer in time,
// it is starting). This file is both ends of that, minus the transport:
//
//   WorkerReporter   in each worker: what it reports (a dashboard snapshot with its latency
//                    histograms, its listeners, its upstream groups' state) and a target drain
//   merge*           in the answering worker: one view from every worker's report (traffic and
//                    rates summed, percentiles from the summed histograms, a target's state the
//                    worst of the workers' with each worker's state beside it)

/** What the primary collects from every worker. */
export type CollectKind = 'snapshot' | 'listeners' | 'upstreams';

/** One slot's answer to a collection. */
export interface WorkerReport<T = unknown> {
  readonly worker: number;
  /** Its worker's pid now; 0 when none runs (a restart is pending). */
  readonly pid: number;
  readonly state: WorkerStatus['state'];
  readonly restarts: number;
  readonly error?: string;
  /** When `value` was taken (ms since the epoch): for a stale snapshot, its last one. */
  readonly at?: number;
  readonly value?: T;
}

/** What the primary hands back: every slot's report, and the primary's own system numbers (snapshots only). */
export interface ClusterRound<T = unknown> {
  readonly at: number;
  readonly primary?: SystemSample;
  readonly workers: readonly WorkerReport<T>[];
}

/** A worker's report for the dashboard. */
export interface WorkerSnapshot {
  readonly snapshot: DashboardSnapshot;
  readonly windows: LatencyWindows;
}

export interface WorkerListener {
  readonly name: string;
  readonly protocol: string;
  readonly url: string;
  readonly handlers: readonly string[];
  readonly tryIt: string;
  readonly inFlight: number;
}

/** What a drain or enable did in one worker. */
export type TargetChange = 'ok' | 'no-upstream' | 'no-target';

/** A worker stops sampling (the event-loop monitor) this long after the last snapshot asked of it. */
const IDLE_MS = 10_000;

/** In a worker: answers the primary's collections and target changes from its yard. */
export class WorkerReporter {
  private readonly builder: SnapshotBuilder;
  private idle: NodeJS.Timeout | undefined;
  private started = false;

  constructor(
    private readonly yard: YardView,
    metrics: Metrics,
  ) {
    this.builder = new SnapshotBuilder(yard, metrics);
  }

  async report(kind: CollectKind): Promise<WorkerSnapshot | WorkerListener[] | object[]> {
    if (kind === 'listeners') {
      const inFlight = this.yard.inFlightByListener();
      return this.yard.listeners().map((l) => ({ ...l, inFlight: inFlight[l.name] ?? 0 }));
    }
    if (kind === 'upstreams') return this.yard.upstreams().map((g) => g.state());
    // Sampling runs while someone watches: stopped again once no snapshot was asked for a while.
    if (!this.started) {
      this.builder.start();
      this.started = true;
    }
    if (this.idle) clearTimeout(this.idle);
    this.idle = setTimeout(() => this.stop(), IDLE_MS);
    this.idle.unref();
    return this.builder.snapshotWithWindows();
  }

  setTarget(upstream: string, target: string, drained: boolean): TargetChange {
    const group = this.yard.upstreams().find((g) => g.name === upstream);
    if (!group) return 'no-upstream';
    return group.setDrained(target, drained) ? 'ok' : 'no-target';
  }

  stop(): void {
    if (this.idle) clearTimeout(this.idle);
    this.idle = undefined;
    if (this.started) this.builder.stop();
    this.started = false;
  }
}

// ---------------------------------------------------------------------------------------------
// Merging

const statusOf = (r: WorkerReport): WorkerStatus => ({ worker: r.worker, pid: r.pid, state: r.state, restarts: r.restarts, ...(r.error ? { error: r.error } : {}) });

/** Adds rates: null only when no worker has one yet. */
function addRate(a: number | null, b: number | null): number | null {
  if (a === null) return b;
  if (b === null) return a;
  return Math.round((a + b) * 100) / 100;
}

/** Sums cumulative bucket counts of the same key across workers (same buckets everywhere: one config). */
class WindowSum {
  private bounds: number[] = [];
  private readonly counts = new Map<string, number[]>();

  add(w: LatencyWindows): void {
    if (this.bounds.length === 0) this.bounds = w.bounds;
    for (const [key, counts] of Object.entries(w.counts)) {
      const sum = this.counts.get(key);
      if (!sum) this.counts.set(key, [...counts]);
      else for (let i = 0; i < sum.length && i < counts.length; i++) sum[i] += counts[i];
    }
  }

  latency(key: string): Traffic['latencySeconds'] {
    const counts = this.counts.get(key);
    return counts ? percentiles(this.bounds, counts) : null;
  }
}

function addTraffic(a: Traffic | undefined, b: Traffic): Traffic {
  if (!a) return b;
  return {
    requests: a.requests + b.requests,
    requestsPerSecond: addRate(a.requestsPerSecond, b.requestsPerSecond),
    errorsPerSecond: addRate(a.errorsPerSecond, b.errorsPerSecond),
    latencySeconds: null,
  };
}

const TARGET_BADNESS: Record<TargetState, number> = { up: 0, drained: 1, ejected: 2, down: 3 };
const BREAKER_BADNESS: Record<BreakerSnapshot['state'], number> = { closed: 0, 'half-open': 1, open: 2 };

/**
 * One dashboard snapshot of every worker: the primary and each worker in `processes` (a stale
 * worker with its last numbers), `workers` with every slot's state, and traffic, listeners and
 * upstreams over the workers that answered (`up`): counts and rates summed, percentiles from
 * their histograms summed, a target's or breaker's state the worst of theirs with each one's beside it.
 */
export function mergeSnapshots(round: ClusterRound<WorkerSnapshot>): DashboardSnapshot {
  const fresh = round.workers.filter((w): w is WorkerReport<WorkerSnapshot> & { value: WorkerSnapshot } => w.state === 'up' && w.value !== undefined);
  const windows = new WindowSum();
  for (const w of fresh) windows.add(w.value.windows);

  const processes: ProcessSnapshot[] = [];
  if (round.primary) processes.push({ role: 'primary', ...round.primary });
  for (const w of round.workers) {
    const p = w.value?.snapshot.processes[0];
    if (!p || w.pid === 0 || p.pid !== w.pid) continue; // nothing yet from the worker now in the slot
    const { role: _role, ...system } = p;
    processes.push({
      role: 'worker',
      ...system,
      worker: w.worker,
      restarts: w.restarts,
      state: w.state === 'up' ? 'up' : 'stale',
      ...(w.state === 'up' ? {} : { sampleAgeSeconds: Math.max(0, Math.round((round.at - (w.at ?? round.at)) / 100) / 10) }),
    });
  }

  // Listeners and routes by name, in the order the first worker lists them.
  const listeners = new Map<string, { l: ListenerSnapshot; routes: Map<string, RouteSnapshot> }>();
  let totals: DashboardSnapshot['totals'] | undefined;
  for (const { value } of fresh) {
    const s = value.snapshot;
    const t = s.totals;
    totals = totals
      ? { ...addTraffic(totals, t), activeConnections: totals.activeConnections + t.activeConnections, inFlight: totals.inFlight + t.inFlight }
      : { ...t };
    for (const l of s.listeners) {
      const had = listeners.get(l.name);
      if (!had) {
        listeners.set(l.name, { l, routes: new Map(l.routes.map((r) => [r.name, r])) });
        continue;
      }
      const routes = had.routes;
      for (const r of l.routes) {
        const prev = routes.get(r.name);
        routes.set(r.name, prev ? { ...prev, traffic: addTraffic(prev.traffic, r.traffic) } : r);
      }
      had.l = {
        ...had.l,
        inFlight: had.l.inFlight + l.inFlight,
        activeConnections: had.l.activeConnections + l.activeConnections,
        connectionsPerSecond: addRate(had.l.connectionsPerSecond, l.connectionsPerSecond),
        bytesInPerSecond: addRate(had.l.bytesInPerSecond, l.bytesInPerSecond),
        bytesOutPerSecond: addRate(had.l.bytesOutPerSecond, l.bytesOutPerSecond),
        traffic: addTraffic(had.l.traffic, l.traffic),
      };
    }
  }
  const withLatency = (t: Traffic, key: string): Traffic => ({ ...t, latencySeconds: windows.latency(key) });
  const mergedListeners: ListenerSnapshot[] = [...listeners.values()].map(({ l, routes }) => ({
    ...l,
    traffic: withLatency(l.traffic, l.name),
    routes: [...routes.values()].map((r) => ({ ...r, traffic: withLatency(r.traffic, `${l.name}\u0000${r.name}`) })),
  }));

  // Upstream groups and their targets by name.
  const groups = new Map<string, { u: UpstreamSnapshot; breakers: { worker: number; state: BreakerSnapshot['state'] }[]; targets: Map<string, TargetSnapshot> }>();
  for (const w of fresh) {
    for (const u of w.value.snapshot.upstreams) {
      const mine = u.targets.map((t) => ({ ...t, workers: [{ worker: w.worker, state: t.state }] }));
      const had = groups.get(u.name);
      if (!had) {
        groups.set(u.name, { u, breakers: u.breaker ? [{ worker: w.worker, state: u.breaker.state }] : [], targets: new Map(mine.map((t) => [t.id, t])) });
        continue;
      }
      if (u.breaker) had.breakers.push({ worker: w.worker, state: u.breaker.state });
      const worst = !had.u.breaker || (u.breaker && BREAKER_BADNESS[u.breaker.state] > BREAKER_BADNESS[had.u.breaker.state]) ? u.breaker : had.u.breaker;
      had.u = {
        ...had.u,
        breaker: worst,
        retryBudget: { requests: had.u.retryBudget.requests + u.retryBudget.requests, retries: had.u.retryBudget.retries + u.retryBudget.retries, allowed: had.u.retryBudget.allowed + u.retryBudget.allowed },
        waiting: had.u.waiting + u.waiting,
      };
      for (const t of mine) {
        const prev = had.targets.get(t.id);
        if (!prev) {
          had.targets.set(t.id, t);
          continue;
        }
        const state = TARGET_BADNESS[t.state] > TARGET_BADNESS[prev.state] ? t.state : prev.state;
        had.targets.set(t.id, {
          ...prev,
          state,
          healthy: prev.healthy && t.healthy,
          ejected: prev.ejected || t.ejected,
          ejectedForMs: Math.max(prev.ejectedForMs, t.ejectedForMs),
          ejections: prev.ejections + t.ejections,
          drained: prev.drained || t.drained,
          inFlight: prev.inFlight + t.inFlight,
          requestsPerSecond: addRate(prev.requestsPerSecond, t.requestsPerSecond),
          failuresPerSecond: addRate(prev.failuresPerSecond, t.failuresPerSecond),
          pool: prev.pool && t.pool ? { connected: prev.pool.connected + t.pool.connected, pending: prev.pool.pending + t.pool.pending, running: prev.pool.running + t.pool.running } : (prev.pool ?? t.pool),
          workers: [...(prev.workers ?? []), ...(t.workers ?? [])],
        });
      }
    }
  }
  const upstreams: UpstreamSnapshot[] = [...groups.values()].map(({ u, breakers, targets }) => ({ ...u, breakers, targets: [...targets.values()] }));

  // Chat rooms live in Redis with workers (the config insists): every worker sees the same list.
  const roomsFrom = fresh[0]?.value.snapshot;
  const intervals = fresh.map((w) => w.value.snapshot.intervalSeconds).filter((x): x is number => x !== null);
  return {
    version: VERSION,
    at: round.at,
    intervalSeconds: intervals.length > 0 ? Math.max(...intervals) : null,
    windowSeconds: fresh.length > 0 ? Math.min(...fresh.map((w) => w.value.snapshot.windowSeconds)) : 0,
    processes,
    totals: totals
      ? { ...totals, latencySeconds: windows.latency('') }
      : { requests: 0, requestsPerSecond: null, errorsPerSecond: null, latencySeconds: null, activeConnections: 0, inFlight: 0 },
    listeners: mergedListeners,
    upstreams,
    rooms: roomsFrom ? roomsFrom.rooms : [],
    roomsTruncated: roomsFrom?.roomsTruncated ?? false,
    ...(roomsFrom?.roomsError === undefined ? {} : { roomsError: roomsFrom.roomsError }),
    workers: round.workers.map(statusOf),
  };
}

/** GET /listeners with workers: each listener with its in-flight work summed, and per worker. */
export function mergeListeners(round: ClusterRound<WorkerListener[]>): object {
  const out = new Map<string, WorkerListener & { workers: { worker: number; pid: number; inFlight: number }[] }>();
  for (const w of round.workers) {
    if (w.state !== 'up' || !w.value) continue;
    for (const l of w.value) {
      const had = out.get(l.name);
      if (had) {
        had.workers.push({ worker: w.worker, pid: w.pid, inFlight: l.inFlight });
        out.set(l.name, { ...had, inFlight: had.inFlight + l.inFlight });
      } else {
        out.set(l.name, { ...l, workers: [{ worker: w.worker, pid: w.pid, inFlight: l.inFlight }] });
      }
    }
  }
  return { listeners: [...out.values()], workers: round.workers.map(statusOf) };
}

/** A target as UpstreamGroup.state() shows it (the fields counted across workers). */
interface StateTarget {
  id: string;
  healthy: boolean;
  drained: boolean;
  ejected: boolean;
}

/**
 * GET /upstreams with workers: `upstreams` as a single daemon answers it (the groups of the worker
 * that answered), each target with `workers` added (in how many workers it is healthy, drained,
 * ejected, out of how many answered), and `workers`: every slot with its own groups' state.
 */
export function mergeUpstreams(own: object[], round: ClusterRound<object[]>): object {
  const answered = round.workers.filter((w) => w.state === 'up' && w.value);
  const count = new Map<string, { of: number; healthy: number; drained: number; ejected: number }>();
  for (const w of answered) {
    for (const g of w.value as { name: string; targets: StateTarget[] }[]) {
      for (const t of g.targets) {
        const key = `${g.name}\u0000${t.id}`;
        const c = count.get(key) ?? { of: 0, healthy: 0, drained: 0, ejected: 0 };
        c.of++;
        if (t.healthy) c.healthy++;
        if (t.drained) c.drained++;
        if (t.ejected) c.ejected++;
        count.set(key, c);
      }
    }
  }
  const upstreams = (own as { name: string; targets: StateTarget[] }[]).map((g) => ({
    ...g,
    targets: g.targets.map((t) => ({ ...t, workers: count.get(`${g.name}\u0000${t.id}`) ?? { of: 0, healthy: 0, drained: 0, ejected: 0 } })),
  }));
  return {
    upstreams,
    workers: round.workers.map((w) => ({ ...statusOf(w), ...(w.state === 'up' && w.value ? { upstreams: w.value } : {}) })),
  };
}

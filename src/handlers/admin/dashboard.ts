import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import type { Logger } from 'pino';
import type { HttpContext, HttpResponse, YardView } from '../types.ts';
import type { Metrics } from '../../observe/metrics.ts';
import { SystemSampler, type SystemSample } from '../../observe/system.ts';
import { replyError } from '../http/reply.ts';
import { VERSION } from '../../version.ts';

// The dashboard at the admin listener's `/` (docs/operations.md, "Dashboard"):
//
//   DashboardPage     the page: dashboard/index.html with dashboard.css and dashboard.js put
//                     inline, read once at provision; every answer gets a fresh CSP nonce
//   SnapshotBuilder   one JSON snapshot of the yard: listeners and routes with request and error
//                     rates (counter deltas between snapshots) and latency percentiles (the
//                     duration histogram's buckets over a sliding window), upstream targets,
//                     connections, chat rooms, and the process with CPU, memory, event-loop
//                     delay, open fds and uptime (with workers, cluster.ts puts every worker's
//                     snapshot together into one of the same shape)
//   SnapshotFeed      GET /events: server-sent events, a snapshot a second to each subscriber;
//                     at most `maxSubscribers` (503 beyond), a subscriber whose connection does
//                     not take the frames is skipped and then dropped (never buffered for), and
//                     every subscriber is let go when the yard stops or reloads
//
// Snapshots are only taken while someone subscribes: an unwatched daemon pays nothing.

// ---------------------------------------------------------------------------------------------
// Content negotiation

/**
 * Whether a request's Accept asks for the HTML page rather than JSON: text/html (or XHTML) named
 * with a higher quality than application/json. Wildcards count for neither, so curl's `*\/*`, no
 * Accept at all, and a tie get JSON (what the admin API's `/` answered before the dashboard).
 */
export function prefersHtml(accept: string | string[] | undefined): boolean {
  if (accept === undefined) return false;
  let html = 0;
  let json = 0;
  for (const part of (Array.isArray(accept) ? accept.join(',') : accept).split(',')) {
    const [type, ...params] = part.split(';');
    let q = 1;
    for (const p of params) {
      const eq = p.indexOf('=');
      if (eq !== -1 && p.slice(0, eq).trim().toLowerCase() === 'q') {
        const v = Number(p.slice(eq + 1).trim());
        q = Number.isFinite(v) ? Math.min(1, Math.max(0, v)) : 0;
      }
    }
    const t = type.trim().toLowerCase();
    if (t === 'text/html' || t === 'application/xhtml+xml') html = Math.max(html, q);
    else if (t === 'application/json') json = Math.max(json, q);
  }
  return html > 0 && html > json;
}

// ---------------------------------------------------------------------------------------------
// The page

/**
 * Where the page's files are: next to this module (running from src/), or in the package's
 * src/ when this module runs from dist/ (the build compiles TypeScript only; package.json ships
 * src/ too).
 */
export function dashboardAssetDirs(): string[] {
  return [fileURLToPath(new URL('./dashboard/', import.meta.url)), fileURLToPath(new URL('../../../src/handlers/admin/dashboard/', import.meta.url))];
}

const NONCE = '{{nonce}}';

export class DashboardPage {
  /** The page split where each response's nonce goes in; undefined when its files could not be read. */
  private readonly parts: string[] | undefined;
  /** Why there is no page (the files looked for), when there is none. */
  readonly missing: string | undefined;

  constructor(dirs: readonly string[] = dashboardAssetDirs()) {
    const tried: string[] = [];
    for (const dir of dirs) {
      try {
        const html = readFileSync(`${dir}index.html`, 'utf8');
        const css = readFileSync(`${dir}dashboard.css`, 'utf8');
        const js = readFileSync(`${dir}dashboard.js`, 'utf8');
        // Put inline as they are: they must not end their own element early.
        if (/<\/style/i.test(css) || /<\/script/i.test(js)) throw new Error('an asset closes its own element');
        this.parts = html.split('{{css}}').join(css).split('{{js}}').join(js).split(NONCE);
        return;
      } catch (err) {
        tried.push(`${dir} (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      }
    }
    this.missing = `the dashboard's files (index.html, dashboard.css, dashboard.js) were not found in ${tried.join(', ')}`;
  }

  /** The page with `nonce` on its inline style and script. */
  render(nonce: string): Buffer | undefined {
    return this.parts ? Buffer.from(this.parts.join(nonce)) : undefined;
  }
}

/** The policy the page is served with: nothing but its own nonce'd style and script, and /events. */
export function dashboardCsp(nonce: string): string {
  return [
    "default-src 'none'",
    `script-src 'nonce-${nonce}'`,
    `style-src 'nonce-${nonce}'`,
    "connect-src 'self'",
    "img-src 'self' data:",
    "base-uri 'none'",
    "form-action 'none'",
    "frame-ancestors 'none'",
  ].join('; ');
}

/** GET or HEAD / from a browser: the page, uncacheable, under a strict CSP. */
export function serveDashboardPage(ctx: HttpContext, page: DashboardPage): void {
  const { req, res } = ctx;
  const nonce = randomBytes(16).toString('base64');
  const body = page.render(nonce);
  if (!body) return replyError(res, 503, `dashboard unavailable: ${page.missing ?? 'no page'}`, { headers: { 'cache-control': 'no-store', vary: 'Accept' } });
  res.writeHead(200, {
    'content-type': 'text/html; charset=utf-8',
    'content-length': body.length,
    'cache-control': 'no-store',
    vary: 'Accept',
    'content-security-policy': dashboardCsp(nonce),
    'x-content-type-options': 'nosniff',
    'x-frame-options': 'DENY',
    'referrer-policy': 'no-referrer',
    'cross-origin-opener-policy': 'same-origin',
    'cross-origin-resource-policy': 'same-origin',
  });
  res.end(req.method === 'HEAD' ? undefined : body);
}

// ---------------------------------------------------------------------------------------------
// The snapshot

/** Requests through a listener, a route or the whole yard. */
export interface Traffic {
  /** Requests counted since the daemon started. */
  readonly requests: number;
  /** Per second since the previous snapshot; null in the first one. */
  readonly requestsPerSecond: number | null;
  /** Errors per second (HTTP 5xx; for tcp/udp/file-tcp any status but `ok`); null in the first snapshot. */
  readonly errorsPerSecond: number | null;
  /** Latency percentiles in seconds over the window (`windowSeconds`); null when nothing finished in it. */
  readonly latencySeconds: { readonly p50: number; readonly p90: number; readonly p99: number } | null;
}

export interface RouteSnapshot {
  /** The route's name in logs and metrics (its `name`, or its path pattern). */
  readonly name: string;
  readonly path?: string;
  readonly host?: string | string[];
  readonly method?: string | string[];
  readonly handler: string;
  /** The requests no route took (metrics' route `-`): refused before routing, or matching none. */
  readonly unrouted?: true;
  readonly traffic: Traffic;
}

export interface ListenerSnapshot {
  readonly name: string;
  readonly protocol: string;
  readonly url: string;
  readonly handlers: readonly string[];
  /** Requests and connections being served now. */
  readonly inFlight: number;
  readonly activeConnections: number;
  readonly connectionsPerSecond: number | null;
  readonly bytesInPerSecond: number | null;
  readonly bytesOutPerSecond: number | null;
  /** Everything the listener counted, requests no route took included. */
  readonly traffic: Traffic;
  readonly routes: readonly RouteSnapshot[];
}

export type TargetState = 'up' | 'down' | 'ejected' | 'drained';

export interface TargetSnapshot {
  readonly id: string;
  /** down: failing its health checks; ejected: by outlier detection; drained: by an operator. */
  readonly state: TargetState;
  readonly healthy: boolean;
  readonly ejected: boolean;
  readonly ejectedForMs: number;
  readonly ejections: number;
  readonly drained: boolean;
  readonly weight: number;
  readonly inFlight: number;
  readonly requestsPerSecond: number | null;
  readonly failuresPerSecond: number | null;
  readonly pool: { connected: number; pending: number; running: number } | null;
  /** With workers: the target's state in each worker (the `state` above is the worst of them). */
  readonly workers?: readonly { worker: number; state: TargetState }[];
}

export interface BreakerSnapshot {
  readonly state: 'closed' | 'half-open' | 'open';
  readonly requests: number;
  readonly failures: number;
  readonly inFlight: number;
  readonly retryAfterMs: number;
}

export interface UpstreamSnapshot {
  readonly name: string;
  readonly kind: string;
  readonly balance: string;
  readonly breaker: BreakerSnapshot | null;
  /** With workers: each worker's breaker state (the `breaker` above is the worst of them). */
  readonly breakers?: readonly { worker: number; state: BreakerSnapshot['state'] }[];
  readonly retryBudget: { requests: number; retries: number; allowed: number };
  readonly waiting: number;
  readonly targets: readonly TargetSnapshot[];
}

/**
 * One process of the daemon: `main` for a daemon of one process; with `workers: N`, the `primary`
 * and one `worker` per slot that has reported at least once (cluster.ts).
 */
export interface ProcessSnapshot extends SystemSample {
  readonly role: 'main' | 'primary' | 'worker';
  /** A worker's slot, 1..N. */
  readonly worker?: number;
  /** How many times the primary started this slot's worker again after it died. */
  readonly restarts?: number;
  /** `stale`: the worker did not answer the last collection in time; its numbers are its last ones. */
  readonly state?: 'up' | 'stale';
  /** How old a stale worker's numbers are. */
  readonly sampleAgeSeconds?: number;
}

/** With `workers: N`: each slot, whether its worker answered the last collection. */
export interface WorkerStatus {
  readonly worker: number;
  /** The slot's worker now (0 when none is running: between a crash and the restart). */
  readonly pid: number;
  /** up: answered; stale: did not answer in time; starting: not ready yet, or being restarted. */
  readonly state: 'up' | 'stale' | 'starting';
  readonly restarts: number;
  /** Why it is not `up`. */
  readonly error?: string;
}

export interface DashboardSnapshot {
  readonly version: string;
  /** When it was taken (ms since the epoch). */
  readonly at: number;
  /** Seconds since the previous snapshot (what the rates are over); null in the first. */
  readonly intervalSeconds: number | null;
  /** Seconds of history the latency percentiles cover (up to the configured window). */
  readonly windowSeconds: number;
  readonly processes: readonly ProcessSnapshot[];
  readonly totals: Traffic & { readonly activeConnections: number; readonly inFlight: number };
  readonly listeners: readonly ListenerSnapshot[];
  readonly upstreams: readonly UpstreamSnapshot[];
  /** Chat rooms with someone in them or a history; null when the state backend did not answer. */
  readonly rooms: readonly { room: string; members: number }[] | null;
  readonly roomsTruncated: boolean;
  readonly roomsError?: string;
  /**
   * With `workers: N`: every slot and whether it answered. Traffic, listeners and upstreams are
   * then the sum (or, for states, the worst) over the workers whose state is `up`.
   */
  readonly workers?: readonly WorkerStatus[];
}

/** The shape UpstreamGroup.state() returns (it is typed `object` there). */
interface GroupState {
  name: string;
  kind: string;
  balance: string;
  breaker: UpstreamSnapshot['breaker'];
  waiting: number;
  retryBudget: UpstreamSnapshot['retryBudget'];
  targets: {
    id: string;
    weight: number;
    healthy: boolean;
    drained: boolean;
    ejected: boolean;
    ejectedForMs: number;
    ejections: number;
    inFlight: number;
    requests?: { success: number; connectFailure: number; failure: number };
    pool?: { connected: number; pending: number; running: number };
  }[];
}

interface Sample {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

/** A status counted as an error: HTTP 5xx, or any word but `ok` from tcp/udp/file-tcp handlers. */
export function isErrorStatus(status: string): boolean {
  const n = Number(status);
  return Number.isInteger(n) ? n >= 500 : status !== 'ok';
}

/**
 * The value at quantile `q` of a histogram given as cumulative counts per bucket (the last one
 * +Inf), interpolating linearly inside the bucket as Prometheus' histogram_quantile does; the
 * highest finite bound when it falls in +Inf. Null when the histogram is empty.
 */
export function quantile(q: number, bounds: readonly number[], cumulative: ArrayLike<number>): number | null {
  const total = cumulative[cumulative.length - 1];
  if (!(total > 0)) return null;
  const rank = q * total;
  for (let i = 0; i < cumulative.length; i++) {
    if (cumulative[i] < rank) continue;
    if (i >= bounds.length) return bounds[bounds.length - 1] ?? null;
    const below = i === 0 ? 0 : cumulative[i - 1];
    const lower = i === 0 ? 0 : bounds[i - 1];
    const inBucket = cumulative[i] - below;
    if (inBucket <= 0) return bounds[i];
    return lower + ((bounds[i] - lower) * (rank - below)) / inBucket;
  }
  return bounds[bounds.length - 1] ?? null;
}

const ALL = '\u0000all';

/**
 * The duration histogram over a snapshot's latency window: `bounds` (the buckets' upper bounds,
 * +Inf left out) and, per key, the cumulative count per bucket (+Inf last). Keys: `''` for
 * everything, a listener's name, or `listener\u0000route`. Keys with nothing in the window are left out.
 */
export interface LatencyWindows {
  readonly bounds: number[];
  readonly counts: Record<string, number[]>;
}

export interface SnapshotBuilderOptions {
  /** Seconds of history for the latency percentiles (counted in snapshots). Default 10. */
  windowSnapshots?: number;
  /** Rooms listed at most. Default 100. */
  roomsLimit?: number;
}

/**
 * Builds snapshots of a yard. Rates come from the difference between this snapshot's counters
 * and the previous one's; latency percentiles from the difference between the duration
 * histogram now and `windowSnapshots` snapshots ago. Between start() and stop() only.
 */
export class SnapshotBuilder {
  private readonly system = new SystemSampler();
  private prev: { at: number; counters: Map<string, number> } | undefined;
  /** Cumulative duration histograms of the last snapshots, oldest first (per listener\0route, per listener, ALL). */
  private ring: { at: number; hist: Map<string, Float64Array> }[] = [];
  private readonly window: number;
  private readonly roomsLimit: number;

  constructor(
    private readonly yard: YardView,
    private readonly metrics: Metrics,
    options: SnapshotBuilderOptions = {},
  ) {
    this.window = Math.max(1, options.windowSnapshots ?? 10);
    this.roomsLimit = Math.max(1, options.roomsLimit ?? 100);
  }

  start(): void {
    this.system.start();
  }

  stop(): void {
    this.system.stop();
    this.prev = undefined;
    this.ring = [];
  }

  async snapshot(): Promise<DashboardSnapshot> {
    return (await this.take(false)).snapshot;
  }

  /**
   * A snapshot with the duration histograms it took its percentiles from (bucket counts over the
   * window, per key): what a worker reports to its primary, so that percentiles of all workers
   * are computed from their buckets added up rather than from percentiles (which do not add).
   */
  snapshotWithWindows(): Promise<{ snapshot: DashboardSnapshot; windows: LatencyWindows }> {
    return this.take(true) as Promise<{ snapshot: DashboardSnapshot; windows: LatencyWindows }>;
  }

  private async take(withWindows: boolean): Promise<{ snapshot: DashboardSnapshot; windows?: LatencyWindows }> {
    const at = Date.now();
    const prev = this.prev;
    const dt = prev ? Math.max(0.001, (at - prev.at) / 1000) : 0;
    const counters = new Map<string, number>();
    /** Records a counter's value; its rate since the previous snapshot (a new series started at 0). */
    const rate = (key: string, value: number): number | null => {
      counters.set(key, value);
      if (!prev) return null;
      return round(Math.max(0, value - (prev.counters.get(key) ?? 0)) / dt, 2);
    };
    const sum = (m: Map<string, number>, key: string, v: number) => m.set(key, (m.get(key) ?? 0) + v);

    // Requests and errors, per listener\0route, per listener and in all.
    const requests = new Map<string, number>();
    const errors = new Map<string, number>();
    for (const s of (this.metrics.totalRequests.get().values as Sample[])) {
      const l = String(s.labels.listener);
      const r = `${l}\u0000${String(s.labels.route)}`;
      const error = isErrorStatus(String(s.labels.status));
      for (const key of [r, l, ALL]) {
        sum(requests, key, s.value);
        if (error) sum(errors, key, s.value);
      }
    }

    // The duration histogram, cumulative per bucket, summed the same way.
    const hist = new Map<string, Float64Array>();
    // Every series has the same buckets, in order, +Inf last: the first one's bounds are everyone's.
    const bounds: number[] = [];
    const series = new Map<string, number[]>();
    for (const s of (this.metrics.requestDuration.get().values as Sample[])) {
      if (!s.metricName?.endsWith('_bucket')) continue;
      const key = `${String(s.labels.listener)}\u0000${String(s.labels.route)}`;
      let counts = series.get(key);
      if (!counts) series.set(key, (counts = []));
      counts.push(s.value);
      if (series.size === 1 && s.labels.le !== '+Inf') bounds.push(Number(s.labels.le));
    }
    for (const [key, counts] of series) {
      const l = key.slice(0, key.indexOf('\u0000'));
      for (const k of [key, l, ALL]) {
        let h = hist.get(k);
        if (!h) hist.set(k, (h = new Float64Array(counts.length)));
        for (let i = 0; i < counts.length && i < h.length; i++) h[i] += counts[i];
      }
    }
    this.ring.push({ at, hist });
    if (this.ring.length > this.window + 1) this.ring.shift();
    const oldest = this.ring[0];
    const windowSeconds = round((at - oldest.at) / 1000, 1);
    const windows: LatencyWindows | undefined = withWindows ? { bounds, counts: {} } : undefined;
    const latency = (key: string): Traffic['latencySeconds'] => {
      const now = hist.get(key);
      if (!now || oldest === this.ring[this.ring.length - 1]) return null;
      const then = oldest.hist.get(key);
      const delta = new Float64Array(now.length);
      for (let i = 0; i < now.length; i++) delta[i] = Math.max(0, now[i] - (then?.[i] ?? 0));
      if (windows && delta[delta.length - 1] > 0) windows.counts[key === ALL ? '' : key] = Array.from(delta);
      return percentiles(bounds, delta);
    };
    const traffic = (key: string): Traffic => ({
      requests: requests.get(key) ?? 0,
      requestsPerSecond: rate(`req\u0000${key}`, requests.get(key) ?? 0),
      errorsPerSecond: rate(`err\u0000${key}`, errors.get(key) ?? 0),
      latencySeconds: latency(key),
    });

    const byListener = (samples: Sample[]) => {
      const m = new Map<string, number>();
      for (const s of samples) sum(m, String(s.labels.listener), s.value);
      return m;
    };
    const active = byListener(this.metrics.activeConnections.get().values as Sample[]);
    const accepted = byListener(this.metrics.totalConnections.get().values as Sample[]);
    const sent = byListener(this.metrics.totalBytesSent.get().values as Sample[]);
    const received = byListener(this.metrics.totalBytesReceived.get().values as Sample[]);
    const inFlight = this.yard.inFlightByListener();
    const config = this.yard.config;

    const listeners: ListenerSnapshot[] = this.yard.listeners().map((l) => {
      const c = config.listeners.find((x) => x.name === l.name);
      const routes: RouteSnapshot[] = [];
      if (c?.protocol === 'http') {
        for (const r of c.routes) {
          const name = r.name ?? r.match.path;
          routes.push({ name, path: r.match.path, host: r.match.host, method: r.match.method, handler: r.handler.type, traffic: traffic(`${l.name}\u0000${name}`) });
        }
        // Requests no route took (404, 405, 400s before routing) count under route `-`.
        const unrouted = `${l.name}\u0000-`;
        if ((requests.get(unrouted) ?? 0) > 0) routes.push({ name: '-', handler: '', unrouted: true, traffic: traffic(unrouted) });
      } else if (c) {
        // Stream and datagram listeners count under their handler's type.
        routes.push({ name: c.handler.type, handler: c.handler.type, traffic: traffic(`${l.name}\u0000${c.handler.type}`) });
      }
      return {
        name: l.name,
        protocol: l.protocol,
        url: l.url,
        handlers: l.handlers,
        inFlight: inFlight[l.name] ?? 0,
        activeConnections: active.get(l.name) ?? 0,
        connectionsPerSecond: rate(`conn\u0000${l.name}`, accepted.get(l.name) ?? 0),
        bytesInPerSecond: rate(`in\u0000${l.name}`, received.get(l.name) ?? 0),
        bytesOutPerSecond: rate(`out\u0000${l.name}`, sent.get(l.name) ?? 0),
        traffic: traffic(l.name),
        routes,
      };
    });

    const upstreams: UpstreamSnapshot[] = this.yard.upstreams().map((g) => {
      const st = g.state() as GroupState;
      return {
        name: st.name,
        kind: st.kind,
        balance: st.balance,
        breaker: st.breaker,
        retryBudget: st.retryBudget,
        waiting: st.waiting,
        targets: st.targets.map((t) => {
          const key = `${st.name}\u0000${t.id}`;
          const ok = t.requests?.success ?? 0;
          const failed = (t.requests?.connectFailure ?? 0) + (t.requests?.failure ?? 0);
          return {
            id: t.id,
            state: !t.healthy ? 'down' : t.ejected ? 'ejected' : t.drained ? 'drained' : 'up',
            healthy: t.healthy,
            ejected: t.ejected,
            ejectedForMs: t.ejectedForMs,
            ejections: t.ejections,
            drained: t.drained,
            weight: t.weight,
            inFlight: t.inFlight,
            requestsPerSecond: rate(`utry\u0000${key}`, ok + failed),
            failuresPerSecond: rate(`ufail\u0000${key}`, failed),
            pool: t.pool ?? null,
          } satisfies TargetSnapshot;
        }),
      };
    });

    let rooms: DashboardSnapshot['rooms'] = null;
    let roomsTruncated = false;
    let roomsError: string | undefined;
    try {
      const list = await this.yard.rooms(this.roomsLimit + 1);
      roomsTruncated = list.length > this.roomsLimit;
      rooms = list.slice(0, this.roomsLimit);
    } catch (err) {
      roomsError = err instanceof Error ? err.message : String(err);
    }

    const system = await this.system.sample();
    this.prev = { at, counters };
    let totalActive = 0;
    for (const v of active.values()) totalActive += v;
    const snapshot: DashboardSnapshot = {
      version: VERSION,
      at,
      intervalSeconds: prev ? round(dt, 3) : null,
      windowSeconds,
      processes: [{ role: 'main', ...system }],
      totals: { ...traffic(ALL), activeConnections: totalActive, inFlight: Object.values(inFlight).reduce((a, b) => a + b, 0) },
      listeners,
      upstreams,
      rooms,
      roomsTruncated,
      ...(roomsError === undefined ? {} : { roomsError }),
    };
    return { snapshot, windows };
  }
}

/** p50, p90 and p99 of a histogram given as cumulative counts per bucket; null when it is empty. */
export function percentiles(bounds: readonly number[], cumulative: ArrayLike<number>): Traffic['latencySeconds'] {
  const p50 = quantile(0.5, bounds, cumulative);
  if (p50 === null) return null;
  return { p50: round(p50, 6), p90: round(quantile(0.9, bounds, cumulative) ?? 0, 6), p99: round(quantile(0.99, bounds, cumulative) ?? 0, 6) };
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

// ---------------------------------------------------------------------------------------------
// The live feed

export interface SnapshotFeedOptions {
  /** Takes a snapshot (anything JSON can carry). */
  sample(): Promise<unknown>;
  /** The first subscriber came: get ready to sample. */
  start?(): void;
  /** The last one went: stop whatever sampling costs. */
  stop?(): void;
  /**
   * What a subscriber was served under (the running config): one whose value has changed since it
   * subscribed is let go at the next tick, so that its browser reconnects to the handler of the
   * config now running rather than holding a reloaded-away one.
   */
  epoch?(): unknown;
  log?: Logger;
  /** Subscribers at once; more get 503. Default 32. */
  maxSubscribers?: number;
  /** Between snapshots, in ms. Default 1000. */
  intervalMs?: number;
  /** Snapshots in a row a subscriber may miss (its connection not taking them) before it is dropped. Default 5. */
  maxSkipped?: number;
}

interface Subscriber {
  readonly res: HttpResponse;
  readonly epoch: unknown;
  /** The last write filled the response's buffer: nothing more until it drains. */
  blocked: boolean;
  /** Snapshots missed in a row. */
  skipped: number;
}

/** The reconnection delay EventSource is told to use (ms). */
const RETRY_MS = 2000;

/**
 * Server-sent events: `event: snapshot` with the JSON on one `data:` line, every interval, to
 * every subscriber. Bounded three ways: a subscriber cap; per subscriber, no frame is written
 * while the last one still fills its buffer (so at most the response's buffer plus one frame is
 * held), and after `maxSkipped` such misses in a row it is dropped; and one snapshot is taken per
 * tick whatever the number of subscribers (a slow sample skips ticks rather than piling up).
 */
export class SnapshotFeed {
  private readonly subscribers = new Set<Subscriber>();
  private timer: NodeJS.Timeout | undefined;
  private sampling: Promise<void> | undefined;
  private last: { at: number; frame: Buffer } | undefined;
  private draining = false;
  private readonly max: number;
  private readonly interval: number;
  private readonly maxSkipped: number;
  /** Subscribers dropped for not taking their frames (for tests and logs). */
  dropped = 0;

  constructor(private readonly options: SnapshotFeedOptions) {
    this.max = options.maxSubscribers ?? 32;
    this.interval = options.intervalMs ?? 1000;
    this.maxSkipped = options.maxSkipped ?? 5;
  }

  get size(): number {
    return this.subscribers.size;
  }

  /** GET /events: a subscriber, or 503 (full, or the yard is stopping). */
  subscribe(ctx: HttpContext): void {
    const { res } = ctx;
    if (this.draining) return replyError(res, 503, 'shutting down', { headers: { 'cache-control': 'no-store' } });
    if (this.subscribers.size >= this.max) {
      return replyError(res, 503, `too many dashboard subscribers (at most ${this.max}); try again later`, { headers: { 'retry-after': '5', 'cache-control': 'no-store' } });
    }
    res.writeHead(200, {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-store',
      'x-content-type-options': 'nosniff',
      // Proxies in front (nginx) should pass each event on at once.
      'x-accel-buffering': 'no',
    });
    const sub: Subscriber = { res, epoch: this.options.epoch?.(), blocked: false, skipped: 0 };
    this.subscribers.add(sub);
    res.once('close', () => this.remove(sub));
    res.on('error', () => undefined);
    this.write(sub, Buffer.from(`retry: ${RETRY_MS}\n\n`));
    if (this.subscribers.size === 1) {
      this.options.start?.();
      this.timer = setInterval(() => void this.tick(), this.interval);
      this.timer.unref();
    }
    // The latest snapshot at once when it is fresh; otherwise one taken now (for everyone).
    if (this.last && Date.now() - this.last.at < this.interval) this.send(sub, this.last.frame);
    else void this.tick();
  }

  /** Takes a snapshot and sends it to every subscriber (unless one is being taken already). */
  tick(): Promise<void> {
    this.sampling ??= this.sampleAndSend().finally(() => {
      this.sampling = undefined;
    });
    return this.sampling;
  }

  private async sampleAndSend(): Promise<void> {
    if (this.subscribers.size === 0 || this.draining) return;
    const epoch = this.options.epoch?.();
    for (const sub of this.subscribers) {
      if (sub.epoch !== epoch) sub.res.end();
    }
    let frame: Buffer;
    try {
      const snapshot = await this.options.sample();
      frame = Buffer.from(`event: snapshot\ndata: ${JSON.stringify(snapshot)}\n\n`);
    } catch (err) {
      this.options.log?.warn({ err }, 'dashboard: snapshot failed');
      return;
    }
    this.last = { at: Date.now(), frame };
    if (this.draining) return;
    for (const sub of this.subscribers) this.send(sub, frame);
  }

  private send(sub: Subscriber, frame: Buffer): void {
    if (sub.res.writableEnded || sub.res.destroyed) return;
    if (sub.blocked) {
      if (++sub.skipped >= this.maxSkipped) {
        this.dropped++;
        this.options.log?.info({ skipped: sub.skipped }, 'dashboard: subscriber dropped (it does not take its events)');
        this.subscribers.delete(sub);
        sub.res.destroy();
      }
      return;
    }
    sub.skipped = 0;
    this.write(sub, frame);
  }

  private write(sub: Subscriber, frame: Buffer): void {
    if (!sub.res.write(frame)) {
      sub.blocked = true;
      sub.res.once('drain', () => {
        sub.blocked = false;
      });
    }
  }

  private remove(sub: Subscriber): void {
    if (!this.subscribers.delete(sub)) return;
    if (this.subscribers.size === 0) this.idle();
  }

  private idle(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.last = undefined;
    this.options.stop?.();
  }

  /**
   * The yard is stopping: every subscriber's response ends now (their connections then close as
   * idle ones do), so that they hold nothing up; one whose connection is not taking what it is
   * sent could not be ended cleanly and is cut off. New subscribers get 503.
   */
  drain(): void {
    this.draining = true;
    const subs = [...this.subscribers];
    this.subscribers.clear();
    for (const sub of subs) {
      if (sub.blocked) sub.res.destroy();
      else sub.res.end();
    }
    this.idle();
  }

  /** Cleanup: whatever is still open is cut off. */
  close(): void {
    const subs = [...this.subscribers];
    this.drain();
    for (const sub of subs) sub.res.destroy();
  }
}

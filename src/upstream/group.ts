import { Pool, buildConnector } from 'undici';
import type { Socket } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { Logger } from 'pino';
import type { Metrics } from '../observe/metrics.ts';
import type { CounterCell, HistogramCell } from '../observe/hot-metrics.ts';
import { Target, isHttpProtocol, parseTargetAddress } from './target.ts';
import { targetsOf, type UpstreamConfig } from './config.ts';
import { createBalancer } from './balancers/index.ts';
import type { Balancer, PickContext, Random } from './balancers/types.ts';
import { CircuitBreaker, type BreakerChange, type BreakerState } from './breaker.ts';
import { RetryBudget } from './retry-budget.ts';
import { OutlierDetector } from './health/outlier.ts';
import { ActiveHealthChecker } from './health/active.ts';
import { OutageLog } from './health/outage-log.ts';
import { UpstreamTls } from './tls.ts';
import { Http2Dispatcher, type UpstreamDispatcher } from './h2-dispatcher.ts';
import { Admission, type AdmissionOwner, type Refusal, type Rejection, type TryOutcome } from './admission.ts';
import { upstreamConnectionOptions } from './socket-options.ts';

export type { Rejection, TryOutcome } from './admission.ts';

// A named group of backends and everything that decides where a request goes and whether it may:
// the balancer, active health checks, passive outlier detection, the circuit breaker, the retry
// budget, and one connection pool per target for the life of the config (never one per request).
// Every proxy (HTTP/1.1 and HTTP/2, gRPC, WebSocket, tcp, udp) goes through admit() for each
// call and the Admission it returns for each try (admission.ts: the one admission contract);
// the group keeps the per-target metrics and the live state shown at GET /upstreams.

const OUTCOMES: readonly TryOutcome[] = ['success', 'connect-failure', 'failure'];

const NO_TARGET: Refusal = { ok: false, reason: 'no-target', retryAfterMs: 0 };
/** Waiting for a connection is short-lived: a second is a fair time to come back. */
const MAX_PENDING: Refusal = { ok: false, reason: 'max-pending', retryAfterMs: 1000 };

interface TargetStats {
  outcomes: Record<TryOutcome, CounterCell>;
  duration: HistogramCell;
  ejections: CounterCell;
}

/** Before prepare() (a group built in code and used at once): Node's defaults. */
const NO_TLS = UpstreamTls.none();

const BREAKER_VALUE: Record<BreakerState, number> = { closed: 0, 'half-open': 1, open: 2 };

export interface UpstreamGroupOptions {
  metrics: Metrics;
  log: Logger;
  /** Randomness for the balancers that use it (p2c); seedable in tests. */
  random?: Random;
  /** Relative paths of the `tls:` block are resolved against this (the config file's folder). */
  baseDir?: string;
}

export class UpstreamGroup implements AdmissionOwner {
  readonly targets: readonly Target[];
  /** `http` when the targets are http(s) URLs; `l4` for bare host:port targets. */
  readonly kind: 'http' | 'l4';
  readonly breaker: CircuitBreaker | undefined;
  readonly budget: RetryBudget;
  /** Tries in all for one call: the first plus retry.attempts. */
  readonly maxTries: number;
  /** Tries waiting for a connection now, across the group (kept by Admission). */
  waiting = 0;
  private readonly maxPending: number;
  private readonly balancer: Balancer;
  private readonly outlier: OutlierDetector | undefined;
  private readonly health: ActiveHealthChecker | undefined;
  /** Each target's outage as one warn and one info line, whichever detector notices it. */
  private readonly outages: OutageLog;
  /** When the breaker opened after being closed; 0 while closed (for how long it stayed open). */
  private breakerOpenedAt = 0;
  /** TLS to https:// and tls:// targets; Node's defaults until prepare() has loaded the `tls:` block. */
  private tlsClient: UpstreamTls | undefined;
  private readonly pools = new Map<Target, UpstreamDispatcher>();
  private readonly stats = new Map<Target, TargetStats>();
  private readonly retries: CounterCell;
  private readonly errorKinds: ReturnType<Metrics['counter']>;
  private readonly rejections: Record<Rejection, CounterCell>;
  private readonly removeSources: (() => void)[] = [];
  // pick() state for the one eligibility function, so a pick allocates no closure.
  private pickNow = 0;
  private pickTried: ReadonlySet<Target> | undefined;
  /** `socket:` set on a connection to a target once connected; undefined when the group sets none. */
  private readonly socketOptions: ((connection: Socket) => void) | undefined;
  private readonly eligible = (t: Target): boolean => t.available(this.pickNow) && (this.pickTried === undefined || !this.pickTried.has(t));

  constructor(
    readonly name: string,
    readonly config: UpstreamConfig,
    private readonly options: UpstreamGroupOptions,
  ) {
    this.targets = targetsOf(config).map(({ address, weight }, i) => {
      const a = parseTargetAddress(address);
      if (!a) throw new Error(`upstream "${name}": bad target address ${address}`);
      return new Target(a.id, a.host, a.port, a.protocol, a.origin, weight, i);
    });
    this.kind = this.targets.every((t) => isHttpProtocol(t.protocol)) ? 'http' : 'l4';
    this.socketOptions = upstreamConnectionOptions(config.socket, (field, message) =>
      options.log.warn({ upstream: name, field: `socket.${field}` }, `upstream "${name}": socket.${field} not applied: ${message}`),
    );
    this.balancer = createBalancer(config.balance, config.hash, this.targets, options.random);

    const m = options.metrics;
    const requests = m.counter('switchyard_upstream_requests_total', 'Tries sent to upstream targets, by outcome (success, connect-failure, failure).', ['upstream', 'target', 'outcome']);
    const duration = m.histogram(
      'switchyard_upstream_duration_seconds',
      'Time from a try being sent to its response head (or connection) being ready, by target.',
      ['upstream', 'target'],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    );
    const ejections = m.counter('switchyard_upstream_ejections_total', 'Outlier ejections, by target.', ['upstream', 'target']);
    for (const t of this.targets) {
      const outcomes = {} as Record<TryOutcome, CounterCell>;
      for (const o of OUTCOMES) outcomes[o] = requests.labels(name, t.id, o);
      this.stats.set(t, { outcomes, duration: duration.labels(name, t.id), ejections: ejections.labels(name, t.id) });
    }
    this.retries = m.counter('switchyard_upstream_retries_total', 'Retries sent, by upstream.', ['upstream']).labels(name);
    this.errorKinds = m.counter('switchyard_upstream_errors_total', 'Failed tries by kind (refused, reset, timeouts, 5xx answers...), by target.', ['upstream', 'target', 'kind']);
    const rejected = m.counter('switchyard_upstream_rejected_total', 'Requests answered without reaching a target, by reason.', ['upstream', 'reason']);
    this.rejections = {
      'no-target': rejected.labels(name, 'no-target'),
      'breaker-open': rejected.labels(name, 'breaker-open'),
      'max-requests': rejected.labels(name, 'max-requests'),
      'max-pending': rejected.labels(name, 'max-pending'),
      'retry-budget': rejected.labels(name, 'retry-budget'),
    };
    this.removeSources.push(
      m.liveGauge('switchyard_upstream_active_requests', 'Requests (or L4 connections) in flight, by target.', ['upstream', 'target']).addSource(() =>
        this.targets.map((t) => ({ labels: [name, t.id], value: t.inFlight })),
      ),
      m.liveGauge('switchyard_upstream_target_up', '1 when a target may be picked (healthy and not ejected), else 0.', ['upstream', 'target']).addSource(() => {
        const now = Date.now();
        return this.targets.map((t) => ({ labels: [name, t.id], value: t.available(now) ? 1 : 0 }));
      }),
    );

    this.budget = new RetryBudget(config.retry.budgetRatio, config.retry.budgetMinPerSecond);
    this.maxTries = 1 + config.retry.attempts;
    this.maxPending = config.breaker === false ? Infinity : config.breaker.maxPending;
    this.outages = new OutageLog(name, options.log);
    this.breaker = config.breaker === false ? undefined : new CircuitBreaker(config.breaker, Date.now, (state, change) => this.logBreaker(state, change));
    if (this.breaker) {
      const breaker = this.breaker;
      this.removeSources.push(
        m.liveGauge('switchyard_upstream_breaker_state', 'Circuit breaker state: 0 closed, 1 half-open, 2 open.', ['upstream']).addSource(() => [{ labels: [name], value: BREAKER_VALUE[breaker.state] }]),
      );
    }
    this.outlier =
      config.outlier === false
        ? undefined
        : new OutlierDetector(config.outlier, this.targets, Date.now, (t, until) => {
            this.stats.get(t)?.ejections.inc();
            const n = config.outlier === false ? 0 : config.outlier.consecutiveFailures;
            this.outages.ejected(t, until, n === 1 ? 'a failed request' : `${n} failed requests in a row`);
          });
    this.health =
      config.health === false
        ? undefined
        : new ActiveHealthChecker(config.health, this.targets, this.kind === 'http' ? (config.health.grpc !== false ? 'grpc' : 'http') : 'tcp', {
            onChange: (t, healthy, reason) => (healthy ? this.outages.succeeded(t) : this.outages.down(t, 'health-check', reason ?? 'failed')),
            onSuccess: (t) => this.outages.succeeded(t),
            onFailure: (t, reason, consecutive) => config.health !== false && this.outages.failedCheck(t, reason, consecutive, config.health.fall),
            tlsOptions: (t) => this.tlsOptions(t),
            http2: (t) => t.protocol === 'h2c:' || (t.protocol === 'https:' && config.http2),
          });
  }

  /**
   * The breaker's changes as an operator reads them: opening is a warning, closing again is one
   * info line with how long it was open; the half-open probing in between (and a probe that fails,
   * opening it again) is debug.
   */
  private logBreaker(state: BreakerState, change: BreakerChange): void {
    const log = this.options.log;
    const upstream = this.name;
    if (state === 'open' && change.from === 'closed') {
      this.breakerOpenedAt = Date.now();
      const openFor = this.config.breaker === false ? 0 : this.config.breaker.openFor;
      log.warn({ upstream, failures: change.failures, requests: change.requests, retryInMs: openFor }, 'circuit breaker open');
    } else if (state === 'closed') {
      log.info({ upstream, openForMs: this.breakerOpenedAt ? Date.now() - this.breakerOpenedAt : undefined }, 'circuit breaker closed');
      this.breakerOpenedAt = 0;
    } else if (state === 'open') {
      log.debug({ upstream }, 'circuit breaker open again: a probe request failed');
    } else {
      log.debug({ upstream }, 'circuit breaker half-open: letting probe requests through');
    }
  }

  /**
   * Loads what the group needs from files (the `tls:` block's CA, client certificate and key)
   * before it is used. Throws UpstreamTlsError naming the field (`tls.ca`, `tls.key`...).
   */
  async prepare(): Promise<void> {
    if (this.tlsClient) return;
    const client = await UpstreamTls.load(this.config.tls, this.options.baseDir);
    if (this.pools.size > 0) throw new Error(`upstream "${this.name}": prepare() after first use`);
    this.tlsClient = client;
    if (client.insecure) {
      this.options.log.warn({ upstream: this.name }, 'upstream tls.insecure: the certificates of this group\'s targets are not verified');
    }
  }

  /** Options for tls.connect to a TLS target (https:// or tls://): the group's context, SNI and verification. */
  tlsOptions(t: Target): ConnectionOptions {
    return (this.tlsClient ?? NO_TLS).options(t);
  }

  /**
   * Sets the group's `socket:` options on a connection to one of its targets, once connected
   * (a TLS one as soon as its TCP connection is up). Every proxy calls it on the sockets it makes.
   */
  connected(connection: Socket): void {
    this.socketOptions?.(connection);
  }

  /** A target for this request or connection, skipping `tried`; undefined when none is available. */
  pick(ctx: PickContext, tried?: ReadonlySet<Target>, now: number = Date.now()): Target | undefined {
    this.pickNow = now;
    this.pickTried = tried;
    const t = this.balancer.pick(ctx, this.eligible);
    this.pickTried = undefined;
    return t;
  }

  /**
   * The connection pool of a target (HTTP groups), created on first use and kept: undici's for
   * HTTP/1.1 targets, our own HTTP/2 client for HTTP/2 ones (h2-dispatcher.ts), one contract.
   */
  pool(t: Target): UpstreamDispatcher {
    let p = this.pools.get(t);
    if (!p) {
      const c = this.config;
      if (t.protocol === 'h2c:' || (t.protocol === 'https:' && c.http2)) {
        p = new Http2Dispatcher({
          protocol: t.protocol === 'h2c:' ? 'http:' : 'https:',
          host: t.host,
          port: t.port,
          id: t.id,
          tls: t.protocol === 'https:' ? this.tlsOptions(t) : undefined,
          connectTimeout: c.timeouts.connect,
          headersTimeout: c.timeouts.firstByte,
          bodyTimeout: c.timeouts.idle,
          maxSessions: c.pool.connections,
          maxStreamsPerSession: c.pool.maxStreamsPerConnection,
          onConnect: this.socketOptions,
        });
        this.pools.set(t, p);
        return p;
      }
      let connect: buildConnector.BuildOptions | buildConnector.connector = { timeout: c.timeouts.connect };
      if (t.protocol === 'https:') {
        // The group's TLS options, and its name for the target whatever the request's Host is
        // (undici would otherwise take SNI and the verified name from the Host header).
        const tlsOptions = this.tlsOptions(t);
        const base = buildConnector({ ...tlsOptions, timeout: c.timeouts.connect } as buildConnector.BuildOptions);
        const servername = tlsOptions.servername;
        connect = (opts, callback) => base({ ...opts, servername }, callback);
      }
      const socketOptions = this.socketOptions;
      if (socketOptions) {
        // undici's own settings (keepalive after 60 s, noDelay) are made before its callback: ours go after them.
        const base = typeof connect === 'function' ? connect : buildConnector(connect);
        connect = (opts, callback) =>
          base(opts, (...args) => {
            if (args[0] === null) socketOptions(args[1]);
            callback(...args);
          });
      }
      const pool = new Pool(t.origin, {
        connections: c.pool.connections,
        pipelining: c.pool.pipelining,
        keepAliveTimeout: c.pool.keepAlive,
        keepAliveMaxTimeout: Math.max(c.pool.keepAlive, 1000),
        connect,
        headersTimeout: c.timeouts.firstByte,
        bodyTimeout: c.timeouts.idle,
      });
      this.pools.set(t, pool);
      return pool;
    }
    return p;
  }

  /**
   * Admits a call (a request, a stream, a connection, a session): a target picked, the pending
   * cap and the circuit breaker passed, the call counted for the retry budget. A refusal is
   * counted and says why; nothing of it needs releasing.
   */
  admit(pick: PickContext): Admission | Refusal {
    // One clock read for the pick, the breaker and the budget (each is a call on the hot path).
    const now = Date.now();
    const target = this.pick(pick, undefined, now);
    if (!target) {
      this.rejections['no-target'].inc();
      return NO_TARGET;
    }
    if (this.waiting >= this.maxPending) {
      this.rejections['max-pending'].inc();
      return MAX_PENDING;
    }
    let ticket: { release(outcome: 'success' | 'failure'): void } | undefined;
    if (this.breaker) {
      const a = this.breaker.admit(now);
      if (!a.ok) {
        const reason = a.reason === 'open' ? 'breaker-open' : 'max-requests';
        this.rejections[reason].inc();
        return { ok: false, reason, retryAfterMs: a.retryAfterMs };
      }
      ticket = a;
    }
    this.budget.onRequest(now);
    return new Admission(this, pick, target, ticket);
  }

  /** One more retry, if the retry budget allows it (counted either way). */
  spendRetry(): boolean {
    if (!this.budget.tryRetry()) {
      this.rejections['retry-budget'].inc();
      return false;
    }
    this.retries.inc();
    return true;
  }

  /** How a try went: feeds outlier detection and the per-target metrics. */
  report(t: Target, outcome: TryOutcome, seconds?: number): void {
    const s = this.stats.get(t);
    if (s) {
      s.outcomes[outcome].inc();
      if (seconds !== undefined) s.duration.observe(seconds);
    }
    if (outcome === 'success' && t.downSince !== 0) this.outages.succeeded(t);
    if (!this.outlier) return;
    if (outcome === 'success') this.outlier.onSuccess(t);
    else this.outlier.onFailure(t);
  }

  /** Counts a failed try by what went wrong (`upstream_refused`, `upstream_reset`, `http_5xx`...). */
  errored(t: Target, kind: string): void {
    this.errorKinds.labels(this.name, t.id, kind).inc();
  }

  /**
   * A reload replaced `old` by this group: targets that are in both start from what `old` knew of
   * them (health, ejection and its count), so a changed config does not send traffic back to a
   * target known to be down.
   */
  inheritHealth(old: UpstreamGroup): void {
    for (const t of this.targets) {
      const before = old.targets.find((o) => o.id === t.id);
      if (!before) continue;
      t.healthy = before.healthy;
      t.ejectedUntil = before.ejectedUntil;
      t.ejections = before.ejections;
      t.drained = before.drained;
      t.downSince = before.downSince;
      t.downReason = before.downReason;
    }
  }

  /**
   * Takes a target out of rotation (`drained`: no new requests or connections; those in flight
   * finish) or puts it back. False when the group has no such target.
   */
  setDrained(id: string, drained: boolean): boolean {
    const t = this.targets.find((x) => x.id === id);
    if (!t) return false;
    t.drained = drained;
    this.options.log.warn({ upstream: this.name, target: id, drained }, drained ? 'target drained' : 'target enabled');
    return true;
  }

  start(): void {
    this.health?.start();
  }

  async close(): Promise<void> {
    this.health?.stop();
    for (const remove of this.removeSources.splice(0)) remove();
    const pools = [...this.pools.values()];
    this.pools.clear();
    // In-flight work had its grace period already (the yard drained listeners first).
    await Promise.all(pools.map((p) => p.destroy().catch(() => undefined)));
  }

  /** The live state, as GET /upstreams shows it. */
  state(): object {
    const now = Date.now();
    if (this.outlier) for (const t of this.targets) this.outlier.decay(t, now);
    return {
      name: this.name,
      kind: this.kind,
      balance: this.config.balance,
      breaker: this.breaker?.snapshot() ?? null,
      waiting: this.waiting,
      retryBudget: this.budget.snapshot(),
      targets: this.targets.map((t) => {
        const s = this.stats.get(t);
        return {
          id: t.id,
          weight: t.weight,
          available: t.available(now),
          healthy: t.healthy,
          drained: t.drained,
          ejected: t.ejectedUntil > now,
          ejectedForMs: Math.max(0, t.ejectedUntil - now),
          ejections: t.ejections,
          inFlight: t.inFlight,
          requests: s ? { success: s.outcomes.success.value, connectFailure: s.outcomes['connect-failure'].value, failure: s.outcomes.failure.value } : undefined,
          pool: this.pools.get(t)?.stats ? { connected: this.pools.get(t)!.stats.connected, pending: this.pools.get(t)!.stats.pending, running: this.pools.get(t)!.stats.running } : undefined,
        };
      }),
    };
  }
}

import { Registry, collectDefaultMetrics } from 'prom-client';
import { HotCounter, HotGauge, HotHistogram, LiveGauge } from './hot-metrics.ts';

// One registry per running yard, so that two daemons in one process (tests, embedding programs)
// never share counters. The four file-server counters of the seeds keep their names:
// total_connections, active_connections, total_bytes_sent, total_requests.

export class Metrics {
  readonly registry = new Registry();

  readonly totalConnections = new HotCounter(this.registry, 'switchyard_total_connections', 'Connections accepted, by listener.', ['listener']);

  readonly activeConnections = new HotGauge(this.registry, 'switchyard_active_connections', 'Connections open now, by listener.', ['listener']);

  readonly totalBytesSent = new HotCounter(this.registry, 'switchyard_total_bytes_sent', 'Bytes written to clients (including sendfile), by listener.', ['listener']);

  readonly totalBytesReceived = new HotCounter(this.registry, 'switchyard_total_bytes_received', 'Bytes read from clients, by listener.', ['listener']);

  readonly acmeEvents = new HotCounter(
    this.registry,
    'switchyard_acme_certificates_total',
    'ACME certificate events by listener: loaded (from storage), issued, renewed, failed (an order that did not succeed).',
    ['listener', 'event'],
  );

  readonly tlsHandshakeFailures = new HotCounter(
    this.registry,
    'switchyard_tls_handshake_failures_total',
    'TLS handshakes that failed, by listener and reason (the OpenSSL or Node error code).',
    ['listener', 'reason'],
  );

  readonly http2Floods = new HotCounter(
    this.registry,
    'switchyard_http2_flood_closes_total',
    'HTTP/2 connections closed with GOAWAY ENHANCE_YOUR_CALM for going over a flood limit, by listener and kind (resets, pings, settings).',
    ['listener', 'kind'],
  );

  readonly totalRequests = new HotCounter(
    this.registry,
    'switchyard_total_requests',
    'Requests served (HTTP requests, file-tcp files, datagrams), by listener, route and status.',
    ['listener', 'route', 'status'],
  );

  readonly requestDuration = new HotHistogram(
    this.registry,
    'switchyard_request_duration_seconds',
    'Time from request start to the response being closed, by listener and route.',
    ['listener', 'route'],
    [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  );

  private readonly families = new Map<string, HotCounter | HotGauge | HotHistogram | LiveGauge>();

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'switchyard_' });
  }

  /** A counter a handler module shares across its instances (created on first use). */
  counter(name: string, help: string, labelNames: readonly string[]): HotCounter {
    return this.family(name, () => new HotCounter(this.registry, name, help, labelNames), HotCounter);
  }

  /** A gauge a handler module shares across its instances (created on first use). */
  gauge(name: string, help: string, labelNames: readonly string[]): HotGauge {
    return this.family(name, () => new HotGauge(this.registry, name, help, labelNames), HotGauge);
  }

  /** A histogram a module shares across its instances (created on first use). */
  histogram(name: string, help: string, labelNames: readonly string[], buckets: readonly number[]): HotHistogram {
    return this.family(name, () => new HotHistogram(this.registry, name, help, labelNames, buckets), HotHistogram);
  }

  /** A gauge read from live state at scrape time (created on first use). */
  liveGauge(name: string, help: string, labelNames: readonly string[]): LiveGauge {
    return this.family(name, () => new LiveGauge(this.registry, name, help, labelNames), LiveGauge);
  }

  private family<F extends HotCounter | HotGauge | HotHistogram | LiveGauge>(name: string, make: () => F, kind: new (...args: never[]) => F): F {
    const existing = this.families.get(name);
    if (existing) {
      if (!(existing instanceof kind)) throw new Error(`metric ${name} already exists as another type`);
      return existing as F;
    }
    const made = make();
    this.families.set(name, made);
    return made;
  }

  /** Prometheus text exposition of everything registered. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

// One registry per running yard, so that two daemons in one process (tests, embedding programs)
// never share counters. The four file-server counters of the seeds keep their names:
// total_connections, active_connections, total_bytes_sent, total_requests.

export class Metrics {
  readonly registry = new Registry();

  readonly totalConnections = new Counter({
    name: 'switchyard_total_connections',
    help: 'Connections accepted, by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly activeConnections = new Gauge({
    name: 'switchyard_active_connections',
    help: 'Connections open now, by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly totalBytesSent = new Counter({
    name: 'switchyard_total_bytes_sent',
    help: 'Bytes written to clients (including sendfile), by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly totalBytesReceived = new Counter({
    name: 'switchyard_total_bytes_received',
    help: 'Bytes read from clients, by listener.',
    labelNames: ['listener'] as const,
    registers: [this.registry],
  });

  readonly totalRequests = new Counter({
    name: 'switchyard_total_requests',
    help: 'Requests served (HTTP requests, file-tcp files, datagrams), by listener, route and status.',
    labelNames: ['listener', 'route', 'status'] as const,
    registers: [this.registry],
  });

  readonly requestDuration = new Histogram({
    name: 'switchyard_request_duration_seconds',
    help: 'Time from request start to the last byte handed to the kernel, by listener and route.',
    labelNames: ['listener', 'route'] as const,
    buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [this.registry],
  });

  constructor(options: { processMetrics?: boolean } = {}) {
    if (options.processMetrics ?? true) collectDefaultMetrics({ register: this.registry, prefix: 'switchyard_' });
  }

  /** Prometheus text exposition of everything registered. */
  text(): Promise<string> {
    return this.registry.metrics();
  }

  get contentType(): string {
    return this.registry.contentType;
  }
}

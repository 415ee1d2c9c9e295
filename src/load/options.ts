import type { LoadTarget } from './target.ts';

// Everything a load run is told, already checked: engines read these and never argv.

export interface TlsClientOptions {
  /** Accept any certificate (self-signed test servers). */
  readonly insecure: boolean;
  /** Extra trusted CA certificates (PEM), when given. */
  readonly ca: Buffer | undefined;
}

export interface LoadOptions {
  readonly target: LoadTarget;
  /** Open connections (sockets, sessions, WebSockets, UDP sockets). */
  readonly connections: number;
  /** Run length, ms; undefined when only a request count bounds the run. */
  readonly durationMs: number | undefined;
  /** Requests to send in all; undefined when only the duration bounds the run. */
  readonly requests: number | undefined;
  /** Open model: requests per second over all connections, scheduled from the start time. */
  readonly rate: number | undefined;
  /** Requests in flight per connection (HTTP/1.1 pipelining; messages in flight for ws, tcp, udp). */
  readonly pipeline: number;
  /** HTTP/2 instead of HTTP/1.1 (h2 over TLS for https://, h2c for http://). */
  readonly http2: boolean;
  /** Concurrent HTTP/2 streams per connection. */
  readonly streams: number;
  readonly method: string;
  /** Extra request headers, [name, value], in order. */
  readonly headers: readonly (readonly [string, string])[];
  /** Request body (http) or message/payload (ws, tcp, udp). */
  readonly body: Buffer;
  /** A request with no answer after this long is a timeout error (its connection is reopened). */
  readonly timeoutMs: number;
  /** Unmeasured load before the measured run, ms (0 = none). */
  readonly warmupMs: number;
  readonly tls: TlsClientOptions;
}

/** Limits the CLI enforces, shared with the engines' own checks. */
export const LIMITS = {
  maxConnections: 10_000,
  maxPipeline: 1024,
  maxStreams: 1000,
  /** The largest response head the HTTP/1.1 parser accepts before calling it a parse error. */
  maxHeadBytes: 64 * 1024,
  /** The largest body/payload a run sends. */
  maxBodyBytes: 64 * 1024 * 1024,
  /** UDP datagram payload limit. */
  maxDatagramBytes: 65_507,
} as const;

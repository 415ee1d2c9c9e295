import http from 'node:http';
import https from 'node:https';
import http2 from 'node:http2';
import net from 'node:net';
import tls, { type ConnectionOptions } from 'node:tls';
import { describeTlsError, isTlsError } from '../tls.ts';
import type { HealthConfig } from '../config.ts';
import type { Target } from '../target.ts';

// Active health checks: every `interval`, each target gets one HTTP GET of `path` (healthy if
// the status is expected) or, for L4 groups, one TCP connect. `rise` consecutive successes make
// an unhealthy target healthy, `fall` consecutive failures make a healthy one unhealthy. Each
// check has its own connection (no agent), so nothing is pooled or leaked between rounds.
// TLS targets (https://, tls://) are checked with the group's TLS options, like the traffic: an
// https check is a GET over TLS, a tls:// check passes when the handshake (verification
// included) completes. HTTP/2 targets (h2c://, https:// with http2: true) are checked over
// HTTP/2: the GET, or in `grpc` mode grpc.health.v1.Health/Check (healthy when SERVING).

export interface ActiveHealthOptions {
  /** A target crossed `fall` failures (healthy: false) or `rise` successes (true); `reason` is the last failure's. */
  onChange?: (t: Target, healthy: boolean, reason: string | undefined) => void;
  /** Every passing check (the group learns from it that an ejected target is answering again). */
  onSuccess?: (t: Target) => void;
  /** Every failed check, with the failures in a row so far (the group logs these at debug). */
  onFailure?: (t: Target, reason: string, consecutive: number) => void;
  /** TLS options for a TLS target (the group's `tls:` block); Node's defaults when left out. */
  tlsOptions?: (t: Target) => ConnectionOptions;
  /** Whether the target is spoken to over HTTP/2 (h2c://, or https:// in a group with http2: true). */
  http2?: (t: Target) => boolean;
}

/** The most of a check's answer that is read (a health answer is a few bytes). */
const MAX_ANSWER = 16 * 1024;

/** grpc.health.v1.HealthCheckRequest { service } as a length-prefixed gRPC message. */
function grpcHealthRequest(service: string): Buffer {
  const name = Buffer.from(service);
  // Field 1 (service), wire type 2: tag 0x0a, a varint length, the bytes; nothing for ''.
  const msg = name.length === 0 ? Buffer.alloc(0) : Buffer.concat([Buffer.from([0x0a]), varint(name.length), name]);
  const prefix = Buffer.alloc(5);
  prefix.writeUInt32BE(msg.length, 1);
  return Buffer.concat([prefix, msg]);
}

function varint(n: number): Buffer {
  const out: number[] = [];
  while (n > 0x7f) {
    out.push((n & 0x7f) | 0x80);
    n >>>= 7;
  }
  out.push(n);
  return Buffer.from(out);
}

/** HealthCheckResponse.status from a length-prefixed message: 1 is SERVING; 0 (UNKNOWN) when absent. */
function grpcHealthStatus(body: Buffer): number {
  if (body.length < 5) return -1;
  const len = body.readUInt32BE(1);
  const msg = body.subarray(5, 5 + len);
  // Field 1 (status), wire type 0: tag 0x08 and a small varint.
  for (let i = 0; i + 1 < msg.length; i++) if (msg[i] === 0x08) return msg[i + 1] & 0x7f;
  return 0;
}

function failure(err: NodeJS.ErrnoException): Result {
  return { ok: false, reason: isTlsError(err) ? describeTlsError(err) : (err.code ?? err.message) };
}

interface Result {
  ok: boolean;
  /** Why a check failed (status, error code, timeout), for the log. */
  reason?: string;
}

interface PerTarget {
  successes: number;
  failures: number;
  /** The check in progress, shared by the timer and checkNow(). */
  running: Promise<void> | undefined;
}

export class ActiveHealthChecker {
  private readonly state: PerTarget[];
  private timer: NodeJS.Timeout | undefined;
  /** Cancels the checks in progress (stop()). */
  private readonly aborts = new Set<() => void>();
  /** Bumped by stop(): results of checks started before are dropped. */
  private epoch = 0;

  constructor(
    private readonly config: HealthConfig,
    private readonly targets: readonly Target[],
    private readonly mode: 'http' | 'grpc' | 'tcp',
    private readonly options: ActiveHealthOptions = {},
  ) {
    this.state = targets.map(() => ({ successes: 0, failures: 0, running: undefined }));
  }

  start(): void {
    if (this.timer) return;
    this.timer = setInterval(() => this.round(), this.config.interval);
    this.timer.unref();
    this.round();
  }

  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    this.epoch++;
    for (const abort of [...this.aborts]) abort();
    this.aborts.clear();
    for (const s of this.state) s.running = undefined;
  }

  /** One round on every target; resolves when all checks are done. */
  async checkNow(): Promise<void> {
    await Promise.all(this.targets.map((_, i) => this.checkTarget(i)));
  }

  private round(): void {
    for (let i = 0; i < this.targets.length; i++) {
      // A check slower than the interval is not doubled up.
      if (this.state[i].running) continue;
      this.checkTarget(i).catch(() => {});
    }
  }

  private checkTarget(i: number): Promise<void> {
    const s = this.state[i];
    if (s.running) return s.running;
    const epoch = this.epoch;
    const t = this.targets[i];
    const p = this.probe(t)
      .catch((err: unknown): Result => ({ ok: false, reason: String(err) }))
      .then((r) => {
        if (epoch !== this.epoch) return;
        this.record(t, s, r);
      })
      .catch(() => {})
      .finally(() => {
        if (s.running === p) s.running = undefined;
      });
    s.running = p;
    return p;
  }

  private record(t: Target, s: PerTarget, r: Result): void {
    if (r.ok) {
      s.failures = 0;
      s.successes++;
      if (!t.healthy && s.successes >= this.config.rise) this.flip(t, true, r);
      else if (t.healthy) {
        try {
          this.options.onSuccess?.(t);
        } catch {
          // A listener's error must not stop the checks.
        }
      }
    } else {
      s.successes = 0;
      s.failures++;
      try {
        this.options.onFailure?.(t, r.reason ?? 'failed', s.failures);
      } catch {
        // A listener's error must not stop the checks.
      }
      if (t.healthy && s.failures >= this.config.fall) this.flip(t, false, r);
    }
  }

  private flip(t: Target, healthy: boolean, r: Result): void {
    t.healthy = healthy;
    try {
      this.options.onChange?.(t, healthy, r.reason);
    } catch {
      // A listener's error must not stop the checks.
    }
  }

  private probe(t: Target): Promise<Result> {
    if (this.mode === 'tcp') return this.probeTcp(t);
    if (this.mode === 'grpc' || this.options.http2?.(t)) return this.probeHttp2(t);
    return this.probeHttp(t);
  }

  /** A GET (or a gRPC health Check) over an HTTP/2 session of its own. */
  private probeHttp2(t: Target): Promise<Result> {
    return new Promise<Result>((resolve) => {
      const grpc = this.mode === 'grpc' && this.config.grpc !== false ? this.config.grpc : undefined;
      let settled = false;
      const finish = (r: Result) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        session.destroy();
        resolve(r);
      };
      const abort = () => finish({ ok: false, reason: 'stopped' });
      const timer = setTimeout(() => finish({ ok: false, reason: `no answer within ${this.config.timeout} ms` }), this.config.timeout);
      this.aborts.add(abort);
      const tlsTarget = t.protocol === 'https:';
      const session = http2.connect(`${tlsTarget ? 'https' : 'http'}://${t.id}`, tlsTarget ? { ...this.options.tlsOptions?.(t), ALPNProtocols: ['h2'] } : {});
      session.on('error', (err: NodeJS.ErrnoException) => finish(failure(err)));
      const headers: http2.OutgoingHttpHeaders = grpc
        ? { ':method': 'POST', ':path': '/grpc.health.v1.Health/Check', 'content-type': 'application/grpc', te: 'trailers', 'user-agent': 'switchyard-health-check' }
        : { ':method': 'GET', ':path': this.config.path, 'user-agent': 'switchyard-health-check' };
      const stream = session.request(headers, { endStream: !grpc });
      if (grpc) stream.end(grpcHealthRequest(grpc.service));
      stream.on('error', (err: NodeJS.ErrnoException) => finish(failure(err)));
      let status = 0;
      let grpcStatus: string | undefined;
      const chunks: Buffer[] = [];
      let size = 0;
      stream.on('response', (h) => {
        status = Number(h[':status']);
        if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
        if (!grpc) finish(this.expected(status) ? { ok: true } : { ok: false, reason: `status ${status}` });
      });
      stream.on('data', (d: Buffer) => {
        size += d.length;
        if (size > MAX_ANSWER) return finish({ ok: false, reason: 'answer too large' });
        chunks.push(d);
      });
      stream.on('trailers', (h) => {
        if (h['grpc-status'] !== undefined) grpcStatus = String(h['grpc-status']);
      });
      stream.on('end', () => {
        if (status !== 200) return finish({ ok: false, reason: `status ${status}` });
        if (grpcStatus !== '0') return finish({ ok: false, reason: `grpc-status ${grpcStatus ?? 'missing'}` });
        const serving = grpcHealthStatus(Buffer.concat(chunks));
        finish(serving === 1 ? { ok: true } : { ok: false, reason: `health status ${serving}` });
      });
    });
  }

  private probeTcp(t: Target): Promise<Result> {
    return new Promise<Result>((resolve) => {
      const secure = t.protocol === 'tls:';
      const socket = secure ? tls.connect({ ...this.options.tlsOptions?.(t), host: t.host, port: t.port }) : net.connect({ host: t.host, port: t.port });
      const finish = (r: Result) => {
        clearTimeout(timer);
        this.aborts.delete(abort);
        socket.destroy();
        resolve(r);
      };
      const abort = () => finish({ ok: false, reason: 'stopped' });
      const timer = setTimeout(() => finish({ ok: false, reason: `connect timeout after ${this.config.timeout} ms` }), this.config.timeout);
      this.aborts.add(abort);
      socket.once(secure ? 'secureConnect' : 'connect', () => finish({ ok: true }));
      socket.once('error', (err: NodeJS.ErrnoException) => finish(failure(err)));
    });
  }

  private probeHttp(t: Target): Promise<Result> {
    return new Promise<Result>((resolve) => {
      const client = t.protocol === 'https:' ? https : http;
      let settled = false;
      /** Set once the head arrived: a body that then stalls does not change the verdict. */
      let verdict: Result | undefined;
      const finish = (r: Result) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.aborts.delete(abort);
        req.destroy();
        resolve(r);
      };
      const abort = () => finish({ ok: false, reason: 'stopped' });
      const timer = setTimeout(() => finish(verdict ?? { ok: false, reason: `no answer within ${this.config.timeout} ms` }), this.config.timeout);
      this.aborts.add(abort);
      const req = client.request({
        ...(t.protocol === 'https:' ? this.options.tlsOptions?.(t) : undefined),
        host: t.host,
        port: t.port,
        method: 'GET',
        path: this.config.path,
        agent: false,
        headers: { host: t.id, 'user-agent': 'switchyard-health-check', connection: 'close' },
      });
      req.once('error', (err: NodeJS.ErrnoException) => finish(failure(err)));
      req.once('response', (res) => {
        const status = res.statusCode ?? 0;
        const ok = this.expected(status);
        const r: Result = ok ? { ok } : { ok, reason: `status ${status}` };
        verdict = r;
        // The verdict is in the head; read the body off the wire (bounded by the timeout) so
        // the connection ends cleanly, then release everything.
        res.once('end', () => finish(r));
        res.once('error', () => finish(r));
        res.once('close', () => finish(r));
        res.resume();
      });
      req.end();
    });
  }

  private expected(status: number): boolean {
    const e = this.config.expectStatus;
    return typeof e === 'number' ? status === e : status >= e[0] && status <= e[1];
  }
}

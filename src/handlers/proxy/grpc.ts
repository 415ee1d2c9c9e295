import type { Metrics } from '../../observe/metrics.ts';
import type { CounterCell, HistogramCell } from '../../observe/hot-metrics.ts';
import {
  Base64StreamDecoder,
  GrpcStatus,
  encodeBase64Chunk,
  encodeGrpcWebTrailers,
  grpcStatusFromHttp,
  grpcStatusName,
  parseGrpcContentType,
  parseGrpcTimeout,
  grpcStatusFields,
  replyGrpcStatus,
  type GrpcContentType,
} from '../../protocol/grpc/index.ts';
import { constants } from 'node:http2';
import type { Http2Request, HttpRequest, HttpResponse } from '../types.ts';
import { ProxyError, type ProxyErrorCode } from './errors.ts';
import type { Refusal } from '../../upstream/admission.ts';
import type { BodySink, PipeableBody } from '../../upstream/h2-dispatcher.ts';

// gRPC through the proxy (Envoy's reason to exist): a request whose Content-Type is
// application/grpc* is one call, balanced on its own over the group's long-lived HTTP/2
// connections (h2c:// targets, or https:// with http2: true), with what a gRPC client expects
// of the hop in between:
//   - `grpc-timeout` is the call's deadline (with timeouts.total, whichever is sooner), and a
//     missed one is DEADLINE_EXCEEDED;
//   - the proxy's own errors are gRPC statuses in a trailers-only answer (or in the trailers
//     once replies have gone out), never an HTTP error page: no target, a refused or broken
//     connection -> UNAVAILABLE, an open breaker -> UNAVAILABLE with grpc-retry-pushback-ms,
//     too large -> RESOURCE_EXHAUSTED, timeouts -> DEADLINE_EXCEEDED;
//   - an upstream answer without grpc-status (an HTTP/1.1 error page, a 503 from something in
//     front of it) becomes the status gRPC's http-grpc-status-mapping gives it;
//   - a trailers-only UNAVAILABLE (or another status in retry.grpcStatuses) is retried like a
//     502, when the request can be replayed: its body ended within retry.bufferBody while being
//     streamed (GrpcReplay keeps a copy), so a unary call is retried and a long stream is not;
//   - calls are counted by service, method and status, with a bounded set of names.
// gRPC-Web (application/grpc-web, -web-text) is translated on the way: the upstream gets
// application/grpc with te: trailers (text mode decoded from base64), and the answer goes back
// as gRPC-Web, its trailers as the final frame of the body (base64 in text mode), as Envoy's
// grpc_web filter does. Browsers need CORS for it: the cors middleware on the route, with the
// gRPC-Web headers allowed and exposed (docs/grpc.md).

/** What the proxy knows of a gRPC call: set on the exchange by the handler. */
export class GrpcCall {
  /** The downstream speaks gRPC-Web (binary or text) and is translated. */
  readonly web: boolean;
  readonly text: boolean;
  /** The downstream's content type, for the answer. */
  readonly contentType: GrpcContentType;
  readonly service: string;
  readonly method: string;
  /** The request's path (`/service/method`): what metrics find the call's names by. */
  readonly path: string;
  /** The deadline from grpc-timeout, in ms (0: none). */
  readonly deadline: number;
  /** The status the call ended with (for metrics), or -1 while unknown. */
  status = -1;
  /** A status in the upstream's answer head (trailers-only), or -1. */
  headStatus = -1;

  constructor(req: HttpRequest, ct: GrpcContentType) {
    this.contentType = ct;
    this.web = ct.protocol !== 'grpc';
    this.text = ct.protocol === 'grpc-web-text';
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    this.path = path;
    const slash = path.lastIndexOf('/');
    this.service = slash > 0 ? path.slice(1, slash) : '';
    this.method = slash >= 0 ? path.slice(slash + 1) : '';
    let deadline = 0;
    const t = req.headers['grpc-timeout'];
    if (typeof t === 'string') {
      try {
        deadline = Math.max(1, Math.min(parseGrpcTimeout(t), 0x7fffffff));
      } catch {
        // A malformed timeout is ignored by the proxy; the upstream answers it (INTERNAL).
      }
    }
    this.deadline = deadline;
  }

  /** The Content-Type of the downstream answer. */
  get responseType(): string {
    return this.contentType === PLAIN_GRPC ? 'application/grpc+proto' : `application/${this.contentType.protocol}+${this.contentType.format}`;
  }
}

/** The content type nearly every gRPC client sends, known without parsing it. */
const PLAIN_GRPC: GrpcContentType = { protocol: 'grpc', format: 'proto' };

/** The gRPC call a request is, or undefined when it is not one. */
export function grpcCallOf(req: HttpRequest): GrpcCall | undefined {
  const value = req.headers['content-type'];
  const ct = value === 'application/grpc' ? PLAIN_GRPC : parseGrpcContentType(value);
  return ct ? new GrpcCall(req, ct) : undefined;
}

const STATUS_OF: Partial<Record<ProxyErrorCode, GrpcStatus>> = {
  UPSTREAM_CONNECT_TIMEOUT: GrpcStatus.UNAVAILABLE,
  UPSTREAM_FIRST_BYTE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  UPSTREAM_TRY_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  UPSTREAM_IDLE_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  UPSTREAM_TOTAL_TIMEOUT: GrpcStatus.DEADLINE_EXCEEDED,
  UPSTREAM_PROTOCOL: GrpcStatus.INTERNAL,
  UPSTREAM_ERROR: GrpcStatus.UNAVAILABLE,
  DOWNSTREAM_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  DOWNSTREAM_HEADERS_TOO_LARGE: GrpcStatus.RESOURCE_EXHAUSTED,
  DOWNSTREAM_BODY: GrpcStatus.INTERNAL,
  DOWNSTREAM_ABORTED: GrpcStatus.CANCELLED,
  INTERNAL: GrpcStatus.INTERNAL,
};

/** The gRPC status for one of the proxy's errors (UNAVAILABLE for whatever a retry elsewhere might cure). */
export function grpcStatusOf(e: ProxyError): GrpcStatus {
  return STATUS_OF[e.kind] ?? GrpcStatus.UNAVAILABLE;
}

/**
 * Ends a call with the proxy's own status: trailers-only before any reply (headers for
 * gRPC-Web), trailers after; gRPC-Web after replies gets a trailers frame in the body.
 */
export function replyGrpc(res: HttpResponse, call: GrpcCall, status: number, message: string, metadata?: Record<string, string>): void {
  call.status = status;
  if (status < 0) status = GrpcStatus.UNKNOWN;
  if (call.web && res.headersSent) {
    const frame = encodeGrpcWebTrailers(grpcStatusFields(status, message, metadata));
    res.end(call.text ? encodeBase64Chunk(frame) : frame);
    return;
  }
  replyGrpcStatus(res, status, message, { contentType: call.responseType, metadata });
}

/** The metadata of a refusal: an open breaker says when to come back (gRPC's retry pushback). */
export function refusalMetadata(r: Refusal): Record<string, string> | undefined {
  return r.reason === 'breaker-open' && r.retryAfterMs > 0 ? { 'grpc-retry-pushback-ms': String(Math.ceil(r.retryAfterMs)) } : undefined;
}

/** The status of an upstream answer head: its grpc-status (trailers-only), or the HTTP status mapped. */
export function headStatus(httpStatus: number, raw: readonly Buffer[]): number {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i];
    if (name.length === 11 && name.toString('latin1').toLowerCase() === 'grpc-status') return Number(raw[i + 1].toString('latin1'));
  }
  return httpStatus === 200 ? -1 : grpcStatusFromHttp(httpStatus);
}

/** Finds grpc-status in trailers as undici hands them over (a raw list or an object). */
export function trailerStatus(trailers: readonly (Buffer | string)[] | Record<string, string | string[] | undefined> | null): number {
  if (!trailers) return -1;
  if (Array.isArray(trailers)) {
    for (let i = 0; i < trailers.length; i += 2) if (String(trailers[i]).toLowerCase() === 'grpc-status') return Number(String(trailers[i + 1]));
    return -1;
  }
  const v = (trailers as Record<string, string | string[] | undefined>)['grpc-status'];
  return v === undefined ? -1 : Number(Array.isArray(v) ? v[0] : v);
}

/**
 * The request body of a gRPC call as it is streamed upstream, keeping a copy while it is small
 * enough (retry.bufferBody) so a call refused with UNAVAILABLE can be sent again; gRPC-Web text
 * is decoded from base64 on the way. An HTTP/2 pool has it push itself into the upstream stream
 * (pipeTo: events, with backpressure); undici reads it as an async iterable.
 */
export class GrpcReplay implements PipeableBody {
  private copy: Buffer[] | null = [];
  private size = 0;
  private ended = false;

  constructor(
    private readonly req: HttpRequest,
    private readonly text: boolean,
    private readonly limit: number,
    private readonly maxBody: number,
  ) {}

  /** The whole body, when it ended within the limit: what a retry sends. */
  get body(): Buffer | undefined {
    return this.ended && this.copy ? Buffer.concat(this.copy, this.size) : undefined;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.stream(this.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>);
  }

  pipeTo(sink: BodySink, onError: (err: Error) => void): void {
    const req = this.req;
    // An HTTP/2 request nobody has read yet is read from its stream itself: the request's own
    // Readable would add a push, a 'data' event and its buffering to every chunk of the call.
    const raw = req.httpVersionMajor === 2 && req.readableFlowing === null && req.readableLength === 0 && !req.readableEnded ? (req as Http2Request).stream : undefined;
    const source: NodeJS.EventEmitter & { pause(): unknown; resume(): unknown } = raw ?? req;
    const decoder = this.text ? new Base64StreamDecoder() : undefined;
    let total = 0;
    let settled = false;
    const cleanup = () => {
      settled = true;
      source.off('data', onData);
      source.off('end', onEnd);
      source.off('error', onFail);
      if (raw) raw.off('close', onClose);
    };
    const onFail = (err: Error) => {
      if (settled) return;
      cleanup();
      onError(err instanceof ProxyError ? err : new ProxyError('DOWNSTREAM_BODY', { cause: err }));
    };
    const onData = (chunk: Buffer) => {
      if (decoder) {
        try {
          chunk = decoder.push(chunk);
        } catch (err) {
          return onFail(err as Error);
        }
      }
      total += chunk.length;
      if (total > this.maxBody) return onFail(new ProxyError('DOWNSTREAM_TOO_LARGE', { detail: `more than ${this.maxBody} bytes` }));
      this.keep(chunk);
      if (chunk.length === 0) return;
      // Held until this turn of the event loop has read what it read: when the client's
      // END_STREAM came with this chunk (a unary call's one DATA frame), node:http2 reports the
      // end in a callback of its own after it, and the chunk and the end go upstream as one DATA
      // frame with END_STREAM. Written at once, the end would follow as an empty DATA frame in a
      // socket write of its own, and the gRPC server would read and handle every call twice.
      if (held) pass(held);
      else passAfterReads(passHeld);
      held = chunk;
    };
    let held: Buffer | undefined;
    const pass = (chunk: Buffer) => {
      if (!sink.write(chunk)) {
        source.pause();
        sink.once('drain', () => source.resume());
      }
    };
    const passHeld = () => {
      const chunk = held;
      held = undefined;
      if (chunk && !settled && !sink.destroyed) pass(chunk);
    };
    const onEnd = () => {
      // A stream reset by the client ends its reading side too: that is the close's to report.
      if (raw && (raw.aborted || raw.rstCode !== NGHTTP2_NO_ERROR)) return;
      cleanup();
      if (held && !sink.destroyed) sink.write(held);
      held = undefined;
      if (decoder) {
        let rest: Buffer;
        try {
          rest = decoder.end();
        } catch (err) {
          settled = false;
          return onFail(err as Error);
        }
        this.keep(rest);
        if (rest.length > 0 && !sink.destroyed) sink.write(rest);
      }
      this.ended = true;
      if (!sink.destroyed) sink.end();
    };
    // The stream closed before 'end': reset by the client (or its connection went), or closed
    // cleanly with the whole body read and only its end still to come.
    const onClose = () => (raw!.aborted || raw!.rstCode !== NGHTTP2_NO_ERROR ? onFail(new ProxyError('DOWNSTREAM_ABORTED')) : onEnd());
    source.on('data', onData);
    source.once('end', onEnd);
    source.once('error', onFail);
    if (raw) {
      raw.once('close', onClose);
      // The body ended with the HEADERS (or was read to its end already): no 'end' will come.
      if (raw.endAfterHeaders || raw.readableEnded) return onEnd();
    }
  }

  private async *stream(chunks: AsyncIterable<Buffer>): AsyncGenerator<Buffer> {
    const decoder = this.text ? new Base64StreamDecoder() : undefined;
    let total = 0;
    for await (const raw of chunks) {
      const chunk = decoder ? decoder.push(raw) : raw;
      total += chunk.length;
      if (total > this.maxBody) throw new ProxyError('DOWNSTREAM_TOO_LARGE', { detail: `more than ${this.maxBody} bytes` });
      this.keep(chunk);
      if (chunk.length > 0) yield chunk;
    }
    if (decoder) {
      const rest = decoder.end();
      this.keep(rest);
      if (rest.length > 0) yield rest;
    }
    this.ended = true;
  }

  private keep(chunk: Buffer): void {
    if (!this.copy) return;
    this.size += chunk.length;
    if (this.size > this.limit) this.copy = null;
    else this.copy.push(chunk);
  }
}

/** gRPC-Web answer bodies: frames pass as they are (base64 in text mode), trailers become the last frame. */
export function webData(call: GrpcCall, chunk: Buffer): Buffer {
  return call.text ? encodeBase64Chunk(chunk) : chunk;
}

export function webTrailersFrame(call: GrpcCall, trailers: Record<string, string>): Buffer {
  const frame = encodeGrpcWebTrailers(trailers);
  return call.text ? encodeBase64Chunk(frame) : frame;
}

const { NGHTTP2_NO_ERROR } = constants;

/** Body chunks held by pipeTo until the event loop's check phase, all passed by one setImmediate. */
let heldPasses: (() => void)[] = [];
let spareHeldPasses: (() => void)[] = [];

function passAfterReads(pass: () => void): void {
  if (heldPasses.push(pass) === 1) setImmediate(runHeldPasses);
}

function runHeldPasses(): void {
  const list = heldPasses;
  heldPasses = spareHeldPasses;
  for (let i = 0; i < list.length; i++) list[i]();
  list.length = 0;
  spareHeldPasses = list;
}

/** Names of services and methods counted one by one per route; beyond, they are counted as "other". */
const MAX_NAMES = 200;

/** gRPC calls by service, method and status, and their duration: per route, names bounded. */
export class GrpcMetrics {
  private readonly calls: ReturnType<Metrics['counter']>;
  private readonly durations: ReturnType<Metrics['histogram']>;
  private readonly names = new Map<string, { byStatus: (CounterCell | undefined)[]; duration: HistogramCell; service: string; method: string }>();

  constructor(
    metrics: Metrics,
    private readonly upstream: string,
  ) {
    this.calls = metrics.counter('switchyard_grpc_proxy_calls_total', 'gRPC calls through the proxy, by upstream, service, method and final status code name.', ['upstream', 'service', 'method', 'code']);
    this.durations = metrics.histogram(
      'switchyard_grpc_proxy_call_duration_seconds',
      'gRPC calls through the proxy, from request to status, by upstream, service and method.',
      ['upstream', 'service', 'method'],
      [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300],
    );
  }

  record(call: GrpcCall, seconds: number): void {
    const status = call.status < 0 ? GrpcStatus.UNKNOWN : call.status;
    let key = call.path;
    let entry = this.names.get(key);
    if (!entry) {
      let service = call.service;
      let method = call.method;
      if (this.names.size >= MAX_NAMES) {
        key = 'other/other';
        service = 'other';
        method = 'other';
        entry = this.names.get(key);
      }
      if (!entry) {
        entry = { byStatus: [], duration: this.durations.labels(this.upstream, service, method), service, method };
        this.names.set(key, entry);
      }
    }
    const s = status >= 0 && status <= 16 ? status : GrpcStatus.UNKNOWN;
    (entry.byStatus[s] ??= this.calls.labels(this.upstream, entry.service, entry.method, grpcStatusName(s))).inc();
    entry.duration.observe(seconds);
  }
}

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
import type { H2ServerStream, StreamBodyReader } from '../../listeners/http/h2-engine/stream.ts';
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

  // The names are cut from the path only when asked for (metrics, once per distinct path).
  get service(): string {
    const slash = this.path.lastIndexOf('/');
    return slash > 0 ? this.path.slice(1, slash) : '';
  }

  get method(): string {
    const slash = this.path.lastIndexOf('/');
    return slash >= 0 ? this.path.slice(slash + 1) : '';
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
  /** The body so far while it stays within the limit: its one chunk (a unary call's), or its chunks; null past the limit. */
  private copy: Buffer | Buffer[] | null | undefined = undefined;
  private size = 0;
  private ended = false;

  constructor(
    readonly req: HttpRequest,
    readonly text: boolean,
    private readonly limit: number,
    readonly maxBody: number,
  ) {}

  /** The whole body, when it ended within the limit: what a retry sends. */
  get body(): Buffer | undefined {
    if (!this.ended || this.copy === null) return undefined;
    const copy = this.copy;
    return copy === undefined ? EMPTY : Array.isArray(copy) ? Buffer.concat(copy, this.size) : copy;
  }

  [Symbol.asyncIterator](): AsyncIterator<Buffer> {
    return this.stream(this.req.iterator({ destroyOnReturn: false }) as AsyncIterable<Buffer>);
  }

  pipeTo(sink: BodySink, onError: (err: Error) => void): void {
    new BodyPipe(this, sink, onError).start();
  }

  /** The body ended (every chunk went through keep()). */
  markEnded(): void {
    this.ended = true;
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

  keep(chunk: Buffer): void {
    const copy = this.copy;
    if (copy === null) return;
    this.size += chunk.length;
    if (this.size > this.limit) this.copy = null;
    else if (copy === undefined) this.copy = chunk;
    else if (Array.isArray(copy)) copy.push(chunk);
    else this.copy = [copy, chunk];
  }
}

/**
 * One gRPC request body pushed into its upstream stream (GrpcReplay.pipeTo): its state in one
 * object. An HTTP/2 stream calls it as its body reader (no listener, no closure per call); a
 * Readable request (HTTP/1.1, HTTP/3) gets three listeners, made only for it.
 */
class BodyPipe implements StreamBodyReader {
  /** Read straight from the HTTP/2 stream (not through the request's Readable), when it may be. */
  private readonly raw: H2ServerStream | undefined;
  private readonly source: NodeJS.EventEmitter & { pause(): unknown; resume(): unknown };
  private readonly decoder: Base64StreamDecoder | undefined;
  /** The listeners on a Readable source (none on a raw stream). */
  private listeners: { data: (chunk: Buffer) => void; end: () => void; error: (err: Error) => void } | undefined = undefined;
  private total = 0;
  private settled = false;
  /** The last chunk read, held until the loop's check phase or the body's end (see onData). */
  private held: Buffer | undefined = undefined;

  constructor(
    private readonly replay: GrpcReplay,
    private readonly sink: BodySink,
    private readonly onFailure: (err: Error) => void,
  ) {
    const req = replay.req;
    // An HTTP/2 request nobody has read yet is read from its stream itself: the request's own
    // Readable would add a push, a 'data' event and its buffering to every chunk of the call.
    this.raw = req.httpVersionMajor === 2 && req.readableFlowing === null && req.readableLength === 0 && !req.readableEnded ? (req as Http2Request).stream : undefined;
    this.source = this.raw ?? req;
    this.decoder = replay.text ? new Base64StreamDecoder() : undefined;
  }

  start(): void {
    const raw = this.raw;
    if (raw) {
      // The body ended with the HEADERS (or was read to its end already): no 'end' will come.
      if ((raw.endAfterHeaders || raw.readableEnded) && !this.reset()) return this.onEnd();
      raw.readBody(this);
      return;
    }
    const source = this.source;
    const listeners = { data: (chunk: Buffer) => this.onData(chunk), end: () => this.onEnd(), error: (err: Error) => this.onError(err) };
    this.listeners = listeners;
    source.on('data', listeners.data);
    source.on('end', listeners.end);
    source.on('error', listeners.error);
  }

  /** The client reset the stream (or its connection went). */
  private reset(): boolean {
    const raw = this.raw!;
    return raw.aborted || raw.rstCode !== NGHTTP2_NO_ERROR;
  }

  private cleanup(): void {
    this.settled = true;
    if (this.raw) this.raw.releaseBody(this);
    const listeners = this.listeners;
    if (listeners) {
      const source = this.source;
      source.off('data', listeners.data);
      source.off('end', listeners.end);
      source.off('error', listeners.error);
      this.listeners = undefined;
    }
  }

  onError(err: Error): void {
    if (this.settled) return;
    this.cleanup();
    this.onFailure(err instanceof ProxyError ? err : new ProxyError('DOWNSTREAM_BODY', { cause: err }));
  }

  onData(chunk: Buffer): void {
    if (this.decoder) {
      try {
        chunk = this.decoder.push(chunk);
      } catch (err) {
        return this.onError(err as Error);
      }
    }
    this.total += chunk.length;
    const max = this.replay.maxBody;
    if (this.total > max) return this.onError(new ProxyError('DOWNSTREAM_TOO_LARGE', { detail: `more than ${max} bytes` }));
    this.replay.keep(chunk);
    if (chunk.length === 0) return;
    // Held until this turn of the event loop has read what it read: when the client's
    // END_STREAM came with this chunk (a unary call's one DATA frame), the stream reports the
    // end in a callback of its own after it, and the chunk and the end go upstream as one DATA
    // frame with END_STREAM. Written at once, the end would follow as an empty DATA frame in a
    // socket write of its own, and the gRPC server would read and handle every call twice.
    if (this.held) this.pass(this.held);
    else passAfterReads(this);
    this.held = chunk;
  }

  private pass(chunk: Buffer): void {
    if (!this.sink.write(chunk)) {
      this.source.pause();
      this.sink.once('drain', () => this.source.resume());
    }
  }

  /** The check phase came before the body's end: the held chunk goes now. */
  passHeld(): void {
    const chunk = this.held;
    this.held = undefined;
    if (chunk && !this.settled && !this.sink.destroyed) this.pass(chunk);
  }

  onEnd(): void {
    // A stream reset by the client ends its reading side too: that is the close's to report.
    if (this.raw && this.reset()) return;
    this.cleanup();
    const sink = this.sink;
    if (this.held && !sink.destroyed) sink.write(this.held);
    this.held = undefined;
    if (this.decoder) {
      let rest: Buffer;
      try {
        rest = this.decoder.end();
      } catch (err) {
        this.settled = false;
        return this.onError(err as Error);
      }
      this.replay.keep(rest);
      if (rest.length > 0 && !sink.destroyed) sink.write(rest);
    }
    this.replay.markEnded();
    if (!sink.destroyed) sink.end();
  }

  // The stream closed before 'end': reset by the client (or its connection went), or closed
  // cleanly with the whole body read and only its end still to come.
  onClose(): void {
    if (this.reset()) this.onError(new ProxyError('DOWNSTREAM_ABORTED'));
    else this.onEnd();
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

const EMPTY = Buffer.alloc(0);

/** Body chunks held by pipeTo until the event loop's check phase, all passed by one setImmediate. */
let heldPasses: BodyPipe[] = [];
let spareHeldPasses: BodyPipe[] = [];

function passAfterReads(pipe: BodyPipe): void {
  if (heldPasses.push(pipe) === 1) setImmediate(runHeldPasses);
}

function runHeldPasses(): void {
  const list = heldPasses;
  heldPasses = spareHeldPasses;
  for (let i = 0; i < list.length; i++) list[i].passHeld();
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

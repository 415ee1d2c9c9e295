import type { Logger } from 'pino';
import {
  Base64StreamDecoder,
  formatGrpcContentType,
  GrpcFrameDecoder,
  GrpcStatus,
  grpcStatusName,
  parseGrpcContentType,
  parseGrpcTimeout,
  type GrpcProtocol,
} from '../../protocol/grpc/index.ts';
import type { HotCounter } from '../../observe/hot-metrics.ts';
import { replyError } from '../http/reply.ts';
import type { HandlerModule, HttpContext, HttpHandler, ProvisionContext } from '../types.ts';
import { Call, type CallStats } from './call.ts';
import { BUILTIN_SERVICES, grpcSchema, type GrpcConfig } from './config.ts';
import { GrpcWebCors } from './cors.ts';
import { greeterService } from './greeter.ts';
import { HealthState, healthService } from './health.ts';
import { builtinRoot, describeService, type MethodDescriptor } from './protos.ts';
import { FrameReader } from './reader.ts';
import type { MethodImpl, ServiceImpl } from './service.ts';
import { ACCEPT_ENCODINGS, GrpcTransport, GrpcWebTransport, type CallTransport } from './transport.ts';

// The `grpc` handler (docs/grpc.md): gRPC services on an http listener's routes, through the
// same router and middleware as any request. gRPC proper needs HTTP/2 (TLS with ALPN h2, or
// h2c); gRPC-Web is served by the same handler over HTTP/1.1 or HTTP/2. The services are the
// built-in ones (helloworld.Greeter, grpc.health.v1.Health), their types loaded from proto/
// with protobufjs.
//
// A request goes: method (POST; OPTIONS for CORS) -> content type (else 415) -> HTTP/2 for
// gRPC (else 505) -> grpc-timeout, grpc-encoding, path -> the method, in a Call (call.ts).
// From the content type on, refusals are gRPC statuses, as trailers-only responses.

export { grpcSchema, type GrpcConfig } from './config.ts';
export type { ServerCall, ServiceImpl, MethodImpl, Message } from './service.ts';

const PATH = /^\/([^/?#]+)\/([^/?#]+)$/;

interface Route {
  readonly descriptor: MethodDescriptor;
  readonly impl: MethodImpl;
  /** Metric cells of this method, one per protocol, made on first use. */
  readonly cells: Map<string, MethodCells>;
}

interface MethodCells {
  readonly sent: ReturnType<HotCounter['labels']>;
  readonly received: ReturnType<HotCounter['labels']>;
}

class GrpcHttpHandler implements HttpHandler {
  private readonly routes = new Map<string, Route>();
  private readonly health: HealthState;
  private readonly cors: GrpcWebCors;
  private readonly calls = new Set<Call>();
  private readonly callsTotal: HotCounter;
  private readonly messages: HotCounter;
  private readonly listener: string;

  constructor(
    private readonly config: GrpcConfig,
    ctx: ProvisionContext,
  ) {
    this.listener = ctx.listener;
    const served = config.services.map((s) => BUILTIN_SERVICES[s]);
    this.health = new HealthState(served);
    const impls: ServiceImpl[] = [];
    for (const s of config.services) {
      if (s === 'greeter') impls.push(greeterService({ ...config.greeter, maxReplySize: config.maxSendMessageSize }));
      if (s === 'health') impls.push(healthService(this.health));
    }
    const root = builtinRoot();
    for (const impl of impls) {
      for (const [name, descriptor] of describeService(root, impl.name)) {
        const fn = impl.methods[name];
        if (fn) this.routes.set(descriptor.path, { descriptor, impl: fn, cells: new Map() });
      }
    }
    this.cors = new GrpcWebCors(config.grpcWeb);
    this.callsTotal = ctx.metrics.counter('switchyard_grpc_calls_total', 'gRPC calls ended, by listener, method (unknown for unknown ones), protocol (grpc, grpc-web, grpc-web-text) and status code name.', ['listener', 'method', 'protocol', 'code']);
    this.messages = ctx.metrics.counter('switchyard_grpc_messages_total', 'gRPC messages, by listener, method and direction (received, sent).', ['listener', 'method', 'direction']);
  }

  handle(ctx: HttpContext): void {
    const { req, res } = ctx;
    const web = this.config.grpcWeb.enabled;
    if (req.method === 'OPTIONS' && web) return this.cors.answerOptions(req, res);
    if (req.method !== 'POST') return replyError(res, 405, 'gRPC calls are POST requests', { headers: { allow: web ? 'POST, OPTIONS' : 'POST' } });
    const ct = parseGrpcContentType(req.headers['content-type']);
    if (!ct || (ct.protocol !== 'grpc' && !web)) {
      return replyError(res, 415, web ? 'expected content-type application/grpc, application/grpc-web or application/grpc-web-text' : 'expected content-type application/grpc (gRPC-Web is off on this route)');
    }
    if (ct.format !== 'proto') return replyError(res, 415, `messages here are protobuf (+proto), not +${ct.format}`);
    if (ct.protocol === 'grpc' && req.httpVersionMajor !== 2) {
      return replyError(res, 505, 'gRPC needs HTTP/2: TLS with ALPN h2, or h2c (http2.h2c on a plain listener); gRPC-Web (application/grpc-web) works over HTTP/1.1');
    }
    const transport: CallTransport =
      ct.protocol === 'grpc'
        ? new GrpcTransport(res, formatGrpcContentType(ct))
        : new GrpcWebTransport(res, ct.protocol === 'grpc-web-text', formatGrpcContentType(ct), this.cors.headersFor(req));

    const path = (req.url ?? '/').split('?')[0];
    const m = PATH.exec(path);
    const route = this.routes.get(path);
    const refuse = (status: number, message: string, method = 'unknown') => {
      // Nothing of the body is wanted: it is read and dropped, so the stream can close cleanly.
      req.resume();
      transport.finish(status, message);
      this.callsTotal.labels(this.listener, method, transport.protocol, grpcStatusName(status)).inc();
    };
    if (!route) {
      if (!m) return refuse(GrpcStatus.UNIMPLEMENTED, `not a gRPC method path: ${JSON.stringify(path)} (expected /package.Service/Method)`);
      const known = [...this.routes.values()].some((r) => r.descriptor.service === m[1]);
      return refuse(GrpcStatus.UNIMPLEMENTED, known ? `unknown method ${m[2]} of service ${m[1]}` : `unknown service ${m[1]}`);
    }
    const label = route.descriptor.path;
    let timeout: number | undefined;
    const header = req.headers['grpc-timeout'];
    if (header !== undefined) {
      try {
        timeout = parseGrpcTimeout(String(header));
      } catch (err) {
        return refuse(GrpcStatus.INTERNAL, (err as Error).message, label);
      }
    }
    if (this.config.maxTimeout !== undefined) timeout = Math.min(timeout ?? Infinity, this.config.maxTimeout);
    const encoding = (req.headers['grpc-encoding'] as string | undefined)?.trim().toLowerCase();
    if (encoding !== undefined && !['identity', 'gzip', 'deflate'].includes(encoding)) {
      return refuse(GrpcStatus.UNIMPLEMENTED, `grpc-encoding ${encoding} is not supported (${ACCEPT_ENCODINGS})`, label);
    }
    this.startCall(ctx, route, transport, ct.protocol, timeout, encoding);
  }

  private startCall(ctx: HttpContext, route: Route, transport: CallTransport, protocol: GrpcProtocol, timeout: number | undefined, encoding: string | undefined): void {
    const { req } = ctx;
    const method = route.descriptor.path;
    let cells = route.cells.get(protocol);
    if (!cells) {
      cells = { sent: this.messages.labels(this.listener, method, 'sent'), received: this.messages.labels(this.listener, method, 'received') };
      route.cells.set(protocol, cells);
    }
    const { sent, received } = cells;
    const stats: CallStats = {
      sent: () => sent.inc(),
      received: () => received.inc(),
      ended: (status) => {
        this.callsTotal.labels(this.listener, method, protocol, grpcStatusName(status)).inc();
      },
    };
    const controller = new AbortController();
    const reader = new FrameReader(
      req,
      new GrpcFrameDecoder({ maxMessageSize: this.config.maxReceiveMessageSize }),
      protocol === 'grpc-web-text' ? new Base64StreamDecoder() : undefined,
      controller.signal,
    );
    const call = new Call({
      method: route.descriptor,
      impl: route.impl,
      transport,
      reader,
      metadata: req.headers,
      encoding,
      timeout,
      maxReceiveMessageSize: this.config.maxReceiveMessageSize,
      maxSendMessageSize: this.config.maxSendMessageSize,
      stats,
      log: ctx.log as Logger,
    });
    // The reader stops waiting when the call ends, however it ends.
    call.signal.addEventListener('abort', () => controller.abort(call.signal.reason), { once: true });
    this.calls.add(call);
    void call.run().finally(() => this.calls.delete(call));
  }

  /** The yard is stopping: health turns NOT_SERVING (Watch streams hear it and end); other calls finish. */
  drain(): void {
    this.health.shutdown();
  }

  /** Calls still running when the grace period is over end with UNAVAILABLE. */
  close(): void {
    for (const call of this.calls) call.end(GrpcStatus.UNAVAILABLE, 'server shutting down');
    this.calls.clear();
  }
}

export const grpcHandler: HandlerModule<GrpcConfig> = {
  type: 'grpc',
  summary: 'gRPC and gRPC-Web services: helloworld.Greeter and grpc.health.v1.Health (docs/grpc.md)',
  schema: grpcSchema,
  http: (config, ctx) => new GrpcHttpHandler(config, ctx),
};

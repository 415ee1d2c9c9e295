import type { Http2Request, Http3Request, HttpContext, HttpHandler, UpgradeContext } from '../types.ts';
import type { UpstreamGroup } from '../../upstream/group.ts';
import { readBody } from '../http/body.ts';
import { replyError } from '../http/reply.ts';
import { Exchange, type ProxyRoute } from './http.ts';
import { clientIp, requestHeaders, type ForwardPolicy } from './request-headers.ts';
import { RetryPolicy } from './retry.ts';
import { ProxyError, refusalError, refusalHeaders } from './errors.ts';
import { proxyWebSocket } from './websocket.ts';
import { GrpcMetrics, GrpcReplay, grpcCallOf, refusalMetadata, replyGrpc } from './grpc.ts';
import { GrpcStatus } from '../../protocol/grpc/index.ts';
import type { Metrics } from '../../observe/metrics.ts';
import type { ProxyConfig } from './config.ts';

// The proxy handler: a request passes through named phases, in this order, all reading and
// writing the one per-request Exchange:
//   admit    the group's admission (upstream/admission.ts): a target, the pending cap, the
//            circuit breaker; a refusal is a 503 (with Retry-After unless no target exists)
//   rewrite  the upstream path (stripPrefix, rewrite) and headers (request-headers.ts)
//   body     none / buffered in full when small enough to allow retries / streamed
//   exchange tries against the group with retries and timeouts (http.ts, retry.ts)
//   respond  headers (response-headers.ts) and body streamed back with backpressure
// WebSocket upgrades take the same admit/rewrite phases and are piped (websocket.ts).

export class ProxyHandler implements HttpHandler {
  private readonly route: ProxyRoute;
  private readonly group: UpstreamGroup;
  private readonly policy: ForwardPolicy;
  private readonly rewriteFrom: RegExp | undefined;
  readonly upgrade: ((ctx: UpgradeContext) => void) | undefined;
  /**
   * WebSocket only: any other Upgrade (h2c above all) is served as a plain request and its
   * Upgrade header dropped, never handed to a backend that might switch protocols behind our back.
   */
  readonly upgrades: readonly string[];

  constructor(
    group: UpstreamGroup,
    private readonly config: ProxyConfig,
    metrics: Metrics,
  ) {
    this.group = group;
    this.route = {
      group,
      retry: new RetryPolicy(group.config.retry),
      via: config.via,
      totalTimeout: group.config.timeouts.total,
      grpcMetrics: new GrpcMetrics(metrics, group.name),
    };
    this.policy = { host: config.host, trustForwarded: config.trustForwarded, forwarded: config.forwarded, via: config.via, forwardClientCert: config.forwardClientCert };
    this.rewriteFrom = config.rewrite ? new RegExp(config.rewrite.from, 'g') : undefined;
    this.upgrades = config.websocket ? ['websocket'] : [];
    this.upgrade = config.websocket ? (ctx) => proxyWebSocket(ctx, this.group, this.policy, this.upstreamPath(ctx.req.url ?? '/', ctx.pathRest)) : undefined;
  }

  handle(ctx: HttpContext): void | Promise<void> {
    const { req, res } = ctx;
    const group = this.group;

    // admit
    const ex = new Exchange(this.route, req, res, clientIp(req));
    const ct = req.headers['content-type'];
    if (ct !== undefined && ct.startsWith('application/grpc')) ex.grpc = grpcCallOf(req);
    const adm = group.admit(ex);
    if (!adm.ok) {
      if (ex.grpc) {
        replyGrpc(res, ex.grpc, GrpcStatus.UNAVAILABLE, refusalError(adm).reason, refusalMetadata(adm));
        this.route.grpcMetrics.record(ex.grpc, 0);
        return;
      }
      return replyError(res, 503, refusalError(adm).reason, { headers: refusalHeaders(adm) });
    }
    ex.adm = adm;

    // rewrite
    const method = req.method ?? 'GET';
    ex.method = method;
    ex.upstreamPath = this.upstreamPath(req.url ?? '/', ctx.pathRest);
    ex.headers = requestHeaders(req, ctx.requestId, this.policy, ex.clientIp);
    if (ex.grpc) {
      // gRPC: streamed (a call may be a stream either way), with a copy kept for a retry while
      // the body stays within retry.bufferBody; gRPC-Web becomes gRPC on the way up.
      const call = ex.grpc;
      if (call.web) ex.headers = grpcUpstreamHeaders(ex.headers, call.contentType.format);
      const replay = new GrpcReplay(req, call.text, this.route.retry.maxTries > 1 ? this.route.retry.bufferBody : 0, ctx.limits.maxBodySize);
      ex.replay = replay;
      ex.body = replay;
      return ex.start();
    }

    // body
    const declared = req.headers['content-length'];
    const retry = this.route.retry;
    // No body: no length and no chunked framing (HTTP/1.1), or HEADERS that ended the stream
    // (HTTP/2, where a body needs no Content-Length).
    const bodiless = declared === undefined && (req.httpVersionMajor === 2 ? (req as Http2Request).stream.endAfterHeaders : req.httpVersionMajor === 3 ? (req as Http3Request).endAfterHeaders : req.headers['transfer-encoding'] === undefined);
    if (bodiless) {
      ex.resendable = retry.resendable(method, true);
      return ex.start();
    }
    const length = declared === undefined ? -1 : Number(declared);
    if (length === 0) {
      ex.resendable = retry.resendable(method, true);
      return ex.start();
    }
    if (length > 0 && length <= retry.bufferBody && retry.maxTries > 1) {
      return readBody(req, ctx.limits.maxBodySize).then(
        (body) => {
          ex.body = body;
          ex.resendable = retry.resendable(method, true);
          ex.start();
        },
        (err: unknown) => {
          adm.end('success');
          throw err;
        },
      );
    }
    // Streamed: read once, so only a try that never reached the upstream may be repeated. As an
    // iterator that leaves `req` alone when a try ends: given the stream itself, undici destroys
    // it at the end and sets req.socket to null (which breaks every later reader of req.socket,
    // such as the access log) and leaves no way to answer 502 after a failed upload.
    const chunks = req.iterator({ destroyOnReturn: false });
    // A declared length was checked by the listener; a chunked body is counted as it streams.
    ex.body = length === -1 ? limited(chunks, ctx.limits.maxBodySize) : chunks;
    ex.resendable = false;
    ex.start();
  }

  private upstreamPath(url: string, pathRest: string): string {
    if (!this.config.stripPrefix && !this.rewriteFrom) return url;
    const q = url.indexOf('?');
    const query = q === -1 ? '' : url.slice(q);
    let path = this.config.stripPrefix ? pathRest : q === -1 ? url : url.slice(0, q);
    if (this.rewriteFrom) {
      path = path.replace(this.rewriteFrom, this.config.rewrite!.to);
      if (!path.startsWith('/')) path = `/${path}`;
    }
    return path + query;
  }
}

/** Passes a streamed body through, failing with 413 once it grows past `max` bytes. */
async function* limited(chunks: AsyncIterable<Buffer>, max: number): AsyncGenerator<Buffer> {
  let total = 0;
  for await (const chunk of chunks) {
    total += chunk.length;
    if (total > max) throw new ProxyError('DOWNSTREAM_TOO_LARGE', { detail: `more than ${max} bytes` });
    yield chunk;
  }
}

/** gRPC-Web request headers as gRPC wants them: its content type, te: trailers, no length (text mode changes it). */
function grpcUpstreamHeaders(flat: string[], format: string): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i].toLowerCase();
    if (name === 'content-type' || name === 'content-length' || name === 'te') continue;
    out.push(flat[i], flat[i + 1]);
  }
  out.push('content-type', `application/grpc+${format}`, 'te', 'trailers');
  return out;
}

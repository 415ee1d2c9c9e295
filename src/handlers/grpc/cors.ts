import type { OutgoingHttpHeaders } from 'node:http';
import type { HttpRequest, HttpResponse } from '../types.ts';
import type { GrpcWebConfig } from './config.ts';

// CORS for gRPC-Web calls from pages of other origins (grpcWeb.origins). A browser sends a
// preflight first (gRPC-Web's content type and x-grpc-web header are not "simple"), then the
// call; the call's answer must expose grpc-status and grpc-message, or a trailers-only error
// would reach the page without its status. With no origins configured nothing is added here:
// same-origin pages need none, and the route's cors middleware may do it instead.

/** Request headers gRPC-Web clients send, allowed when a preflight does not list its own. */
const DEFAULT_ALLOW_HEADERS = 'content-type, x-grpc-web, x-user-agent, grpc-timeout, authorization';
const EXPOSE_HEADERS = 'grpc-status, grpc-message, grpc-status-details-bin';

export class GrpcWebCors {
  private readonly any: boolean;
  private readonly origins: Set<string>;
  private readonly maxAge: string;

  constructor(config: GrpcWebConfig) {
    this.any = config.origins.includes('*');
    this.origins = new Set(config.origins);
    this.maxAge = String(Math.floor(config.maxAge / 1000));
  }

  private allows(origin: string | undefined): origin is string {
    return origin !== undefined && (this.any || this.origins.has(origin));
  }

  /** Headers for the answer to a call from `req`'s origin: empty unless it is allowed. */
  headersFor(req: HttpRequest): OutgoingHttpHeaders {
    const origin = req.headers.origin;
    if (!this.allows(origin)) return {};
    return this.any
      ? { 'access-control-allow-origin': '*', 'access-control-expose-headers': EXPOSE_HEADERS }
      : { 'access-control-allow-origin': origin, 'access-control-expose-headers': EXPOSE_HEADERS, vary: 'Origin' };
  }

  /**
   * Answers an OPTIONS request: a preflight from an allowed origin gets 204 with the allow
   * headers; from any other origin 204 without them (how a browser learns "no"); an OPTIONS
   * that is no preflight gets 204 with Allow.
   */
  answerOptions(req: HttpRequest, res: HttpResponse): void {
    const origin = req.headers.origin;
    const preflight = origin !== undefined && req.headers['access-control-request-method'] !== undefined;
    const headers: OutgoingHttpHeaders = { 'content-length': 0 };
    if (!preflight) headers.allow = 'POST, OPTIONS';
    else if (this.allows(origin)) {
      Object.assign(headers, {
        'access-control-allow-origin': this.any ? '*' : origin,
        'access-control-allow-methods': 'POST',
        'access-control-allow-headers': req.headers['access-control-request-headers'] || DEFAULT_ALLOW_HEADERS,
        'access-control-max-age': this.maxAge,
      });
      if (!this.any) headers.vary = 'Origin';
    }
    res.writeHead(204, headers);
    res.end();
  }
}

import type { OutgoingHttpHeaders } from 'node:http';
import { encodeGrpcMessage } from './message.ts';
import type { GrpcStatus } from './status.ts';

// How a gRPC server ends a call. With messages sent, the status goes in the trailers (HTTP/2
// trailers for gRPC). Without any, the answer may be "trailers-only": one HEADERS frame with
// :status 200, the content type and grpc-status/grpc-message, ending the stream. That is how
// errors found before any reply (unknown method, bad timeout, message too large) are sent.
//
// The response type is structural (what node:http's and node:http2's compatibility responses
// both have), so this layer does not depend on the handlers'.

/** What replyGrpcStatus needs of a response. */
export interface GrpcStatusTarget {
  readonly headersSent: boolean;
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): unknown;
  addTrailers(headers: OutgoingHttpHeaders): void;
  end(): unknown;
  /** Headers already set on the response (x-request-id, CORS): kept in a trailers-only answer. */
  getHeaders?(): OutgoingHttpHeaders;
  /**
   * node:http2's compatibility response has its stream here. A trailers-only answer must be one
   * HEADERS frame with END_STREAM: gRPC clients (grpc-js among them) read a status from
   * response headers only with that flag. writeHead() and end() on the compatibility response
   * send HEADERS and then end the stream with a separate empty frame, which such a client takes
   * for a call that ended without a status.
   */
  readonly stream?: { respond(headers: OutgoingHttpHeaders, options: { endStream: boolean }): void };
}

/**
 * Sends a complete response of headers only: on HTTP/2 (a response with `stream`) as a single
 * HEADERS frame with END_STREAM, keeping headers set on the response before; on HTTP/1.1 with
 * Content-Length 0.
 */
export function respondHeadersOnly(res: GrpcStatusTarget, status: number, headers: OutgoingHttpHeaders): void {
  const stream = res.stream;
  if (stream && typeof stream.respond === 'function') {
    stream.respond({ ...res.getHeaders?.(), ...headers, ':status': status }, { endStream: true });
    return;
  }
  res.writeHead(status, { ...headers, 'content-length': 0 });
  res.end();
}

/** The status fields: `grpc-status` and, when there is text, `grpc-message` percent-encoded. */
export function grpcStatusFields(status: GrpcStatus | number, message = '', metadata: Record<string, string> = {}): Record<string, string> {
  const fields: Record<string, string> = { ...metadata, 'grpc-status': String(status) };
  if (message !== '') fields['grpc-message'] = encodeGrpcMessage(message);
  return fields;
}

/**
 * Trailers-only response headers: HTTP 200, the content type, the status fields and `extra`
 * (CORS headers, grpc-accept-encoding).
 */
export function grpcTrailersOnlyHeaders(status: GrpcStatus | number, message = '', options: { contentType?: string; headers?: OutgoingHttpHeaders; metadata?: Record<string, string> } = {}): OutgoingHttpHeaders {
  return { 'content-type': options.contentType ?? 'application/grpc', ...options.headers, ...grpcStatusFields(status, message, options.metadata) };
}

/**
 * Ends a native gRPC call with a status: as trailers after the messages when the headers have
 * gone out, else as a trailers-only response. (gRPC-Web sends its trailers in the body instead:
 * encodeGrpcWebTrailers.)
 */
export function replyGrpcStatus(
  res: GrpcStatusTarget,
  status: GrpcStatus | number,
  message = '',
  options: { contentType?: string; headers?: OutgoingHttpHeaders; metadata?: Record<string, string> } = {},
): void {
  if (res.headersSent) {
    res.addTrailers(grpcStatusFields(status, message, options.metadata));
    res.end();
    return;
  }
  respondHeadersOnly(res, 200, grpcTrailersOnlyHeaders(status, message, options));
}

/** An error before any reply, as a trailers-only response (replyGrpcStatus under the name callers look for). */
export function replyGrpcError(res: GrpcStatusTarget, status: GrpcStatus | number, message: string, options: { contentType?: string; headers?: OutgoingHttpHeaders } = {}): void {
  replyGrpcStatus(res, status, message, options);
}

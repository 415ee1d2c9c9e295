import type { OutgoingHttpHeaders } from 'node:http';
import { constants } from 'node:http2';
import {
  encodeBase64Chunk,
  encodeGrpcWebTrailers,
  grpcStatusFields,
  grpcTrailersOnlyHeaders,
  respondHeadersOnly,
  type GrpcProtocol,
  type GrpcStatusTarget,
} from '../../protocol/grpc/index.ts';
import { http2Stream, type HttpResponse } from '../types.ts';

// How a call's replies and status reach the client: gRPC puts the status in HTTP/2 trailers;
// gRPC-Web in a last frame of the body (base64, like the rest, in text mode). Either way a call
// that ends before any reply is answered "trailers-only": the status in the response headers.

/** Compression this server can read in requests (replies are sent uncompressed). */
export const ACCEPT_ENCODINGS = 'identity, gzip, deflate';

export interface CallTransport {
  readonly protocol: GrpcProtocol;
  readonly res: HttpResponse;
  /** Writes one message frame (headers first, with the first one). Returns write()'s answer: false means wait for 'drain'. */
  write(frame: Buffer): boolean;
  /** Ends the call with a status; nothing is written if the client is already gone. */
  finish(status: number, message: string): void;
}

/** The response can still be written to (the client has not reset the stream or closed the connection). */
const open = (res: HttpResponse) => !res.destroyed && !res.writableEnded;

/**
 * A trailers-only answer. On HTTP/2, when the client is still sending, it is then asked to stop
 * with RST_STREAM NO_ERROR (RFC 9113 §8.1), as grpc-go does: a client that never ends its side
 * would otherwise hold the stream open until the listener's idle timeout. Only here: with
 * DATA queued, a reset right after end() can overtake the trailers (node drops them).
 */
function endTrailersOnly(res: HttpResponse, headers: OutgoingHttpHeaders): void {
  respondHeadersOnly(res as HttpResponse & GrpcStatusTarget, 200, headers);
  const stream = http2Stream(res);
  if (!stream || stream.endAfterHeaders) return;
  // On the next turn: on Node 22 a reset in the turn the stream arrived in is sent instead of the
  // HEADERS frame (node drops it), and the client gets RST_STREAM NO_ERROR with no status.
  setImmediate(() => {
    if (!res.req.readableEnded && !stream.destroyed) stream.close(constants.NGHTTP2_NO_ERROR);
  });
}

/** gRPC over HTTP/2: the status in trailers. */
export class GrpcTransport implements CallTransport {
  readonly protocol = 'grpc' as const;
  private started = false;

  constructor(
    readonly res: HttpResponse,
    private readonly contentType: string,
  ) {}

  write(frame: Buffer): boolean {
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { 'content-type': this.contentType, 'grpc-accept-encoding': ACCEPT_ENCODINGS });
    }
    return this.res.write(frame);
  }

  finish(status: number, message: string): void {
    if (!open(this.res)) return;
    if (this.started) {
      this.res.addTrailers(grpcStatusFields(status, message));
      this.res.end();
    } else {
      endTrailersOnly(this.res, grpcTrailersOnlyHeaders(status, message, { contentType: this.contentType, headers: { 'grpc-accept-encoding': ACCEPT_ENCODINGS } }));
    }
  }
}

/** gRPC-Web (HTTP/1.1 or HTTP/2): the status in a trailers frame at the end of the body. */
export class GrpcWebTransport implements CallTransport {
  readonly protocol: GrpcProtocol;
  private started = false;

  constructor(
    readonly res: HttpResponse,
    private readonly text: boolean,
    private readonly contentType: string,
    /** CORS headers for the caller's origin, if any. */
    private readonly extraHeaders: OutgoingHttpHeaders,
  ) {
    this.protocol = text ? 'grpc-web-text' : 'grpc-web';
  }

  write(frame: Buffer): boolean {
    if (!this.started) {
      this.started = true;
      this.res.writeHead(200, { ...this.extraHeaders, 'content-type': this.contentType, 'grpc-accept-encoding': ACCEPT_ENCODINGS });
    }
    return this.res.write(this.text ? encodeBase64Chunk(frame) : frame);
  }

  finish(status: number, message: string): void {
    if (!open(this.res)) return;
    if (!this.started) {
      endTrailersOnly(this.res, grpcTrailersOnlyHeaders(status, message, { contentType: this.contentType, headers: this.extraHeaders }));
      return;
    }
    const trailers = encodeGrpcWebTrailers(grpcStatusFields(status, message));
    this.res.end(this.text ? encodeBase64Chunk(trailers) : trailers);
  }
}

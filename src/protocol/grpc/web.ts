import { Transform, type TransformCallback } from 'node:stream';
import { Base64StreamDecoder, encodeBase64Chunk } from './base64.ts';
import { encodeGrpcFrame, GrpcFrameDecoder, GrpcFrameError, GRPC_FLAG_TRAILERS, GRPC_DEFAULT_MAX_MESSAGE_SIZE, type GrpcFrame } from './framing.ts';
import { GrpcStatus } from './status.ts';

// gRPC-Web (PROTOCOL-WEB.md): gRPC for clients that cannot read HTTP/2 trailers (browsers),
// over HTTP/1.1 or HTTP/2. What differs from gRPC:
//
//   - the content type is application/grpc-web[+proto] or application/grpc-web-text[+proto];
//   - the response's trailers travel at the end of the body, as one more frame with flag 0x80
//     whose payload is an HTTP/1 header block (`grpc-status: 0\r\ngrpc-message: \r\n`, names in
//     lower case); a trailers-only response may instead carry grpc-status in its headers;
//   - in text mode both bodies are base64 of the binary frames, possibly in separately padded
//     pieces (base64.ts).
//
// The message frames themselves are gRPC's (framing.ts). So a translator gRPC-Web -> gRPC:
//   request:  content type -> application/grpc+FORMAT, add `te: trailers`, drop content-length
//             in text mode; body through grpcWebTextDecoder() in text mode, else as it is;
//   response: body through grpcWebTextEncoder() in text mode, else as it is; at the end the
//             upstream's trailers as encodeGrpcWebTrailers(...) (through the encoder as well in
//             text mode); a trailers-only upstream answer can be passed on as headers.

/** Header values as node gives and takes them. */
export type TrailerValues = Record<string, string | number | readonly string[] | undefined>;

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;

/**
 * The trailers frame of a gRPC-Web response body: flag 0x80 and the trailers as an HTTP/1
 * header block, names lower case, one line per value. A name that is not a token, or a value
 * with CR, LF or NUL, is refused with a TypeError (it would forge lines of its own).
 */
export function encodeGrpcWebTrailers(trailers: TrailerValues): Buffer {
  let block = '';
  for (const [rawName, value] of Object.entries(trailers)) {
    if (value === undefined) continue;
    const name = rawName.toLowerCase();
    if (!TOKEN.test(name)) throw new TypeError(`not a header name: ${JSON.stringify(rawName)}`);
    for (const v of Array.isArray(value) ? value : [value]) {
      const text = String(v);
      if (/[\r\n\0]/.test(text)) throw new TypeError(`the value of ${name} holds a line break or NUL`);
      block += `${name}: ${text}\r\n`;
    }
  }
  return encodeGrpcFrame(Buffer.from(block, 'latin1'), GRPC_FLAG_TRAILERS);
}

/**
 * The trailers in a trailers frame's payload, names lower case; a name given twice has its
 * values joined with ", ". Lines without a colon are skipped; `\n` alone ends a line too.
 */
export function decodeGrpcWebTrailers(payload: Uint8Array): Record<string, string> {
  const out: Record<string, string> = {};
  const text = Buffer.from(payload.buffer, payload.byteOffset, payload.byteLength).toString('latin1');
  for (const line of text.split(/\r?\n/)) {
    const colon = line.indexOf(':');
    if (colon <= 0) continue;
    const name = line.slice(0, colon).trim().toLowerCase();
    const value = line.slice(colon + 1).trim();
    out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
  }
  return out;
}

/**
 * A Transform from a text-mode body (base64, in any pieces) to the binary frames it encodes.
 * Errors (Base64Error) are emitted as the stream's error.
 */
export function grpcWebTextDecoder(): Transform {
  const decoder = new Base64StreamDecoder();
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      try {
        const out = decoder.push(chunk);
        done(null, out.length > 0 ? out : undefined);
      } catch (err) {
        done(err as Error);
      }
    },
    flush(done: TransformCallback) {
      try {
        const out = decoder.end();
        done(null, out.length > 0 ? out : undefined);
      } catch (err) {
        done(err as Error);
      }
    },
  });
}

/** A Transform from binary bytes to a text-mode body: each chunk as its own padded base64 (nothing held back). */
export function grpcWebTextEncoder(): Transform {
  return new Transform({
    transform(chunk: Buffer, _enc, done: TransformCallback) {
      done(null, chunk.length > 0 ? encodeBase64Chunk(chunk) : undefined);
    },
  });
}

const afterTrailers = () => new GrpcFrameError('SWITCHYARD_GRPC_AFTER_TRAILERS', GrpcStatus.INTERNAL, 'gRPC-Web response: data after the trailers frame');

/** What one chunk of a gRPC-Web response body completed. */
export interface GrpcWebResponseParts {
  /** Message payloads, in order (flag 0x01 ones still compressed: see `compressed`). */
  readonly messages: GrpcFrame[];
  /** The trailers, once their frame has come. */
  readonly trailers?: Record<string, string>;
}

export interface GrpcWebResponseDecoderOptions {
  /** application/grpc-web-text: the body is base64. */
  readonly text: boolean;
  /** Largest message (and trailers block) accepted; default 4 MiB. */
  readonly maxMessageSize?: number;
}

/**
 * Reads a gRPC-Web response body (for clients, tests, and a proxy speaking gRPC-Web to its
 * upstream): push chunks, get messages and finally the trailers. Data after the trailers frame
 * is an error (SWITCHYARD_GRPC_AFTER_TRAILERS). Throws GrpcFrameError or Base64Error.
 */
export class GrpcWebResponseDecoder {
  private readonly base64: Base64StreamDecoder | undefined;
  private readonly frames: GrpcFrameDecoder;
  private trailersSeen = false;

  constructor(options: GrpcWebResponseDecoderOptions) {
    this.base64 = options.text ? new Base64StreamDecoder() : undefined;
    this.frames = new GrpcFrameDecoder({ maxMessageSize: options.maxMessageSize ?? GRPC_DEFAULT_MAX_MESSAGE_SIZE, allowTrailers: true });
  }

  /** True once the trailers frame has been read. */
  get done(): boolean {
    return this.trailersSeen;
  }

  push(chunk: Uint8Array): GrpcWebResponseParts {
    return this.take(this.base64 ? this.base64.push(chunk) : chunk);
  }

  /** The body ended: whatever a last unpadded base64 group held; throws if it ended inside a frame. */
  end(): GrpcWebResponseParts {
    const parts = this.base64 ? this.take(this.base64.end()) : { messages: [] };
    this.frames.end();
    return parts;
  }

  private take(bytes: Uint8Array): GrpcWebResponseParts {
    if (bytes.byteLength === 0) return { messages: [] };
    if (this.trailersSeen) throw afterTrailers();
    const messages: GrpcFrame[] = [];
    let trailers: Record<string, string> | undefined;
    for (const frame of this.frames.push(bytes)) {
      if (this.trailersSeen) throw afterTrailers();
      if (frame.trailers) {
        this.trailersSeen = true;
        trailers = decodeGrpcWebTrailers(frame.payload);
      } else messages.push(frame);
    }
    return trailers ? { messages, trailers } : { messages };
  }
}

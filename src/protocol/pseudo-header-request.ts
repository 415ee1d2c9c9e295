import type { IncomingHttpHeaders } from 'node:http2';
import type { Socket } from 'node:net';
import { Readable } from 'node:stream';

// What an HTTP/2 and an HTTP/3 request share of node:http's IncomingMessage shape (handlers use
// it whichever version came: handlers/types.ts): a Readable of the body whose request line lives
// in the pseudo-headers, so that rewriting `method` or `url` rewrites `:method` or `:path`. The
// versions differ in how the body is read (h2-exchange.ts, http3/exchange.ts).

export abstract class PseudoHeaderRequest extends Readable {
  /** The request's fields, pseudo-headers (`:method`, `:path`, `:authority`, `:scheme`) included, lower case. */
  abstract readonly headers: IncomingHttpHeaders;
  /** The connection's socket, or its stand-in: addresses, certificate, encryption. */
  abstract readonly socket: Socket;

  get method(): string {
    return this.headers[':method'] as string;
  }

  set method(value: string) {
    this.headers[':method'] = value;
  }

  /** The request target (`:path`). */
  get url(): string {
    return this.headers[':path'] as string;
  }

  set url(value: string) {
    this.headers[':path'] = value;
  }

  get authority(): string | undefined {
    return (this.headers[':authority'] as string | undefined) ?? this.headers.host;
  }

  get scheme(): string | undefined {
    return this.headers[':scheme'] as string | undefined;
  }

  get connection(): Socket {
    return this.socket;
  }

  /** As node:http's request: the error of an abort goes to 'error' only when someone listens for it (readers learn of it anyway). */
  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    callback(err && this.listenerCount('error') > 0 ? err : null);
  }
}

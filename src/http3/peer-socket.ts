import { EventEmitter } from 'node:events';
import type { Socket } from 'node:net';
import type { QuicConnection } from '../quic/connection.ts';

// What an HTTP/3 request offers as `req.socket`. Handlers, middleware and the router read a
// request's socket for the client's address (access log, X-Forwarded-For, allow lists), whether
// it is encrypted (X-Forwarded-Proto), its byte counts (the listener's byte metrics) and its
// client certificate. A QUIC connection has no TCP socket; this object answers those questions
// for one connection, and nothing more (the listener's byte metrics come from the QUIC endpoint): it is typed as a Socket in one place (asSocket) so that
// the request fits the HttpRequest contract, and code that writes to a request's socket
// directly (sendfile, upgrades) checks the HTTP version first and never gets here.

export class QuicPeerSocket extends EventEmitter {
  readonly encrypted = true;
  readonly alpnProtocol = 'h3';
  /** Bytes read from / written to the connection's request streams (frames included), as a socket's counts. */
  bytesRead = 0;
  bytesWritten = 0;
  destroyed = false;

  constructor(private readonly conn: QuicConnection) {
    super();
  }

  get remoteAddress(): string {
    return this.conn.remoteAddress;
  }
  get remotePort(): number {
    return this.conn.remotePort;
  }
  get remoteFamily(): string {
    return this.conn.remoteFamily;
  }
  get localAddress(): string {
    return this.conn.localAddress;
  }
  get localPort(): number {
    return this.conn.localPort;
  }
  /** No client certificates over QUIC here: routes that need one do not match. */
  getPeerX509Certificate(): undefined {
    return undefined;
  }
  getPeerCertificate(): Record<string, never> {
    return {};
  }
  get authorized(): boolean {
    return false;
  }
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }
  setTimeout(): this {
    return this;
  }
  /** The connection is gone. */
  closed(): void {
    if (this.destroyed) return;
    this.destroyed = true;
    this.emit('close', false);
  }
}

/** The stand-in typed as the Socket the HttpRequest contract names (see the top of the file). */
export function asSocket(peer: QuicPeerSocket): Socket {
  return peer as unknown as Socket;
}

import { Duplex } from 'node:stream';
import { randomBytes } from 'node:crypto';
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http2';
import { CANCEL, INTERNAL_ERROR } from '../../protocol/h2/frames.ts';
import type { H2ServerStream } from './h2-engine/stream.ts';
import type { Socket } from 'node:net';
import { streamTimeout } from './h2-exchange.ts';

// WebSocket over HTTP/2 (RFC 8441): a client with an HTTP/2 connection open sends an extended
// CONNECT (`:method CONNECT`, `:protocol websocket`) on a stream, and the stream then carries the
// WebSocket frames. Rather than a second WebSocket path through every handler, the stream is
// made to look like the HTTP/1.1 upgrade the handlers already take (Envoy does the same for
// its HTTP/1.1 upstreams): StreamSocket is a socket-shaped Duplex over the stream; node:http
// reads an HTTP/1.1 `GET ... Upgrade: websocket` request (h1UpgradeHead) from it, so the request
// takes the listener's usual upgrade phases (check, route, admit, middleware) into the route's
// handler (proxy, ws-echo, chat), which answers on it as on any socket. Its answer head is read
// back here: a 101 becomes the RFC 8441 `200` (with the agreed subprotocol and extensions), any
// other answer is sent as that status with its body; after that, bytes pass both ways as they
// are, with the stream's flow control as backpressure.

/** The most of a handler's answer head held while it is read (the same bound as the proxy's). */
const MAX_HEAD = 16 * 1024;

/** Headers of the HTTP/1.1 answer that are about the hop, not the answer (RFC 9113 §8.2.2 forbids them). */
const HOP = new Set(['connection', 'upgrade', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'sec-websocket-accept']);

/**
 * The HTTP/1.1 upgrade request an extended CONNECT stands for: its path and authority as the
 * request line and Host, its headers, and the Connection/Upgrade/Sec-WebSocket-Key that RFC 8441
 * leaves out (the key is random: nobody checks the accept value it leads to but this file).
 */
export function h1UpgradeHead(headers: IncomingHttpHeaders): Buffer {
  const path = String(headers[':path'] ?? '/');
  let head = `GET ${path} HTTP/1.1\r\nhost: ${String(headers[':authority'] ?? '')}\r\n`;
  for (const [name, value] of Object.entries(headers)) {
    if (name.startsWith(':') || value === undefined) continue;
    if (name === 'host' || name === 'connection' || name === 'upgrade' || name === 'sec-websocket-key') continue;
    for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
  }
  head += `connection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-key: ${randomBytes(16).toString('base64')}\r\n\r\n`;
  return Buffer.from(head, 'latin1');
}

/** A socket-shaped Duplex over one HTTP/2 stream, for node:http and the upgrade handlers. */
export class StreamSocket extends Duplex {
  readonly remoteAddress: string | undefined;
  readonly remotePort: number | undefined;
  readonly remoteFamily: string | undefined;
  readonly localAddress: string | undefined;
  readonly localPort: number | undefined;
  /** The connection under the stream is TLS (x-forwarded-proto, client certificates). */
  readonly encrypted: boolean | undefined;
  private head: Buffer[] | null = [];
  private headSize = 0;
  /** A refusal whose body came chunked: the status and headers go, the body does not (not worth a decoder). */
  private dropBody = false;

  constructor(
    private readonly stream: H2ServerStream,
    private readonly connection: Socket,
  ) {
    super({ allowHalfOpen: true });
    this.remoteAddress = connection.remoteAddress;
    this.remotePort = connection.remotePort;
    this.remoteFamily = connection.remoteFamily;
    this.localAddress = connection.localAddress;
    this.localPort = connection.localPort;
    this.encrypted = (connection as Socket & { encrypted?: boolean }).encrypted;
    stream.on('data', (chunk: Buffer) => {
      if (!this.push(chunk)) stream.pause();
    });
    stream.on('end', () => this.push(null));
    stream.on('error', (err) => this.destroy(err));
    stream.on('close', () => this.destroy());
    stream.on('timeout', () => this.emit('timeout'));
  }

  /** What the client "sent": the HTTP/1.1 request head node:http is to read first. */
  feed(head: Buffer): void {
    this.stream.pause();
    this.unshift(head);
  }

  /** The client's certificate, for routes that match on it (TLS connections only). */
  getPeerCertificate(detailed?: boolean): unknown {
    const c = this.connection as Socket & { getPeerCertificate?: (d?: boolean) => unknown };
    return c.getPeerCertificate?.(detailed) ?? {};
  }

  get authorized(): boolean {
    return (this.connection as Socket & { authorized?: boolean }).authorized === true;
  }

  setTimeout(ms: number, callback?: () => void): this {
    streamTimeout(this.stream, ms, true);
    if (callback) this.once('timeout', callback);
    return this;
  }

  setNoDelay(): this {
    return this;
  }

  setKeepAlive(): this {
    return this;
  }

  ref(): this {
    return this;
  }

  unref(): this {
    return this;
  }

  override _read(): void {
    this.stream.resume();
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, callback: (err?: Error | null) => void): void {
    if (this.head !== null) {
      this.head.push(chunk);
      this.headSize += chunk.length;
      const all = Buffer.concat(this.head, this.headSize);
      const end = all.indexOf('\r\n\r\n');
      if (end === -1) {
        if (this.headSize > MAX_HEAD) return callback(new Error('upgrade answer head too large'));
        this.head = [all];
        return callback();
      }
      this.head = null;
      try {
        this.respond(all.toString('latin1', 0, end));
      } catch (err) {
        return callback(err as Error);
      }
      const rest = all.subarray(end + 4);
      if (rest.length === 0) return callback();
      chunk = rest;
    }
    if (this.stream.destroyed || this.dropBody) return callback();
    if (this.stream.write(chunk)) callback();
    else this.stream.once('drain', () => callback());
  }

  override _final(callback: (err?: Error | null) => void): void {
    if (!this.stream.headersSent && !this.stream.destroyed) this.stream.respond({ ':status': 502 }, { endStream: true });
    else if (!this.stream.destroyed) this.stream.end();
    callback();
  }

  override _destroy(err: Error | null, callback: (err?: Error | null) => void): void {
    if (!this.stream.destroyed) this.stream.close(err ? INTERNAL_ERROR : CANCEL);
    callback(err);
  }

  /** The handler's HTTP/1.1 answer head as the stream's HTTP/2 response. */
  private respond(head: string): void {
    const lines = head.split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(lines[0]);
    if (!m) throw new Error('not an HTTP/1.1 answer');
    const status = Number(m[1]);
    // Over HTTP/2 any 2xx opens the tunnel (RFC 8441 §5), so a route that served the request
    // as a plain one (no WebSocket there: its 200) must not answer 2xx: 501, it is not done here.
    const h2Status = status === 101 ? 200 : status >= 200 && status < 300 ? 501 : status;
    const headers: OutgoingHttpHeaders = { ':status': h2Status };
    for (let i = 1; i < lines.length; i++) {
      const colon = lines[i].indexOf(':');
      if (colon <= 0) continue;
      const name = lines[i].slice(0, colon).trim().toLowerCase();
      const value = lines[i].slice(colon + 1).trim();
      if (name === 'transfer-encoding' && status !== 101) this.dropBody = true;
      if (HOP.has(name)) continue;
      const had = headers[name];
      headers[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [String(had), value];
    }
    // Open now: no idle timeout but the handler's own (an HTTP/1.1 WebSocket has none either).
    if (status === 101) streamTimeout(this.stream, 0, true);
    this.stream.respond(headers);
  }
}

import type { Socket } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import type { Duplex } from 'node:stream';
import { sanitizeRemoteText } from './sanitize.ts';

// What an open port says about itself, read over the connection the probe made: the first bytes
// a talk-first service sends (ssh, smtp, ftp), the Server header an HTTP server answers a HEAD
// with, and for TLS ports the certificate's subject and issuer. The certificate is only read,
// never trusted (rejectUnauthorized: false): a scanner reports what a port presents, it sends
// nothing over the session but the HEAD. Every read is bounded in bytes and in time.

/** Ports that speak TLS from the first byte. */
export const TLS_PORTS: ReadonlySet<number> = new Set([443, 465, 563, 636, 853, 990, 992, 993, 994, 995, 2376, 5986, 6443, 8443, 9443]);

/** Ports where an HTTP server is usual, so a HEAD is sent instead of waiting for the peer to talk. */
export const HTTP_PORTS: ReadonlySet<number> = new Set([80, 81, 443, 591, 3000, 5000, 8000, 8008, 8080, 8081, 8088, 8443, 8888, 9000, 9090, 9443]);

/** At most this much of an HTTP answer is read to find its Server header. */
const HTTP_HEAD_LIMIT = 8192;

export interface TlsFacts {
  subject: string;
  issuer: string;
  /** The certificate's notAfter, as OpenSSL prints it. */
  validTo: string;
  /** The negotiated protocol version, e.g. TLSv1.3. */
  protocol: string;
}

export interface HttpFacts {
  /** The status line, e.g. `HTTP/1.1 200 OK`. */
  status: string;
  /** The Server header, when there is one. */
  server?: string;
}

export interface Banner {
  /** The first bytes the service sent (sanitised), when it spoke on its own. */
  text?: string;
  http?: HttpFacts;
  tls?: TlsFacts;
  /** Why the TLS handshake failed, when one was tried and did. */
  tlsError?: string;
}

export interface BannerOptions {
  /** Host as written (a name is sent as SNI and Host). */
  host: string;
  port: number;
  /** The whole grab's time limit. */
  timeoutMs: number;
  /** The most bytes of a talk-first banner kept. */
  maxBytes: number;
  /** Handshake TLS whatever the port. */
  forceTls: boolean;
  /** Cuts the grab short (the scan was stopped). */
  signal?: AbortSignal;
}

function describeName(name: PeerCertificate['subject'] | undefined): string {
  if (!name) return '';
  const parts: string[] = [];
  for (const key of ['CN', 'O', 'OU', 'C'] as const) {
    const v = name[key];
    if (v) parts.push(`${key}=${Array.isArray(v) ? v.join('+') : v}`);
  }
  return sanitizeRemoteText(parts.join(', '), 200);
}

function handshake(socket: Socket, options: BannerOptions, deadline: AbortSignal): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const servername = isIP(options.host) ? undefined : options.host;
    const tlsSocket = tlsConnect({ socket, rejectUnauthorized: false, ...(servername ? { servername } : {}), ALPNProtocols: ['http/1.1'] });
    const fail = (err: Error): void => {
      tlsSocket.destroy();
      reject(err);
    };
    const onAbort = (): void => fail(new Error('no handshake within the banner timeout'));
    deadline.addEventListener('abort', onAbort, { once: true });
    tlsSocket.once('secureConnect', () => {
      deadline.removeEventListener('abort', onAbort);
      tlsSocket.removeListener('error', fail);
      tlsSocket.on('error', () => {});
      resolve(tlsSocket);
    });
    tlsSocket.once('error', fail);
  });
}

/** Reads until `done(bytes)` says so, `limit` bytes, the end, an error or the deadline; never throws. */
function readSome(stream: Duplex, limit: number, deadline: AbortSignal, done: (bytes: Buffer) => boolean): Promise<Buffer> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    const finish = (): void => {
      stream.removeListener('data', onData);
      stream.removeListener('end', finish);
      stream.removeListener('close', finish);
      stream.removeListener('error', finish);
      deadline.removeEventListener('abort', finish);
      resolve(Buffer.concat(chunks, size).subarray(0, limit));
    };
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      size += chunk.length;
      if (size >= limit || done(Buffer.concat(chunks, size))) finish();
    };
    if (deadline.aborted) return resolve(Buffer.alloc(0));
    stream.on('data', onData);
    stream.once('end', finish);
    stream.once('close', finish);
    stream.once('error', finish);
    deadline.addEventListener('abort', finish, { once: true });
  });
}

function parseHttpHead(bytes: Buffer): HttpFacts | undefined {
  const text = bytes.toString('latin1');
  const lines = text.split('\r\n');
  const status = lines[0] ?? '';
  if (!/^HTTP\/\d(\.\d)? \d{3}/.test(status)) return undefined;
  const facts: HttpFacts = { status: sanitizeRemoteText(status, 100) };
  for (const line of lines.slice(1)) {
    if (line === '') break;
    const m = /^server:\s*(.*)$/i.exec(line);
    if (m) {
      facts.server = sanitizeRemoteText((m[1] ?? '').trim(), 200);
      break;
    }
  }
  return facts;
}

const headEnded = (bytes: Buffer): boolean => bytes.includes('\r\n\r\n');

function sendHead(stream: Duplex, host: string): void {
  const hostHeader = isIP(host) === 6 ? `[${host}]` : host;
  stream.write(`HEAD / HTTP/1.0\r\nHost: ${hostHeader}\r\nUser-Agent: switchyard-scan\r\nAccept: */*\r\n\r\n`);
}

/** An HTTP answer's status and Server header, or else the first bytes of whatever came back. */
function describeReply(reply: Buffer, maxBytes: number, banner: Banner): Banner {
  const http = parseHttpHead(reply);
  if (http) banner.http = http;
  else if (reply.length) banner.text = sanitizeRemoteText(reply.toString('latin1'), maxBytes);
  return banner;
}

/** What the service on `socket` (connected, unread) says about itself; ends the socket. */
export async function grabBanner(socket: Socket, options: BannerOptions): Promise<Banner> {
  const timeout = AbortSignal.timeout(options.timeoutMs);
  const deadline = options.signal ? AbortSignal.any([timeout, options.signal]) : timeout;
  const banner: Banner = {};
  let stream: Duplex = socket;
  try {
    if (options.forceTls || TLS_PORTS.has(options.port)) {
      try {
        const tlsSocket = await handshake(socket, options, deadline);
        const cert = tlsSocket.getPeerCertificate();
        banner.tls = {
          subject: describeName(cert.subject),
          issuer: describeName(cert.issuer),
          validTo: sanitizeRemoteText(cert.valid_to ?? '', 64),
          protocol: tlsSocket.getProtocol() ?? '',
        };
        stream = tlsSocket;
      } catch (err) {
        banner.tlsError = sanitizeRemoteText((err as Error).message, 200);
        return banner;
      }
    }
    if (HTTP_PORTS.has(options.port)) {
      sendHead(stream, options.host);
      return describeReply(await readSome(stream, HTTP_HEAD_LIMIT, deadline, headEnded), options.maxBytes, banner);
    }
    // Talk-first services (ssh, smtp, ftp) greet at once. A port that stays quiet for half the
    // time is asked as an HTTP server, the service found most often on ports of any number.
    const quiet = AbortSignal.any([deadline, AbortSignal.timeout(Math.max(1, Math.floor(options.timeoutMs / 2)))]);
    const first = await readSome(stream, options.maxBytes, quiet, (b) => b.includes('\n'));
    if (first.length) {
      banner.text = sanitizeRemoteText(first.toString('latin1').replace(/\r?\n$/, ''), options.maxBytes);
      return banner;
    }
    if (deadline.aborted || stream.destroyed || !stream.writable) return banner;
    sendHead(stream, options.host);
    return describeReply(await readSome(stream, HTTP_HEAD_LIMIT, deadline, headEnded), options.maxBytes, banner);
  } finally {
    stream.destroy();
    socket.destroy();
  }
}

/** One line for a table or a grepable record. */
export function bannerSummary(banner: Banner | undefined): string {
  if (!banner) return '';
  const parts: string[] = [];
  if (banner.tls) parts.push(`tls ${banner.tls.protocol} subject: ${banner.tls.subject || '-'}; issuer: ${banner.tls.issuer || '-'}`);
  if (banner.tlsError) parts.push(`tls failed: ${banner.tlsError}`);
  if (banner.http) parts.push(banner.http.server !== undefined ? `Server: ${banner.http.server}` : banner.http.status);
  if (banner.text) parts.push(banner.text);
  return parts.join(' | ');
}

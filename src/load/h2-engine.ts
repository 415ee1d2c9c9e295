import { connect, constants, type ClientHttp2Session, type OutgoingHttpHeaders } from 'node:http2';
import { performance } from 'node:perf_hooks';
import { LoadConnection, type LoadContext } from './connection.ts';
import { classifySocketError, describeError } from './errors.ts';
import { tlsConnectOptions } from './tls-options.ts';

// HTTP/2 through node:http2: one session per connection, up to --streams requests in flight on
// it as concurrent streams (h2 over TLS with ALPN for https://, prior-knowledge h2c for http://).
// Streams finish in any order, so each carries its own due time.

/** Connection-level headers HTTP/2 forbids; a user's -H of these is left out. */
const H2_FORBIDDEN = new Set(['host', 'connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade', 'content-length']);

/** The request headers all connections of one run share. */
export function h2Headers(ctx: LoadContext): OutgoingHttpHeaders {
  const o = ctx.options;
  const host = o.headers.find(([n]) => n.toLowerCase() === 'host');
  const headers: OutgoingHttpHeaders = {
    [constants.HTTP2_HEADER_METHOD]: o.method,
    [constants.HTTP2_HEADER_PATH]: o.target.path,
    [constants.HTTP2_HEADER_SCHEME]: o.target.tls ? 'https' : 'http',
    [constants.HTTP2_HEADER_AUTHORITY]: host ? host[1] : o.target.authority,
  };
  for (const [name, value] of o.headers) {
    const lower = name.toLowerCase();
    if (!H2_FORBIDDEN.has(lower)) headers[lower] = value;
  }
  if (headers['user-agent'] === undefined) headers['user-agent'] = 'switchyard-bench';
  if (o.body.length > 0) headers['content-length'] = String(o.body.length);
  return headers;
}

export class H2Connection extends LoadConnection {
  private session: ClientHttp2Session | undefined;
  private connected = false;

  constructor(
    ctx: LoadContext,
    private readonly headers: OutgoingHttpHeaders,
  ) {
    super(ctx, ctx.options.streams);
  }

  protected open(): void {
    const o = this.ctx.options;
    this.connected = false;
    const authority = `${o.target.tls ? 'https' : 'http'}://${o.target.authority}`;
    const session = o.target.tls
      ? connect(authority, { ...tlsConnectOptions(o, ['h2']), peerMaxConcurrentStreams: o.streams })
      : connect(authority, { host: o.target.host, port: o.target.port, peerMaxConcurrentStreams: o.streams });
    this.session = session;
    session.once('connect', () => {
      if (session !== this.session) return;
      this.connected = true;
      this.opened();
    });
    session.on('error', (err: Error) => {
      if (session === this.session) this.lost(classifySocketError(err, this.connected), describeError(err));
    });
    session.on('goaway', () => {
      if (session === this.session) this.lost('reset', 'the server sent GOAWAY with requests in flight');
    });
    session.on('close', () => {
      if (session === this.session) this.lost(this.connected ? 'reset' : 'connect', this.connected ? 'the server closed the connection with requests in flight' : 'connection closed before it was up');
    });
  }

  protected send(due: number): void {
    const session = this.session;
    if (!session) return;
    const o = this.ctx.options;
    const stats = this.ctx.stats;
    const stream = session.request(this.headers, { endStream: o.body.length === 0 });
    if (o.body.length > 0) {
      stream.end(o.body);
      stats.bytesWritten += o.body.length;
    }
    let status = 0;
    let done = false;
    stream.on('response', (h) => {
      status = Number(h[constants.HTTP2_HEADER_STATUS]);
    });
    stream.on('data', (chunk: Buffer) => {
      stats.bytesRead += chunk.length;
    });
    stream.on('end', () => {
      if (done || session !== this.session) return;
      done = true;
      this.answered(due, performance.now(), status);
      this.pump();
    });
    stream.on('error', (err: Error) => {
      if (done || session !== this.session) return;
      done = true;
      this.failedOne('reset', describeError(err));
      this.pump();
    });
    stream.on('close', () => {
      if (done || session !== this.session) return;
      // Closed without 'end' or 'error': a reset by the server (RST_STREAM with NO_ERROR and no body).
      done = true;
      if (stream.rstCode === constants.NGHTTP2_NO_ERROR && status !== 0) this.answered(due, performance.now(), status);
      else this.failedOne('reset', `stream reset by the server (code ${stream.rstCode})`);
      this.pump();
    });
  }

  protected destroyTransport(): void {
    const session = this.session;
    this.session = undefined;
    session?.destroy();
  }
}

import type { Socket } from 'node:net';
import type { Socket as UdpSocket } from 'node:dgram';
import type { Logger } from 'pino';
import type { Metrics } from '../observe/metrics.ts';
import { listenQuic, type QuicServer, type QuicCertificate } from '../quic/endpoint.ts';
import type { QuicConnection } from '../quic/connection.ts';
import { quicMetricsObserver } from '../quic/metrics.ts';
import { H3 } from './errors.ts';
import type { H3Request, H3Response } from './exchange.ts';
import { QuicPeerSocket, asSocket } from './peer-socket.ts';
import { serveRequestStream } from './request-stream.ts';
import { Http3Session, type Http3Limits } from './session.ts';
import { httpDate } from '../protocol/http-fields.ts';

// The HTTP/3 side of an http listener: a QUIC endpoint (src/quic) on the listener's host and
// port over UDP with ALPN h3 and the listener's certificate, an Http3Session per connection, and
// each request stream handed to the listener's phases (the same serve() as HTTP/1.1 and
// HTTP/2). Drain: GOAWAY to every connection, streams already taken finish, then each
// connection closes with H3_NO_ERROR.

export interface Http3ServerOptions {
  readonly listener: string;
  readonly host: string;
  readonly port: number;
  /** The certificate to present, read for each new connection (renewals and reloads apply). */
  readonly certificate: () => QuicCertificate;
  readonly limits: Http3Limits & {
    /** Close a connection after this long without a packet (ms). */
    readonly idleTimeout: number;
    /** Request streams a connection may have open at once. */
    readonly maxStreams: number;
    /** A request's head must arrive within this long of its stream opening (ms); else 408. */
    readonly headerTimeout: number;
  };
  /**
   * Accept 0-RTT: requests that started in early data are served only for safe methods (the
   * rest get 425: request-stream.ts). Default false.
   */
  readonly earlyData?: boolean;
  readonly log: Logger;
  /**
   * Requests are counted in switchyard_http3_requests_total (besides the listener's own request
   * metrics); the QUIC endpoint's connections, bytes, handshake failures and lost packets under
   * the listener's name (src/quic/metrics.ts).
   */
  readonly metrics: Metrics;
  /**
   * A UDP socket already bound, handed over by the daemon this one replaces (upgrade): the
   * endpoint serves on it instead of binding `host`:`port`.
   */
  readonly socket?: UdpSocket;
  /** Bind a socket of this worker's own with SO_REUSEPORT (src/listeners/bind.ts quicUdpMode). */
  readonly reusePort?: boolean;
  /** The listener's phases; `socket` is the connection's stand-in (peer-socket.ts). */
  readonly onRequest: (req: H3Request, res: H3Response, socket: Socket, expectsContinue: boolean) => void;
}

/** Body bytes a request buffers before its stream stops being read. */
const BODY_HIGH_WATER_MARK = 64 * 1024;

/**
 * How long a connection with nothing left to serve after GOAWAY lingers before we close it. A
 * response's last bytes handed to QUIC may not have been delivered yet, and a CONNECTION_CLOSE
 * sent now would drop them; clients usually close first, once they have read everything.
 */
const CLOSE_LINGER_MS = 1000;

function closeSoon(conn: QuicConnection): void {
  const timer = setTimeout(() => void conn.close(H3.NO_ERROR, 'server shutting down'), CLOSE_LINGER_MS);
  timer.unref();
  conn.once('close', () => clearTimeout(timer));
}

export class Http3Server {
  private quic: QuicServer | undefined;
  private readonly sessions = new Map<QuicConnection, { session: Http3Session; open: number; peer: QuicPeerSocket }>();
  private draining = false;
  private readonly requests;

  constructor(private readonly options: Http3ServerOptions) {
    this.requests = options.metrics.counter('switchyard_http3_requests_total', 'Requests served over HTTP/3, by listener and status (they are in switchyard_total_requests too).', ['listener', 'status']);
  }

  async start(): Promise<void> {
    const o = this.options;
    this.quic = await listenQuic({
      host: o.host,
      port: o.port,
      certificate: o.certificate,
      alpn: ['h3'],
      earlyData: o.earlyData ?? false,
      limits: { idleTimeoutMs: o.limits.idleTimeout, maxStreamsBidi: o.limits.maxStreams, maxStreamsUni: 16 },
      onConnection: (conn) => this.onConnection(conn),
      observer: quicMetricsObserver(o.metrics, o.listener),
      closeCode: H3.NO_ERROR,
      streamErrorCode: H3.REQUEST_CANCELLED,
      socket: o.socket,
      reusePort: o.reusePort,
    });
  }

  /** The UDP socket (handed over to a daemon that takes over: upgrade.ts); undefined before start. */
  udpSocket(): UdpSocket | undefined {
    return this.quic?.udpSocket();
  }

  /** The UDP address bound. */
  address(): { host: string; port: number } {
    if (!this.quic) throw new Error(`listener "${this.options.listener}": HTTP/3 is not started`);
    return this.quic.address();
  }

  /** Connections open now. */
  get size(): number {
    return this.sessions.size;
  }

  /** GOAWAY everywhere; connections close as their requests finish. New connections are refused. */
  drain(): void {
    this.draining = true;
    this.quic?.stopAccepting();
    for (const [conn, s] of this.sessions) this.goaway(conn, s);
    this.closeWhenIdle();
  }

  /**
   * Draining and no connection left: the socket closes now rather than at the end of the grace.
   * After an upgrade the new daemon holds the same UDP socket, and the kernel gives each datagram
   * to whichever process reads first: while this one still reads, it would drop (not accepting)
   * about half of the new connections' first packets, which the clients would have to send again.
   */
  private closeWhenIdle(): void {
    if (this.draining && this.sessions.size === 0) void this.quic?.close();
  }

  async destroy(): Promise<void> {
    await this.quic?.close();
  }

  private goaway(conn: QuicConnection, s: { session: Http3Session; open: number }): void {
    s.session.goaway();
    if (s.open === 0) closeSoon(conn);
  }

  private onConnection(conn: QuicConnection): void {
    const o = this.options;
    const session = new Http3Session(conn, 'server', o.limits);
    const peer = new QuicPeerSocket(conn);
    const entry = { session, open: 0, peer };
    this.sessions.set(conn, entry);
    conn.once('close', () => {
      this.sessions.delete(conn);
      peer.closed();
      this.closeWhenIdle();
    });
    // The endpoint's drain (the QUIC side) is GOAWAY here: the connection's own streams (control,
    // QPACK) never end, so it is closed once its requests are done.
    conn.on('draining', () => this.goaway(conn, entry));
    session.on('error', (err) => o.log.debug({ listener: o.listener, err: err.message, code: err.code }, 'h3: connection closed for a protocol error'));
    session.on('request-stream', (stream) => {
      entry.open++;
      stream.once('close', () => {
        entry.open--;
        if (entry.open === 0 && session.goingAway) closeSoon(conn);
      });
      const onRequest = (req: H3Request, res: H3Response, expectsContinue: boolean) => {
        res.once('close', () => this.requests.labels(o.listener, String(res.statusCode)).inc());
        o.onRequest(req, res, asSocket(peer), expectsContinue);
      };
      const onRefused = (status: number) => this.requests.labels(o.listener, String(status)).inc();
      serveRequestStream(stream, { session, peer, onRequest, onRefused, dateNow: httpDate, bodyHighWaterMark: BODY_HIGH_WATER_MARK, headerTimeout: o.limits.headerTimeout, idleTimeout: o.limits.idleTimeout });
    });
    session.start();
    if (this.draining) this.goaway(conn, entry);
  }
}

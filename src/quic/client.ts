import type { Socket as UdpSocket } from 'node:dgram';
import { createUdpSocket } from './udp.ts';
import { lookup } from 'node:dns/promises';
import { randomBytes, X509Certificate } from 'node:crypto';
import { isIP, isIPv6 } from 'node:net';
import { buildQuicheConfig, limitsWith, type QuicLimits } from './config.ts';
import { QuicConnection } from './connection.ts';
import { QuicError } from './errors.ts';
import { enableUdpSegmentation } from '../sys/udp-gso.ts';
import { CID_LENGTH, quiche, type HostPort } from './native.ts';

// The client side: one UDP socket per connection, bound to an ephemeral port. The connection
// it returns is the same QuicConnection class the server hands out (streams are the same
// Duplexes), plus migrate() to move to a new local port.

export interface QuicConnectOptions {
  host: string;
  port: number;
  /** Application protocols to offer (ALPN), e.g. `['h3']`. */
  alpn: readonly string[];
  /** The name to check the certificate against (and send as SNI); default: `host`. */
  serverName?: string;
  /** PEM CA certificate(s) to trust instead of the system's roots (the local CA's root). */
  ca?: string;
  /** Skip every certificate check (development only). */
  insecure?: boolean;
  limits?: Partial<QuicLimits>;
  /** Local address to bind (default: the wildcard of the target's family). */
  localHost?: string;
  /** A session from an earlier connection's session(): resume it (and allow 0-RTT with earlyData). */
  session?: Uint8Array;
  /**
   * Resolve as soon as 0-RTT data can be sent (a resumed session the server accepts early data
   * for), before the handshake completes. Streams opened then carry replayable data.
   */
  earlyData?: boolean;
  /** Error code sent with RESET_STREAM/STOP_SENDING when a stream is dropped without one. */
  streamErrorCode?: number;
}

/** A client connection: a QuicConnection that owns its socket. */
export interface QuicClientConnection extends QuicConnection {
  /**
   * Moves the connection to a new local UDP port (connection migration, RFC 9000 §9): the
   * server sees the new address after path validation. Resolves once packets flow on the new path.
   */
  migrate(): Promise<void>;
}

/** TLS alert bad_certificate, as a QUIC crypto error (0x100 + alert). */
const BAD_CERTIFICATE = 0x100 + 42;

export async function connectQuic(options: QuicConnectOptions): Promise<QuicClientConnection> {
  const limits = limitsWith(options.limits);
  const address = isIP(options.host) ? options.host : (await lookup(options.host)).address;
  const serverName = options.serverName ?? (isIP(options.host) ? undefined : options.host);
  const family = isIPv6(address) ? 'udp6' : 'udp4';
  const localHost = options.localHost ?? (family === 'udp6' ? '::' : '0.0.0.0');
  let socket = await bindSocket(family, localHost);
  const remote: HostPort = { host: address, port: options.port };
  let local = localOf(socket);
  const config = buildQuicheConfig({
    alpn: options.alpn,
    limits,
    verifyPeer: !options.insecure,
    ca: options.ca,
    earlyData: options.earlyData ?? Boolean(options.session),
    migration: true,
  });
  const q = quiche.Connection.connect(serverName ?? null, randomBytes(CID_LENGTH), local, remote, config);
  if (options.session) {
    try {
      q.setSession(options.session);
    } catch {
      // A session this build cannot use: a full handshake instead.
    }
  }
  const sockets = new Map<string, UdpSocket>([[key(local), socket]]);
  const segmented = (s: UdpSocket) => limits.maxUdpPayload * 2 <= 65_000 && enableUdpSegmentation(s, limits.maxUdpPayload) === undefined;
  let gso = segmented(socket) ? limits.maxUdpPayload : 0;
  const conn = new QuicConnection({
    side: 'client',
    quiche: q,
    wire: {
      send(datagram, to, from) {
        const out = sockets.size === 1 ? socket : (sockets.get(key(from)) ?? socket);
        try {
          // A device without checksum offload refuses segmented sends (EIO): one per packet then.
          if (datagram.length > gso && gso > 0) out.send(datagram, to.port, to.host, (err) => void (err && (gso = 0)));
          else out.send(datagram, to.port, to.host);
          return out.getSendQueueCount() === 0;
        } catch {
          // The socket is closed (the connection is over): the datagram has nowhere to go.
          return false;
        }
      },
      segmentSize: () => gso,
    },
    local,
    remote,
    maxDatagram: limits.maxUdpPayload,
    handshakeTimeoutMs: limits.handshakeTimeoutMs,
    streamHighWaterMark: limits.streamHighWaterMark,
    defaultStreamErrorCode: options.streamErrorCode ?? 0,
  }) as QuicClientConnection;
  const listen = (s: UdpSocket) => {
    const to = localOf(s);
    s.on('message', (msg, rinfo) => conn.receive(msg, { host: rinfo.address, port: rinfo.port }, to));
    s.on('error', () => {});
  };
  listen(socket);
  void conn.closed.then(async () => {
    // The CONNECTION_CLOSE is still on its way out: let the sockets send it before closing them
    // (bounded: 20 turns of the event loop).
    for (let i = 0; i < 20 && [...sockets.values()].some((s) => s.getSendQueueCount() > 0); i++) await new Promise((r) => setImmediate(r));
    await new Promise((r) => setImmediate(r));
    for (const s of sockets.values()) s.close();
    sockets.clear();
  });

  conn.migrate = async () => {
    const next = await bindSocket(family, localHost);
    const nextLocal = localOf(next);
    if (gso > 0 && !segmented(next)) gso = 0;
    sockets.set(key(nextLocal), next);
    listen(next);
    try {
      q.migrate(nextLocal, remote);
    } catch (err) {
      sockets.delete(key(nextLocal));
      next.close();
      throw new QuicError('QUIC_INTERNAL', `cannot migrate: ${(err as Error).message}`, { cause: err });
    }
    const previous = socket;
    const previousKey = key(local);
    socket = next;
    local = nextLocal;
    conn.setLocal(nextLocal);
    conn.flush();
    // The old path's socket stays a moment for packets in flight, then goes.
    setTimeout(() => {
      if (sockets.get(previousKey) === previous) {
        sockets.delete(previousKey);
        previous.close();
      }
    }, 2000).unref();
  };

  conn.flush();
  await new Promise<void>((resolve, reject) => {
    const done = () => {
      conn.off('established', done);
      resolve();
    };
    conn.on('established', done);
    if (options.earlyData && q.isInEarlyData()) return done();
    void conn.closed.then((info) => reject(info.error ?? new QuicError('QUIC_HANDSHAKE_FAILED', 'the connection closed during the handshake')));
  });
  // Closed in the same breath as the handshake completed (refused at the server's limit).
  if (conn.isClosed) {
    const info = await conn.closed;
    throw info.error ?? new QuicError('QUIC_CONNECTION_CLOSED', 'the server closed the connection at once');
  }
  if (!options.insecure) checkServerIdentity(conn, serverName ?? address);
  return conn;
}

/**
 * BoringSSL checked the chain; the name is checked here, for IP addresses too (quiche only
 * checks DNS names, and only when given one).
 */
function checkServerIdentity(conn: QuicConnection, name: string): void {
  const [leaf] = conn.peerCertificates();
  let ok = false;
  try {
    const cert = leaf ? new X509Certificate(leaf) : undefined;
    ok = cert ? (isIP(name) ? cert.checkIP(name) !== undefined : cert.checkHost(name) !== undefined) : false;
  } catch {
    ok = false;
  }
  if (ok) return;
  conn.closeTransport(BAD_CERTIFICATE, 'certificate does not name the server');
  throw new QuicError('QUIC_CERTIFICATE_UNTRUSTED', `the server's certificate does not name ${name}`);
}

function key(a: HostPort): string {
  return `${a.host}|${a.port}`;
}

function localOf(socket: UdpSocket): HostPort {
  const a = socket.address();
  return { host: a.address, port: a.port };
}

function bindSocket(type: 'udp4' | 'udp6', host: string): Promise<UdpSocket> {
  return new Promise((resolve, reject) => {
    const socket = createUdpSocket(type);
    socket.once('error', (err) => reject(new QuicError('QUIC_BIND_FAILED', `cannot bind a udp socket: ${err.message}`, { cause: err })));
    socket.bind(0, host, () => resolve(socket));
  });
}

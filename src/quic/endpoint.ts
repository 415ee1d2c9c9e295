import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import { createUdpSocket } from './udp.ts';
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';
import { isIPv6 } from 'node:net';
import { buildQuicheConfig, limitsWith, type QuicLimits } from './config.ts';
import { QuicConnection, type ConnectionCounters } from './connection.ts';
import { QuicError, type QuicCloseInfo } from './errors.ts';
import { enableUdpSegmentation } from '../sys/udp-gso.ts';
import { CID_LENGTH, PACKET_INITIAL, quiche, type HostPort, type QuicheConfig, type QuicheHeader } from './native.ts';

// A QUIC server endpoint: one UDP socket, the connections on it (found by the destination
// connection id of each packet), new connections from Initial packets, optional stateless
// retry (address validation before any state is kept), and a drain. HTTP/3 (src/http3) and the
// quic listener (src/listeners/quic.ts) both run on it.

/** The certificate to present: PEM chain (leaf first) and key. */
export interface QuicCertificate {
  cert: string;
  key: string;
  passphrase?: string;
}

/** What the endpoint tells its owner about (the listener turns them into metrics and logs). */
export interface EndpointObserver extends ConnectionCounters {
  connectionOpened?(conn: QuicConnection): void;
  connectionClosed?(conn: QuicConnection, info: QuicCloseInfo): void;
  /** A handshake that did not complete: `reason` is a short stable word (certificate, alpn, timeout, ...). */
  handshakeFailed?(remote: HostPort, reason: string, info: QuicCloseInfo): void;
  /** A datagram that is not QUIC, or not for a connection we know and not an acceptable Initial. */
  datagramDropped?(reason: 'not-quic' | 'unknown-connection' | 'short-initial' | 'bad-token' | 'not-accepting'): void;
  retrySent?(): void;
  refused?(): void;
  /** Packets quiche declared lost on a connection that ended. */
  lostPackets?(count: number): void;
}

export interface QuicServerOptions {
  host: string;
  /** 0 picks a free port (address() tells which). */
  port: number;
  /** The certificate, read for each new connection (so reloads and renewals apply to new connections). */
  certificate: () => QuicCertificate;
  /** Application protocols offered (ALPN), in preference order: `['h3']`, `['echo']`. */
  alpn: readonly string[];
  limits?: Partial<QuicLimits>;
  /** Stateless retry: a client proves its address with a token before the server keeps any state (one more round trip). */
  retry?: boolean;
  /** Accept 0-RTT data from resumed clients (replayable: see QuicStream.earlyData). */
  earlyData?: boolean;
  /** Let clients move to a new address mid-connection (connection migration). Default true. */
  migration?: boolean;
  /** Each new connection, as soon as its protocol (ALPN) is known; attach 'stream' listeners here. */
  onConnection: (conn: QuicConnection) => void;
  observer?: EndpointObserver;
  /** Code and reason sent to connections closed by a drain or close() (HTTP/3: H3_NO_ERROR 0x100). */
  closeCode?: number;
  /** Error code sent with RESET_STREAM/STOP_SENDING when a stream is dropped without one (HTTP/3: H3_REQUEST_CANCELLED 0x10c). */
  streamErrorCode?: number;
  /** A socket already bound (taken over from an earlier daemon). */
  socket?: UdpSocket;
  /**
   * Bind a socket of this process's own with SO_REUSEPORT (a worker of `workers: N`:
   * src/listeners/bind.ts quicUdpMode), not one shared through the cluster primary. Needs a Node
   * whose dgram has reusePort (22.12+).
   */
  reusePort?: boolean;
}

const TOKEN_LIFETIME_MS = 10_000;

/**
 * The host:port this process holds with an SO_REUSEPORT socket. A second one of ours on the same
 * port (a reload that replaced the listener while the old one drains) would join the group and
 * take half the new connections' packets to a socket that no longer accepts: it is refused with
 * EADDRINUSE instead, as a port held without SO_REUSEPORT is (HTTP/3 then retries until it is free).
 */
const heldWithReusePort = new Set<string>();
/** Bound on connections being refused (each waits out its draining period). */
const MAX_REFUSING = 256;

export class QuicServer {
  private readonly socket: UdpSocket;
  private readonly limits: QuicLimits;
  private readonly byCid = new Map<string, QuicConnection>();
  private readonly live = new Set<QuicConnection>();
  private refusing = 0;
  private accepting = true;
  private bound: HostPort = { host: '', port: 0 };
  private config: QuicheConfig | undefined;
  private configFor: QuicCertificate | undefined;
  private readonly tokenKey = randomBytes(32);
  private closing: Promise<void> | undefined;

  constructor(private readonly options: QuicServerOptions) {
    this.limits = limitsWith(options.limits);
    this.socket = options.socket ?? createUdpSocket(isIPv6(options.host) ? 'udp6' : 'udp4', { reusePort: options.reusePort === true });
    this.socket.on('message', (msg, rinfo) => this.onDatagram(msg, rinfo));
    // A send to a vanished peer (ICMP unreachable) surfaces here: it concerns one peer only.
    this.socket.on('error', () => {});
  }

  /** Binds the socket (rejects with QuicError QUIC_BIND_FAILED naming the cause). */
  async start(): Promise<void> {
    this.configForNewConnection();
    if (!this.options.socket) {
      const { host, port, reusePort } = this.options;
      const failed = (err: Error) => new QuicError('QUIC_BIND_FAILED', `cannot bind udp ${host}:${port}: ${err.message}`, { cause: err });
      const key = `${host}\u0000${port}`;
      if (reusePort) {
        if (heldWithReusePort.has(key)) {
          throw failed(Object.assign(new Error('address in use by another listener of this process'), { code: 'EADDRINUSE' }));
        }
        heldWithReusePort.add(key);
        this.reuseKey = key;
      }
      try {
        await new Promise<void>((resolve, reject) => {
          const onError = (err: Error) => reject(failed(err));
          this.socket.once('error', onError);
          // exclusive: a cluster worker binds this socket itself instead of asking the primary for its shared one.
          this.socket.bind({ port, address: host, exclusive: reusePort === true }, () => {
            this.socket.off('error', onError);
            resolve();
          });
        });
      } catch (err) {
        this.releaseReusePort();
        throw err;
      }
    }
    try {
      this.socket.setRecvBufferSize(4 * 1024 * 1024);
      this.socket.setSendBufferSize(4 * 1024 * 1024);
    } catch {
      // The kernel caps these (net.core.rmem_max): what it allows is what we get.
    }
    const a = this.socket.address();
    this.bound = { host: a.address, port: a.port };
    // Worth it when several packets fit in one send; loss of it only costs speed.
    if (this.limits.maxUdpPayload * 2 <= 65_000 && enableUdpSegmentation(this.socket, this.limits.maxUdpPayload) === undefined) {
      this.gso = this.limits.maxUdpPayload;
    }
  }

  /** The bound address (the real port when 0 was asked for). */
  address(): { host: string; port: number } {
    return { ...this.bound };
  }

  /** The UDP socket (to hand over to a daemon that takes over). */
  udpSocket(): UdpSocket {
    return this.socket;
  }

  /** Connections open now (handshaking ones included). */
  connectionCount(): number {
    return this.live.size;
  }

  /** Streams open now over all connections. */
  streamCount(): number {
    let n = 0;
    for (const c of this.live) n += c.streamCount;
    return n;
  }

  connections(): QuicConnection[] {
    return [...this.live];
  }

  /** New options for new connections (a reload): limits, ALPN, retry. Open connections keep theirs. */
  update(changes: Partial<Pick<QuicServerOptions, 'alpn' | 'retry' | 'earlyData' | 'onConnection' | 'certificate'>> & { limits?: Partial<QuicLimits> }): void {
    Object.assign(this.options, { ...changes, limits: undefined });
    if (changes.limits) Object.assign(this.limits, limitsWith(changes.limits));
    this.config = undefined;
    this.configFor = undefined;
  }

  /**
   * Stops taking new connections; each open one stops taking new streams ('draining') and
   * closes when its streams are done. The socket stays open for them until close().
   */
  stopAccepting(): void {
    if (!this.accepting) return;
    this.accepting = false;
    for (const c of this.live) c.drain(this.options.closeCode ?? 0, 'server shutting down');
  }

  /** Closes every connection now (application close with closeCode) and then the socket. */
  close(): Promise<void> {
    this.closing ??= (async () => {
      this.accepting = false;
      const all = [...this.live].map((c) => c.close(this.options.closeCode ?? 0, 'server closing'));
      // quiche's draining period is 3 PTO: bounded, but do not let a stuck one hold the socket.
      await Promise.race([Promise.all(all), new Promise((r) => setTimeout(r, 1000).unref())]);
      await new Promise<void>((resolve) => {
        try {
          this.socket.close(() => resolve());
        } catch {
          resolve();
        }
      });
      this.releaseReusePort();
    })();
    return this.closing;
  }

  /** The SO_REUSEPORT host:port this endpoint held in heldWithReusePort, once its socket is gone. */
  private reuseKey: string | undefined;

  private releaseReusePort(): void {
    if (this.reuseKey !== undefined) heldWithReusePort.delete(this.reuseKey);
    this.reuseKey = undefined;
  }

  private configForNewConnection(): QuicheConfig {
    const cert = this.options.certificate();
    if (this.config && this.configFor && this.configFor.cert === cert.cert && this.configFor.key === cert.key) return this.config;
    this.config = buildQuicheConfig({
      alpn: this.options.alpn,
      limits: this.limits,
      cert: cert.cert,
      key: cert.key,
      passphrase: cert.passphrase,
      verifyPeer: false,
      earlyData: this.options.earlyData ?? false,
      migration: this.options.migration ?? true,
    });
    this.configFor = cert;
    return this.config;
  }

  private onDatagram(msg: Buffer, rinfo: RemoteInfo): void {
    const from = { host: rinfo.address, port: rinfo.port };
    // Short-header packets (all of them once a connection is up) carry our connection id right
    // after the first byte, at the length we hand out: looked up without asking quiche to parse.
    if (msg.length > CID_LENGTH && (msg[0] & 0xc0) === 0x40) {
      const conn = this.byCid.get(msg.toString('latin1', 1, 1 + CID_LENGTH));
      if (conn) {
        conn.receive(msg, from, this.bound);
        return;
      }
    }
    let header: QuicheHeader;
    try {
      header = quiche.Header.fromSlice(msg, CID_LENGTH);
    } catch {
      this.options.observer?.datagramDropped?.('not-quic');
      return;
    }
    const conn = this.byCid.get(cidKey(header.dcid));
    if (conn) {
      conn.receive(msg, from, this.bound);
      return;
    }
    try {
      this.accept(msg, header, from);
    } catch {
      // A packet that makes quiche throw in accept must not take the endpoint down.
      this.options.observer?.datagramDropped?.('not-quic');
    }
  }

  private accept(msg: Buffer, header: QuicheHeader, from: HostPort): void {
    const observer = this.options.observer;
    if (header.ty !== PACKET_INITIAL) return observer?.datagramDropped?.('unknown-connection');
    if (!quiche.versionIsSupported(header.version)) {
      const out = Buffer.allocUnsafe(1350);
      const n = quiche.negotiateVersion(header.scid, header.dcid, out);
      this.socket.send(out.subarray(0, n), from.port, from.host);
      return;
    }
    // A client's first datagram is padded to 1200 bytes (RFC 9000 §14.1): smaller ones are not honest Initials.
    if (msg.length < 1200) return observer?.datagramDropped?.('short-initial');
    if (!this.accepting) return observer?.datagramDropped?.('not-accepting');
    let scid: Buffer;
    let odcid: Buffer | undefined;
    if (this.options.retry) {
      const token = header.token ? Buffer.from(header.token) : Buffer.alloc(0);
      if (token.length === 0) {
        const newScid = randomBytes(CID_LENGTH);
        const out = Buffer.allocUnsafe(1350);
        const n = quiche.retry(header.scid, header.dcid, newScid, this.mintToken(Buffer.from(header.dcid), from.host), header.version, out);
        this.socket.send(out.subarray(0, n), from.port, from.host);
        observer?.retrySent?.();
        return;
      }
      const original = this.checkToken(token, from.host);
      if (!original || header.dcid.length !== CID_LENGTH) return observer?.datagramDropped?.('bad-token');
      odcid = original;
      scid = Buffer.from(header.dcid);
    } else {
      scid = randomBytes(CID_LENGTH);
    }
    const refuse = this.live.size >= this.limits.maxConnections;
    if (refuse && this.refusing >= MAX_REFUSING) return observer?.datagramDropped?.('not-accepting');
    const q = quiche.Connection.accept(scid, odcid ?? null, this.bound, from, this.configForNewConnection());
    const keys = [cidKey(scid)];
    // Until the client learns our id, its packets still carry the id it picked.
    if (!odcid) keys.push(cidKey(header.dcid));
    const conn = new QuicConnection({
      side: 'server',
      quiche: q,
      wire: this.wire,
      local: this.bound,
      remote: from,
      maxDatagram: this.limits.maxUdpPayload,
      handshakeTimeoutMs: this.limits.handshakeTimeoutMs,
      streamHighWaterMark: this.limits.streamHighWaterMark,
      defaultStreamErrorCode: this.options.streamErrorCode ?? 0,
      counters: observer,
      onReady: refuse ? undefined : (c) => this.ready(c),
      newConnectionId: (cid) => {
        keys.push(cidKey(cid));
        this.byCid.set(cidKey(cid), conn);
      },
    });
    for (const k of keys) this.byCid.set(k, conn);
    if (refuse) {
      this.refusing++;
      conn.receive(msg, from, this.bound);
      // The close goes out under the handshake keys: the client can read it only after our
      // first flight (ServerHello), so that goes first.
      conn.flush();
      conn.closeTransport(0x2, 'too many connections');
      observer?.refused?.();
      void conn.closed.then(() => {
        this.refusing--;
        for (const k of keys) if (this.byCid.get(k) === conn) this.byCid.delete(k);
      });
      return;
    }
    this.live.add(conn);
    observer?.connectionOpened?.(conn);
    void conn.closed.then((info) => {
      this.live.delete(conn);
      for (const k of keys) if (this.byCid.get(k) === conn) this.byCid.delete(k);
      observer?.lostPackets?.(conn.lostPackets());
      if (!info.established) observer?.handshakeFailed?.(from, handshakeReason(info), info);
      observer?.connectionClosed?.(conn, info);
    });
    conn.receive(msg, from, this.bound);
  }

  private ready(conn: QuicConnection): void {
    if (!this.accepting) conn.drain(this.options.closeCode ?? 0, 'server shutting down');
    this.options.onConnection(conn);
  }

  private readonly wire = {
    send: (datagram: Buffer, to: HostPort): boolean => {
      try {
        if (datagram.length > this.gso && this.gso > 0) this.socket.send(datagram, to.port, to.host, this.onSegmentedSent);
        else this.socket.send(datagram, to.port, to.host);
        return this.socket.getSendQueueCount() === 0;
      } catch {
        // The socket is closed (close() ran): connections still winding down have nowhere to send.
        return false;
      }
    },
    segmentSize: () => this.gso,
  };

  /** UDP_SEGMENT size on the socket, 0 when off (see src/sys/udp-gso.ts). */
  private gso = 0;

  /** A device without checksum offload refuses segmented sends (EIO): go back to one per packet. */
  private readonly onSegmentedSent = (err: Error | null) => {
    if (err) this.gso = 0;
  };

  /** token = time (8) | HMAC(time, address, odcid) (16) | odcid */
  private mintToken(odcid: Buffer, host: string): Buffer {
    const time = Buffer.alloc(8);
    time.writeBigUInt64BE(BigInt(Date.now()));
    return Buffer.concat([time, this.tokenMac(time, host, odcid), odcid]);
  }

  private checkToken(token: Buffer, host: string): Buffer | undefined {
    if (token.length < 8 + 16 + 1 || token.length > 8 + 16 + CID_LENGTH) return undefined;
    const time = token.subarray(0, 8);
    const age = Date.now() - Number(time.readBigUInt64BE());
    if (age < 0 || age > TOKEN_LIFETIME_MS) return undefined;
    const odcid = token.subarray(24);
    const mac = this.tokenMac(time, host, odcid);
    return timingSafeEqual(mac, token.subarray(8, 24)) ? Buffer.from(odcid) : undefined;
  }

  private tokenMac(time: Buffer, host: string, odcid: Buffer): Buffer {
    return createHmac('sha256', this.tokenKey).update(time).update(host).update(odcid).digest().subarray(0, 16);
  }
}

/** A connection id as a map key (one char per byte). */
function cidKey(cid: Uint8Array): string {
  return Buffer.from(cid.buffer, cid.byteOffset, cid.byteLength).toString('latin1');
}

/** A short word for why a handshake failed, for the metric's label (bounded set). */
function handshakeReason(info: QuicCloseInfo): string {
  switch (info.error?.code) {
    case 'QUIC_ALPN_MISMATCH':
      return 'alpn';
    case 'QUIC_CERTIFICATE_UNTRUSTED':
      return 'certificate';
    case 'QUIC_HANDSHAKE_TIMEOUT':
    case 'QUIC_IDLE_TIMEOUT':
      return 'timeout';
    case 'QUIC_CONNECTION_REFUSED':
      return 'refused';
    default:
      return 'tls';
  }
}

/** Starts a QUIC server endpoint. */
export async function listenQuic(options: QuicServerOptions): Promise<QuicServer> {
  const server = new QuicServer(options);
  await server.start();
  return server;
}

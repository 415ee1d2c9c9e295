import { EventEmitter } from 'node:events';
import { isIPv6 } from 'node:net';
import { randomBytes } from 'node:crypto';
import { errorForClose, QuicError, type QuicCloseInfo } from './errors.ts';
import { kindOfStream, QuicStream, type StreamKind, type StreamOwner } from './stream.ts';
import { CID_LENGTH, type HostPort, type QuicheConnection, type QuicheStats } from './native.ts';
import { StreamTable } from '../protocol/h2/stream-table.ts';

// One QUIC connection driven over quiche: packets in (receive), packets out (flush), quiche's
// timer, and the table of streams. The endpoint (server) or the client owns the UDP socket and
// hands this class what arrives for it; this class hands back datagrams to send through `Wire`.
//
// Sending is coalesced: stream writes only mark the connection dirty, and one flush per turn of
// the event loop drains quiche into datagrams, so a bulk writer costs one pass per chunk rather
// than one per write.

/** How datagrams leave: the endpoint's or client's socket. */
export interface Wire {
  /**
   * One datagram, or (when segmentSize is set) a run of packets the kernel cuts at segmentSize.
   * True when the kernel took it already, so the buffer may be reused.
   */
  send(datagram: Buffer, to: HostPort, from: HostPort): boolean;
  /** UDP_SEGMENT size set on the socket (src/sys/udp-gso.ts), 0 when each packet goes alone. */
  segmentSize(): number;
}

/** Bytes of one GSO send at most (the UDP length field, less headers). */
const MAX_GSO_BYTES = 65_000;
const MAX_GSO_SEGMENTS = 64;

/** Counters the connection feeds (the listener turns them into metrics). */
export interface ConnectionCounters {
  streamOpened(kind: StreamKind, initiator: 'local' | 'peer'): void;
  bytes(read: number, written: number): void;
  datagrams(received: number, receivedBytes: number, sent: number, sentBytes: number): void;
}

export interface ConnectionOptions {
  side: 'client' | 'server';
  quiche: QuicheConnection;
  wire: Wire;
  local: HostPort;
  remote: HostPort;
  /** Largest datagram we send (quiche's max_send_udp_payload_size). */
  maxDatagram: number;
  /** Close (QUIC_HANDSHAKE_TIMEOUT) when the handshake has not completed by then. */
  handshakeTimeoutMs: number;
  /** Buffering per stream (the Duplex highWaterMark). */
  streamHighWaterMark: number;
  /** Error code sent with RESET_STREAM/STOP_SENDING when a stream is destroyed without one. */
  defaultStreamErrorCode: number;
  counters?: ConnectionCounters;
  /** Called once the protocol (ALPN) is known (handshake done, or 0-RTT under way), before any stream is given out. */
  onReady?: (conn: QuicConnection) => void;
  /** A connection id issued to the peer (spares for migration): the server maps it to this connection. */
  newConnectionId?: (cid: Buffer) => void;
}

export interface QuicConnectionEvents {
  /** The handshake completed (before this, only 0-RTT streams exist). */
  established: [];
  /** A stream the peer opened (bidi or uni). */
  stream: [stream: QuicStream];
  /** The connection is over (every stream has been destroyed). */
  close: [info: QuicCloseInfo];
  /** A drain began (the server stops accepting): finish what is open, open nothing new (HTTP/3: send GOAWAY). */
  draining: [];
}

const TEXT = new TextEncoder();
const DECODE = new TextDecoder();

export class QuicConnection extends EventEmitter<QuicConnectionEvents> implements StreamOwner {
  readonly side: 'client' | 'server';
  readonly quiche: QuicheConnection;
  readonly recvBuffer: Buffer;
  /** Resolves when the connection is over, with how it ended. */
  readonly closed: Promise<QuicCloseInfo>;

  /** Open streams by id (a StreamTable, not a Map: see protocol/h2/stream-table.ts). */
  private readonly streams = new StreamTable<QuicStream>(64, 0);
  private readonly wire: Wire;
  private local: HostPort;
  private remote: HostPort;
  private readonly options: ConnectionOptions;
  private readonly sendBuffer: Buffer;
  private spareBatch: Buffer | undefined;
  private flushScheduled = false;
  private timer: NodeJS.Timeout | undefined;
  private timerDeadline = 0;
  private handshakeTimer: NodeJS.Timeout | undefined;
  private established_ = false;
  private ready = false;
  private received = false;
  private readonly blocked = new Set<QuicStream>();
  /** Peer streams that arrived while nobody listened for 'stream' (bounded by the stream limits). */
  private readonly unclaimed: QuicStream[] = [];
  private closeInfo: QuicCloseInfo | undefined;
  private closeBy: QuicCloseInfo['by'] | undefined;
  private resolveClosed!: (info: QuicCloseInfo) => void;
  private draining_ = false;
  private alpn_ = '';
  /** Highest peer-opened stream id seen, per kind (bidi, uni), and ids skipped below it (opened implicitly). */
  private readonly peerHighest: Record<StreamKind, number> = { bidi: -1, uni: -1 };
  private readonly peerSkipped = new Set<number>();
  private nextLocal: Record<StreamKind, number>;
  private lastLost = 0;

  constructor(options: ConnectionOptions) {
    super();
    this.options = options;
    this.side = options.side;
    this.quiche = options.quiche;
    this.wire = options.wire;
    this.local = options.local;
    this.remote = options.remote;
    this.recvBuffer = Buffer.allocUnsafe(64 * 1024);
    this.sendBuffer = Buffer.allocUnsafe(options.maxDatagram);
    // Client-opened ids are even, server-opened odd; bidi has bit 1 clear (RFC 9000 §2.1).
    const mine = this.side === 'client' ? 0 : 1;
    this.nextLocal = { bidi: mine, uni: mine | 2 };
    this.closed = new Promise((resolve) => (this.resolveClosed = resolve));
    (this as EventEmitter).on('newListener', (event: string | symbol) => {
      if (event !== 'stream' || this.unclaimed.length === 0) return;
      process.nextTick(() => {
        const waiting = this.unclaimed.splice(0);
        for (const stream of waiting) if (!stream.destroyed) this.announce(stream);
      });
    });
    this.handshakeTimer = setTimeout(() => this.handshakeTimedOut(), options.handshakeTimeoutMs);
    this.handshakeTimer.unref();
  }

  /** The negotiated application protocol (ALPN), '' before the handshake. */
  get alpn(): string {
    return this.alpn_;
  }
  get established(): boolean {
    return this.established_;
  }
  get remoteAddress(): string {
    return this.remote.host;
  }
  get remotePort(): number {
    return this.remote.port;
  }
  get remoteFamily(): 'IPv4' | 'IPv6' {
    return isIPv6(this.remote.host) ? 'IPv6' : 'IPv4';
  }
  get localAddress(): string {
    return this.local.host;
  }
  get localPort(): number {
    return this.local.port;
  }
  /** Whether the connection was resumed from an earlier session (a ticket). */
  get resumed(): boolean {
    return this.quiche.isResumed();
  }
  /** Whether 0-RTT data is being accepted/sent right now (before the handshake completes). */
  get inEarlyData(): boolean {
    return this.quiche.isInEarlyData();
  }
  get isDraining(): boolean {
    return this.draining_;
  }
  get isClosed(): boolean {
    return this.closeInfo !== undefined;
  }
  /** Streams open now. */
  get streamCount(): number {
    return this.streams.size;
  }

  /**
   * The TLS session to resume a later connection with (0-RTT): pass it as `session` to
   * connectQuic. Undefined until the server has sent a ticket (shortly after the handshake).
   */
  session(): Buffer | undefined {
    const s = this.quiche.session();
    return s ? Buffer.from(s) : undefined;
  }

  /** quiche's counters: packets sent/received/lost, bytes, RTT inputs. */
  stats(): QuicheStats {
    return this.quiche.stats();
  }

  /** The peer's certificate chain, leaf first (DER), when it sent one. */
  peerCertificates(): Buffer[] {
    return (this.quiche.peerCertChain() ?? []).map((c) => Buffer.from(c));
  }

  /** Opens a bidirectional stream. Throws QuicError QUIC_STREAM_LIMIT when the peer allows no more now. */
  openBidi(): QuicStream {
    return this.openStream('bidi');
  }

  /** Opens a unidirectional (send-only) stream. Throws QuicError QUIC_STREAM_LIMIT when the peer allows no more now. */
  openUni(): QuicStream {
    return this.openStream('uni');
  }

  /** How many more streams of that kind the peer allows us to open now. */
  streamsLeft(kind: StreamKind): number {
    if (this.closeInfo) return 0;
    return kind === 'bidi' ? this.quiche.peerStreamsLeftBidi() : this.quiche.peerStreamsLeftUni();
  }

  private openStream(kind: StreamKind): QuicStream {
    if (this.closeInfo) throw new QuicError('QUIC_CONNECTION_CLOSED', 'the connection is closed');
    if (this.streamsLeft(kind) <= 0) throw new QuicError('QUIC_STREAM_LIMIT', `the peer allows no more ${kind} streams now`);
    const id = this.nextLocal[kind];
    try {
      // quiche creates a stream's state on its first write: make it exist now.
      this.quiche.streamSend(id, Buffer.alloc(0), false);
    } catch (err) {
      if ((err as Error).message.includes('StreamLimit')) throw new QuicError('QUIC_STREAM_LIMIT', `the peer allows no more ${kind} streams now`);
      throw new QuicError('QUIC_INTERNAL', `cannot open a ${kind} stream: ${(err as Error).message}`, { cause: err });
    }
    this.nextLocal[kind] = id + 4;
    const stream = this.newStream(id, 'local');
    this.options.counters?.streamOpened(kind, 'local');
    return stream;
  }

  private newStream(id: number, initiator: 'local' | 'peer'): QuicStream {
    const stream = new QuicStream(this, id, initiator, {
      highWaterMark: this.options.streamHighWaterMark,
      defaultErrorCode: this.options.defaultStreamErrorCode,
      earlyData: !this.established_ && this.quiche.isInEarlyData(),
    });
    this.streams.set(stream);
    return stream;
  }

  /**
   * Closes the connection: CONNECTION_CLOSE with an application error code and reason, then
   * quiche's draining period. Open streams end with QUIC_CONNECTION_CLOSED. Resolves when it is over.
   */
  close(code = 0, reason = ''): Promise<QuicCloseInfo> {
    if (!this.closeInfo && !this.closeBy) {
      this.closeBy = 'local';
      try {
        this.quiche.close(true, code, TEXT.encode(reason.slice(0, 256)));
      } catch {
        // Already closing.
      }
      this.flush();
      this.checkClosed();
    }
    return this.closed;
  }

  /** Closes with a transport error code (not an application one): CONNECTION_REFUSED, PROTOCOL_VIOLATION. */
  closeTransport(code: number, reason = ''): void {
    if (this.closeInfo || this.closeBy) return;
    this.closeBy = 'local';
    try {
      this.quiche.close(false, code, TEXT.encode(reason.slice(0, 256)));
    } catch {
      // Already closing.
    }
    this.flush();
    this.checkClosed();
  }

  /** Stop taking new streams; close once the open ones are done (see the 'draining' event). */
  drain(code = 0, reason = 'going away'): void {
    if (this.draining_ || this.closeInfo) return;
    this.draining_ = true;
    this.emit('draining');
    this.drainCode = code;
    this.drainReason = reason;
    if (this.streams.size === 0) void this.close(code, reason);
  }
  private drainCode = 0;
  private drainReason = '';

  // ---- driven by the endpoint / client ----

  /**
   * A datagram arrived for this connection. quiche takes it at once; streams and replies are
   * dealt with once per event-loop turn (scheduleFlush), after every datagram the socket had
   * ready has been taken: one pass over the streams and one send loop per batch, not per packet.
   */
  receive(datagram: Buffer, from: HostPort, to: HostPort): void {
    if (this.closeInfo) return;
    try {
      this.quiche.recv(datagram, { from, to });
    } catch {
      // A packet quiche refuses (bad crypto, a TLS failure): quiche records the error and closes
      // if it must; checkClosed tells.
    }
    this.options.counters?.datagrams(1, datagram.length, 0, 0);
    if (from.host !== this.remote.host || from.port !== this.remote.port) this.remote = { host: from.host, port: from.port };
    this.received = true;
    this.scheduleFlush();
  }

  /** Client only: the local address the socket is bound to changed (migration). */
  setLocal(local: HostPort): void {
    this.local = local;
  }

  private afterEvent(): void {
    if (!this.ready && (this.quiche.isEstablished() || this.quiche.isInEarlyData())) {
      this.ready = true;
      this.alpn_ = DECODE.decode(this.quiche.applicationProto());
      try {
        this.options.onReady?.(this);
      } catch {
        // The owner's connection callback failed: this connection cannot be served.
        this.closeTransport(0x1, 'internal error');
        return;
      }
    }
    if (!this.established_ && this.quiche.isEstablished()) this.becomeEstablished();
    if (this.ready && !this.closeInfo) this.processStreams();
    this.flush();
    this.checkClosed();
  }

  private becomeEstablished(): void {
    this.established_ = true;
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.handshakeTimer = undefined;
    this.alpn_ = DECODE.decode(this.quiche.applicationProto());
    this.issueConnectionIds();
    this.emit('established');
  }

  /** Spare connection ids for the peer, so that either side can move to a new path (migration). */
  private issueConnectionIds(): void {
    for (let i = 0; i < 3; i++) {
      try {
        if (this.quiche.sourceCidsLeft() <= 0) return;
        const cid = randomBytes(CID_LENGTH);
        this.quiche.newSourceCid(cid, randomBytes(16).readBigUInt64BE() << 64n | randomBytes(8).readBigUInt64BE(), false);
        this.options.newConnectionId?.(cid);
      } catch {
        return;
      }
    }
  }

  private processStreams(): void {
    if (this.received) {
      this.received = false;
      for (const id of this.quiche.readable()) {
        const stream = this.streams.get(id) ?? this.acceptPeerStream(id);
        stream?.onReadable();
      }
    }
    // Only streams that wait are retried: cheaper than walking quiche's writable set every turn.
    if (this.blocked.size > 0) {
      const waiting = [...this.blocked];
      this.blocked.clear();
      for (const stream of waiting) stream.onWritable();
    }
  }

  private isPeerStream(id: number): boolean {
    return (id & 1) !== (this.side === 'client' ? 0 : 1);
  }

  /** A stream id quiche reports that we do not know: a new peer stream, or one already done with. */
  private acceptPeerStream(id: number): QuicStream | undefined {
    if (!this.isPeerStream(id)) return undefined;
    const kind = kindOfStream(id);
    const highest = this.peerHighest[kind];
    if (id > highest) {
      // Ids are used in order; the ones jumped over are open too (RFC 9000 §3.2) and may show later.
      const first = highest < 0 ? (id & 3) : highest + 4;
      for (let skipped = first; skipped < id && this.peerSkipped.size < 10_000; skipped += 4) this.peerSkipped.add(skipped);
      this.peerHighest[kind] = id;
    } else if (!this.peerSkipped.delete(id)) {
      return undefined;
    }
    if (this.draining_ || this.closeBy) {
      try {
        this.quiche.streamShutdown(id, 0, this.options.defaultStreamErrorCode);
        if (kind === 'bidi') this.quiche.streamShutdown(id, 1, this.options.defaultStreamErrorCode);
      } catch {
        // Nothing to refuse.
      }
      return undefined;
    }
    const stream = this.newStream(id, 'peer');
    this.options.counters?.streamOpened(kind, 'peer');
    // Streams the peer opens with its first flight (HTTP/3's control stream) can arrive before
    // connectQuic's caller has had a chance to listen: they wait for the first 'stream' listener.
    if (this.listenerCount('stream') === 0) this.unclaimed.push(stream);
    else this.announce(stream);
    return stream;
  }

  /** Datagrams arrivals, stream writes and reads call this: one pass per event-loop turn. */
  scheduleFlush(): void {
    if (this.flushScheduled || this.closeInfo) return;
    this.flushScheduled = true;
    setImmediate(this.runScheduled);
  }

  /**
   * Hands a peer's stream to the 'stream' listeners. A listener that throws loses that stream
   * (reset), not the process: this runs inside the packet loop of every connection.
   */
  private announce(stream: QuicStream): void {
    try {
      this.emit('stream', stream);
    } catch {
      stream.reset(this.options.defaultStreamErrorCode);
    }
  }

  private readonly runScheduled = (): void => {
    this.flushScheduled = false;
    if (this.closeInfo) return;
    this.afterEvent();
  };

  /** A stream whose write waits for capacity (flow control, congestion window). */
  writerBlocked(stream: QuicStream): void {
    this.blocked.add(stream);
  }

  /**
   * Drains quiche's outgoing packets into datagrams, then re-arms its timer. With UDP
   * segmentation on the socket, a run of full-size packets to one address leaves in one send
   * (the kernel cuts it back into packets): a bulk transfer makes one system call per run of up
   * to 48 packets instead of one per packet.
   */
  flush(): void {
    if (this.closeInfo) return;
    const segment = this.wire.segmentSize();
    let sent = 0;
    let sentBytes = 0;
    let batch: Buffer | undefined;
    let batchLength = 0;
    let batchCount = 0;
    let batchTo: HostPort | undefined;
    let batchFrom: HostPort | undefined;
    const sendBatch = () => {
      if (!batch || batchLength === 0) return;
      // A batch the kernel took at once leaves its buffer for the next one (less garbage).
      if (this.wire.send(batch.subarray(0, batchLength), batchTo!, batchFrom!)) this.spareBatch = batch;
      batch = undefined;
      batchLength = 0;
      batchCount = 0;
    };
    for (;;) {
      let result: ReturnType<QuicheConnection['send']>;
      try {
        result = this.quiche.send(this.sendBuffer);
      } catch {
        break;
      }
      if (result === null) break;
      const [n, info] = result;
      sent++;
      sentBytes += n;
      if (segment > 0 && n <= segment) {
        if (batch && (info.to.port !== batchTo!.port || info.to.host !== batchTo!.host || info.from.port !== batchFrom!.port)) sendBatch();
        if (!batch) {
          const size = Math.max(segment, Math.floor(MAX_GSO_BYTES / segment) * segment);
          batch = this.spareBatch?.length === size ? this.spareBatch : Buffer.allocUnsafe(size);
          this.spareBatch = undefined;
          batchTo = info.to;
          batchFrom = info.from;
        }
        this.sendBuffer.copy(batch, batchLength, 0, n);
        batchLength += n;
        batchCount++;
        // Only the last packet of a run may be shorter than the segment size.
        if (n < segment || batchLength + segment > batch.length || batchCount >= MAX_GSO_SEGMENTS) sendBatch();
        continue;
      }
      sendBatch();
      // The socket keeps the buffer until the datagram is out: send a copy of just the packet.
      const datagram = Buffer.allocUnsafe(n);
      this.sendBuffer.copy(datagram, 0, 0, n);
      this.wire.send(datagram, info.to, info.from);
    }
    sendBatch();
    if (sent) this.options.counters?.datagrams(0, 0, sent, sentBytes);
    this.armTimer();
  }

  private armTimer(): void {
    const ms = this.quiche.timeout();
    if (ms === null) {
      if (this.timer) clearTimeout(this.timer);
      this.timer = undefined;
      return;
    }
    const deadline = performance.now() + ms;
    // Firing early is harmless (quiche checks its own timers): only re-arm for an earlier deadline.
    if (this.timer && this.timerDeadline <= deadline + 1 && this.timerDeadline > performance.now()) return;
    if (this.timer) clearTimeout(this.timer);
    this.timerDeadline = deadline;
    this.timer = setTimeout(() => this.onTimer(), Math.max(0, ms));
  }

  private onTimer(): void {
    this.timer = undefined;
    if (this.closeInfo) return;
    try {
      this.quiche.onTimeout();
    } catch {
      // quiche reports its own state through isClosed(): checked below.
    }
    this.afterEvent();
  }

  private handshakeTimedOut(): void {
    this.handshakeTimer = undefined;
    if (this.established_ || this.closeInfo) return;
    this.closeBy = 'handshake-timeout';
    try {
      this.quiche.close(false, 0x1, TEXT.encode('handshake timeout'));
    } catch {
      // Closing already.
    }
    this.flush();
    // Do not wait for the draining period of a peer that never answered.
    this.finish();
  }

  private checkClosed(): void {
    if (this.closeInfo) return;
    if (this.draining_ && this.streams.size === 0 && !this.closeBy) {
      void this.close(this.drainCode, this.drainReason);
      return;
    }
    // Draining (either side sent CONNECTION_CLOSE): nothing more will be sent or delivered, so
    // the connection is over for its users now rather than after quiche's 3-PTO draining period.
    if (this.quiche.isClosed() || this.quiche.isDraining()) this.finish();
  }

  private finish(): void {
    if (this.closeInfo) return;
    const peer = this.quiche.peerError();
    const local = this.quiche.localError();
    let by: QuicCloseInfo['by'];
    let err = peer ?? local;
    if (this.closeBy === 'handshake-timeout') {
      by = 'handshake-timeout';
    } else if (this.quiche.isTimedOut() && !peer && !local) {
      by = 'idle-timeout';
    } else if (peer) {
      by = 'peer';
    } else {
      by = 'local';
      err = local;
    }
    const isApp = err?.isApp ?? false;
    const code = err?.errorCode ?? 0;
    const reason = err ? DECODE.decode(err.reason) : '';
    const error = errorForClose(by, isApp, code, reason, this.established_);
    this.closeInfo = { by, isApp, code, reason, established: this.established_, error };
    if (this.timer) clearTimeout(this.timer);
    if (this.handshakeTimer) clearTimeout(this.handshakeTimer);
    this.timer = undefined;
    this.handshakeTimer = undefined;
    // Our own close() ends streams quietly; anything else (the peer, a timeout) is an error for them.
    const streamError = by === 'local' && this.closeBy === 'local' ? undefined : (error ?? new QuicError('QUIC_CONNECTION_CLOSED', 'the connection was closed'));
    for (const stream of [...this.streams.values()]) stream.onConnectionClosed(streamError);
    this.streams.clear();
    this.blocked.clear();
    this.lastLost = this.quiche.stats().lost;
    try {
      this.emit('close', this.closeInfo);
    } finally {
      this.resolveClosed(this.closeInfo);
    }
  }

  /** Packets quiche declared lost over the connection's life (final once closed). */
  lostPackets(): number {
    return this.closeInfo ? this.lastLost : this.quiche.stats().lost;
  }

  streamClosed(stream: QuicStream): void {
    if (this.streams.get(stream.id) === stream) this.streams.delete(stream.id);
    this.blocked.delete(stream);
    if (this.draining_ && this.streams.size === 0) this.scheduleFlush();
    if (this.draining_ && this.streams.size === 0 && !this.closeBy && !this.closeInfo) void this.close(this.drainCode, this.drainReason);
  }

  countBytes(read: number, written: number): void {
    this.options.counters?.bytes(read, written);
  }
}

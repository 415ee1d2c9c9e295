import { Duplex } from 'node:stream';
import { QuicError, QuicStreamError } from './errors.ts';
import { SHUTDOWN_READ, SHUTDOWN_WRITE, streamErrorCode, type QuicheConnection } from './native.ts';

// One QUIC stream as a Node Duplex, so that the handlers written for TCP sockets (echo's
// `socket.pipe(socket)`) work on each stream unchanged. Bytes move straight between quiche's
// stream buffers and the Duplex: a read copies what quiche holds once, a write hands the chunk to
// quiche and waits (keeping the write callback) while flow control or congestion says no, so a
// slow peer slows the writer instead of growing memory.
//
// Unidirectional streams are Duplexes too: an incoming one has its writable side finished, an
// outgoing one its readable side ended.

/** What a stream needs from its connection (connection.ts implements it). */
export interface StreamOwner {
  readonly quiche: QuicheConnection;
  /** A buffer to copy received bytes through (one per connection). */
  readonly recvBuffer: Buffer;
  /** Send what quiche has to send, soon (coalesced). */
  scheduleFlush(): void;
  /** A write waits for capacity: call onWritable when there may be some. */
  writerBlocked(stream: QuicStream): void;
  /** The stream is gone: drop it from the connection's table. */
  streamClosed(stream: QuicStream): void;
  /** Count bytes for metrics. */
  countBytes(read: number, written: number): void;
  readonly remoteAddress: string;
  readonly remotePort: number;
  readonly localAddress: string;
  readonly localPort: number;
  readonly remoteFamily: 'IPv4' | 'IPv6';
}

export type StreamKind = 'bidi' | 'uni';

/** Stream id bit 0x2: unidirectional (RFC 9000 §2.1). */
export function kindOfStream(id: number): StreamKind {
  return (id & 0x2) === 0 ? 'bidi' : 'uni';
}

export class QuicStream extends Duplex {
  /** The QUIC stream id (RFC 9000 §2.1): bit 0 says who opened it, bit 1 whether it is unidirectional. */
  readonly id: number;
  readonly kind: StreamKind;
  /** Opened by this side (`local`) or by the peer (`peer`). */
  readonly initiator: 'local' | 'peer';
  /** Whether its first bytes arrived as 0-RTT early data (replayable: act only on safe requests). */
  readonly earlyData: boolean;
  /** Bytes delivered to the reader / handed to quiche. */
  bytesRead = 0;
  bytesWritten = 0;

  private readEnded = false;
  private writeEnded = false;
  private wantRead = false;
  private pendingChunk: Buffer | undefined;
  private pendingCallback: ((err?: Error | null) => void) | undefined;
  private pendingFin: ((err?: Error | null) => void) | undefined;
  private gone = false;
  private stoppedCode: number | undefined;
  /** Application error code sent with RESET_STREAM/STOP_SENDING when destroyed without one. */
  private resetCode: number;

  constructor(
    private readonly owner: StreamOwner,
    id: number,
    initiator: 'local' | 'peer',
    options: { highWaterMark: number; defaultErrorCode: number; earlyData: boolean },
  ) {
    super({ allowHalfOpen: true, highWaterMark: options.highWaterMark, decodeStrings: true });
    this.id = id;
    this.kind = kindOfStream(id);
    this.initiator = initiator;
    this.earlyData = options.earlyData;
    this.resetCode = options.defaultErrorCode;
    if (this.kind === 'uni') {
      if (initiator === 'local') {
        this.readEnded = true;
        this.push(null);
        this.resume();
      } else {
        this.writeEnded = true;
        this.end();
      }
    }
  }

  get remoteAddress(): string {
    return this.owner.remoteAddress;
  }
  get remotePort(): number {
    return this.owner.remotePort;
  }
  get remoteFamily(): 'IPv4' | 'IPv6' {
    return this.owner.remoteFamily;
  }
  get localAddress(): string {
    return this.owner.localAddress;
  }
  get localPort(): number {
    return this.owner.localPort;
  }
  /** Socket-compatible no-ops (QUIC has no Nagle and keeps itself alive): handlers written for TCP call them. */
  setNoDelay(): this {
    return this;
  }
  setKeepAlive(): this {
    return this;
  }

  /**
   * Abandons the stream with an application error code: RESET_STREAM on our sending side and
   * STOP_SENDING on our receiving side (whichever are still open), then destroys it.
   */
  reset(code: number): void {
    this.resetCode = code;
    this.destroy();
  }

  /** Asks the peer to stop sending (STOP_SENDING with `code`); our sending side goes on. */
  stopSending(code: number): void {
    if (this.readEnded || this.gone) return;
    this.readEnded = true;
    try {
      this.owner.quiche.streamShutdown(this.id, SHUTDOWN_READ, code);
    } catch {
      // Already reset by the peer: nothing left to stop.
    }
    this.push(null);
    this.owner.scheduleFlush();
  }

  // ---- driven by the connection ----

  /** quiche says the stream has data (or its end, or a reset) to read. */
  onReadable(): void {
    if (this.wantRead) this.pull();
    // A reset must reach a stream nobody is reading too (quiche reports a reset stream as
    // finished): read it now, which ends it with the peer's code.
    else if (!this.readEnded && this.owner.quiche.streamFinished(this.id)) this.pull(true);
  }

  /** quiche says the stream can take more bytes. */
  onWritable(): void {
    if (this.pendingChunk) {
      const chunk = this.pendingChunk;
      const cb = this.pendingCallback!;
      this.pendingChunk = undefined;
      this.pendingCallback = undefined;
      this.send(chunk, cb);
    } else if (this.pendingFin) {
      const cb = this.pendingFin;
      this.pendingFin = undefined;
      this._final(cb);
    }
  }

  /**
   * The connection is gone: nothing more can be sent or received. Closed by this side on
   * purpose (`err` undefined), the stream just closes; otherwise it ends with an error, as a TCP
   * socket does on a reset.
   */
  onConnectionClosed(err: QuicError | undefined): void {
    this.gone = true;
    if (this.readEnded && this.writeEnded) return;
    this.destroy(err ? new QuicStreamError('QUIC_CONNECTION_CLOSED', 0, err.message) : undefined);
  }

  // ---- Duplex ----

  override _read(): void {
    this.wantRead = true;
    this.pull();
  }

  private pull(once = false): void {
    const q = this.owner.quiche;
    const buf = this.owner.recvBuffer;
    while ((this.wantRead || once) && !this.readEnded) {
      once = false;
      let result: [number, boolean] | null;
      try {
        result = q.streamRecv(this.id, buf);
      } catch (err) {
        this.readEnded = true;
        const code = streamErrorCode(err, 'StreamReset');
        if (code !== undefined) this.destroy(new QuicStreamError('QUIC_STREAM_RESET', code, `the peer reset stream ${this.id} with code ${code}`));
        else this.destroy(new QuicError('QUIC_INTERNAL', `stream ${this.id}: ${(err as Error).message}`, { cause: err }));
        return;
      }
      if (result === null) return;
      const [n, fin] = result;
      if (n > 0) {
        this.bytesRead += n;
        this.owner.countBytes(n, 0);
        const data = Buffer.allocUnsafe(n);
        buf.copy(data, 0, 0, n);
        // Reading opens the peer's flow-control window: tell it.
        this.owner.scheduleFlush();
        this.wantRead = this.push(data);
      }
      if (fin) {
        this.readEnded = true;
        this.wantRead = false;
        this.push(null);
        return;
      }
    }
  }

  override _write(chunk: Buffer, _encoding: BufferEncoding, cb: (err?: Error | null) => void): void {
    this.send(chunk, cb);
  }

  override _writev(chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void): void {
    this.send(chunks.length === 1 ? chunks[0].chunk : Buffer.concat(chunks.map((c) => c.chunk)), cb);
  }

  private send(chunk: Buffer, cb: (err?: Error | null) => void): void {
    if (this.gone) return cb(new QuicStreamError('QUIC_CONNECTION_CLOSED', 0, 'the connection is closed'));
    // The peer asked us to stop sending: what is still written goes nowhere, quietly.
    if (this.stoppedCode !== undefined) return cb();
    let written: number | null;
    try {
      written = this.owner.quiche.streamSend(this.id, chunk, false);
    } catch (err) {
      return cb(this.sendError(err));
    }
    const n = written ?? 0;
    if (n > 0) {
      this.bytesWritten += n;
      this.owner.countBytes(0, n);
      this.owner.scheduleFlush();
    }
    if (n >= chunk.length) return cb();
    // quiche took part (flow control, congestion window): the rest waits for onWritable.
    this.pendingChunk = n > 0 ? chunk.subarray(n) : chunk;
    this.pendingCallback = cb;
    this.owner.writerBlocked(this);
  }

  /** A failed streamSend: STOP_SENDING from the peer ends our sending side quietly (undefined); anything else is an error. */
  private sendError(err: unknown): Error | undefined {
    const code = streamErrorCode(err, 'StreamStopped');
    if (code !== undefined) {
      this.onStopped(code);
      return undefined;
    }
    return new QuicError('QUIC_INTERNAL', `stream ${this.id}: ${(err as Error).message}`, { cause: err });
  }

  /**
   * The peer sent STOP_SENDING: our sending side is over (RESET_STREAM with its code goes back,
   * as RFC 9000 §3.5 asks), writes from now on are dropped without an error, and the reading side
   * goes on untouched (an HTTP/3 response that the server cut the request body short for is
   * still whole). 'stopped' (code) tells writers to stop.
   */
  private onStopped(code: number): void {
    if (this.stoppedCode !== undefined) return;
    this.stoppedCode = code;
    this.writeEnded = true;
    this.pendingChunk = undefined;
    try {
      this.owner.quiche.streamShutdown(this.id, SHUTDOWN_WRITE, code);
    } catch {
      // quiche has already let the sending side go.
    }
    this.owner.scheduleFlush();
    this.emit('stopped', code);
  }

  /** The code of the peer's STOP_SENDING, once it came. */
  get stopSendingCode(): number | undefined {
    return this.stoppedCode;
  }

  override _final(cb: (err?: Error | null) => void): void {
    if (this.writeEnded) return cb();
    if (this.gone) return cb(new QuicStreamError('QUIC_CONNECTION_CLOSED', 0, 'the connection is closed'));
    let result: number | null;
    try {
      result = this.owner.quiche.streamSend(this.id, Buffer.alloc(0), true);
    } catch (err) {
      return cb(this.sendError(err));
    }
    if (result === null) {
      if (this.stoppedCode !== undefined) return cb();
      this.pendingFin = cb;
      this.owner.writerBlocked(this);
      return;
    }
    this.writeEnded = true;
    this.owner.scheduleFlush();
    cb();
  }

  override _destroy(err: Error | null, cb: (err?: Error | null) => void): void {
    if (!this.gone) {
      const code = this.resetCode;
      const q = this.owner.quiche;
      if (!this.readEnded) {
        try {
          q.streamShutdown(this.id, SHUTDOWN_READ, code);
        } catch {
          // Reset by the peer already.
        }
      }
      if (!this.writeEnded) {
        try {
          q.streamShutdown(this.id, SHUTDOWN_WRITE, code);
        } catch {
          // Stopped by the peer already.
        }
      }
      this.owner.scheduleFlush();
    }
    this.readEnded = true;
    this.writeEnded = true;
    const pending = this.pendingCallback ?? this.pendingFin;
    this.pendingChunk = undefined;
    this.pendingCallback = undefined;
    this.pendingFin = undefined;
    this.owner.streamClosed(this);
    if (pending) pending(err ?? new QuicStreamError('QUIC_STREAM_RESET', this.resetCode, 'stream destroyed'));
    cb(err);
  }
}

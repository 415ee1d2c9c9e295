import { performance } from 'node:perf_hooks';
import type { LoadContext } from './connection.ts';
import { Http1LoadConnection } from './http1-connection.ts';
import type { Http1Shared } from './http1-engine.ts';
import { IORING_CQE_F_BUFFER, IORING_CQE_F_MORE, IoUring, type Completion } from './io-uring.ts';
import { blockingTcpSocket, shutdownAndClose } from './native-sockets.ts';

// HTTP/1.1 over plain TCP driven through one io_uring (io-uring.ts): each connection's receive
// is one multishot recv armed when it connects, each write of requests one SEND written into the
// submission ring, and one io_uring_enter per turn of the loop submits them all and waits for
// completions. A request therefore costs no call into native code of its own. The same requests,
// parser and accounting as the other HTTP/1.1 engines (http1-engine.ts, http1-native-engine.ts).

/** The one errno on a live connection that is a timeout; every other failure is a reset. */
const TIMEOUT_ERRNO = 110; // ETIMEDOUT
/** A multishot recv found no free receive buffer and stopped: it is armed again. */
const ENOBUFS = 105;

const OP_CONNECT = 0;
const OP_RECV = 1;
const OP_SEND = 2;

/** Receive buffer size: a few small responses, or a slice of a large one (the parser streams). */
const RECV_BUFFER_SIZE = 16 * 1024;

/** The request bytes, laid out once in the ring's memory so that SENDs can point at them. */
export interface UringRequests extends Http1Shared {
  /** Address of the target's sockaddr_in (16 bytes). */
  readonly sockaddr: number;
  /** batchAddress[k], batchLength[k]: k copies of the request (k = 1 always present). */
  readonly batchAddress: readonly number[];
  readonly batchLength: readonly number[];
}

/**
 * The run's ring and its place in Node's loop: libuv watches the ring's fd, and one callback
 * reaps completions and, in the closed model, keeps waiting in io_uring_enter for more for up to
 * `holdMs` before returning to libuv (timers then run up to holdMs late).
 */
export class UringSocketLoop {
  readonly ring: IoUring;
  private readonly slots: (UringHttp1Connection | undefined)[] = [];
  private readonly poller: { stop(): void; close(): void };
  private draining = false;
  private kickQueued = false;
  /**
   * performance.now() when the completions being handled were taken: they had all arrived by
   * then, so one clock read serves the batch (answers are timed by it).
   */
  now = 0;
  private closed = false;

  /** Sets up a ring sized for `connections`, or says why it cannot be had. */
  static open(connections: number, requestBytes: number, holdMs: number): UringSocketLoop | string {
    let buffers = 64;
    while (buffers < Math.min(4096, connections * 2)) buffers *= 2;
    const ring = IoUring.open({
      // A turn may write a send per connection and a receive per connection that reconnects.
      entries: Math.min(32768, Math.max(64, connections * 2)),
      recvBuffers: buffers,
      recvBufferSize: RECV_BUFFER_SIZE,
      scratchBytes: 64 + requestBytes,
      files: connections,
    });
    if (typeof ring === 'string') return ring;
    return new UringSocketLoop(ring, holdMs);
  }

  private constructor(
    ring: IoUring,
    private readonly holdMs: number,
  ) {
    this.ring = ring;
    this.poller = ring.watch(this.drain);
  }

  /** Copies the target address and the request batches into the ring's memory. */
  layout(shared: Http1Shared, sockaddr: Buffer): UringRequests {
    const base = IoUring.SCRATCH_RESERVED;
    const scratch = this.ring.scratch;
    sockaddr.copy(scratch, base);
    let at = base + 64;
    const batchAddress: number[] = [0];
    const batchLength: number[] = [0];
    for (let k = 1; k < shared.batches.length; k++) {
      const b = shared.batches[k];
      if (b === undefined) break;
      if (at + b.length > scratch.length) break;
      b.copy(scratch, at);
      batchAddress.push(this.ring.scratchAddress + at);
      batchLength.push(b.length);
      at += b.length;
    }
    if (batchAddress.length < 2) throw new Error('the request does not fit the ring memory');
    return { ...shared, sockaddr: this.ring.scratchAddress + base, batchAddress, batchLength };
  }

  /** A slot number for a connection's completions. */
  attach(connection: UringHttp1Connection): number {
    this.slots.push(connection);
    return this.slots.length - 1;
  }

  /** Requests were written outside a callback of this loop (a timer): submit them soon. */
  requestSubmit(): void {
    if (this.draining || this.kickQueued || this.closed) return;
    this.kickQueued = true;
    queueMicrotask(this.kick);
  }

  private readonly kick = (): void => {
    this.kickQueued = false;
    if (this.closed || this.ring.pending === 0) return;
    this.ring.submit();
  };

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.stop();
    this.poller.close();
    this.ring.close();
  }

  private readonly dispatch = (c: Completion): void => {
    const connection = this.slots[c.low >>> 2];
    if (connection !== undefined) connection.complete(c.low & 3, c);
    // Parsing is synchronous: the buffer is free again once its completion was handled.
    if (c.flags & IORING_CQE_F_BUFFER) this.ring.recycle(c.flags >>> 16);
  };

  private readonly drain = (): void => {
    if (this.closed) return;
    this.draining = true;
    try {
      const until = performance.now() + this.holdMs;
      for (;;) {
        this.now = performance.now();
        this.ring.forEachCompletion(this.dispatch);
        if (this.closed) return;
        const left = until - performance.now();
        if (left <= 0) {
          this.ring.submit();
          return;
        }
        // Nothing within the hold: back to libuv, which calls again when completions come.
        if (!this.ring.submitAndWait(left)) return;
      }
    } finally {
      this.draining = false;
    }
  };
}

export interface UringHttp1Shared {
  readonly loop: UringSocketLoop;
  readonly requests: UringRequests;
}

export class UringHttp1Connection extends Http1LoadConnection {
  private readonly slot: number;
  private readonly ring: IoUring;
  private fd = -1;
  /** Counts transports: completions carry it, so those of a closed socket are recognised and dropped. */
  private generation = 0;
  private connected = false;
  /**
   * A SEND is in flight whose completion is awaited (one at a time, so that request bytes never
   * interleave). Without pipelining a send posts no completion unless it fails: the next request
   * goes out only after the answer to the last, which the server sent after reading all of it.
   */
  private sending = false;
  private readonly quietSends: boolean;
  /** The SEND in flight: address and length, to send the rest after a short send. */
  private sendAddress = 0;
  private sendLength = 0;

  constructor(
    ctx: LoadContext,
    private readonly shared: UringHttp1Shared,
  ) {
    super(ctx, shared.requests.headRequests);
    this.ring = shared.loop.ring;
    this.slot = shared.loop.attach(this);
    this.quietSends = ctx.options.pipeline === 1;
  }

  protected open(): void {
    this.connected = false;
    this.sending = false;
    this.queued = 0;
    this.resetExchange();
    this.generation = (this.generation + 1) >>> 0;
    // Throws (a connect error, counted by LoadConnection) when no socket can be made.
    this.fd = blockingTcpSocket();
    try {
      // Requests name the socket by its slot in the ring's file table (no file lookup per request).
      this.ring.registerFile(this.slot, this.fd);
    } catch (err) {
      shutdownAndClose(this.fd);
      this.fd = -1;
      throw err;
    }
    this.ring.prepConnect(this.slot, this.shared.requests.sockaddr, 16, (this.slot << 2) | OP_CONNECT, this.generation);
    this.shared.loop.requestSubmit();
  }

  /** A completion of one of this connection's requests. */
  complete(op: number, c: Completion): void {
    if (c.high !== this.generation || this.fd < 0) return; // a socket already closed
    if (op === OP_RECV) this.received(c);
    else if (op === OP_SEND) this.sent(c.res);
    else this.connectDone(c.res);
  }

  private connectDone(res: number): void {
    if (res < 0) {
      this.lost('connect', this.ring.errnoName(-res));
      return;
    }
    this.connected = true;
    this.armReceive();
    this.opened();
  }

  private armReceive(): void {
    this.ring.prepRecvMultishot(this.slot, (this.slot << 2) | OP_RECV, this.generation);
    this.shared.loop.requestSubmit();
  }

  private received(c: Completion): void {
    const res = c.res;
    if (res > 0) {
      this.ctx.stats.bytesRead += res;
      this.readTime = this.shared.loop.now;
      if (!this.parse(this.ring.recvBuffers[c.flags >>> 16], res)) return;
      if ((c.flags & IORING_CQE_F_MORE) === 0) this.armReceive();
      this.pump(this.readTime);
      return;
    }
    if (res === 0) {
      this.ended();
      return;
    }
    if (res === -ENOBUFS) {
      this.armReceive();
      return;
    }
    this.lost(res === -TIMEOUT_ERRNO ? 'timeout' : 'reset', this.ring.errnoName(-res));
  }

  protected override flush(): void {
    if (!this.sending && this.queued > 0 && this.connected) this.sendQueued();
  }

  private sendQueued(): void {
    const { batchAddress, batchLength } = this.shared.requests;
    const k = Math.min(this.queued, batchAddress.length - 1);
    this.queued -= k;
    this.startSend(batchAddress[k], batchLength[k]);
    this.ctx.stats.bytesWritten += batchLength[k];
  }

  private startSend(address: number, length: number): void {
    const quiet = this.quietSends && address === this.shared.requests.batchAddress[1];
    this.sending = !quiet;
    this.sendAddress = address;
    this.sendLength = length;
    this.ring.prepSend(this.slot, address, length, (this.slot << 2) | OP_SEND, this.generation, quiet);
    this.shared.loop.requestSubmit();
  }

  private sent(res: number): void {
    this.sending = false;
    if (res < 0) {
      this.lost(res === -TIMEOUT_ERRNO ? 'timeout' : 'reset', `${this.ring.errnoName(-res)} while sending`);
      return;
    }
    if (res < this.sendLength) {
      this.startSend(this.sendAddress + res, this.sendLength - res);
      return;
    }
    if (this.queued > 0) this.sendQueued();
  }

  protected destroyTransport(): void {
    const fd = this.fd;
    this.fd = -1;
    this.generation = (this.generation + 1) >>> 0;
    this.connected = false;
    this.sending = false;
    this.queued = 0;
    this.due.clear();
    if (fd >= 0) shutdownAndClose(fd);
  }
}

import { performance } from 'node:perf_hooks';
import type { LoadContext } from './connection.ts';
import { Http1LoadConnection } from './http1-connection.ts';
import type { Http1Shared } from './http1-engine.ts';
import { EPOLLERR, EPOLLHUP, EPOLLIN, EPOLLOUT, ERRNO, type NativeSocket, type NativeSocketHandler, type NativeSocketLoop } from './native-sockets.ts';

// HTTP/1.1 over plain TCP on the load generator's own sockets (native-sockets.ts): the same
// requests, parser and accounting as the engine on Node's sockets (http1-engine.ts), with one
// recv and one send per request and nothing else. The engine of record for http:// targets
// reachable over IPv4 when koffi is usable; https:// and the rest use Node's sockets.

/** All native connections' reads land here; parsing is synchronous, so they can share it. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

/** The one errno on a live connection that is a timeout; every other failure is a reset. */
const TIMEOUT_ERRNO = 110; // ETIMEDOUT

export interface NativeHttp1Shared extends Http1Shared {
  readonly loop: NativeSocketLoop;
  /** The target's sockaddr_in. */
  readonly address: Buffer;
}

export class NativeHttp1Connection extends Http1LoadConnection implements NativeSocketHandler {
  private socket: NativeSocket | undefined;
  private connected = false;
  /** Request bytes the kernel did not take yet (its send buffer was full), sent when it is writable. */
  private unsent: Buffer | undefined;

  constructor(
    ctx: LoadContext,
    private readonly shared: NativeHttp1Shared,
  ) {
    super(ctx, shared.headRequests);
  }

  protected open(): void {
    this.connected = false;
    this.unsent = undefined;
    this.resetExchange();
    // Throws (a connect error, counted by LoadConnection) when the connect fails at once.
    this.socket = this.shared.loop.connect(this.shared.address, this);
  }

  ready(events: number): void {
    const socket = this.socket;
    if (socket === undefined) return;
    if (!this.connected) {
      const e = socket.connectError();
      if (e !== 0) {
        this.lost('connect', socket.errnoName(e));
        return;
      }
      if ((events & (EPOLLOUT | EPOLLIN)) === 0) {
        this.lost('connect', 'connection closed before it was up');
        return;
      }
      this.connected = true;
      socket.watch(EPOLLIN);
      this.opened();
      return;
    }
    if (events & EPOLLOUT && this.unsent !== undefined) {
      this.sendUnsent(socket);
      if (this.socket !== socket) return;
    }
    if (events & (EPOLLIN | EPOLLERR | EPOLLHUP)) this.receive(socket);
  }

  protected override flush(): void {
    const socket = this.socket;
    const k = this.queued;
    this.queued = 0;
    if (socket === undefined || k === 0) return;
    let bytes = this.shared.batches[k];
    if (bytes === undefined) bytes = Buffer.concat(Array.from({ length: k }, () => this.shared.request));
    this.ctx.stats.bytesWritten += bytes.length;
    if (this.unsent !== undefined) {
      // Still waiting for room: the new requests go behind the old ones.
      this.unsent = Buffer.concat([this.unsent, bytes]);
      return;
    }
    const n = socket.send(bytes, bytes.length);
    if (n === bytes.length) return;
    if (n < 0 && n !== -ERRNO.EAGAIN && n !== -ERRNO.EINTR) {
      this.sendFailed(socket, -n);
      return;
    }
    this.unsent = bytes.subarray(Math.max(0, n));
    socket.watch(EPOLLIN | EPOLLOUT);
  }

  private sendUnsent(socket: NativeSocket): void {
    const unsent = this.unsent;
    if (unsent === undefined) return;
    const n = socket.send(unsent, unsent.length);
    if (n === unsent.length) {
      this.unsent = undefined;
      socket.watch(EPOLLIN);
      return;
    }
    if (n < 0 && n !== -ERRNO.EAGAIN && n !== -ERRNO.EINTR) {
      this.sendFailed(socket, -n);
      return;
    }
    if (n > 0) this.unsent = unsent.subarray(n);
  }

  private sendFailed(socket: NativeSocket, errno: number): void {
    this.lost(errno === TIMEOUT_ERRNO ? 'timeout' : 'reset', `${socket.errnoName(errno)} while sending`);
  }

  private receive(socket: NativeSocket): void {
    const stats = this.ctx.stats;
    let read = false;
    for (;;) {
      const n = socket.recv(READ_BUFFER, READ_BUFFER.length);
      if (n > 0) {
        read = true;
        stats.bytesRead += n;
        this.readTime = performance.now();
        if (!this.parse(READ_BUFFER, n)) return;
        // A full buffer may have left bytes behind; anything shorter drained the socket.
        if (n < READ_BUFFER.length) break;
        continue;
      }
      if (n === 0) {
        this.ended();
        return;
      }
      if (n === -ERRNO.EAGAIN || n === -ERRNO.EINTR) break;
      this.lost(n === -TIMEOUT_ERRNO ? 'timeout' : 'reset', socket.errnoName(-n));
      return;
    }
    this.pump(read ? this.readTime : performance.now());
  }

  protected destroyTransport(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.queued = 0;
    this.unsent = undefined;
    this.due.clear();
    socket?.close();
  }
}

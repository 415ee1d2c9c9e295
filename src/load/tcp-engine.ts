import { connect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LoadConnection, type LoadContext } from './connection.ts';
import { classifySocketError, describeError } from './errors.ts';
import { TimeRing } from './time-ring.ts';

// TCP echo round trips: write the payload, and a round trip is done when as many bytes have come
// back. --pipeline N keeps N payloads in flight; bytes are counted, never inspected.

export class TcpConnection extends LoadConnection {
  private socket: Socket | undefined;
  private connected = false;
  private readonly due: TimeRing;
  /** Bytes of the answer to the oldest payload received so far. */
  private partial = 0;
  private queued = 0;

  constructor(ctx: LoadContext) {
    super(ctx, ctx.options.pipeline);
    this.due = new TimeRing(ctx.options.pipeline);
  }

  protected open(): void {
    const o = this.ctx.options;
    this.connected = false;
    this.partial = 0;
    this.due.clear();
    const socket = connect({ host: o.target.host, port: o.target.port });
    socket.setNoDelay(true);
    this.socket = socket;
    socket.once('connect', () => {
      if (socket !== this.socket) return;
      this.connected = true;
      this.opened();
    });
    socket.on('data', (chunk: Buffer) => this.onBytes(socket, chunk.length));
    socket.on('error', (err: Error) => {
      if (socket === this.socket) this.lost(classifySocketError(err, this.connected), describeError(err));
    });
    socket.on('close', () => {
      if (socket === this.socket) this.lost(this.connected ? 'reset' : 'connect', this.connected ? 'the server closed the connection with payloads in flight' : 'connection closed before it was up');
    });
  }

  private onBytes(socket: Socket, n: number): void {
    if (socket !== this.socket) return;
    const size = this.ctx.options.body.length;
    this.ctx.stats.bytesRead += n;
    const now = performance.now();
    let bytes = this.partial + n;
    while (bytes >= size && this.due.length > 0) {
      bytes -= size;
      this.answered(this.due.shift(), now);
    }
    if (this.due.length === 0 && bytes > 0) {
      this.ctx.stats.error('parse', 'the server sent more bytes than it was sent');
      this.lost('reset', 'connection closed after unexpected bytes');
      return;
    }
    this.partial = bytes;
    this.pump();
  }

  protected send(due: number): void {
    this.due.push(due);
    this.queued++;
  }

  protected override flush(): void {
    const socket = this.socket;
    const k = this.queued;
    this.queued = 0;
    if (!socket) return;
    const body = this.ctx.options.body;
    if (k === 1) socket.write(body);
    else {
      socket.cork();
      for (let i = 0; i < k; i++) socket.write(body);
      socket.uncork();
    }
    this.ctx.stats.bytesWritten += k * body.length;
  }

  protected destroyTransport(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.queued = 0;
    this.due.clear();
    socket?.destroy();
  }
}

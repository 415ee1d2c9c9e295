import { createSocket, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import { performance } from 'node:perf_hooks';
import { LoadConnection, type LoadContext } from './connection.ts';
import { describeError } from './errors.ts';
import { TimeRing } from './time-ring.ts';

// UDP round trips: send the payload as one datagram, and the next datagram back is its answer.
// A datagram that gets no answer within --timeout is a timeout error; the socket is then
// replaced (a new local port), so a late answer cannot be taken for the next one's.

export class UdpConnection extends LoadConnection {
  private socket: Socket | undefined;
  private readonly due: TimeRing;

  constructor(ctx: LoadContext) {
    super(ctx, ctx.options.pipeline);
    this.due = new TimeRing(ctx.options.pipeline);
  }

  protected open(): void {
    const o = this.ctx.options;
    this.due.clear();
    const socket = createSocket(isIPv6(o.target.host) ? 'udp6' : 'udp4');
    this.socket = socket;
    socket.on('error', (err: Error) => {
      if (socket !== this.socket) return;
      // ECONNREFUSED here is an ICMP port unreachable: nothing listens.
      this.lost((err as NodeJS.ErrnoException).code === 'ECONNREFUSED' ? 'connect' : 'other', describeError(err));
    });
    socket.on('message', (msg: Buffer) => {
      if (socket !== this.socket) return;
      this.ctx.stats.bytesRead += msg.length;
      if (this.due.length === 0) return; // a duplicate or late datagram
      this.answered(this.due.shift(), performance.now());
      this.pump();
    });
    socket.connect(o.target.port, o.target.host, () => {
      if (socket === this.socket) this.opened();
    });
  }

  protected send(due: number): void {
    this.due.push(due);
    const body = this.ctx.options.body;
    this.socket?.send(body);
    this.ctx.stats.bytesWritten += body.length;
  }

  protected destroyTransport(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.due.clear();
    try {
      socket?.close();
    } catch {
      // already closed
    }
  }
}

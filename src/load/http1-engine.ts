import { connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { connect as tlsConnect } from 'node:tls';
import type { LoadContext } from './connection.ts';
import { Http1LoadConnection } from './http1-connection.ts';
import { classifySocketError, describeError } from './errors.ts';
import { buildBatches, buildHttp1Request } from './http1-request.ts';
import { tlsConnectOptions } from './tls-options.ts';

// HTTP/1.1 over raw sockets: keep-alive, pipelining (--pipeline N requests in flight per
// connection), the request bytes serialised once. Plain sockets read into one shared buffer
// (net's `onread`), so a read allocates nothing; the parser looks only at the bytes that end
// responses.

/** Plain-socket reads land here; parsing is synchronous, so all connections can share it. */
const READ_BUFFER = Buffer.allocUnsafe(256 * 1024);

export interface Http1Shared {
  readonly request: Buffer;
  readonly batches: readonly (Buffer | undefined)[];
  readonly headRequests: boolean;
}

/** The request bytes all connections of one run share. */
export function http1Shared(ctx: LoadContext): Http1Shared {
  const request = buildHttp1Request(ctx.options);
  return { request, batches: buildBatches(request, ctx.options.pipeline), headRequests: ctx.options.method === 'HEAD' };
}

export class Http1Connection extends Http1LoadConnection {
  private socket: Socket | undefined;
  private connected = false;

  constructor(
    ctx: LoadContext,
    private readonly shared: Http1Shared,
  ) {
    super(ctx, shared.headRequests);
  }

  protected open(): void {
    const o = this.ctx.options;
    this.connected = false;
    this.resetExchange();
    let socket: Socket;
    if (o.target.tls) {
      socket = tlsConnect(tlsConnectOptions(o, ['http/1.1']));
      socket.once('secureConnect', this.onConnect);
      socket.on('data', (chunk: Buffer) => this.onBytes(chunk, chunk.length));
    } else {
      socket = netConnect({
        host: o.target.host,
        port: o.target.port,
        onread: {
          buffer: READ_BUFFER,
          callback: (nread: number, buf: Uint8Array) => {
            this.onBytes(buf as Buffer, nread);
            return true;
          },
        },
      });
      socket.once('connect', this.onConnect);
    }
    socket.setNoDelay(true);
    socket.on('error', (err: Error) => this.lostSocket(socket, err));
    socket.on('close', () => this.closed(socket));
    this.socket = socket;
  }

  private readonly onConnect = (): void => {
    this.connected = true;
    this.opened();
  };

  protected override flush(): void {
    const socket = this.socket;
    const k = this.queued;
    this.queued = 0;
    if (!socket || k === 0) return;
    const batch = this.shared.batches[k];
    if (batch) {
      socket.write(batch);
      this.ctx.stats.bytesWritten += batch.length;
      return;
    }
    socket.cork();
    for (let i = 0; i < k; i++) socket.write(this.shared.request);
    socket.uncork();
    this.ctx.stats.bytesWritten += k * this.shared.request.length;
  }

  private onBytes(buf: Buffer, n: number): void {
    if (n <= 0) return;
    this.ctx.stats.bytesRead += n;
    this.readTime = performance.now();
    // The parser honours `n`: no view of the shared read buffer is made per read.
    if (this.parse(buf, n)) this.pump();
  }

  private lostSocket(socket: Socket, err: Error): void {
    if (socket !== this.socket) return;
    this.lost(classifySocketError(err, this.connected), describeError(err));
  }

  private closed(socket: Socket): void {
    if (socket !== this.socket) return;
    // A response that runs until close ends here.
    this.readTime = performance.now();
    if (this.parser.finish()) {
      this.lost('reset', 'the server closed the connection with requests in flight');
      return;
    }
    this.lost(this.connected ? 'reset' : 'connect', this.connected ? 'the server closed the connection with requests in flight' : 'connection closed before it was up');
  }

  protected destroyTransport(): void {
    const socket = this.socket;
    this.socket = undefined;
    this.queued = 0;
    this.due.clear();
    socket?.destroy();
  }
}

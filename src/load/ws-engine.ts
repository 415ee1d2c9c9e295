import { isUtf8 } from 'node:buffer';
import { performance } from 'node:perf_hooks';
import WebSocket from 'ws';
import { LoadConnection, type LoadContext } from './connection.ts';
import { classifySocketError, describeError } from './errors.ts';
import { TimeRing } from './time-ring.ts';

// WebSocket round trips (the `ws` package): send the message, count the next message that comes
// back as its answer. --pipeline N keeps N messages in flight; answers pair with the oldest.

export class WsConnection extends LoadConnection {
  private ws: WebSocket | undefined;
  private connected = false;
  private readonly due: TimeRing;
  /** Text frames for UTF-8 payloads (what echo servers expect), binary otherwise. */
  private readonly binary: boolean;

  constructor(ctx: LoadContext) {
    super(ctx, ctx.options.pipeline);
    this.due = new TimeRing(ctx.options.pipeline);
    this.binary = !isUtf8(ctx.options.body);
  }

  protected open(): void {
    const o = this.ctx.options;
    this.connected = false;
    this.due.clear();
    const headers: Record<string, string> = {};
    for (const [name, value] of o.headers) headers[name] = value;
    const ws = new WebSocket(o.target.url, {
      headers,
      perMessageDeflate: false,
      rejectUnauthorized: !o.tls.insecure,
      ca: o.tls.ca,
      maxPayload: 64 * 1024 * 1024,
      handshakeTimeout: o.timeoutMs,
    });
    this.ws = ws;
    ws.on('open', () => {
      if (ws !== this.ws) return;
      ws.on('message', (data: Buffer | ArrayBuffer | Buffer[]) => {
        if (ws !== this.ws) return;
        this.ctx.stats.bytesRead += Buffer.isBuffer(data) ? data.length : Array.isArray(data) ? data.reduce((n, b) => n + b.length, 0) : data.byteLength;
        if (this.due.length === 0) {
          this.ctx.stats.error('parse', 'a message arrived with no message in flight');
          return;
        }
        this.answered(this.due.shift(), performance.now());
        this.pump();
      });
      this.connected = true;
      this.opened();
    });
    ws.on('unexpected-response', (_req, res) => {
      if (ws !== this.ws) return;
      this.lost('connect', `the server answered the upgrade with HTTP ${res.statusCode}`);
    });
    ws.on('error', (err: Error) => {
      if (ws === this.ws) this.lost(classifySocketError(err, this.connected), describeError(err));
    });
    ws.on('close', (code: number) => {
      if (ws === this.ws) this.lost(this.connected ? 'reset' : 'connect', `the server closed the WebSocket (code ${code}) with messages in flight`);
    });
  }

  protected send(due: number): void {
    this.due.push(due);
    this.ws?.send(this.ctx.options.body, { binary: this.binary });
    this.ctx.stats.bytesWritten += this.ctx.options.body.length;
  }

  protected destroyTransport(): void {
    const ws = this.ws;
    this.ws = undefined;
    this.due.clear();
    ws?.terminate();
  }
}

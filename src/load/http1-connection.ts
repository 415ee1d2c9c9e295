import { performance } from 'node:perf_hooks';
import { LoadConnection, type LoadContext } from './connection.ts';
import { Http1ResponseParser, ResponseParseError, type ResponseSink } from './http1-parser.ts';
import { TimeRing } from './time-ring.ts';

// One load connection's HTTP/1.1: the requests in flight, the response parser and what each
// response counts for, whatever carries the bytes (Node's sockets, the engine's own epoll
// sockets, one io_uring). The transport subclass moves the bytes: it stamps `readTime` once per
// read, hands the read to `parse`, and says when the server closed its side.

export abstract class Http1LoadConnection extends LoadConnection implements ResponseSink {
  /** Due times of the requests in flight, oldest first: responses answer them in order. */
  protected readonly due: TimeRing;
  protected readonly parser: Http1ResponseParser;
  /** Requests queued by send() and not yet handed to the transport. */
  protected queued = 0;
  /** performance.now() of the read being parsed (one clock read per read). */
  protected readTime = 0;
  /** The server said it closes after the response just parsed. */
  protected closing = false;

  constructor(ctx: LoadContext, headRequests: boolean) {
    super(ctx, ctx.options.pipeline);
    this.due = new TimeRing(ctx.options.pipeline);
    this.parser = new Http1ResponseParser(this, headRequests);
  }

  /** For a new transport: nothing in flight, nothing half-parsed. */
  protected resetExchange(): void {
    this.closing = false;
    this.parser.reset();
    this.due.clear();
  }

  protected send(due: number): void {
    this.due.push(due);
    this.queued++;
  }

  /** Parses buf[0, n); false when the connection was given up. */
  protected parse(buf: Buffer, n: number): boolean {
    try {
      this.parser.execute(buf, n);
    } catch (err) {
      if (!(err instanceof ResponseParseError)) throw err;
      this.ctx.stats.error('parse', err.message, 1);
      // The request being parsed is the parse error; the others in flight are lost with the connection.
      if (this.inFlight > 0) this.inFlight--;
      this.lost('reset', 'connection closed after a malformed response');
      return false;
    }
    if (this.closing) {
      this.lost('reset', 'the server closed the connection (Connection: close) with requests in flight');
      return false;
    }
    return true;
  }

  response(status: number, keepAlive: boolean): void {
    if (this.due.length === 0) {
      this.parser.halt();
      throw new ResponseParseError('a response arrived with no request in flight');
    }
    this.answered(this.due.shift(), this.readTime, status);
    if (!keepAlive) {
      this.closing = true;
      this.parser.halt();
    }
  }

  /** The server closed its side. */
  protected ended(): void {
    // A response that runs until close ends here.
    this.readTime = performance.now();
    this.parser.finish();
    // Counts as resets only the requests still in flight (none when it closed an idle connection).
    this.lost('reset', 'the server closed the connection with requests in flight');
  }
}

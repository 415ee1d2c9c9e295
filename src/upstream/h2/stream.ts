import type { Dispatcher } from 'undici';
import type { H2Connection } from './connection.ts';
import { H2ClientError } from './errors.ts';
import { CANCEL } from '../../protocol/h2/frames.ts';

// One request on an HTTP/2 client connection: what it still has to send (and may, under the
// target's windows), what it received and has not handed to the handler yet (while the handler
// is paused), and when it times out. The connection does the framing; this is the state and
// the handler's side: the request body writes into it (BodySink), the handler resumes or aborts it.

/** Response trailers as the handler's onComplete gets them (a repeated name: its values in order). */
export type Trailers = Record<string, string | string[]>;

export class ClientStream {
  /** Ended (completed, failed, reset, aborted): nothing more reaches the handler. */
  done = false;

  // ---- request side (what we send) ----
  /** Bytes the target lets us send on this stream (its SETTINGS_INITIAL_WINDOW_SIZE, then WINDOW_UPDATEs). */
  sendWindow: number;
  /** Request body bytes written while a window was closed, in order (made when the first waits: most streams never need it). */
  pendingOut: Buffer[] | null = null;
  pendingBytes = 0;
  /** The body ended while bytes were still pending: END_STREAM goes with the last of them. */
  pendingEnd = false;
  /** END_STREAM was sent (or is queued): the request is complete. */
  localEnded = false;
  /** The connection's write count when this stream's HEADERS were queued: equal to it now, they have not left yet. */
  headersFlush = -1;
  /** The header of this stream's last DATA frame and the connection's write count when it was queued. */
  lastData: Buffer | null = null;
  lastDataFlush = -1;
  private drainWaiters: (() => void)[] | null = null;
  private closeWaiters: (() => void)[] | null = null;

  /** The request's body is at hand in full (none, or a Buffer): refused unprocessed, it may go again as it is. */
  replayable = false;
  /** A HEAD request: its response has no body whatever its content-length says. */
  noBody = false;

  // ---- response side (what we receive) ----
  responded = false;
  /** The target ended its side (END_STREAM seen). */
  remoteEnded = false;
  /** Bytes the target may still send before our next WINDOW_UPDATE for this stream. */
  recvWindow: number;
  /** Bytes handed to the handler (or discarded) since the last WINDOW_UPDATE: credit owed to the target. */
  unacked = 0;
  /** The handler returned false from onHeaders or onData: data waits in `held`, no credit goes back. */
  paused = false;
  held: Buffer[] | null = null;
  /** The response ended while held data was waiting: trailers (or null) to complete with after it. */
  heldEnd: Trailers | null | undefined = undefined;
  /** The response's content-length, -1 when it has none. */
  expectedLength = -1;
  receivedLength = 0;
  /** When (Date.now()) the first-byte or idle timeout fires; 0: none running. */
  deadline = 0;

  constructor(
    readonly conn: H2Connection,
    readonly id: number,
    readonly handler: Dispatcher.DispatchHandler,
    sendWindow: number,
    recvWindow: number,
  ) {
    this.sendWindow = sendWindow;
    this.recvWindow = recvWindow;
  }

  // ---- BodySink: the request body writes here ----

  get destroyed(): boolean {
    return this.done;
  }

  /** Queues body bytes; false when the body should wait for 'drain' before writing more. */
  write(chunk: Buffer): boolean {
    if (this.done || this.localEnded || this.pendingEnd) return false;
    if (chunk.length > 0) this.conn.sendData(this, chunk, false);
    return this.writable();
  }

  end(): void {
    if (this.done || this.localEnded || this.pendingEnd) return;
    this.conn.sendData(this, EMPTY, true);
  }

  once(event: 'drain' | 'close', listener: () => void): this {
    if (event === 'drain') {
      (this.drainWaiters ??= []).push(listener);
      this.conn.waitForDrain(this);
    } else if (this.done) queueMicrotask(listener);
    else (this.closeWaiters ??= []).push(listener);
    return this;
  }

  /** More body may be written now: nothing pending and both windows and the socket have room. */
  writable(): boolean {
    return this.pendingBytes === 0 && this.sendWindow > 0 && this.conn.canSend();
  }

  drained(): void {
    const waiters = this.drainWaiters;
    this.drainWaiters = null;
    if (waiters) for (const w of waiters) w();
    this.wakeWriter();
  }

  /** A body read as an async iterable waits here: until it may write again, or the stream ended. */
  writableOrDone(): Promise<void> {
    if (this.done) return Promise.resolve();
    return new Promise((resolve) => {
      this.writer = resolve;
      this.conn.waitForDrain(this);
    });
  }

  private writer: (() => void) | null = null;

  private wakeWriter(): void {
    const w = this.writer;
    this.writer = null;
    w?.();
  }

  /** Marks the stream ended and wakes whatever waits on it (a body waiting to write). */
  close(): void {
    this.done = true;
    this.deadline = 0;
    this.held = null;
    const waiters = this.closeWaiters;
    this.closeWaiters = null;
    this.drainWaiters = null;
    if (waiters) for (const w of waiters) w();
    this.wakeWriter();
  }

  // ---- the handler's controls ----

  /** Given to onHeaders: the handler can take more after returning false. */
  readonly resume = (): void => {
    if (this.done || !this.paused) return;
    this.paused = false;
    this.conn.resumed(this);
  };

  /** Given to onConnect: the proxy gives the request up (client gone, timeout of its own). */
  readonly abort = (err?: Error): void => {
    if (this.done) return;
    this.conn.resetStream(this, CANCEL, err ?? new H2ClientError('request aborted', 'UND_ERR_ABORTED'));
  };
}

const EMPTY = Buffer.alloc(0);

import { performance } from 'node:perf_hooks';
import type { ErrorKind } from './errors.ts';
import type { LoadOptions } from './options.ts';
import { NO_MORE, type Scheduler } from './scheduler.ts';
import type { LoadStats } from './stats.ts';

// One load connection's life, the same for every protocol: connect, keep up to `depth` requests
// in flight as the scheduler allows, pair answers with due times, and on any failure count the
// requests in flight by kind and connect again. The engines (http1, h2, ws, tcp, udp) only open
// their transport, write requests and report answers and losses.

export interface LoadContext {
  readonly options: LoadOptions;
  readonly stats: LoadStats;
  readonly scheduler: Scheduler;
  /** Told when a connection has nothing left in flight: the run may be over. */
  readonly settled: () => void;
}

/** A new connection after a failed connect waits this long, so a refusing target is not spun on. */
const RECONNECT_DELAY_MS = 10;

type State = 'idle' | 'connecting' | 'open' | 'closed';

export abstract class LoadConnection {
  /** Requests written and not yet answered. */
  protected inFlight = 0;
  private state: State = 'idle';
  /** performance.now() of the last sign of life: connect start, first write into an empty pipe, an answer. */
  private lastProgress = 0;
  /** A due time taken from the scheduler that lies ahead (open model), or NO_MORE. */
  private dueTicket = NO_MORE;
  private wakeTimer: NodeJS.Timeout | undefined;
  private reconnectTimer: NodeJS.Timeout | undefined;
  /** Answers on the current transport: one that closes before answering anything is retried after a pause. */
  private answeredHere = 0;

  constructor(
    protected readonly ctx: LoadContext,
    /** Most requests in flight at once on this connection. */
    protected readonly depth: number,
  ) {}

  /** Starts the transport; called once. */
  protected abstract open(): void;
  /** Writes (or queues, until flush) one request due at `due`. */
  protected abstract send(due: number): void;
  /** Tears the transport down at once, dropping whatever it holds. */
  protected abstract destroyTransport(): void;
  /** After a burst of send() calls: write what was queued. */
  protected flush(): void {}

  start(): void {
    this.connect();
  }

  /** Nothing in flight and nothing waiting to be sent. */
  idle(): boolean {
    return this.inFlight === 0 && this.dueTicket === NO_MORE;
  }

  /** Closes for good (end of the run): what is in flight is neither answered nor counted. */
  close(): void {
    if (this.state === 'closed') return;
    this.state = 'closed';
    this.clearTimers();
    this.destroyTransport();
  }

  /** Called by the run's sweeper: a connection silent for longer than the timeout is failed. */
  checkTimeout(now: number): void {
    const busy = this.state === 'connecting' || (this.state === 'open' && this.inFlight > 0);
    if (!busy || now - this.lastProgress <= this.ctx.options.timeoutMs) return;
    if (this.state === 'connecting') this.lost('connect', `no connection within ${this.ctx.options.timeoutMs}ms`);
    else this.lost('timeout', `no answer within ${this.ctx.options.timeoutMs}ms`);
  }

  private connect(): void {
    if (this.state === 'closed') return;
    this.state = 'connecting';
    this.answeredHere = 0;
    this.lastProgress = performance.now();
    try {
      this.open();
    } catch (err) {
      this.lost('connect', (err as Error).message);
    }
  }

  /** The transport is up: start sending. */
  protected opened(): void {
    if (this.state !== 'connecting') return;
    this.state = 'open';
    this.lastProgress = performance.now();
    this.pump();
  }

  /**
   * Sends as many requests as the depth and the scheduler allow. `now`: a clock reading the
   * caller just took (the time its answers were read), which saves reading the clock again.
   */
  protected pump(now = performance.now()): void {
    if (this.state !== 'open' || this.wakeTimer !== undefined) return;
    const { scheduler } = this.ctx;
    let sent = 0;
    while (this.inFlight < this.depth) {
      let due = this.dueTicket;
      if (due === NO_MORE) due = scheduler.take(now);
      if (due === NO_MORE) break;
      if (due > now) {
        now = performance.now();
        if (due > now) {
          this.dueTicket = due;
          this.wakeTimer = setTimeout(this.wake, Math.ceil(due - now));
          break;
        }
      }
      this.dueTicket = NO_MORE;
      if (this.inFlight === 0) this.lastProgress = now;
      this.inFlight++;
      sent++;
      this.send(due);
    }
    if (sent > 0) {
      this.ctx.stats.sent += sent;
      this.flush();
    } else if (this.idle()) {
      this.ctx.settled();
    }
  }

  private readonly wake = (): void => {
    this.wakeTimer = undefined;
    this.pump();
  };

  /** One request answered (an HTTP status when there is one); call pump() after a batch of these. */
  protected answered(due: number, now: number, status?: number): void {
    this.inFlight--;
    this.answeredHere++;
    this.lastProgress = now;
    if (status === undefined) this.ctx.stats.record(now - due);
    else this.ctx.stats.recordStatus(now - due, status);
  }

  /** One request failed on its own (an HTTP/2 stream reset): the connection goes on. */
  protected failedOne(kind: ErrorKind, message: string): void {
    this.inFlight--;
    this.ctx.stats.error(kind, message);
  }

  /**
   * The transport failed or closed: requests in flight count as `kind` errors (none when it
   * closed idle), then it connects again unless the run has nothing more to send.
   */
  protected lost(kind: ErrorKind, message: string): void {
    if (this.state === 'closed' || this.state === 'idle') return;
    const wasConnecting = this.state === 'connecting';
    this.state = 'idle';
    this.destroyTransport();
    const { stats, scheduler } = this.ctx;
    const now = performance.now();
    let delay = 0;
    if (wasConnecting) {
      // A failed connect uses up one request, so that a count-bound run against a dead target ends.
      const due = this.dueTicket !== NO_MORE ? this.dueTicket : scheduler.take(now);
      this.dueTicket = NO_MORE;
      if (due !== NO_MORE) {
        stats.sent++;
        stats.error('connect', message);
      }
      delay = RECONNECT_DELAY_MS;
    } else {
      stats.error(kind, message, this.inFlight);
      if (this.answeredHere === 0) delay = RECONNECT_DELAY_MS;
    }
    this.inFlight = 0;
    if (this.wakeTimer !== undefined) {
      clearTimeout(this.wakeTimer);
      this.wakeTimer = undefined;
    }
    if (this.dueTicket === NO_MORE && scheduler.exhausted(now)) {
      this.ctx.settled();
      return;
    }
    this.reconnectTimer = setTimeout(() => {
      this.reconnectTimer = undefined;
      this.connect();
    }, delay);
  }

  private clearTimers(): void {
    if (this.wakeTimer !== undefined) clearTimeout(this.wakeTimer);
    if (this.reconnectTimer !== undefined) clearTimeout(this.reconnectTimer);
    this.wakeTimer = undefined;
    this.reconnectTimer = undefined;
  }
}

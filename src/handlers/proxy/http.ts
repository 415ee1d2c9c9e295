import type { HttpRequest, HttpResponse } from '../types.ts';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { UpstreamGroup } from '../../upstream/group.ts';
import type { PickContext } from '../../upstream/balancers/types.ts';
import type { Target } from '../../upstream/target.ts';
import { replyError } from '../http/reply.ts';
import { ProxyError, classify } from './errors.ts';
import { responseHeaders, writeResponseHead } from './response-headers.ts';
import { retryTarget, type RetryPolicy } from './retry.ts';

// Phase "exchange": one request's tries against the upstream group, and its response streamed
// back. One object per request is the whole per-request state (Pingora's per-request context)
// and is also the undici dispatch handler of every try, so a request costs one allocation here
// besides the header lists; listeners are module functions that find it through the response
// (no closure per request).
//
// Why pool.dispatch with undici's raw handler (onConnect/onHeaders/onData/onComplete/onError)
// rather than pool.request: request() wraps every response in a Readable plus a promise, and a
// proxy then pipes that stream into `res`; the raw handler gets the header list unparsed and
// the body chunks as they come, which go straight to res.write(). Backpressure: a false from
// res.write() is returned to undici, which stops reading the upstream socket until 'drain'
// calls the resume function it gave us. Upstream-side backpressure on uploads is undici's own
// (it pipes the request body with write/drain).
//
// Lifecycle of a try, each counted once: target.inFlight++ when sent, -- when it ends
// (onComplete or onError); "pending" (waiting for a connection) from sent to onConnect;
// group.report() once with the time to the response head (or to the failure).

/** Per-upstream-group count of requests waiting for a connection (the breaker's maxPending). */
export interface PendingCounter {
  n: number;
}

/** What every exchange of one route shares: built once at provision. */
export interface ProxyRoute {
  readonly group: UpstreamGroup;
  readonly retry: RetryPolicy;
  readonly pending: PendingCounter;
  readonly via: string;
  /** timeouts.total in ms (0: none). */
  readonly totalTimeout: number;
}

const ACTIVE = 0;
const RESPONDING = 1;
const DONE = 2;

/** A retryable upstream answer is read to its end (to keep the connection) up to this much, else the connection is dropped. */
const DISCARD_LIMIT = 64 * 1024;

const kExchange = Symbol('switchyard.proxy.exchange');
type TaggedResponse = HttpResponse & { [kExchange]?: Exchange };

function onResponseClose(this: TaggedResponse): void {
  this[kExchange]?.clientClosed();
}

function onResponseDrain(this: TaggedResponse): void {
  this[kExchange]?.drained();
}

function onTryTimeout(ex: Exchange, tryNumber: number): void {
  ex.tryTimedOut(tryNumber);
}

function onTotalTimeout(ex: Exchange): void {
  ex.totalTimedOut();
}

export class Exchange implements Dispatcher.DispatchHandler, PickContext {
  private state = ACTIVE;
  private tries = 0;
  private tried: Set<Target> | undefined;
  private target!: Target;
  private tryStarted = 0;
  private inTry = false;
  /** The current try has been reported to the group (once per try). */
  private reported = false;
  private connected = false;
  private abortTry: ((err?: Error) => void) | null = null;
  /** The current try's answer is a retryable status being read and thrown away; `next` is the retry's target. */
  private discarding = false;
  private discarded = 0;
  private next: Target | undefined;
  private status = 0;
  private resume: (() => void) | null = null;
  private drainHooked = false;
  private tryTimer: NodeJS.Timeout | undefined;
  private totalTimer: NodeJS.Timeout | undefined;

  // Set by the handler before start() (see handler.ts).
  method = 'GET';
  upstreamPath = '/';
  headers: string[] = [];
  body: Buffer | AsyncIterable<Buffer> | null = null;
  /** Safe to send again after bytes reached the upstream (see retry.ts). */
  resendable = false;
  ticket: { release(outcome: 'success' | 'failure'): void } | undefined = undefined;

  constructor(
    private readonly route: ProxyRoute,
    readonly req: HttpRequest,
    private readonly res: HttpResponse,
    readonly clientIp: string,
  ) {}

  // PickContext, for hashing balancers.
  get path(): string {
    const url = this.req.url ?? '/';
    const q = url.indexOf('?');
    return q === -1 ? url : url.slice(0, q);
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return typeof v === 'string' ? v : v?.[0];
  }

  cookie(name: string): string | undefined {
    const header = this.req.headers.cookie;
    if (!header) return undefined;
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return undefined;
  }

  /** Starts the first try on `target`. */
  start(target: Target): void {
    const res = this.res as TaggedResponse;
    res[kExchange] = this;
    res.on('close', onResponseClose);
    this.route.group.budget.onRequest();
    if (this.route.totalTimeout > 0) this.totalTimer = setTimeout(onTotalTimeout, this.route.totalTimeout, this);
    this.send(target);
  }

  private send(target: Target): void {
    this.target = target;
    this.tries++;
    this.inTry = true;
    this.reported = false;
    this.connected = false;
    this.abortTry = null;
    this.discarding = false;
    this.discarded = 0;
    target.inFlight++;
    this.route.pending.n++;
    this.tryStarted = performance.now();
    const perTry = this.route.retry.perTryTimeout;
    if (perTry > 0) this.tryTimer = setTimeout(onTryTimeout, perTry, this, this.tries);
    // A Buffer body is replayed as it is; a stream is read once (and then not resendable).
    // servername: one per target, not one per Host header (undici would reconnect whenever it
    // changed); the group's connector sends the SNI and verifies the name of its `tls:` block.
    const options = { path: this.upstreamPath, method: this.method, headers: this.headers, body: this.body as Buffer | null, servername: target.host };
    this.route.group.pool(target).dispatch(options, this);
  }

  /** Ends the current try's bookkeeping (once per try). */
  private endTry(): number {
    const seconds = (performance.now() - this.tryStarted) / 1000;
    if (!this.inTry) return seconds;
    this.inTry = false;
    this.target.inFlight--;
    if (!this.connected) this.route.pending.n--;
    this.abortTry = null;
    if (this.tryTimer !== undefined) {
      clearTimeout(this.tryTimer);
      this.tryTimer = undefined;
    }
    return seconds;
  }

  private finish(outcome: 'success' | 'failure'): void {
    this.state = DONE;
    if (this.totalTimer !== undefined) {
      clearTimeout(this.totalTimer);
      this.totalTimer = undefined;
    }
    if (this.tryTimer !== undefined) {
      clearTimeout(this.tryTimer);
      this.tryTimer = undefined;
    }
    this.ticket?.release(outcome);
  }

  private report(outcome: 'success' | 'connect-failure' | 'failure', seconds: number): void {
    if (this.reported) return;
    this.reported = true;
    this.route.group.report(this.target, outcome, seconds);
  }

  /** A retry for the current try, or undefined when none may be made (see retry.ts). */
  private retryTo(): Target | undefined {
    if (this.tries >= this.route.retry.maxTries) return undefined;
    const tried = (this.tried ??= new Set());
    tried.add(this.target);
    return retryTarget(this.route.group, this, tried);
  }

  // undici handler ----------------------------------------------------------------------------

  onConnect(abort: (err?: Error) => void): void {
    this.connected = true;
    this.route.pending.n--;
    if (this.state === DONE) {
      // The client left (or the request timed out) while this try waited for a connection.
      abort(new ProxyError('DOWNSTREAM_ABORTED'));
      return;
    }
    this.abortTry = abort;
  }

  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (status < 200) return true; // 1xx: informational, not forwarded
    const seconds = (performance.now() - this.tryStarted) / 1000;
    if (this.state !== ACTIVE) return false;
    if (this.resendable && this.route.retry.retryableStatus(status)) {
      const next = this.retryTo();
      if (next) {
        this.report('failure', seconds);
        this.route.group.errored(this.target, 'http_5xx');
        this.discarding = true;
        this.next = next;
        return true;
      }
    }
    try {
      writeResponseHead(this.res, status, responseHeaders(rawHeaders, this.route.via));
    } catch (err) {
      // Node refused a header of the upstream's (invalid characters): undici aborts the try
      // with this error and onError answers 502.
      throw new ProxyError('UPSTREAM_PROTOCOL', { detail: (err as Error).message, cause: err });
    }
    this.report(status >= 500 ? 'failure' : 'success', seconds);
    if (status >= 500) this.route.group.errored(this.target, 'http_5xx');
    if (this.tryTimer !== undefined) {
      clearTimeout(this.tryTimer);
      this.tryTimer = undefined;
    }
    this.status = status;
    this.state = RESPONDING;
    this.resume = resume;
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.discarding) {
      this.discarded += chunk.length;
      // Past the limit: drop the connection instead (onError then sends the retry).
      if (this.discarded > DISCARD_LIMIT) throw new ProxyError('UPSTREAM_RESET', { detail: 'retryable answer too long to read' });
      return true;
    }
    if (this.state !== RESPONDING) return false;
    if (this.res.write(chunk)) return true;
    if (!this.drainHooked) {
      this.drainHooked = true;
      this.res.on('drain', onResponseDrain);
    }
    return false;
  }

  onComplete(): void {
    this.endTry();
    if (this.discarding) {
      this.discarding = false;
      const next = this.next!;
      this.next = undefined;
      if (this.state !== ACTIVE) return;
      this.route.group.retried();
      this.send(next);
      return;
    }
    if (this.state !== RESPONDING) return;
    this.finish(this.status >= 500 ? 'failure' : 'success');
    this.res.end();
  }

  onError(err: Error): void {
    const sent = this.connected;
    const wasInTry = this.inTry;
    const seconds = this.endTry();
    const group = this.route.group;
    if (this.state === DONE) {
      // Cut short on our side (client gone, total timeout): the target did nothing wrong.
      if (wasInTry) this.report('success', seconds);
      return;
    }
    // The client went away first (its socket closed while the body was being sent upstream).
    const socket = this.req.socket;
    const clientGone = this.res.destroyed || (socket !== null && socket.destroyed);
    const e = clientGone ? new ProxyError('DOWNSTREAM_ABORTED', { cause: err }) : classify(err, sent);
    if (wasInTry) {
      this.report(e.where !== 'upstream' ? 'success' : e.sent ? 'failure' : 'connect-failure', seconds);
      if (e.where === 'upstream') group.errored(this.target, e.kind.toLowerCase());
    }
    if (clientGone) {
      this.finish('success');
      this.res.destroy();
      return;
    }
    if (this.discarding) {
      // A retry was already decided (and budgeted) for this try's answer.
      this.discarding = false;
      const next = this.next!;
      this.next = undefined;
      group.retried();
      this.send(next);
      return;
    }
    if (this.state === RESPONDING) {
      // The response has started: the client can only learn of the failure from a cut-off body.
      this.finish('failure');
      this.res.destroy();
      return;
    }
    if (e.retryable && (!e.sent || this.resendable)) {
      const next = this.retryTo();
      if (next) {
        group.retried();
        this.send(next);
        return;
      }
    }
    this.fail(e);
  }

  // events from the client side and timers ----------------------------------------------------

  /** Answers the client with the error (or cuts it off when the response has started) and drops the current try. */
  private fail(e: ProxyError): void {
    const responding = this.state === RESPONDING;
    this.finish(e.where === 'upstream' ? 'failure' : 'success');
    if (responding || this.res.headersSent) this.res.destroy();
    else if (e.status > 0) replyError(this.res, e.status, e.reason, { close: this.body !== null && !(this.body instanceof Buffer) });
    else this.res.destroy();
    // Dropping the try: its onError sees DONE and only does the bookkeeping. A try still waiting
    // for a connection is dropped from onConnect.
    this.abortTry?.(e);
  }

  clientClosed(): void {
    if (this.state === DONE) return;
    this.finish('success');
    this.abortTry?.(new ProxyError('DOWNSTREAM_ABORTED'));
  }

  drained(): void {
    this.resume?.();
  }

  tryTimedOut(tryNumber: number): void {
    this.tryTimer = undefined;
    if (this.state !== ACTIVE || tryNumber !== this.tries) return;
    const e = new ProxyError('UPSTREAM_TRY_TIMEOUT');
    // Connected: abort the try, and onError retries it like a reset. Still waiting for a
    // connection: the try cannot be taken back from the pool's queue, so the request ends here.
    if (this.abortTry) this.abortTry(e);
    else this.fail(e);
  }

  totalTimedOut(): void {
    this.totalTimer = undefined;
    if (this.state === DONE) return;
    this.fail(new ProxyError('UPSTREAM_TOTAL_TIMEOUT'));
  }
}

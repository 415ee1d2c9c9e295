import type { HttpRequest, HttpResponse } from '../types.ts';
import { performance } from 'node:perf_hooks';
import type { Dispatcher } from 'undici';
import type { UpstreamGroup } from '../../upstream/group.ts';
import type { Admission } from '../../upstream/admission.ts';
import type { Target } from '../../upstream/target.ts';
import { replyError } from '../http/reply.ts';
import { ProxyError, classify } from './errors.ts';
import { responseHeaders, writeResponseHead } from './response-headers.ts';
import type { RetryPolicy } from './retry.ts';
import { RequestPick } from './pick.ts';
import { headStatus, replyGrpc, grpcStatusOf, trailerStatus, webData, webTrailersFrame, type GrpcCall, type GrpcMetrics, type GrpcReplay } from './grpc.ts';

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
// Every call goes through the group's admission contract (upstream/admission.ts): the handler
// admits it, each try is begun, connected, reported and finished on the Admission, a failed try
// asks it for a retry, and the end of the exchange ends the admission (the breaker's outcome).
// "Waiting for a connection" (the breaker's maxPending) is from a try being sent to undici's
// onConnect. Each try has its own small dispatch handler (TryHandler) so that a try that was
// given up while still queued for a pooled connection (its per-try timeout fired) cannot be
// confused with the retry that replaced it: when its connection finally comes, it is dropped.

/** Trailers as undici hands them to a handler: a raw list (HTTP/1.1) or a header object (HTTP/2). */
type RawTrailers = readonly (Buffer | string)[] | Record<string, string | string[] | undefined>;

/** What every exchange of one route shares: built once at provision. */
export interface ProxyRoute {
  readonly group: UpstreamGroup;
  readonly retry: RetryPolicy;
  /** Our Via entry for responses (false: none). */
  readonly via: string | false;
  /** timeouts.total in ms (0: none). */
  readonly totalTimeout: number;
  readonly grpcMetrics: GrpcMetrics;
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

/** undici's dispatch handler for one try: passes its events on to the exchange with the try's number. */
class TryHandler implements Dispatcher.DispatchHandler {
  constructor(
    private readonly ex: Exchange,
    private readonly n: number,
  ) {}
  onConnect(abort: (err?: Error) => void): void {
    this.ex.onTryConnect(this.n, abort);
  }
  onHeaders(status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    return this.ex.onTryHeaders(this.n, status, rawHeaders, resume);
  }
  onData(chunk: Buffer): boolean {
    return this.ex.onTryData(this.n, chunk);
  }
  onComplete(trailers: string[] | null): void {
    this.ex.onTryComplete(this.n, trailers as RawTrailers | null);
  }
  onError(err: Error): void {
    this.ex.onTryError(this.n, err);
  }
}

export class Exchange extends RequestPick {
  private state = ACTIVE;
  /** Set by the handler once the group admitted the request. */
  adm!: Admission;
  /** The current try has its connection (its request went out, so it may have reached the target). */
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
  /** Set when the request is a gRPC (or gRPC-Web) call (grpc.ts), with the copy of its body a retry would send. */
  grpc: GrpcCall | undefined = undefined;
  replay: GrpcReplay | undefined = undefined;
  private started = 0;

  constructor(
    private readonly route: ProxyRoute,
    req: HttpRequest,
    private readonly res: HttpResponse,
    clientIp: string,
  ) {
    super(req, clientIp);
  }

  /** Starts the first try, on the admitted target. */
  start(): void {
    const res = this.res as TaggedResponse;
    res[kExchange] = this;
    res.on('close', onResponseClose);
    let total = this.route.totalTimeout;
    if (this.grpc) {
      this.started = performance.now();
      // The call's deadline (grpc-timeout) when it comes before timeouts.total.
      const deadline = this.grpc.deadline;
      if (deadline > 0 && (total === 0 || deadline < total)) total = deadline;
    }
    if (total > 0) this.totalTimer = setTimeout(onTotalTimeout, total, this);
    this.send(this.adm.target);
  }

  private send(target: Target): void {
    const adm = this.adm;
    adm.begin(target);
    this.connected = false;
    this.abortTry = null;
    this.discarding = false;
    this.discarded = 0;
    const perTry = this.route.retry.perTryTimeout;
    if (perTry > 0) this.tryTimer = setTimeout(onTryTimeout, perTry, this, adm.tries);
    // A Buffer body is replayed as it is; a stream is read once (and then not resendable).
    // servername: one per target, not one per Host header (undici would reconnect whenever it
    // changed); the group's connector sends the SNI and verifies the name of its `tls:` block.
    const options = { path: this.upstreamPath, method: this.method, headers: this.headers, body: this.body as Buffer | null, servername: target.host };
    this.route.group.pool(target).dispatch(options, new TryHandler(this, adm.tries));
  }

  /** Ends the current try's bookkeeping (once per try). */
  private endTry(): void {
    this.adm.finishTry();
    this.abortTry = null;
    if (this.tryTimer !== undefined) {
      clearTimeout(this.tryTimer);
      this.tryTimer = undefined;
    }
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
    this.adm.end(outcome);
    if (this.grpc) this.route.grpcMetrics.record(this.grpc, (performance.now() - this.started) / 1000);
  }

  /** A sent request may go again: its body is held in full (or, for gRPC, it ended within the replay copy). */
  private canResend(): boolean {
    if (!this.replay) return this.resendable;
    const body = this.replay.body;
    if (body === undefined || this.route.retry.maxTries <= 1) return false;
    this.body = body;
    return true;
  }

  /**
   * The current try's answer is one a retry may cure: when another try may be made, the answer
   * is counted as the target's failure and read off (discarding) before the retry goes out.
   */
  private retryAnswer(kind: string): boolean {
    const next = this.retryTo();
    if (!next) return false;
    this.adm.report('failure');
    this.route.group.errored(this.adm.target, kind);
    this.discarding = true;
    this.next = next;
    return true;
  }

  /** A retry for the current try, or undefined when none may be made (see retry.ts). */
  private retryTo(): Target | undefined {
    return this.adm.retry();
  }

  // undici events, per try ---------------------------------------------------------------------

  onTryConnect(n: number, abort: (err?: Error) => void): void {
    if (n !== this.adm.tries) {
      // A try given up while it waited for a connection (see tryTimedOut): a retry replaced it.
      abort(new ProxyError('UPSTREAM_TRY_TIMEOUT'));
      return;
    }
    this.connected = true;
    this.adm.connected();
    if (this.state === DONE) {
      // The client left (or the request timed out) while this try waited for a connection.
      abort(new ProxyError('DOWNSTREAM_ABORTED'));
      return;
    }
    this.abortTry = abort;
  }

  onTryHeaders(n: number, status: number, rawHeaders: Buffer[], resume: () => void): boolean {
    if (n !== this.adm.tries) return false;
    if (status < 200) {
      // 103 Early Hints go to the client (a browser may start fetching what they link); other
      // 1xx are hop-by-hop (100 Continue was answered by the listener itself).
      if (status === 103 && this.state === ACTIVE && !this.res.headersSent) earlyHints(this.res, rawHeaders);
      return true;
    }
    if (this.state !== ACTIVE) return false;
    const adm = this.adm;
    const call = this.grpc;
    if (call) {
      call.headStatus = headStatus(status, rawHeaders);
      if (call.headStatus >= 0 && this.route.retry.retryableGrpcStatus(call.headStatus) && this.canResend() && this.retryAnswer('grpc_unavailable')) return true;
      if (status !== 200 && !hasGrpcStatus(rawHeaders)) {
        // Not a gRPC answer (an error page from an HTTP/1.1 server or something in front of
        // it): the client gets the status gRPC maps it to, and the page is dropped.
        adm.report(status >= 500 ? 'failure' : 'success');
        if (status >= 500) this.route.group.errored(adm.target, 'http_5xx');
        this.finish(status >= 500 ? 'failure' : 'success');
        replyGrpc(this.res, call, call.headStatus, `upstream answered HTTP ${status}`);
        this.abortTry?.(new ProxyError('DOWNSTREAM_ABORTED'));
        return false;
      }
    } else if (this.resendable && this.route.retry.retryableStatus(status) && this.retryAnswer('http_5xx')) {
      return true;
    }
    try {
      const head = responseHeaders(rawHeaders, this.route.via);
      writeResponseHead(this.res, status, call?.web ? webHead(head, call) : head);
    } catch (err) {
      // Node refused a header of the upstream's (invalid characters): undici aborts the try
      // with this error and onError answers 502.
      throw new ProxyError('UPSTREAM_PROTOCOL', { detail: (err as Error).message, cause: err });
    }
    adm.report(status >= 500 ? 'failure' : 'success');
    if (status >= 500) this.route.group.errored(adm.target, 'http_5xx');
    if (this.tryTimer !== undefined) {
      clearTimeout(this.tryTimer);
      this.tryTimer = undefined;
    }
    this.status = status;
    this.state = RESPONDING;
    this.resume = resume;
    return true;
  }

  onTryData(n: number, chunk: Buffer): boolean {
    if (n !== this.adm.tries) return false;
    if (this.discarding) {
      this.discarded += chunk.length;
      // Past the limit: drop the connection instead (onError then sends the retry).
      if (this.discarded > DISCARD_LIMIT) throw new ProxyError('UPSTREAM_RESET', { detail: 'retryable answer too long to read' });
      return true;
    }
    if (this.state !== RESPONDING) return false;
    if (this.res.write(this.grpc?.web ? webData(this.grpc, chunk) : chunk)) return true;
    if (!this.drainHooked) {
      this.drainHooked = true;
      this.res.on('drain', onResponseDrain);
    }
    return false;
  }

  onTryComplete(n: number, trailers: RawTrailers | null): void {
    if (n !== this.adm.tries) return;
    this.endTry();
    if (this.discarding) {
      this.discarding = false;
      const next = this.next!;
      this.next = undefined;
      if (this.state !== ACTIVE) return;
      this.send(next);
      return;
    }
    if (this.state !== RESPONDING) return;
    const call = this.grpc;
    if (call) {
      const st = trailerStatus(trailers);
      call.status = st >= 0 ? st : call.headStatus;
    }
    this.finish(this.status >= 500 ? 'failure' : 'success');
    if (call?.web) {
      // gRPC-Web: the trailers are the body's last frame (none after a trailers-only answer).
      const fields = trailerFields(trailers);
      if (call.headStatus < 0 || Object.keys(fields).length > 0) this.res.end(webTrailersFrame(call, fields));
      else this.res.end();
      return;
    }
    // undici hands an HTTP/1.1 answer without trailers an empty list: nothing to copy then.
    if (trailers && !(Array.isArray(trailers) && trailers.length === 0)) addTrailers(this.res, trailers);
    this.res.end();
  }

  onTryError(n: number, err: Error): void {
    const adm = this.adm;
    if (n !== adm.tries) return; // a try given up earlier: its bookkeeping was done then
    const sent = this.connected;
    const wasInTry = adm.trying;
    this.endTry();
    const group = this.route.group;
    if (this.state === DONE) {
      // Cut short on our side (client gone, total timeout): the target did nothing wrong.
      if (wasInTry) adm.report('success');
      return;
    }
    // The client went away first (its socket closed while the body was being sent upstream).
    const socket = this.req.socket;
    const clientGone = this.res.destroyed || (socket !== null && socket.destroyed);
    const e = clientGone ? new ProxyError('DOWNSTREAM_ABORTED', { cause: err }) : classify(err, sent);
    if (wasInTry) {
      adm.report(e.where !== 'upstream' ? 'success' : e.sent ? 'failure' : 'connect-failure');
      if (e.where === 'upstream') group.errored(adm.target, e.kind.toLowerCase());
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
      this.send(next);
      return;
    }
    if (this.state === RESPONDING) {
      // The response has started: the client can only learn of the failure from a cut-off
      // body, or for gRPC from the status in the trailers.
      if (this.grpc) return this.fail(e);
      this.finish('failure');
      this.res.destroy();
      return;
    }
    if (e.retryable && (!e.sent || this.canResend())) {
      const next = this.retryTo();
      if (next) {
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
    if (this.grpc) {
      this.grpc.status = grpcStatusOf(e);
      this.finish(e.where === 'upstream' ? 'failure' : 'success');
      if (this.res.destroyed || this.res.writableEnded) return void this.abortTry?.(e);
      replyGrpc(this.res, this.grpc, this.grpc.status, e.reason);
      this.abortTry?.(e);
      return;
    }
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
    if (this.grpc) this.grpc.status = 1; // CANCELLED
    this.finish('success');
    this.abortTry?.(new ProxyError('DOWNSTREAM_ABORTED'));
  }

  drained(): void {
    this.resume?.();
  }

  tryTimedOut(tryNumber: number): void {
    this.tryTimer = undefined;
    const adm = this.adm;
    if (this.state !== ACTIVE || tryNumber !== adm.tries) return;
    const e = new ProxyError('UPSTREAM_TRY_TIMEOUT');
    // Connected: abort the try, and onError retries it like a reset.
    if (this.abortTry) {
      this.abortTry(e);
      return;
    }
    // Still queued for a pooled connection: nothing was sent, so a retry is always safe. The
    // queued try cannot be taken back from undici, so it is given up (dropped when its
    // connection comes) and counted, not blamed on the target: a busy pool is not a failure.
    this.route.group.errored(adm.target, 'pool_wait_timeout');
    this.endTry();
    const next = this.retryTo();
    if (next) this.send(next);
    else this.fail(e);
  }

  totalTimedOut(): void {
    this.totalTimer = undefined;
    if (this.state === DONE) return;
    this.fail(new ProxyError('UPSTREAM_TOTAL_TIMEOUT'));
  }
}

/** Passes a 103's Link (and other) headers on to the client as Early Hints. */
function earlyHints(res: HttpResponse, raw: readonly Buffer[]): void {
  const hints: Record<string, string | string[]> = {};
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toString('latin1').toLowerCase();
    if (name === 'connection' || name === 'keep-alive' || name === 'transfer-encoding') continue;
    const value = raw[i + 1].toString('latin1');
    const had = hints[name];
    hints[name] = had === undefined ? value : Array.isArray(had) ? [...had, value] : [had, value];
  }
  if (hints.link === undefined) return;
  try {
    res.writeEarlyHints(hints);
  } catch {
    // An invalid hint from the upstream is dropped: the response itself still comes.
  }
}

/**
 * The upstream's trailers, passed on (HTTP/1.1 sends them only with a chunked body; HTTP/2
 * always). undici hands them over as a raw [name, value, ...] list from HTTP/1.1 upstreams and
 * as a header object from HTTP/2 ones.
 */
function addTrailers(res: HttpResponse, raw: RawTrailers): void {
  const trailers = trailerFields(raw);
  if (Object.keys(trailers).length === 0) return;
  try {
    res.addTrailers(trailers);
  } catch {
    // A trailer Node refuses (invalid characters) is dropped rather than failing a finished body.
  }
}

function hasGrpcStatus(raw: readonly Buffer[]): boolean {
  for (let i = 0; i < raw.length; i += 2) if (raw[i].length === 11 && raw[i].toString('latin1').toLowerCase() === 'grpc-status') return true;
  return false;
}

/** A gRPC answer head for a gRPC-Web client: its content type, and no length (the body changes size). */
function webHead(flat: string[], call: GrpcCall): string[] {
  const out: string[] = [];
  for (let i = 0; i < flat.length; i += 2) {
    const name = flat[i].toLowerCase();
    if (name === 'content-type' || name === 'content-length') continue;
    out.push(flat[i], flat[i + 1]);
  }
  out.push('content-type', call.responseType);
  return out;
}

/** Trailers as a plain object of strings (pseudo-headers dropped). */
function trailerFields(raw: RawTrailers | null): Record<string, string> {
  const out: Record<string, string> = {};
  if (!raw) return out;
  if (Array.isArray(raw)) {
    for (let i = 0; i < raw.length; i += 2) addTrailerField(out, String(raw[i]).toLowerCase(), String(raw[i + 1]));
    return out;
  }
  // HTTP/2: node's header object, names already lower case (no closure or entry arrays per call).
  const fields = raw as Record<string, string | string[] | undefined>;
  for (const k in fields) {
    const v = fields[k];
    if (v !== undefined) addTrailerField(out, k, Array.isArray(v) ? v.join(', ') : String(v));
  }
  return out;
}

function addTrailerField(out: Record<string, string>, name: string, value: string): void {
  if (name.charCodeAt(0) === 58 /* : */) return;
  out[name] = out[name] === undefined ? value : `${out[name]}, ${value}`;
}

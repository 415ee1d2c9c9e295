import { performance } from 'node:perf_hooks';
import type { PickContext } from './balancers/types.ts';
import type { Target } from './target.ts';

// The upstream admission contract: the one place where a group's policy is applied to a call
// (an HTTP request, an HTTP/2 stream, a gRPC call, a WebSocket, a TCP connection, a UDP session).
// Every proxy goes through the same three steps, so none of them can apply a subset of the
// policy (before this, the WebSocket proxy skipped the pending cap and tcp/udp had no breaker):
//
//   group.admit(pick)   pick a target, the pending cap, the circuit breaker; a refusal says why
//                       (counted once, in switchyard_upstream_rejected_total) and when to come back
//   admission.retry()   after a failed try: another target, within retry.attempts and the retry
//                       budget (a refusal by the budget is counted too)
//   admission.end(o)    the call is over: the breaker learns the outcome
//
// and between them each try is bracketed the same way: begin(target) (in flight, waiting for a
// connection: counted against breaker.maxPending), connected(), report(outcome) (per-target
// metrics and outlier detection, once per try), finishTry() (no longer in flight). For HTTP a
// "connection" is undici's assignment of the request to a pooled socket; for L4 it is the
// connect (or TLS handshake) itself.

/** Why a call was refused without reaching any target. */
export type Rejection = 'no-target' | 'breaker-open' | 'max-requests' | 'max-pending' | 'retry-budget';

export type TryOutcome = 'success' | 'connect-failure' | 'failure';

export interface Refusal {
  readonly ok: false;
  readonly reason: Exclude<Rejection, 'retry-budget'>;
  /** When a client may come back (Retry-After, grpc-retry-pushback-ms); 0 when unknown. */
  readonly retryAfterMs: number;
}

/** What an Admission needs of its group (UpstreamGroup implements it). */
export interface AdmissionOwner {
  /** Tries waiting for a connection across the group (the breaker's maxPending). */
  waiting: number;
  readonly maxTries: number;
  pick(ctx: PickContext, tried?: ReadonlySet<Target>): Target | undefined;
  /** Counts a retry within the budget, or refuses it (and counts the refusal). */
  spendRetry(): boolean;
  report(t: Target, outcome: TryOutcome, seconds?: number): void;
}

interface Ticket {
  release(outcome: 'success' | 'failure'): void;
}

/** One admitted call and its tries. */
export class Admission {
  readonly ok = true as const;
  /** The current (or last) try's target; the picked one before the first begin(). */
  target: Target;
  /** Tries begun so far. */
  tries = 0;
  private tried: Set<Target> | undefined;
  private inTry = false;
  private waitingNow = false;
  private reported = false;
  private ended = false;
  private tryStarted = 0;

  constructor(
    private readonly owner: AdmissionOwner,
    readonly pick: PickContext,
    first: Target,
    private readonly ticket: Ticket | undefined,
  ) {
    this.target = first;
  }

  /** The current try is waiting for its connection (nothing of the call has reached the target). */
  get waiting(): boolean {
    return this.waitingNow;
  }

  /** Starts a try on `target` (the admitted one for the first): in flight, and waiting for a connection. */
  begin(target: Target = this.target): void {
    if (this.inTry) this.finishTry();
    this.target = target;
    this.tries++;
    this.inTry = true;
    this.reported = false;
    this.tryStarted = performance.now();
    target.inFlight++;
    this.waitingNow = true;
    this.owner.waiting++;
  }

  /** The current try has its connection: it no longer counts against maxPending. */
  connected(): void {
    if (!this.waitingNow) return;
    this.waitingNow = false;
    this.owner.waiting--;
  }

  /** Seconds since the current try began. */
  elapsed(): number {
    return (performance.now() - this.tryStarted) / 1000;
  }

  /**
   * How the current try went, once per try (later calls are ignored): per-target metrics with
   * the time since begin(), and outlier detection.
   */
  report(outcome: TryOutcome): void {
    if (this.reported || this.tries === 0) return;
    this.reported = true;
    this.owner.report(this.target, outcome, this.elapsed());
  }

  /** Whether the current try has been reported. */
  get hasReported(): boolean {
    return this.reported;
  }

  /** The current try is over (answered, failed or dropped): no longer in flight. Idempotent. */
  finishTry(): void {
    this.connected();
    if (!this.inTry) return;
    this.inTry = false;
    this.target.inFlight--;
  }

  /** A try is in progress (begun and not finished). */
  get trying(): boolean {
    return this.inTry;
  }

  /**
   * The target for another try after the current one failed, or undefined when none may be
   * made: retry.attempts used up, no target available, or the retry budget spent. A target not
   * tried yet is preferred; `anyTarget` allows one already tried when no other is available
   * (a single-target group may retry an HTTP 503 on the same target; a refused L4 connect is
   * not worth repeating at once).
   */
  retry(anyTarget = true): Target | undefined {
    if (this.tries >= this.owner.maxTries) return undefined;
    const tried = (this.tried ??= new Set());
    tried.add(this.target);
    const next = this.owner.pick(this.pick, tried) ?? (anyTarget ? this.owner.pick(this.pick) : undefined);
    if (!next || !this.owner.spendRetry()) return undefined;
    return next;
  }

  /** The call is over: the breaker learns how it went. Idempotent; does not end the current try. */
  end(outcome: 'success' | 'failure'): void {
    if (this.ended) return;
    this.ended = true;
    this.ticket?.release(outcome);
  }

  get done(): boolean {
    return this.ended;
  }
}

/** A PickContext for connections (L4): only the client's address is known. */
export function addressPick(clientIp: string): PickContext {
  return { clientIp, path: '', header: noValue, cookie: noValue };
}

const noValue = (): undefined => undefined;

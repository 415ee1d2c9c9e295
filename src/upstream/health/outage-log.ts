import type { Target } from '../target.ts';

// An upstream target's outages, logged the way an operator wants to read them: one `warn` when
// the target goes out of rotation, one `info` when it is back (with how long it was out), and
// everything in between (more failed probes, a second detector noticing the same outage) at
// `debug` only. Active health checks and passive outlier detection both report here, so one
// outage is one pair of lines whichever of them notices it, and however often.
// A target is back at its first success (a passing check, an answered request) once nothing
// keeps it out any more: an ejection that merely ran out of time proves nothing, and a target
// still failing when it ends is ejected again within the same outage.

/** The levels this needs of a pino logger (a plain object in tests). */
export interface OutageLogger {
  debug(obj: object, msg: string): void;
  info(obj: object, msg: string): void;
  warn(obj: object, msg: string): void;
}

/** Which detector took a target out. */
export type OutageCause = 'health-check' | 'outlier';

export class OutageLog {
  constructor(
    private readonly upstream: string,
    private readonly log: OutageLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /** A detector took `t` out of rotation: a warning when this starts an outage, debug when it was out already. */
  down(t: Target, by: OutageCause, reason: string, extra?: Record<string, unknown>): void {
    const now = this.now();
    if (t.downSince === 0) {
      t.downSince = now;
      t.downReason = reason;
      this.log.warn({ upstream: this.upstream, target: t.id, by, reason, ...extra }, 'upstream target down');
      return;
    }
    this.log.debug({ upstream: this.upstream, target: t.id, by, reason, downForMs: now - t.downSince, ...extra }, 'upstream target still down');
  }

  /** Outlier detection ejected `t` until `untilMs`. */
  ejected(t: Target, untilMs: number, reason: string): void {
    this.down(t, 'outlier', reason, { ejectedForMs: Math.max(0, untilMs - this.now()) });
  }

  /** A health check failed; at debug, whether or not the target is out already. */
  failedCheck(t: Target, reason: string, consecutive: number, fall: number): void {
    const fields: Record<string, unknown> = { upstream: this.upstream, target: t.id, reason, failures: consecutive, fall };
    if (t.downSince !== 0) fields.downForMs = this.now() - t.downSince;
    this.log.debug(fields, 'health check failed');
  }

  /**
   * `t` answered well (a check passed, or a request): when nothing keeps it out any more, it is
   * back (one info line). Cheap when it was not out: callers on the request path call it freely.
   */
  succeeded(t: Target): void {
    if (t.downSince === 0) return;
    const now = this.now();
    if (!t.healthy || t.ejectedUntil > now) return;
    this.log.info({ upstream: this.upstream, target: t.id, reason: t.downReason, downForMs: now - t.downSince }, 'upstream target back');
    t.downSince = 0;
    t.downReason = '';
  }
}

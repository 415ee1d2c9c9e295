import { performance } from 'node:perf_hooks';
import type { Logger } from 'pino';
import type { CounterCell } from '../observe/hot-metrics.ts';
import type { Metrics } from '../observe/metrics.ts';
import type { CompiledRule } from './rules.ts';

// What a match leaves behind: a count in switchyard_inspect_matches_total{rule,action,listener}
// and a warn line. Label values come from the config only (rule ids, at most MAX_RULES per
// inspect block, and listener names), never from traffic, so the family stays small. The log is
// rate-limited: a flood of matching requests must not become a flood of log lines.

export const MATCHES_METRIC = 'switchyard_inspect_matches_total';

/** Counts matches per rule; cells are looked up once per (listener, rule) and kept. */
export class MatchCounter {
  private readonly cells = new Map<string, CounterCell>();

  constructor(private readonly metrics: Metrics | undefined) {}

  count(listener: string, rule: CompiledRule): void {
    if (!this.metrics) return;
    const key = `${listener}\0${rule.id}\0${rule.action}`;
    let cell = this.cells.get(key);
    if (!cell) {
      cell = this.metrics
        .counter(MATCHES_METRIC, 'Requests and connections a traffic inspection rule matched, by rule id, its action (log, block, tag) and listener.', ['rule', 'action', 'listener'])
        .labels(rule.id, rule.action, listener);
      this.cells.set(key, cell);
    }
    cell.inc();
  }
}

/**
 * Warn lines about matches, at most `perSecond` in any one-second window; the rest are counted
 * and the next line that goes out says how many were left out (`suppressed`). 0: no lines.
 */
export class MatchLog {
  private windowStart = -Infinity;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly perSecond: number,
    /** Milliseconds on a monotonic clock (a test's own). */
    private readonly now: () => number = () => performance.now(),
  ) {}

  warn(log: Logger, fields: Record<string, unknown>, message: string): void {
    if (this.perSecond === 0) return;
    const now = this.now();
    if (now - this.windowStart >= 1000) {
      this.windowStart = now;
      this.inWindow = 0;
    }
    if (this.inWindow >= this.perSecond) {
      this.suppressed++;
      return;
    }
    this.inWindow++;
    if (this.suppressed > 0) {
      log.warn({ ...fields, suppressed: this.suppressed }, message);
      this.suppressed = 0;
    } else {
      log.warn(fields, message);
    }
  }
}

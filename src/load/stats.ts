import * as hdr from 'hdr-histogram-js';
import { ERROR_KINDS, type ErrorKind } from './errors.ts';

// The counters one run fills: a latency histogram (microseconds, 3 significant digits, as
// HdrHistogram users expect), responses by status, bytes both ways and errors by kind.

/** The longest latency the histogram tracks exactly, µs (an hour); longer ones are clamped. */
const MAX_TRACKED_US = 3_600_000_000;
/**
 * Latencies below this many µs (65 ms) are counted in a plain array indexed by the value, and moved into
 * the histogram when it is read: an array increment instead of the histogram's bucket arithmetic
 * (a log and a power) on every response. The histogram ends up with the same counts.
 */
const EXACT_BELOW_US = 65_536;

export class LoadStats {
  private readonly hdr = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_TRACKED_US, numberOfSignificantValueDigits: 3, autoResize: false, useWebAssembly: false });
  /** Counts of latencies below EXACT_BELOW_US, by whole µs, not yet in `hdr`. */
  private readonly exact = new Float64Array(EXACT_BELOW_US);
  private exactCount = 0;
  /** Requests answered (any status), the figure requests/s is made of. */
  responses = 0;
  /** Requests written (or attempted: a failed connect uses up one request). */
  sent = 0;
  bytesRead = 0;
  bytesWritten = 0;
  readonly errors: Record<ErrorKind, number> = { connect: 0, timeout: 0, reset: 0, status: 0, parse: 0, other: 0 };
  /** The first message seen of each kind, to say why. */
  readonly errorMessages: Partial<Record<ErrorKind, string>> = {};
  /** HTTP responses by status code (index = status). */
  readonly statusCodes = new Uint32Array(600);

  /** Latency of every answered request, microseconds. */
  get histogram(): hdr.Histogram {
    if (this.exactCount > 0) {
      const exact = this.exact;
      for (let us = 1; us < EXACT_BELOW_US; us++) {
        if (exact[us] > 0) {
          this.hdr.recordValueWithCount(us, exact[us]);
          exact[us] = 0;
        }
      }
      this.exactCount = 0;
    }
    return this.hdr;
  }

  /** One answered request whose latency is `latencyMs`. */
  record(latencyMs: number): void {
    this.responses++;
    let us = Math.round(latencyMs * 1000);
    if (us < EXACT_BELOW_US) {
      this.exact[us < 1 ? 1 : us]++;
      this.exactCount++;
      return;
    }
    if (us > MAX_TRACKED_US) us = MAX_TRACKED_US;
    this.hdr.recordValue(us);
  }

  /** An answered HTTP request: latency, status, and a status error when not 2xx. */
  recordStatus(latencyMs: number, status: number): void {
    this.record(latencyMs);
    if (status >= 0 && status < 600) this.statusCodes[status]++;
    if (status < 200 || status > 299) this.error('status', `HTTP ${status}`);
  }

  error(kind: ErrorKind, message?: string, count = 1): void {
    if (count <= 0) return;
    this.errors[kind] += count;
    if (message !== undefined && this.errorMessages[kind] === undefined) this.errorMessages[kind] = message;
  }

  /** Failed requests in all (a non-2xx response is one too). */
  errorTotal(): number {
    let n = 0;
    for (const k of ERROR_KINDS) n += this.errors[k];
    return n;
  }

  /** Responses that were not errors: 2xx for HTTP, every echo otherwise. */
  successes(): number {
    return this.responses - this.errors.status;
  }

  destroy(): void {
    this.hdr.destroy();
  }
}

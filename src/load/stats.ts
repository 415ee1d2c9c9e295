import * as hdr from 'hdr-histogram-js';
import { ERROR_KINDS, type ErrorKind } from './errors.ts';

// The counters one run fills: a latency histogram (microseconds, 3 significant digits, as
// HdrHistogram users expect), responses by status, bytes both ways and errors by kind.

/** The longest latency the histogram tracks exactly, µs (an hour); longer ones are clamped. */
const MAX_TRACKED_US = 3_600_000_000;

export class LoadStats {
  /** Latency of every answered request, microseconds. */
  readonly histogram = hdr.build({ lowestDiscernibleValue: 1, highestTrackableValue: MAX_TRACKED_US, numberOfSignificantValueDigits: 3, autoResize: false, useWebAssembly: false });
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

  /** One answered request whose latency is `latencyMs`. */
  record(latencyMs: number): void {
    this.responses++;
    let us = Math.round(latencyMs * 1000);
    if (us < 1) us = 1;
    else if (us > MAX_TRACKED_US) us = MAX_TRACKED_US;
    this.histogram.recordValue(us);
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
    this.histogram.destroy();
  }
}

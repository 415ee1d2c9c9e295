// `grpc-timeout` (PROTOCOL-HTTP2.md): how long the client gives a call, as at most 8 ASCII
// digits and a unit: H hours, M minutes, S seconds, m milliseconds, u microseconds,
// n nanoseconds. `1S`, `250m`, `100000u`. Anything else is not a timeout.

/** Milliseconds per unit. */
const UNIT_MS: Record<string, number> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 };
const MAX_DIGITS_VALUE = 99_999_999;
/** The longest timeout the header can say: 99999999H (about 11,400 years). */
export const MAX_GRPC_TIMEOUT_MS = MAX_DIGITS_VALUE * UNIT_MS.H;

export class GrpcTimeoutError extends Error {
  readonly code = 'SWITCHYARD_GRPC_BAD_TIMEOUT';
  constructor(readonly value: string) {
    super(`bad grpc-timeout ${JSON.stringify(value)}: expected 1 to 8 digits and a unit H, M, S, m, u or n (e.g. 1S, 250m)`);
    this.name = 'GrpcTimeoutError';
  }
}

/**
 * Parses a `grpc-timeout` value into milliseconds (fractional below one: `500u` is 0.5). Throws
 * GrpcTimeoutError for anything malformed (no unit, 9 digits, a sign, spaces inside). The
 * result may exceed what a timer can wait (2^31-1 ms); callers clamp.
 */
export function parseGrpcTimeout(value: string): number {
  const m = /^(\d{1,8})([HMSmun])$/.exec(value.trim());
  if (!m) throw new GrpcTimeoutError(value);
  return Number(m[1]) * UNIT_MS[m[2]];
}

/**
 * Formats milliseconds as a `grpc-timeout` value: the coarsest unit that says it exactly
 * (`1000` -> `1S`, `250` -> `250m`, `0.5` -> `500u`, a day -> `24H`), else the finest unit
 * whose count fits in 8 digits, rounded up so a deadline is never cut short. Throws RangeError
 * for a negative, non-finite or too long timeout.
 */
export function formatGrpcTimeout(ms: number): string {
  if (!Number.isFinite(ms) || ms < 0 || ms > MAX_GRPC_TIMEOUT_MS) throw new RangeError(`a grpc-timeout is 0 to 99999999H, not ${ms} ms`);
  if (ms === 0) return '0m';
  const units = ['H', 'M', 'S', 'm', 'u', 'n'];
  for (const unit of units) {
    const count = ms / UNIT_MS[unit];
    // Exact up to floating point noise (0.1 ms is 100.00000000000001 u).
    const near = Math.round(count);
    if (near >= 1 && near <= MAX_DIGITS_VALUE && Math.abs(count - near) <= 1e-9 * Math.max(1, near)) return `${near}${unit}`;
  }
  for (const unit of [...units].reverse()) {
    const count = Math.ceil(ms / UNIT_MS[unit]);
    if (count <= MAX_DIGITS_VALUE) return `${count}${unit}`;
  }
  throw new RangeError(`a grpc-timeout is 0 to 99999999H, not ${ms} ms`);
}

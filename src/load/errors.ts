// The kinds of failure a load run counts, as wrk splits its socket errors: a figure per kind
// tells a refusing server from a slow one from one that drops connections.

export const ERROR_KINDS = ['connect', 'timeout', 'reset', 'status', 'parse', 'other'] as const;
export type ErrorKind = (typeof ERROR_KINDS)[number];

/** What each kind means, for the report. */
export const ERROR_KIND_LABELS: Readonly<Record<ErrorKind, string>> = {
  connect: 'connect (refused, unreachable, TLS handshake)',
  timeout: 'timeout (no answer in time)',
  reset: 'reset (connection closed or reset mid-request)',
  status: 'status (non-2xx response)',
  parse: 'parse (malformed response)',
  other: 'other',
};

const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED', 'ERR_STREAM_DESTROYED', 'ERR_HTTP2_STREAM_ERROR', 'ERR_HTTP2_SESSION_ERROR', 'ERR_HTTP2_GOAWAY_SESSION', 'ERR_STREAM_PREMATURE_CLOSE']);

/**
 * The kind of a socket error: before the connection was up every failure is a connect error
 * (refused, DNS, TLS verification); after, resets and closes are resets.
 */
export function classifySocketError(err: Error, connected: boolean): ErrorKind {
  if (!connected) return 'connect';
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ETIMEDOUT') return 'timeout';
  if (code !== undefined && RESET_CODES.has(code)) return 'reset';
  return 'other';
}

/** A short message for an error, its code first when it has one. */
export function describeError(err: Error): string {
  const code = (err as NodeJS.ErrnoException).code;
  return code && !err.message.includes(code) ? `${code}: ${err.message}` : err.message;
}

// The two ways a connect can fail: the user asked for something that cannot be (ConnectUsageError:
// a bad URL, an option the scheme does not take; the CLI exits 2), or the other side could not
// be reached or refused us (ConnectError; the CLI exits 1). Both carry one line fit for stderr.

export class ConnectError extends Error {
  readonly code = 'SWITCHYARD_CONNECT_FAILED';
  constructor(
    /** The URL we tried, as the user wrote it. */
    readonly target: string,
    /** Why, in a few words: `connection refused`, `TLS: certificate has expired`. */
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`cannot connect to ${target}: ${reason}`, options);
    this.name = 'ConnectError';
  }
}

/** The connection was made, then went wrong (reset, a bad frame, an abnormal WebSocket close). */
export class ConnectionLostError extends Error {
  readonly code = 'SWITCHYARD_CONNECTION_LOST';
  constructor(
    readonly target: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${target}: ${reason}`, options);
    this.name = 'ConnectionLostError';
  }
}

export class ConnectUsageError extends Error {
  readonly code = 'SWITCHYARD_CONNECT_USAGE';
  constructor(message: string) {
    super(message);
    this.name = 'ConnectUsageError';
  }
}

/** `10s`, `250ms`, `1.5s`: a duration as people write it in this project's configs. */
export function formatDuration(ms: number): string {
  if (ms < 1000) return `${ms}ms`;
  return `${Number((ms / 1000).toFixed(3))}s`;
}

const TLS_UNTRUSTED = new Set([
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_GET_ISSUER_CERT',
]);

function codeOf(err: unknown): string | undefined {
  if (!err || typeof err !== 'object') return undefined;
  const e = err as { code?: unknown; cause?: unknown; errors?: unknown[] };
  if (typeof e.code === 'string' && !e.code.startsWith('UND_ERR_SOCKET')) return e.code;
  // Happy Eyeballs (several addresses tried) reports an AggregateError; undici wraps its cause.
  if (Array.isArray(e.errors) && e.errors.length > 0) return codeOf(e.errors[0]);
  if (e.cause) return codeOf(e.cause);
  return typeof e.code === 'string' ? e.code : undefined;
}

function innermost(err: unknown): Error {
  let e = err as { cause?: unknown; errors?: unknown[] };
  while (e && typeof e === 'object') {
    if (Array.isArray(e.errors) && e.errors.length > 0) e = e.errors[0] as typeof e;
    else if (e.cause && typeof e.cause === 'object') e = e.cause as typeof e;
    else break;
  }
  return e as Error;
}

/** A socket, DNS, TLS or undici error as a few words for people. */
export function describeNetError(err: unknown, connectTimeout?: number): string {
  const code = codeOf(err);
  switch (code) {
    case 'ECONNREFUSED':
      return 'connection refused';
    case 'ECONNRESET':
      return 'connection reset by the server';
    case 'EPIPE':
      return 'the server closed the connection';
    case 'ENOENT':
      return 'no such socket file';
    case 'ENOTSOCK':
      return 'not a socket';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
    case 'EAI_NONAME':
      return 'host name does not resolve';
    case 'EHOSTUNREACH':
      return 'host unreachable';
    case 'ENETUNREACH':
      return 'network unreachable';
    case 'ETIMEDOUT':
    case 'UND_ERR_CONNECT_TIMEOUT':
      return connectTimeout === undefined ? 'timed out' : `timed out after ${formatDuration(connectTimeout)}`;
    case 'CERT_HAS_EXPIRED':
      return 'TLS: the server\'s certificate has expired';
    case 'CERT_NOT_YET_VALID':
      return 'TLS: the server\'s certificate is not yet valid';
    case 'ERR_TLS_CERT_ALTNAME_INVALID':
      return `TLS: the server's certificate does not name this host (${(innermost(err) as { reason?: string }).reason ?? innermost(err).message})`;
  }
  if (code && TLS_UNTRUSTED.has(code)) {
    const what = code === 'DEPTH_ZERO_SELF_SIGNED_CERT' ? 'is self-signed' : 'is not signed by a trusted authority';
    return `TLS: the server's certificate ${what} (${code}); trust it with --ca FILE, or skip the check with --insecure`;
  }
  const inner = innermost(err);
  if (code?.startsWith('ERR_SSL_') || code?.startsWith('ERR_TLS_')) return `TLS: ${inner.message}`;
  return inner.message || String(err);
}

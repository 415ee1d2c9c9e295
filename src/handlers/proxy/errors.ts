// One error type for everything that can go wrong on the way through the proxy (Pingora's idea:
// an error says where it came from and whether a retry is safe), with stable codes (undici's:
// branch on `code`, never on a message). The retry phase reads `retryable` and `sent`; the reply
// phase reads `status` and `reason` (the one-line body the client sees).

import { describeTlsError, isTlsError } from '../../upstream/tls.ts';
import type { Refusal } from '../../upstream/admission.ts';
import { HEADERS_TOO_LARGE, NOT_PROCESSED } from '../../upstream/h2/errors.ts';

export type ProxyErrorSource = 'upstream' | 'downstream' | 'internal';

interface Kind {
  readonly where: ProxyErrorSource;
  /** Status answered to the client when no response has started; 0 when there is no one to answer. */
  readonly status: number;
  /** A retry can cure it (another try, perhaps on another target, may succeed). */
  readonly retryable: boolean;
  /** Short reason, the body of the error reply. */
  readonly reason: string;
}

const KINDS = {
  /** The target refused the TCP connection (ECONNREFUSED): nothing was sent. */
  UPSTREAM_REFUSED: { where: 'upstream', status: 502, retryable: true, reason: 'upstream refused connection' },
  /** Connecting failed otherwise (unreachable, DNS): nothing was sent. */
  UPSTREAM_CONNECT_FAILED: { where: 'upstream', status: 502, retryable: true, reason: 'upstream connection failed' },
  /**
   * The TLS handshake with the target failed: its certificate did not verify against the group's
   * `tls:` block (untrusted, expired, wrong name), or it refused ours. Retryable like a connect
   * failure when it happened before the request was sent (another target may have a good one).
   */
  UPSTREAM_TLS: { where: 'upstream', status: 502, retryable: true, reason: 'upstream TLS handshake failed' },
  /** The connection was not made within timeouts.connect: nothing was sent. */
  UPSTREAM_CONNECT_TIMEOUT: { where: 'upstream', status: 504, retryable: true, reason: 'upstream connect timed out' },
  /** The connection broke (reset, closed) before the response was complete. */
  UPSTREAM_RESET: { where: 'upstream', status: 502, retryable: true, reason: 'upstream reset connection' },
  /** No response head within timeouts.firstByte. */
  UPSTREAM_FIRST_BYTE_TIMEOUT: { where: 'upstream', status: 504, retryable: true, reason: 'upstream response timed out' },
  /** One try took longer than retry.perTryTimeout. */
  UPSTREAM_TRY_TIMEOUT: { where: 'upstream', status: 504, retryable: true, reason: 'upstream try timed out' },
  /** No bytes for timeouts.idle while the response body was streaming. */
  UPSTREAM_IDLE_TIMEOUT: { where: 'upstream', status: 504, retryable: false, reason: 'upstream idle timed out' },
  /** The whole exchange took longer than timeouts.total. */
  UPSTREAM_TOTAL_TIMEOUT: { where: 'upstream', status: 504, retryable: false, reason: 'upstream timed out' },
  /** The upstream answered something that is not valid HTTP/1.1. */
  UPSTREAM_PROTOCOL: { where: 'upstream', status: 502, retryable: false, reason: 'upstream sent an invalid response' },
  /** A WebSocket upgrade the upstream did not accept with 101 (and whose answer could not be relayed). */
  UPSTREAM_UPGRADE_REFUSED: { where: 'upstream', status: 502, retryable: false, reason: 'upstream refused the upgrade' },
  /** Any other upstream failure. */
  UPSTREAM_ERROR: { where: 'upstream', status: 502, retryable: false, reason: 'upstream error' },
  /** No target of the group may be picked (all unhealthy, ejected, or already tried). */
  NO_TARGET: { where: 'upstream', status: 503, retryable: false, reason: 'no upstream target available' },
  /** The group's circuit breaker is open. */
  BREAKER_OPEN: { where: 'upstream', status: 503, retryable: false, reason: 'upstream circuit breaker open' },
  /** breaker.maxRequests requests are in flight to the group already. */
  MAX_REQUESTS: { where: 'upstream', status: 503, retryable: false, reason: 'upstream at its request limit' },
  /** breaker.maxPending requests are waiting for a connection already. */
  MAX_PENDING: { where: 'upstream', status: 503, retryable: false, reason: 'upstream at its pending request limit' },
  /** The client went away (closed, reset) before the exchange was over. */
  DOWNSTREAM_ABORTED: { where: 'downstream', status: 0, retryable: false, reason: 'client closed the request' },
  /** The client's request body broke off or did not match its Content-Length. */
  DOWNSTREAM_BODY: { where: 'downstream', status: 400, retryable: false, reason: 'request body incomplete' },
  DOWNSTREAM_TOO_LARGE: { where: 'downstream', status: 413, retryable: false, reason: 'request body larger than the listener allows' },
  /** The request's header fields are larger than the HTTP/2 target accepts (its SETTINGS_MAX_HEADER_LIST_SIZE): not sent. */
  DOWNSTREAM_HEADERS_TOO_LARGE: { where: 'downstream', status: 431, retryable: false, reason: 'request header fields larger than the upstream accepts' },
  /** A bug or a refusal by the HTTP client library (invalid header, pool closed). */
  INTERNAL: { where: 'internal', status: 502, retryable: false, reason: 'proxy internal error' },
} as const satisfies Record<string, Kind>;

export type ProxyErrorCode = keyof typeof KINDS;

export class ProxyError extends Error {
  /** `SWITCHYARD_PROXY_<KIND>`: stable, for logs and programs. */
  readonly code: `SWITCHYARD_PROXY_${ProxyErrorCode}`;
  readonly kind: ProxyErrorCode;
  readonly where: ProxyErrorSource;
  readonly status: number;
  readonly retryable: boolean;
  /**
   * Request bytes may have reached the upstream (false only when the failure happened before
   * the request was written: connect failures). A sent request is retried only when it is
   * idempotent or its body was buffered.
   */
  readonly sent: boolean;
  readonly reason: string;

  constructor(kind: ProxyErrorCode, options: { sent?: boolean; cause?: unknown; detail?: string } = {}) {
    const k: Kind = KINDS[kind];
    super(options.detail ? `${k.reason}: ${options.detail}` : k.reason, options.cause === undefined ? undefined : { cause: options.cause });
    this.name = 'ProxyError';
    this.code = `SWITCHYARD_PROXY_${kind}`;
    this.kind = kind;
    this.where = k.where;
    this.status = k.status;
    this.retryable = k.retryable;
    this.sent = options.sent ?? true;
    this.reason = k.reason;
  }
}

const CONNECT_CODES = new Set(['ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH', 'EHOSTDOWN', 'ENETDOWN', 'EADDRNOTAVAIL']);
const RESET_CODES = new Set(['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'ECONNABORTED']);

/**
 * What an error from undici (or the sockets under it) means for the proxy. `sent` says whether
 * the request had been handed to a connection (undici's onConnect) when it failed.
 */
export function classify(err: unknown, sent: boolean): ProxyError {
  if (err instanceof ProxyError) return err;
  // A TLS 1.3 server refuses a client certificate after the client's handshake is done, so its
  // alert may come once the request is on its way: `sent` says which.
  if (isTlsError(err)) return new ProxyError('UPSTREAM_TLS', { sent, cause: err, detail: describeTlsError(err) });
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code === 'string') {
    // The HTTP/2 target refused the stream or went away before it: never processed, so it may go again.
    if (code === NOT_PROCESSED) return new ProxyError('UPSTREAM_RESET', { sent: false, cause: err, detail: (err as Error).message });
    if (code === HEADERS_TOO_LARGE) return new ProxyError('DOWNSTREAM_HEADERS_TOO_LARGE', { sent: false, cause: err });
    if (!sent) {
      if (code === 'ECONNREFUSED') return new ProxyError('UPSTREAM_REFUSED', { sent: false, cause: err });
      if (code === 'UND_ERR_CONNECT_TIMEOUT' || code === 'ETIMEDOUT') return new ProxyError('UPSTREAM_CONNECT_TIMEOUT', { sent: false, cause: err });
      if (CONNECT_CODES.has(code) || code === 'ECONNRESET' || code === 'UND_ERR_SOCKET') {
        return new ProxyError('UPSTREAM_CONNECT_FAILED', { sent: false, cause: err });
      }
    }
    if (code === 'UND_ERR_HEADERS_TIMEOUT') return new ProxyError('UPSTREAM_FIRST_BYTE_TIMEOUT', { cause: err });
    if (code === 'UND_ERR_BODY_TIMEOUT') return new ProxyError('UPSTREAM_IDLE_TIMEOUT', { cause: err });
    if (code === 'UND_ERR_CONNECT_TIMEOUT') return new ProxyError('UPSTREAM_CONNECT_TIMEOUT', { sent: false, cause: err });
    if (code === 'ECONNREFUSED') return new ProxyError('UPSTREAM_REFUSED', { sent: false, cause: err });
    if (RESET_CODES.has(code)) return new ProxyError('UPSTREAM_RESET', { cause: err });
    if (code.startsWith('HPE_') || code === 'UND_ERR_RES_CONTENT_LENGTH_MISMATCH' || code === 'UND_ERR_RES_EXCEEDED_MAX_SIZE') {
      return new ProxyError('UPSTREAM_PROTOCOL', { cause: err });
    }
    if (code === 'UND_ERR_REQ_CONTENT_LENGTH_MISMATCH') return new ProxyError('DOWNSTREAM_BODY', { cause: err });
    if (code === 'UND_ERR_INVALID_ARG' || code === 'UND_ERR_NOT_SUPPORTED' || code === 'UND_ERR_DESTROYED' || code === 'UND_ERR_CLOSED') return new ProxyError('INTERNAL', { sent: false, cause: err });
  }
  return new ProxyError('UPSTREAM_ERROR', { sent, cause: err });
}

const REFUSALS = {
  'no-target': 'NO_TARGET',
  'breaker-open': 'BREAKER_OPEN',
  'max-requests': 'MAX_REQUESTS',
  'max-pending': 'MAX_PENDING',
} as const satisfies Record<Refusal['reason'], ProxyErrorCode>;

/** The group's refusal to admit a call (group.admit()), as the error the client is answered with. */
export function refusalError(r: Refusal): ProxyError {
  return new ProxyError(REFUSALS[r.reason]);
}

/** Retry-After for a refusal: none when no target is available (nobody knows when one will be), else at least a second. */
export function refusalHeaders(r: Refusal): Record<string, string> | undefined {
  if (r.reason === 'no-target') return undefined;
  return { 'retry-after': String(Math.max(1, Math.ceil(r.retryAfterMs / 1000))) };
}

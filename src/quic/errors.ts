// Errors of the QUIC transport, each with a stable code that callers (the listener, the connect
// client, HTTP/3) switch on; messages are for people.

export type QuicErrorCode =
  /** The handshake did not complete: see the message for the peer's or our reason. */
  | 'QUIC_HANDSHAKE_FAILED'
  /** No handshake within the handshake timeout (nothing listening, or packets lost). */
  | 'QUIC_HANDSHAKE_TIMEOUT'
  /** The server's certificate does not chain to a trusted CA or does not name the host. */
  | 'QUIC_CERTIFICATE_UNTRUSTED'
  /** Client and server share no application protocol (ALPN). */
  | 'QUIC_ALPN_MISMATCH'
  /** The server refused the connection (at its connection limit, or not accepting). */
  | 'QUIC_CONNECTION_REFUSED'
  /** Nothing was heard from the peer for the idle timeout. */
  | 'QUIC_IDLE_TIMEOUT'
  /** The connection is closed (by either side); streams on it end with this. */
  | 'QUIC_CONNECTION_CLOSED'
  /** The peer abandoned its sending side of a stream (RESET_STREAM); `streamCode` says why. */
  | 'QUIC_STREAM_RESET'
  /** The peer asked us to stop sending on a stream (STOP_SENDING); `streamCode` says why. */
  | 'QUIC_STREAM_STOPPED'
  /** The peer allows no more streams of that kind now. */
  | 'QUIC_STREAM_LIMIT'
  /** Options that cannot work (a certificate quiche refuses, an empty ALPN list). */
  | 'QUIC_CONFIG_INVALID'
  /** The UDP socket could not be bound. */
  | 'QUIC_BIND_FAILED'
  /** quiche reported something this module does not expect. */
  | 'QUIC_INTERNAL';

export class QuicError extends Error {
  constructor(
    readonly code: QuicErrorCode,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'QuicError';
  }
}

/** A stream ended by an application error code (sent by us with reset(), or received from the peer). */
export class QuicStreamError extends QuicError {
  constructor(
    code: 'QUIC_STREAM_RESET' | 'QUIC_STREAM_STOPPED' | 'QUIC_CONNECTION_CLOSED',
    /** The application error code carried by RESET_STREAM / STOP_SENDING (HTTP/3: H3_REQUEST_CANCELLED, ...). */
    readonly streamCode: number,
    message: string,
  ) {
    super(code, message);
    this.name = 'QuicStreamError';
  }
}

export function isQuicError(err: unknown): err is QuicError {
  return err instanceof QuicError;
}

/** How a connection ended. */
export interface QuicCloseInfo {
  /** Who closed it: we did (close(), a limit, a drain), the peer did, or it timed out. */
  readonly by: 'local' | 'peer' | 'idle-timeout' | 'handshake-timeout';
  /** An application close (CONNECTION_CLOSE 0x1d) rather than a transport one (0x1c). */
  readonly isApp: boolean;
  /** The error code: an application code when isApp, else a QUIC transport code (0 = no error). */
  readonly code: number;
  /** The reason phrase sent with the close (UTF-8, may be empty). */
  readonly reason: string;
  /** Whether the handshake had completed. */
  readonly established: boolean;
  /** The QuicError a caller would see for this close (undefined for a clean close by us). */
  readonly error?: QuicError;
}

const CRYPTO_ERROR_START = 0x100;
const CRYPTO_ERROR_END = 0x1ff;

/** TLS alerts (RFC 8446 §6) that mean "this certificate is not acceptable". */
const CERTIFICATE_ALERTS = new Set([42, 43, 44, 45, 46, 48, 49]);
const NO_APPLICATION_PROTOCOL_ALERT = 120;

/** The QuicError for a transport or application close code, from the side that saw it. */
export function errorForClose(
  by: QuicCloseInfo['by'],
  isApp: boolean,
  code: number,
  reason: string,
  established: boolean,
): QuicError | undefined {
  if (by === 'idle-timeout') {
    return established
      ? new QuicError('QUIC_IDLE_TIMEOUT', 'the connection was idle for longer than the idle timeout')
      : new QuicError('QUIC_HANDSHAKE_TIMEOUT', 'no answer from the server within the idle timeout');
  }
  if (by === 'handshake-timeout') return new QuicError('QUIC_HANDSHAKE_TIMEOUT', 'the handshake did not complete within the handshake timeout');
  if (!isApp && code === 0 && by === 'local') return undefined;
  const who = by === 'peer' ? 'the peer' : 'this side';
  const why = reason ? `: ${reason}` : '';
  if (!isApp && code >= CRYPTO_ERROR_START && code <= CRYPTO_ERROR_END) {
    const alert = code - CRYPTO_ERROR_START;
    if (alert === NO_APPLICATION_PROTOCOL_ALERT) return new QuicError('QUIC_ALPN_MISMATCH', `no application protocol (ALPN) in common with the ${by === 'peer' ? 'peer' : 'server'}`);
    if (CERTIFICATE_ALERTS.has(alert)) return new QuicError('QUIC_CERTIFICATE_UNTRUSTED', `certificate refused by ${who} (TLS alert ${alert})${why}`);
    return new QuicError('QUIC_HANDSHAKE_FAILED', `TLS handshake failed (TLS alert ${alert}, sent by ${who})${why}`);
  }
  if (!isApp && code === 0x2) return new QuicError('QUIC_CONNECTION_REFUSED', `connection refused by ${who}${why}`);
  if (!established) return new QuicError('QUIC_HANDSHAKE_FAILED', `handshake failed: ${isApp ? 'application' : 'transport'} error ${code} from ${who}${why}`);
  return new QuicError('QUIC_CONNECTION_CLOSED', `connection closed by ${who} with ${isApp ? 'application' : 'transport'} code ${code}${why}`);
}

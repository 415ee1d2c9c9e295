// The two kinds of failure the HTTP/2 client tells apart: what the proxy is handed (an error with
// one of the codes it classifies by, undici's where there is one) and what the target did wrong
// (H2ProtocolError, src/protocol/h2/errors.ts: an HTTP/2 error code, RFC 9113 §7, that goes back
// to it in RST_STREAM or GOAWAY).

/** An error for the proxy's handler: `code` is what it classifies by (src/handlers/proxy/errors.ts). */
export class H2ClientError extends Error {
  constructor(
    message: string,
    readonly code: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'H2ClientError';
  }
}

/**
 * Code for a response that breaks HTTP/2 (malformed frames or header blocks, flow control
 * violations): the proxy classifies every `HPE_` code as an invalid response.
 */
export const PROTOCOL_VIOLATION = 'HPE_HTTP2_PROTOCOL';

/**
 * Code for a request the target did not process (REFUSED_STREAM, or above a GOAWAY's last stream
 * id) whose body is still at hand: the proxy may send it again anywhere, as one never sent.
 */
export const NOT_PROCESSED = 'H2_NOT_PROCESSED';

/**
 * Code for a request whose header list is larger than the target's SETTINGS_MAX_HEADER_LIST_SIZE:
 * it was not sent (the proxy answers 431 and does not try elsewhere).
 */
export const HEADERS_TOO_LARGE = 'H2_REQUEST_HEADERS_TOO_LARGE';

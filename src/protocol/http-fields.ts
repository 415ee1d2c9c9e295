// What a field of an HTTP/2 or HTTP/3 message may be (RFC 9113 §8.2, RFC 9114 §4.2: the same
// rules), in one place for both versions and both directions: the HTTP/2 engine's request check
// and response encoder, the HTTP/2 and HTTP/3 responses handlers write (their setHeader throws
// what node:http's would), the HTTP/3 request check. Also the Date field every response of
// theirs carries. Errors carry node's codes, so a handler written against node:http sees the
// same error whichever version the client speaks.

/**
 * Connection-specific fields (RFC 9113 §8.2.2, RFC 9114 §4.2): a request carrying one is
 * malformed, and no response may carry one.
 */
export const CONNECTION_SPECIFIC: ReadonlySet<string> = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'upgrade']);

/**
 * What no field value we send may hold: NUL, CR or LF would split the field when it is relayed
 * over HTTP/1.1 (node:http refuses them in setHeader too).
 */
export const FORBIDDEN_IN_SENT_VALUE = /[\0\r\n]/;

/**
 * What makes a received field value malformed: the above, or a space or tab at either end
 * (RFC 9113 §8.2.1, RFC 9114 §4.2; nghttp2 refuses it too).
 */
export const FORBIDDEN_IN_RECEIVED_VALUE = /[\0\r\n]|^[ \t]|[ \t]$/;

/** A field name: a token (RFC 9110 §5.6.2). Received names must also be lower case. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
const LOWER_CASE_TOKEN = /^[!#$%&'*+\-.^_`|~0-9a-z]+$/;

/** A received regular field name is a lower-case token (RFC 9113 §8.2.1, RFC 9114 §4.2). */
export function isLowerCaseToken(name: string): boolean {
  return LOWER_CASE_TOKEN.test(name);
}

/** An Error (or TypeError...) with node's `code`, as node's own HTTP modules throw them. */
export function codedError(code: string, message: string, Kind: ErrorConstructor | TypeErrorConstructor | RangeErrorConstructor = Error): Error & { code: string } {
  const err = new Kind(message) as Error & { code: string };
  err.code = code;
  return err;
}

/** A field value we would send with a character no field may hold (node's ERR_INVALID_CHAR). */
export class InvalidFieldError extends TypeError {
  readonly code = 'ERR_INVALID_CHAR';
}

/** Throws InvalidFieldError when `value` may not be sent as field `name`'s value. */
export function checkSentValueChars(name: string, value: string): void {
  if (FORBIDDEN_IN_SENT_VALUE.test(value)) throw new InvalidFieldError(`Invalid character in header content ["${name}"]`);
}

/** Fields of which HTTP/2 (and node) allow one value only. */
const SINGLE: ReadonlySet<string> = new Set([
  'access-control-allow-credentials',
  'access-control-max-age',
  'access-control-request-method',
  'age',
  'authorization',
  'content-encoding',
  'content-language',
  'content-length',
  'content-location',
  'content-md5',
  'content-range',
  'content-type',
  'date',
  'dnt',
  'etag',
  'expires',
  'from',
  'host',
  'if-match',
  'if-modified-since',
  'if-none-match',
  'if-range',
  'if-unmodified-since',
  'last-modified',
  'location',
  'max-forwards',
  'proxy-authorization',
  'range',
  'referer',
  'retry-after',
  'tk',
  'upgrade-insecure-requests',
  'user-agent',
  'x-content-type-options',
]);

/** Response field names checked once: the lower-case form of a name, or the error for a name no response may carry. */
const names = new Map<string, string | Error>();
const NAMES_MAX = 2000;

/**
 * The lower-case name a response field is stored and sent under; throws for a name HTTP/2 and
 * HTTP/3 cannot carry (not a token; connection-specific, or HTTP/1.1's HTTP2-Settings).
 * `connection` comes back as '': dropped without an error, as node's HTTP/2 compatibility
 * layer drops it (handlers written for HTTP/1.1 set it).
 */
export function responseFieldName(name: string): string {
  let known = names.get(name);
  if (known === undefined) {
    if (typeof name !== 'string') throw codedError('ERR_INVALID_ARG_TYPE', 'The "name" argument must be of type string', TypeError);
    const lower = name.trim().toLowerCase();
    if (!TOKEN.test(lower)) known = codedError('ERR_INVALID_HTTP_TOKEN', `Header name must be a valid HTTP token ["${name}"]`, TypeError);
    else if (lower === 'connection') known = '';
    else if (CONNECTION_SPECIFIC.has(lower) || lower === 'http2-settings') known = codedError('ERR_HTTP2_INVALID_CONNECTION_HEADERS', `HTTP/1 Connection specific headers are forbidden: "${lower}"`, TypeError);
    else known = lower;
    if (names.size < NAMES_MAX) names.set(name, known);
  }
  if (typeof known !== 'string') throw known;
  return known;
}

/**
 * Throws for a response field value no response may carry, with node's codes: none, several for
 * a single-value field, a TE other than "trailers" (node:http2's rules), a character no field may
 * hold (node:http's ERR_INVALID_CHAR, thrown by setHeader as node:http does: found only when the
 * head is encoded, the error would come from write() or end(), after the handler had moved on).
 */
export function checkResponseValue(name: string, value: unknown): void {
  if (value === undefined || value === null) throw codedError('ERR_HTTP2_INVALID_HEADER_VALUE', `Invalid value "${String(value)}" for header "${name}"`, TypeError);
  if (Array.isArray(value)) {
    if (value.length > 1 && SINGLE.has(name)) throw codedError('ERR_HTTP2_HEADER_SINGLE_VALUE', `Header field "${name}" must only have a single value`, TypeError);
    for (const v of value) if (typeof v === 'string') checkSentValueChars(name, v);
  } else if (typeof value === 'string') {
    checkSentValueChars(name, value);
  }
  if (name === 'te' && value !== 'trailers') throw codedError('ERR_HTTP2_INVALID_CONNECTION_HEADERS', 'HTTP/1 Connection specific headers are forbidden: "te"', TypeError);
}

/** The Date field's value: made at most once a second, as node makes its own. */
let dateText: string | undefined;

function clearDate(): void {
  dateText = undefined;
}

export function httpDate(): string {
  if (dateText === undefined) {
    const now = new Date();
    dateText = now.toUTCString();
    setTimeout(clearDate, 1000 - now.getMilliseconds()).unref();
  }
  return dateText;
}

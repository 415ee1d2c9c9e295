import { IncomingMessage } from 'node:http';
import type { Http2Request, Http3Request, HttpRequest } from '../../handlers/types.ts';
import { lenientPath, normalisePath } from './router.ts';

// Phase "check": what node:http's parser lets through but a gateway must not, before anything
// routes on the request (more header fields than node keeps: 431). Node (llhttp) already refuses the framing attacks (CL+TE, duplicate
// Content-Length, bare LF, obs-fold, bad chunk sizes); what is left is the meaning of the
// request line and Host:
//   - a protocol version other than HTTP/1.x (RFC 9112 §2.3: 505);
//   - no Host on HTTP/1.1, more than one Host, or a Host outside the URI grammar (RFC 9112
//     §3.2: 400), since routing on one value and forwarding another is how host-gated routes
//     are bypassed (node:http's own check of a missing Host is off: it skips upgrades);
//   - a fragment (`#`): not part of any request-target form (RFC 9112 §3.2), and an upstream
//     that cuts it off reads `/admin#/x` as `/admin`;
//   - absolute-form targets (RFC 9112 §3.2.2): accepted, and their authority replaces Host, so
//     the request is routed and forwarded as the origin-form one it stands for;
//   - runs of slashes merged before routing (as nginx), so `/admin//x` cannot miss `/admin/*`;
//   - Transfer-Encoding on HTTP/1.0 (RFC 9112 §6.1): served, then the connection is closed.
// The request is normalised in place (req.url, Host in headers and rawHeaders), so every later
// phase, the proxy's forwarded request included, sees one consistent request.

/** A refusal of this phase: the status and a one-line reason for the client. */
export interface TargetRefusal {
  readonly status: number;
  readonly reason: string;
}

/** The checked request: the path to route on, and whether the connection must close after it. */
export interface CheckedTarget {
  readonly path: string;
  /** The path as a lenient upstream reads it, when that differs (router.ts, lenientPath). */
  readonly lenient: string | undefined;
  readonly close: boolean;
}

// uri-host [ ":" port ] (RFC 3986 §3.2.2): an IP-literal in brackets, or a reg-name of
// unreserved characters, percent escapes and sub-delims (which also covers IPv4 addresses).
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|(?:[A-Za-z0-9\-._~!$&'()*+,;=]|%[0-9A-Fa-f]{2})*)(?::[0-9]{0,5})?$/;

/** True when `value` is a valid Host header value (`host[:port]`). */
export function validHost(value: string): boolean {
  return HOST.test(value);
}

const ABSOLUTE = /^https?:\/\//i;

/**
 * Header fields a request may carry. node:http keeps only the first `maxHeadersCount` of them and
 * drops the rest without a word, while its parser has framed the request by all of them: a
 * Content-Length or Transfer-Encoding past the cut frames the body yet is missing from
 * req.headers, where the size and upgrade checks look. The server keeps one more than this, so
 * a request with more is known, and refused (431), instead of cut.
 */
export const MAX_HEADER_FIELDS = 2000;

/** The last Host header value checkRequest found valid. */
let lastValidHost: string | undefined;

/**
 * Checks `req` and normalises it in place; returns the path to route on, or why it is refused.
 * `mergeSlashes` merges runs of `/` in the path (req.url included).
 */
export function checkRequest(req: IncomingMessage, mergeSlashes: boolean): CheckedTarget | TargetRefusal {
  if (req.httpVersionMajor !== 1) return { status: 505, reason: 'HTTP version not supported' };

  const raw = req.rawHeaders;
  if (raw.length > 2 * MAX_HEADER_FIELDS) return { status: 431, reason: `more than ${MAX_HEADER_FIELDS} header fields` };
  let hostAt = -1;
  for (let i = 0; i < raw.length; i += 2) {
    // Cheap test first: only names of length 4 can be Host.
    if (raw[i].length !== 4 || raw[i].toLowerCase() !== 'host') continue;
    if (hostAt !== -1) return { status: 400, reason: 'more than one Host header' };
    hostAt = i;
  }
  if (hostAt !== -1) {
    // A connection's requests (and most clients') name the same Host over and over: the last
    // valid one is known, and the grammar's regex (0.15-0.25 µs on Node 24) runs only for another.
    const value = raw[hostAt + 1];
    if (value !== lastValidHost) {
      if (!HOST.test(value)) return { status: 400, reason: 'bad Host header' };
      lastValidHost = value;
    }
  }

  let url = req.url ?? '';
  if (url.includes('#')) return { status: 400, reason: 'a fragment in the request target' };

  if (url.charCodeAt(0) !== 47 /* / */ && ABSOLUTE.test(url)) {
    const afterScheme = url.indexOf('//') + 2;
    let end = afterScheme;
    while (end < url.length && url[end] !== '/' && url[end] !== '?' && url[end] !== '#') end++;
    const authority = url.slice(afterScheme, end);
    // userinfo (`user@host`) is deprecated and a known way to confuse parsers (RFC 9110 §4.2.4).
    if (authority === '' || !HOST.test(authority)) return { status: 400, reason: 'bad authority in the request target' };
    const rest = url.slice(end);
    url = rest === '' || rest[0] === '?' ? `/${rest}` : rest;
    // The target's authority wins over Host (RFC 9112 §3.2.2).
    if (hostAt === -1) raw.push('Host', authority);
    else raw[hostAt + 1] = authority;
    req.headers.host = authority;
    req.url = url;
  }

  url = mergedSlashes(req, url, mergeSlashes);

  // An absolute-form target has given the request its Host by now.
  if (req.headers.host === undefined && req.httpVersionMinor === 1) return { status: 400, reason: 'no Host header' };

  const target = routablePath(url, mergeSlashes);
  if ('status' in target) return target;
  // HTTP/1.0 has no chunked coding: a body framed by Transfer-Encoding there is one a server
  // in front of us may have read differently, so nothing more is read from this connection.
  const close = req.httpVersionMinor === 0 && req.headers['transfer-encoding'] !== undefined;
  return { path: target.path, lenient: target.lenient, close };
}

/** `url` with runs of slashes in its path merged (req.url updated) when `mergeSlashes` is on. */
function mergedSlashes(req: HttpRequest, url: string, mergeSlashes: boolean): string {
  if (!mergeSlashes || !url.includes('//')) return url;
  const q = url.indexOf('?');
  const path = q === -1 ? url : url.slice(0, q);
  if (!path.includes('//')) return url;
  const merged = path.replace(/\/{2,}/g, '/') + (q === -1 ? '' : url.slice(q));
  req.url = merged;
  return merged;
}

/** The path to route on and its lenient reading, or 400. */
function routablePath(url: string, mergeSlashes: boolean): { path: string; lenient: string | undefined } | TargetRefusal {
  const path = normalisePath(url);
  if (path === undefined) return { status: 400, reason: 'bad request path' };
  const lenient = lenientPath(path, mergeSlashes);
  if (lenient === '') return { status: 400, reason: 'bad request path' };
  return { path, lenient };
}

/** The last `:authority` (or Host) checkHttp2Request found valid. */
let lastValidAuthority: string | undefined;

/**
 * The check phase for an HTTP/2 request. nghttp2 has refused what the protocol forbids (missing
 * or repeated pseudo-headers, connection-specific fields, upper-case names); left are the same
 * questions as on HTTP/1.1: the authority (`:authority`, else Host; both must agree, RFC 9113
 * §8.3.1) becomes the request's Host for every later phase, the path is checked and merged as
 * above. CONNECT (no `:path`) is the caller's to refuse.
 */
export function checkHttp2Request(req: Http2Request | Http3Request, mergeSlashes: boolean): CheckedTarget | TargetRefusal {
  const headers = req.headers;
  const authority = headers[':authority'];
  const host = headers.host;
  if (authority !== undefined && host !== undefined && authority !== host) return { status: 400, reason: ':authority and Host differ' };
  const name = authority ?? host;
  // A connection's streams name the same authority over and over: the last valid one is known.
  if (name === undefined || name !== lastValidAuthority) {
    if (name === undefined || !HOST.test(name)) return { status: 400, reason: name === undefined ? 'no :authority' : 'bad :authority' };
    lastValidAuthority = name;
  }
  headers.host = name;
  const url = req.url ?? '';
  if (url.charCodeAt(0) !== 47 /* / */) return { status: url === '*' ? 405 : 400, reason: url === '*' ? 'OPTIONS * is not served' : 'bad request path' };
  if (url.includes('#')) return { status: 400, reason: 'a fragment in the request target' };
  const target = routablePath(mergedSlashes(req, url, mergeSlashes), mergeSlashes);
  if ('status' in target) return target;
  return { path: target.path, lenient: target.lenient, close: false };
}

/** The check phase for any request: HTTP/1.x, HTTP/2 or HTTP/3 (whose fields follow HTTP/2's rules, RFC 9114 §4.3.1). */
export function checkAnyRequest(req: HttpRequest, mergeSlashes: boolean): CheckedTarget | TargetRefusal {
  // An HTTP/1.x request line may say HTTP/2.0 or HTTP/3.0 (refused by checkRequest): only the
  // HTTP/2 front's requests have a stream, only the HTTP/3 front's are not IncomingMessages.
  if (isHttp2(req)) return checkHttp2Request(req, mergeSlashes);
  if (isHttp3(req)) return checkHttp2Request(req, mergeSlashes);
  return checkRequest(req as IncomingMessage, mergeSlashes);
}

function isHttp3(req: HttpRequest): req is Http3Request {
  return req.httpVersionMajor === 3 && !(req instanceof IncomingMessage);
}

function isHttp2(req: HttpRequest): req is Http2Request {
  return req.httpVersionMajor === 2 && (req as Partial<Http2Request>).stream !== undefined;
}

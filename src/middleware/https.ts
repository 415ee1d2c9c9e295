import { ServerResponse } from 'node:http';
import type { HttpRequest, HttpResponse } from '../handlers/types.ts';
import { HTTP01_PREFIX } from '../tls/acme/http01.ts';
import type { Middleware } from './types.ts';

// HTTPS-only sites: a plain http listener that sends every request to the same URL on https
// (`redirectToHttps`), and Strict-Transport-Security on an https listener's responses (`hsts`),
// so a browser that has been there once goes straight to https from then on.
//
// Both are listener-wide, not per route: the listener applies them before routing, so a 404 or a
// refusal gets them too (HSTS is taken from any response, RFC 6797 §8.1).

export interface HstsOptions {
  /** Seconds the browser keeps to https (default one year). */
  maxAge: number;
  includeSubDomains: boolean;
  preload: boolean;
}

export const HSTS_DEFAULTS: HstsOptions = { maxAge: 31_536_000, includeSubDomains: false, preload: false };

/** The Strict-Transport-Security value for `options` (`true`: the defaults). */
export function hstsValue(options: HstsOptions | true): string {
  const o = options === true ? HSTS_DEFAULTS : options;
  return `max-age=${o.maxAge}${o.includeSubDomains ? '; includeSubDomains' : ''}${o.preload ? '; preload' : ''}`;
}

/**
 * Strict-Transport-Security on every response passing through (set before the handler, so a
 * handler or an upstream that sends its own wins). For a chain of one's own; the daemon's https
 * listeners with `hsts:` set it before routing (server.ts), refusals included.
 */
export function hsts(options: HstsOptions | true): Middleware {
  const value = hstsValue(options);
  return (ctx, next) => {
    ctx.res.setHeader('strict-transport-security', value);
    return next();
  };
}

export interface RedirectOptions {
  /** Port of the https URL; 443 (the default) is left out of it. */
  port?: number;
  /** 308 by default: method and body are kept (a POST stays a POST); 301/302/307 on request. */
  status: 301 | 302 | 307 | 308;
}

/** The host of a (checked) Host value without its port: `example.com:80` -> `example.com`, `[::1]:80` -> `[::1]`. */
function hostWithoutPort(host: string): string {
  if (host.startsWith('[')) return host.slice(0, host.indexOf(']') + 1);
  const colon = host.indexOf(':');
  return colon === -1 ? host : host.slice(0, colon);
}

/**
 * Answers `req` with a redirect to `https://<host>[:port]<path>?<query>`, and returns true; or
 * returns false, leaving it alone, for ACME HTTP-01 challenge paths (a CA validating an order
 * must get the token on plain http). The request must have passed the listener's checks (Host
 * valid, target in origin form). A request without Host (HTTP/1.0) gets 400: there is nothing
 * to redirect to. A request with a body is answered without reading it, and the connection is
 * closed after the answer instead of reading and discarding what could be a large body.
 */
export function redirectToHttps(req: HttpRequest, res: HttpResponse, options: RedirectOptions): boolean {
  const url = req.url ?? '/';
  if (url.startsWith(HTTP01_PREFIX)) return false;
  const hasBody = req.headers['transfer-encoding'] !== undefined || (req.headers['content-length'] !== undefined && req.headers['content-length'] !== '0');
  const close = hasBody && res instanceof ServerResponse ? { connection: 'close' } : undefined;
  if (hasBody && res instanceof ServerResponse) res.shouldKeepAlive = false;
  const host = req.headers.host;
  if (!host) {
    const body = '400 no Host header to redirect to https with\n';
    res.writeHead(400, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...close });
    res.end(req.method === 'HEAD' ? undefined : body);
    return true;
  }
  const port = options.port === undefined || options.port === 443 ? '' : `:${options.port}`;
  const location = `https://${hostWithoutPort(host)}${port}${url}`;
  const body = `${options.status} redirect to ${location}\n`;
  res.writeHead(options.status, { location, 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(body), ...close });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

import type { HttpRequest, HttpResponse } from '../../handlers/types.ts';

// HTTP-01 (RFC 8555 section 8.3): the CA fetches
// http://<name>/.well-known/acme-challenge/<token> and expects the key authorization.

export const HTTP01_PREFIX = '/.well-known/acme-challenge/';

/** What the daemon's http listeners ask for GET /.well-known/acme-challenge/<token>. */
export interface Http01Responder {
  /** The key authorization to answer with, or undefined when no order waits on this token. */
  answer(token: string): string | undefined;
}

/** The tokens of the orders under way; filled while an order is pending, emptied after. */
export class Http01Challenges implements Http01Responder {
  private readonly tokens = new Map<string, string>();

  set(token: string, keyAuthorization: string): void {
    this.tokens.set(token, keyAuthorization);
  }

  delete(token: string): void {
    this.tokens.delete(token);
  }

  answer(token: string): string | undefined {
    return this.tokens.get(token);
  }

  get size(): number {
    return this.tokens.size;
  }
}

/** The token of a challenge path, or undefined when `path` (the request target) is not one. */
export function http01Token(path: string | undefined): string | undefined {
  if (path === undefined || !path.startsWith(HTTP01_PREFIX)) return undefined;
  const token = path.slice(HTTP01_PREFIX.length);
  // Tokens are base64url (RFC 8555 section 8.1).
  return /^[A-Za-z0-9_-]{1,256}$/.test(token) ? token : undefined;
}

/**
 * Answers `req` when it is a GET/HEAD for a token `responder` knows: 200 with the key
 * authorization; true when it answered. Anything else (another path, an unknown token) is left
 * to the caller, so the route table can serve the rest of /.well-known.
 */
export function answerHttp01(responder: Http01Responder, req: HttpRequest, res: HttpResponse): boolean {
  if (req.method !== 'GET' && req.method !== 'HEAD') return false;
  const token = http01Token(req.url?.split('?')[0]);
  if (token === undefined) return false;
  const body = responder.answer(token);
  if (body === undefined) return false;
  res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': Buffer.byteLength(body), 'cache-control': 'no-store' });
  res.end(req.method === 'HEAD' ? undefined : body);
  return true;
}

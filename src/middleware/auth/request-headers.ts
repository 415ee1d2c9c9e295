import type { HttpRequest } from '../../handlers/types.ts';

// What an authentication step tells the steps after it travels as request headers (the user, a
// token's claims, what an auth service answered). Handlers read `req.headers`; the proxy builds
// the upstream's headers from `req.rawHeaders`: both are changed together, in place (an HTTP/2
// request's arrays are its own and read-only as properties, not as arrays).
//
// A header a step sets is one the client must not be able to send itself: every name a step may
// set is removed from the client's request first, whether or not the step then sets it.

/** Removes every field named in `lower` (lower-case names) from the request. */
export function removeRequestHeaders(req: HttpRequest, lower: ReadonlySet<string>): void {
  if (lower.size === 0) return;
  const headers = req.headers as Record<string, unknown>;
  let present = false;
  for (const name of lower) {
    if (headers[name] !== undefined) {
      delete headers[name];
      present = true;
    }
  }
  // rawHeaders holds nothing headers does not (node parses one from the other): no field, no scan.
  if (!present) return;
  const raw = req.rawHeaders;
  let kept = 0;
  for (let i = 0; i < raw.length; i += 2) {
    if (lower.has(raw[i].toLowerCase())) continue;
    raw[kept] = raw[i];
    raw[kept + 1] = raw[i + 1];
    kept += 2;
  }
  raw.length = kept;
}

/** Sets one field (a lower-case name) on the request, replacing any field of that name. */
export function setRequestHeader(req: HttpRequest, lower: string, value: string): void {
  removeRequestHeaders(req, new Set([lower]));
  (req.headers as Record<string, string>)[lower] = value;
  req.rawHeaders.push(lower, value);
}

/** A header field value a client and Node both take: visible ASCII, spaces and tabs, at most `max` long. */
export function isHeaderValue(value: string, max = 8192): boolean {
  return value.length <= max && /^[\t\x20-\x7e]*$/.test(value);
}

/** The first value of a request header (a repeated one arrives joined or as an array). */
export function firstHeader(value: string | string[] | undefined): string | undefined {
  return Array.isArray(value) ? value[0] : value;
}

import { z } from 'zod';

// Config pieces the authentication steps share. Each step's own schema is in its file
// (basic.ts, jwt.ts, forward.ts).

const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A header field name (RFC 9110 token), kept lower-case as node keeps request headers. */
export const headerNameSchema = z
  .string()
  .regex(TOKEN, 'expected a header name (letters, digits and !#$%&\'*+.^_`|~-)')
  .transform((s) => s.toLowerCase());

/** Names no step may set on a request: they steer how the request itself is read or routed. */
const RESERVED = new Set(['host', 'content-length', 'transfer-encoding', 'connection', 'upgrade', 'te', 'trailer', 'keep-alive', 'expect']);

/** A header a step sets on the request for the steps and the handler after it. */
export const setHeaderNameSchema = headerNameSchema.refine((n) => !RESERVED.has(n), { message: 'this header describes the request itself and cannot be set by authentication' });

/** A realm for WWW-Authenticate: printable, no quote or backslash (it is sent quoted). */
export const realmSchema = z
  .string()
  .min(1)
  .max(200)
  .regex(/^[\x20-\x7e]+$/, 'expected printable ASCII')
  .refine((s) => !/["\\]/.test(s), { message: 'a realm cannot hold " or \\' });

/** An http:// or https:// URL (a key set, an authentication service). */
export const httpUrlSchema = z.url({ protocol: /^https?$/, error: 'expected an http:// or https:// URL' });

import { errors, jwtVerify, type JWTPayload, type JWTVerifyOptions } from 'jose';
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import type { HttpRequest } from '../../handlers/types.ts';
import { replyError } from '../../handlers/http/reply.ts';
import type { Middleware } from '../types.ts';
import { KeySource, KeysUnavailableError, jwksSchema } from './jwks.ts';
import { firstHeader, isHeaderValue, removeRequestHeaders, setRequestHeader } from './request-headers.ts';
import { realmSchema, setHeaderNameSchema } from './schema.ts';

// JWT bearer tokens (RFC 7519, RFC 6750) checked with jose against a key set (jwks.ts): the
// signature with an algorithm from the pinned list (never `none`, never one the token picks
// alone), then exp/nbf with `clockTolerance`, then issuer, audience and the required claims.
// A request without a token gets 401 `WWW-Authenticate: Bearer realm="..."`; a bad one 401 with
// `error="invalid_token"` and a short reason (which check failed, never key material). When no
// key set has ever been had (the provider unreachable since start), 503: the token cannot be
// judged, and a 401 would send clients to log in again for nothing.
//
// Claims named in `claimsToHeaders` go to the handler and upstream as request headers; the
// client's own headers of those names are always removed first.

/** Signature algorithms a key set (public keys) can verify. */
const ALGORITHMS = ['RS256', 'RS384', 'RS512', 'PS256', 'PS384', 'PS512', 'ES256', 'ES384', 'ES512', 'EdDSA', 'Ed25519'] as const;
const MAX_TOKEN_LENGTH = 16 * 1024;

const algorithmSchema = z.string().superRefine((alg, ctx) => {
  if ((ALGORITHMS as readonly string[]).includes(alg)) return;
  let why = `expected one of ${ALGORITHMS.join(', ')}`;
  if (alg.toLowerCase() === 'none') why = '"none" would accept unsigned tokens from anyone';
  else if (/^HS\d+$/i.test(alg)) why = `${alg} needs a shared secret; a key set holds public keys (use ${ALGORITHMS.slice(0, 3).join('/')} or ES256...)`;
  ctx.addIssue({ code: 'custom', message: why });
});

const stringOrList = z.union([z.string().min(1), z.array(z.string().min(1)).min(1)]);

export const jwtSchema = z.strictObject({
  /** Where the verification keys come from: a URL, `{ url, refresh, cooldown, timeout, maxSize }` or `{ file }` (jwksSchema in jwks.ts). */
  jwks: jwksSchema,
  /** Signature algorithms accepted (required: a token does not choose its own). RS*, PS*, ES*, EdDSA/Ed25519. */
  algorithms: z.array(algorithmSchema).min(1),
  /** Accepted `iss` value(s); left out, any issuer passes. */
  issuer: stringOrList.optional(),
  /** Accepted `aud` value(s), one of which the token must name; left out, any audience passes (set it). */
  audience: stringOrList.optional(),
  /** Clock skew allowed on exp, nbf and iat. */
  clockTolerance: duration()
    .pipe(z.number().int().min(0).max(600_000, 'expected a duration of at most 10m'))
    .default(60_000),
  /** Claims the token must carry (besides those issuer and audience imply). */
  requiredClaims: z.array(z.string().min(1)).default([]),
  /**
   * Where the token is: `bearer` (`Authorization: Bearer <token>`), `{ cookie: NAME }` or
   * `{ query: NAME }` (a query parameter; it ends up in logs, prefer the others).
   */
  from: z
    .union([z.literal('bearer'), z.strictObject({ cookie: z.string().min(1) }), z.strictObject({ query: z.string().min(1) })])
    .default('bearer'),
  /**
   * Claims sent on to the handler and upstream as request headers: `{ sub: x-user-id }`. A
   * dotted name reaches into objects (`realm_access.roles`). Strings go as they are, numbers and
   * booleans as text, lists joined with ", ", objects as JSON; a value that is not printable
   * ASCII or longer than 8 KiB is left out. Clients' own headers of these names are removed.
   */
  claimsToHeaders: z.record(z.string().min(1), setHeaderNameSchema).default({}),
  /** The realm in `WWW-Authenticate: Bearer realm="..."`. */
  realm: realmSchema.default('switchyard'),
});

export type JwtInput = z.input<typeof jwtSchema>;
export type JwtConfig = z.output<typeof jwtSchema>;

/** The token a request carries where `from` says, or undefined. */
function tokenOf(req: HttpRequest, from: JwtConfig['from']): string | undefined {
  if (from === 'bearer') {
    const m = /^bearer[ \t]+([^ \t]+)[ \t]*$/i.exec(firstHeader(req.headers.authorization) ?? '');
    return m?.[1];
  }
  if ('cookie' in from) {
    const header = req.headers.cookie;
    if (header === undefined) return undefined;
    for (const line of Array.isArray(header) ? header : [header]) {
      for (const pair of line.split(';')) {
        const eq = pair.indexOf('=');
        if (eq > 0 && pair.slice(0, eq).trim() === from.cookie) return pair.slice(eq + 1).trim().replace(/^"(.*)"$/, '$1') || undefined;
      }
    }
    return undefined;
  }
  const url = req.url ?? '';
  const q = url.indexOf('?');
  return q === -1 ? undefined : (new URLSearchParams(url.slice(q + 1)).get(from.query) ?? undefined);
}

/** A claim's value as a header value, or undefined when it cannot be one. */
function claimHeaderValue(payload: JWTPayload, claim: string): string | undefined {
  let value: unknown = payload[claim];
  if (value === undefined && claim.includes('.')) {
    value = payload;
    for (const part of claim.split('.')) value = value !== null && typeof value === 'object' && !Array.isArray(value) ? (value as Record<string, unknown>)[part] : undefined;
  }
  let text: string;
  if (value === undefined || value === null) return undefined;
  if (typeof value === 'string') text = value;
  else if (typeof value === 'number' || typeof value === 'boolean') text = String(value);
  else if (Array.isArray(value) && value.every((v) => typeof v === 'string' || typeof v === 'number')) text = value.join(', ');
  else text = JSON.stringify(value);
  return isHeaderValue(text) ? text : undefined;
}

/** A short reason for the client (and the log) why a token was refused, or undefined for an unexpected error. */
export function invalidTokenReason(err: unknown): string | undefined {
  if (err instanceof errors.JWTExpired) return 'token expired';
  if (err instanceof errors.JWTClaimValidationFailed) {
    const claim = err.claim.replace(/[^\w.-]/g, '');
    return err.reason === 'missing' ? `claim ${claim} missing` : `claim ${claim} not accepted`;
  }
  if (err instanceof errors.JOSEAlgNotAllowed) return 'algorithm not accepted';
  if (err instanceof errors.JWSSignatureVerificationFailed) return 'signature does not verify';
  if (err instanceof errors.JWKSNoMatchingKey) return 'no known key matches the token';
  if (err instanceof errors.JWKSMultipleMatchingKeys) return 'more than one key matches the token';
  if (err instanceof errors.JWSInvalid || err instanceof errors.JWTInvalid) return 'malformed token';
  if (err instanceof errors.JOSENotSupported) return 'unsupported token';
  if (err instanceof errors.JOSEError) return 'token not accepted';
  return undefined;
}

export function jwtAuth(config: JwtConfig, options: { baseDir?: string; now?: () => number } = {}): Middleware {
  const keys = new KeySource(config.jwks, options);
  const claims = Object.entries(config.claimsToHeaders);
  const spoofable = new Set(claims.map(([, header]) => header));
  const verifyOptions: JWTVerifyOptions = {
    algorithms: [...config.algorithms],
    issuer: config.issuer,
    audience: config.audience,
    clockTolerance: config.clockTolerance / 1000,
    requiredClaims: config.requiredClaims,
  };
  const realm = `Bearer realm="${config.realm}"`;

  return async (ctx, next) => {
    const { req, res } = ctx;
    removeRequestHeaders(req, spoofable);
    const token = tokenOf(req, config.from);
    if (token === undefined) return replyError(res, 401, 'bearer token required', { headers: { 'www-authenticate': realm } });
    let payload: JWTPayload;
    try {
      if (token.length > MAX_TOKEN_LENGTH) throw new errors.JWTInvalid('token too long');
      ({ payload } = await jwtVerify(token, (header, jws) => keys.key(header, jws, ctx.log), verifyOptions));
    } catch (err) {
      if (err instanceof KeysUnavailableError) {
        ctx.log.warn({ err: err.message }, 'jwt: no keys to check a token with');
        return replyError(res, 503, 'token signing keys unavailable', { headers: { 'retry-after': '5' } });
      }
      const reason = invalidTokenReason(err);
      if (reason === undefined) {
        ctx.log.error({ err }, 'jwt: token check failed');
        return replyError(res, 500, 'internal error');
      }
      ctx.log.debug({ reason }, 'jwt refused');
      return replyError(res, 401, `invalid token: ${reason}`, {
        headers: { 'www-authenticate': `${realm}, error="invalid_token", error_description="${reason}"` },
      });
    }
    for (const [claim, header] of claims) {
      const value = claimHeaderValue(payload, claim);
      if (value !== undefined) setRequestHeader(req, header, value);
    }
    return next();
  };
}

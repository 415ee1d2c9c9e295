import { performance } from 'node:perf_hooks';
import { z } from 'zod';
import { duration } from '../../config/units.ts';
import { replyError } from '../../handlers/http/reply.ts';
import type { Middleware } from '../types.ts';
import { parsePasswordHash, passwordHashProblem, verifyPassword, type PasswordHash } from './password-hash.ts';
import { firstHeader, removeRequestHeaders, setRequestHeader } from './request-headers.ts';
import { realmSchema, setHeaderNameSchema } from './schema.ts';
import { VerifiedCache } from './verified-cache.ts';

// HTTP Basic authentication (RFC 7617) against users listed in the config with password hashes
// (password-hash.ts). Missing or wrong credentials get 401 with `WWW-Authenticate: Basic`, which
// makes a browser ask. An unknown username costs the same hash check as a known one (against the
// first user's hash, whose cost the others share in practice), so response times do not tell
// which usernames exist. A success is remembered for `cacheTtl` (verified-cache.ts).
//
// The user who passed is told to the handler and upstream in `userHeader`; a client's own
// header of that name is always removed first, so it cannot claim to be someone.

/** Hash checks one basicAuth runs at once; beyond that requests get 503 (a flood of guesses costs CPU). */
export const MAX_CONCURRENT_CHECKS = 32;

const userSchema = z.strictObject({
  /** The name the client sends. Cannot hold `:` (Basic auth splits there) or control characters. */
  username: z
    .string()
    .min(1)
    .max(256)
    .refine((s) => !s.includes(':') && !/[\x00-\x1f\x7f]/.test(s), { message: 'a username cannot hold ":" or control characters' }),
  /**
   * The password's hash: bcrypt (`$2b$12$...`, also $2a$/$2y$, cost 4..15) or scrypt
   * (`$scrypt$ln=15,r=8,p=1$<base64 salt>$<base64 hash>`). A plain password is refused: make a
   * hash with `switchyard hash-password`.
   */
  password: z.string().superRefine((value, ctx) => {
    const problem = passwordHashProblem(value);
    if (problem) ctx.addIssue({ code: 'custom', message: problem });
  }),
});

export const basicAuthSchema = z.strictObject({
  /** The realm in `WWW-Authenticate: Basic realm="..."`; browsers may show it in their prompt. */
  realm: realmSchema.default('restricted'),
  /** Who may pass, each with a password hash. Usernames are distinct. */
  users: z
    .array(userSchema)
    .min(1)
    .superRefine((users, ctx) => {
      const seen = new Set<string>();
      users.forEach((u, i) => {
        if (seen.has(u.username)) ctx.addIssue({ code: 'custom', path: [i, 'username'], message: `user "${u.username}" is listed twice` });
        seen.add(u.username);
      });
    }),
  /**
   * Request header the authenticated username is sent in, to the handler and the upstream;
   * `false` sends none. A client's own header of this name is always removed.
   */
  userHeader: z.union([z.literal(false), setHeaderNameSchema]).default('x-authenticated-user'),
  /** Remove the Authorization header once it has been checked, so the upstream never sees the password. */
  stripAuthorization: z.boolean().default(false),
  /**
   * How long a successful check of one user's password is remembered, so that a client sending
   * it on every request pays one hash check, not one per request; 0 checks every time.
   */
  cacheTtl: duration()
    .pipe(z.number().int().min(0).max(3_600_000, 'expected a duration of at most 1h'))
    .default(300_000),
  /** Successful checks remembered at most (the oldest goes first). */
  cacheSize: z.number().int().min(1).max(1_000_000).default(1000),
});

export type BasicAuthInput = z.input<typeof basicAuthSchema>;
export type BasicAuthConfig = z.output<typeof basicAuthSchema>;

/** Username and password of an `Authorization: Basic` header, or undefined when it is not one. */
export function parseBasicAuthorization(header: string | undefined): { username: string; password: string } | undefined {
  if (header === undefined || header.length > 8192) return undefined;
  const m = /^basic[ \t]+([A-Za-z0-9+/]+={0,2})[ \t]*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  if (colon <= 0) return undefined;
  return { username: decoded.slice(0, colon), password: decoded.slice(colon + 1) };
}

export function basicAuth(config: BasicAuthConfig): Middleware {
  const users = new Map<string, PasswordHash>(config.users.map((u) => [u.username, parsePasswordHash(u.password)]));
  const decoy = users.values().next().value as PasswordHash;
  const cache = new VerifiedCache(config.cacheTtl, config.cacheSize);
  const challenge = { 'www-authenticate': `Basic realm="${config.realm}", charset="UTF-8"` };
  const userHeader = config.userHeader;
  const spoofable = new Set(userHeader === false ? [] : [userHeader]);
  let checking = 0;

  return (ctx, next) => {
    const { req, res } = ctx;
    removeRequestHeaders(req, spoofable);
    const credentials = parseBasicAuthorization(firstHeader(req.headers.authorization));
    if (!credentials) return replyError(res, 401, 'authentication required', { headers: challenge });
    const { username, password } = credentials;
    const hash = users.get(username);
    const pass = () => {
      if (userHeader !== false) setRequestHeader(req, userHeader, username);
      if (config.stripAuthorization) removeRequestHeaders(req, new Set(['authorization']));
      return next();
    };
    if (hash && cache.has(username, hash.encoded, password, performance.now())) return pass();
    if (checking >= MAX_CONCURRENT_CHECKS) return replyError(res, 503, 'too many password checks in progress', { headers: { 'retry-after': '1' } });
    checking++;
    return verifyPassword(password, hash ?? decoy).then(
      (ok) => {
        checking--;
        if (!ok || !hash) {
          ctx.log.debug({ user: username, known: hash !== undefined }, 'basic auth refused');
          return replyError(res, 401, 'wrong username or password', { headers: challenge });
        }
        cache.add(username, hash.encoded, password, performance.now());
        return pass();
      },
      (err: unknown) => {
        checking--;
        ctx.log.error({ err }, 'basic auth: password check failed');
        return replyError(res, 500, 'internal error');
      },
    );
  };
}

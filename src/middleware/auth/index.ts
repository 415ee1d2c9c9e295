import type { Middleware } from '../types.ts';
import { basicAuth, type BasicAuthConfig } from './basic.ts';
import { forwardAuth, type ForwardAuthConfig } from './forward.ts';
import { jwtAuth, type JwtConfig } from './jwt.ts';

// Authentication: basic (users with password hashes), jwt (bearer tokens checked against a key
// set) and forwardAuth (an authentication service decides). Each one set runs, in that order,
// and a request must pass every one that is set. See docs/auth.md.

export { basicAuth, basicAuthSchema, parseBasicAuthorization, type BasicAuthConfig, type BasicAuthInput } from './basic.ts';
export { jwtAuth, jwtSchema, invalidTokenReason, type JwtConfig, type JwtInput } from './jwt.ts';
export { jwksSchema, KeySource, KeysUnavailableError, type JwksConfig } from './jwks.ts';
export { forwardAuth, forwardAuthSchema, type ForwardAuthConfig, type ForwardAuthInput } from './forward.ts';
export { hashPassword, verifyPassword, parsePasswordHash, passwordHashProblem, type PasswordHash } from './password-hash.ts';

/** The authentication settings of one route (listener's merged with the route's); `false` is off. */
export interface AuthSettings {
  basicAuth?: BasicAuthConfig | false;
  jwt?: JwtConfig | false;
  forwardAuth?: ForwardAuthConfig | false;
}

/**
 * The authentication steps `settings` asks for. `shared` keeps one step per settings object, so
 * a listener-wide setting is one key set, one verification cache and one connection pool for
 * all its routes, not one each.
 */
export function authMiddleware(settings: AuthSettings, shared: Map<object, Middleware>, options: { baseDir?: string } = {}): Middleware[] {
  const chain: Middleware[] = [];
  const once = <C extends object>(config: C | false | undefined, build: (c: C) => Middleware): void => {
    if (!config) return;
    let step = shared.get(config);
    if (!step) {
      step = build(config);
      shared.set(config, step);
    }
    chain.push(step);
  };
  once(settings.basicAuth, basicAuth);
  once(settings.jwt, (c) => jwtAuth(c, options));
  once(settings.forwardAuth, forwardAuth);
  return chain;
}

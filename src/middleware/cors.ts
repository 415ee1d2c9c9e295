import type { CorsConfig } from '../config/schema.ts';
import type { Middleware } from './types.ts';

// CORS as browsers expect it: preflights (OPTIONS with Access-Control-Request-Method) answered
// here with 204 and never reach the handler; simple requests get the allow headers added.
// A disallowed origin gets no CORS headers at all, which is how a browser learns "no".

export function cors(options: CorsConfig): Middleware {
  const anyOrigin = options.origins.includes('*');
  const allowed = new Set(options.origins);
  const methods = options.methods.join(', ');
  const maxAge = String(Math.floor(options.maxAge / 1000));
  return (ctx, next) => {
    const { req, res } = ctx;
    const origin = req.headers.origin;
    if (origin === undefined) return next();
    const ok = anyOrigin || allowed.has(origin);
    if (ok) {
      // With credentials the spec forbids `*`, so the origin is reflected.
      res.setHeader('access-control-allow-origin', anyOrigin && !options.credentials ? '*' : origin);
      if (options.credentials) res.setHeader('access-control-allow-credentials', 'true');
    }
    if (!anyOrigin || options.credentials) res.appendHeader('vary', 'Origin');
    const preflight = req.method === 'OPTIONS' && req.headers['access-control-request-method'] !== undefined;
    if (preflight) {
      if (ok) {
        res.setHeader('access-control-allow-methods', methods);
        const asked = req.headers['access-control-request-headers'];
        const headers = options.allowHeaders.length > 0 ? options.allowHeaders.join(', ') : asked;
        if (headers) res.setHeader('access-control-allow-headers', headers);
        res.setHeader('access-control-max-age', maxAge);
      }
      res.writeHead(204, { 'content-length': 0 });
      res.end();
      return;
    }
    if (ok && options.exposeHeaders.length > 0) res.setHeader('access-control-expose-headers', options.exposeHeaders.join(', '));
    return next();
  };
}

import { z } from 'zod';

// The `proxy` handler's config. Everything about the backends themselves (targets, balancing,
// health, breaker, retries, timeouts, pools) lives in the named upstream group; this is only what
// one route does to a request on its way there and back.

const rewriteSchema = z.strictObject({
  /** A regular expression (JavaScript syntax) matched against the forwarded path, without the query. */
  from: z.string().min(1).refine(
    (v) => {
      try {
        new RegExp(v);
        return true;
      } catch {
        return false;
      }
    },
    { message: 'expected a valid regular expression' },
  ),
  /** The replacement; `$1`, `$<name>` refer to groups of `from`. Every match is replaced. */
  to: z.string(),
});

const VIA_EXPECTED = 'expected false or printable text such as "1.1 switchyard"';

export const proxySchema = z.strictObject({
  type: z.literal('proxy'),
  /** Name of a group under `upstreams:` (HTTP targets: `http://` or `https://`). */
  upstream: z.string().min(1),
  /**
   * Forward only the part of the path below the route's prefix: route `/api/*` and request
   * `/api/users?x=1` go upstream as `/users?x=1`. Default false: the full path is forwarded.
   */
  stripPrefix: z.boolean().default(false),
  /** Rewrites the forwarded path (after stripPrefix), e.g. `{ from: "^/v1/", to: "/" }`. The query is kept. */
  rewrite: rewriteSchema.optional(),
  /**
   * The Host header sent upstream: `preserve` the client's, `upstream` the target's own
   * `host:port`, or any other string sent as it is.
   */
  host: z.union([z.literal('preserve'), z.literal('upstream'), z.string().min(1).regex(/^[A-Za-z0-9.:[\]_-]+$/, 'expected "preserve", "upstream" or a host[:port]')]).default('preserve'),
  /**
   * Which forwarding fields go upstream: `both` (the default) X-Forwarded-For/-Proto/-Host and
   * Forwarded (RFC 7239); `x-forwarded` the X-Forwarded-* three only (what Caddy sends);
   * `rfc7239` Forwarded only; `none` neither (what nginx sends unless told). A client's copies of
   * a style not sent are still removed unless trustForwarded is true (then they pass unchanged),
   * so an upstream never sees a forged one.
   */
  forwarded: z
    .enum(['both', 'x-forwarded', 'rfc7239', 'none'], { error: 'expected "both", "x-forwarded", "rfc7239" or "none"' })
    .default('both'),
  /**
   * Trust X-Forwarded-For/-Proto/-Host and Forwarded from the client (a proxy in front of us):
   * true appends our hop to them (or passes them unchanged when `forwarded` leaves their style
   * out); false (the default) replaces or removes them, so a client cannot forge its address.
   */
  trustForwarded: z.boolean().default(false),
  /**
   * X-Forwarded-Client-Cert upstream (Envoy's header; the listener's tls.clientAuth gives the
   * certificate): `sanitize` (default) removes the client's and sends none; `sanitize-set`
   * removes the client's and sends ours for a verified certificate; `forward` passes the client's
   * on a connection with a verified certificate only; `append-forward` does that and appends ours.
   */
  forwardClientCert: z.enum(['sanitize', 'sanitize-set', 'forward', 'append-forward']).default('sanitize'),
  /** Proxy WebSocket upgrades on this route (to the same upstream group). */
  websocket: z.boolean().default(true),
  /**
   * The Via entry added to requests and responses (RFC 9110 §7.6.3), or false to add none (as
   * Envoy, Caddy and nginx do by default; a Via already there passes unchanged).
   */
  via: z
    .union([z.literal(false), z.string().regex(/^[\x21-\x7e]+(?: [\x21-\x7e]+)*$/, VIA_EXPECTED)], { error: VIA_EXPECTED })
    .default('1.1 switchyard'),
});

export type ProxyConfig = z.output<typeof proxySchema>;

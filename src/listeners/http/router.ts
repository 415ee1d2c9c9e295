import type { Socket } from 'node:net';
import type { RouteConfig } from '../../config/schema.ts';
import { clientCertificate, normalizeFingerprint } from '../../tls/client-cert.ts';

// Route matching: host, method and path, first match wins in config order. Matching runs on the
// path with only RFC 3986 "unreserved" escapes decoded (%41 -> A), so `/%61dmin` cannot slip
// past a route for `/admin`, while reserved escapes such as %2F stay encoded for the handler to
// judge. Dot segments are refused before matching: no route ever sees `/a/../b`.
//
// Upstreams do not all read a path the same way: nginx decodes %2F before matching its
// locations, WHATWG URL parsers (Node's `new URL`) take `\` for `/`, Servlet containers drop
// `;` path parameters (and take `..;` for `..`). A path holding any of these also has a lenient
// reading (lenientPath); the listener refuses a request whose two readings pick different routes,
// so `/api/%2fadmin/x` cannot miss a rule for `/api/admin/*` that its upstream would have hit.

export interface CompiledRoute<H> {
  readonly name: string;
  readonly index: number;
  readonly handler: H;
  readonly config: RouteConfig;
  matchHost(host: string): boolean;
  matchMethod(method: string): boolean;
  /** The connection's client certificate against `match.clientCert` (always true without it). */
  matchClient(socket: Socket): boolean;
  /** Returns the path below the route prefix (see HttpContext.pathRest), or undefined for no match. */
  matchPath(path: string): string | undefined;
  readonly methods: readonly string[] | undefined;
}

export function compilePath(pattern: string): (path: string) => string | undefined {
  if (pattern === '/*' || pattern === '/**') return (p) => p;
  const starAt = pattern.indexOf('*');
  if (starAt === -1) return (p) => (p === pattern ? p : undefined);
  if (starAt === pattern.length - 1 && pattern.endsWith('/*')) {
    const prefix = pattern.slice(0, -2);
    return (p) => {
      if (p === prefix) return '/';
      if (p.startsWith(prefix) && p.charCodeAt(prefix.length) === 47 /* / */) return p.slice(prefix.length);
      return undefined;
    };
  }
  const source = pattern
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : part.replace(/[.+?^${}()|[\]\\]/g, '\\$&')))
    .join('');
  const re = new RegExp(`^${source}$`);
  return (p) => (re.test(p) ? p : undefined);
}

function compileHost(host: string | string[] | undefined): (host: string) => boolean {
  if (host === undefined) return () => true;
  const patterns = (Array.isArray(host) ? host : [host]).map((h) => h.toLowerCase());
  return (actual) =>
    patterns.some((p) => (p.startsWith('*.') ? actual.endsWith(p.slice(1)) && actual.length > p.length - 1 : actual === p));
}

const list = (v: string | string[] | undefined): string[] | undefined => (v === undefined ? undefined : Array.isArray(v) ? v : [v]);

/**
 * `match.clientCert`: every field given must match the connection's certificate. Identity fields
 * (subject, fingerprint, uri, dns) and `verified: true` (the default) need a verified one, so a
 * self-made certificate with the right subject never passes; `verified: false` matches requests
 * without a verified certificate.
 */
export function compileClientCert(m: RouteConfig['match']['clientCert']): (socket: Socket) => boolean {
  if (m === undefined) return () => true;
  if (m.verified === false) return (socket) => clientCertificate(socket)?.verified !== true;
  const subjects = list(m.subject);
  const fingerprints = list(m.fingerprint)?.map(normalizeFingerprint);
  const uris = list(m.uri);
  const dns = list(m.dns)?.map((d) => d.toLowerCase());
  return (socket) => {
    const c = clientCertificate(socket);
    if (!c || !c.verified) return false;
    if (subjects && !subjects.includes(c.subject)) return false;
    if (fingerprints && !fingerprints.includes(c.fingerprint256)) return false;
    if (uris && !c.uris.some((u) => uris.includes(u))) return false;
    if (dns && !c.dns.some((d) => dns.includes(d.toLowerCase()))) return false;
    return true;
  };
}

export function compileRoutes<H>(routes: RouteConfig[], handlers: H[]): CompiledRoute<H>[] {
  return routes.map((route, index) => {
    const methods = route.match.method === undefined ? undefined : (Array.isArray(route.match.method) ? route.match.method : [route.match.method]).map((m) => m.toUpperCase());
    const matchPath = compilePath(route.match.path);
    return {
      name: route.name ?? route.match.path,
      index,
      handler: handlers[index],
      config: route,
      methods,
      matchHost: compileHost(route.match.host),
      matchClient: compileClientCert(route.match.clientCert),
      // TRACE echoes the request back, cookies and all (cross-site tracing): a route takes it only
      // when it names it.
      matchMethod: methods === undefined ? (m) => m !== 'TRACE' : (m) => methods.includes(m) || (m === 'HEAD' && methods.includes('GET')),
      matchPath,
    };
  });
}

const UNRESERVED_ESCAPE = /%(2[dDeE]|3[0-9]|[46][1-9a-fA-F]|[57][0-9aA]|5[fF]|7[eE])/g;

/**
 * The request target's path, normalised for matching; undefined when it is not a plain
 * origin-form path or holds dot segments (the caller answers 400).
 */
export function normalisePath(url: string): string | undefined {
  const q = url.indexOf('?');
  let path = q === -1 ? url : url.slice(0, q);
  if (path.charCodeAt(0) !== 47 /* / */) return undefined;
  if (path.includes('%')) {
    path = path.replace(UNRESERVED_ESCAPE, (m) => String.fromCharCode(parseInt(m.slice(1), 16)));
  }
  // `/.`, `/..` as whole segments (also at the end) are never legitimate in a request we route.
  if (/\/\.\.?(\/|$)/.test(path)) return undefined;
  return path;
}

const SEPARATOR_LIKE = /%2f|%5c|\\|;/i;

/**
 * `path` (normalised) as an upstream that decodes %2F and %5C, takes `\` for `/` and drops `;`
 * path parameters would read it, runs of `/` merged when `mergeSlashes`; undefined when the path
 * holds none of these, or `''` when that reading holds dot segments (the caller answers 400).
 */
export function lenientPath(path: string, mergeSlashes: boolean): string | undefined {
  if (!SEPARATOR_LIKE.test(path)) return undefined;
  let p = path.replace(/%2f|%5c|\\/gi, '/').replace(/;[^/]*/g, '');
  if (mergeSlashes) p = p.replace(/\/{2,}/g, '/');
  return /\/\.\.?(\/|$)/.test(p) ? '' : p;
}

/**
 * The host of a Host value, lower case, without port and without the trailing dot of a fully
 * qualified name (`Admin.Example.:80` -> `admin.example`): DNS, nginx and most upstreams take
 * `admin.example.` for `admin.example`, so a route for the one must match the other.
 */
export function hostOf(header: string | undefined): string {
  if (!header) return '';
  const h = header.toLowerCase();
  if (h.startsWith('[')) return h.slice(0, h.indexOf(']') + 1);
  const colon = h.indexOf(':');
  const name = colon === -1 ? h : h.slice(0, colon);
  return name.endsWith('.') ? name.slice(0, -1) : name;
}

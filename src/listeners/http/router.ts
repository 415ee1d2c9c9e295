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
//
// Parameters (`/users/:id`, `/files/*path`) match on that same normalised path: `:id` is one
// non-empty segment, where `%2F` is still encoded and so part of the segment; only the value
// handed to the handler is decoded (decodeURIComponent, so `a%2Fb` -> `a/b`). The lenient
// check above still applies: `/users/a%2Fb` is served by `/users/:id` only if `/users/a/b` picks
// that route too.

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
  /**
   * The named parameters of `path` (one matchPath took), percent-decoded; NO_PARAMS for a route
   * without any; undefined when a value holds a malformed escape (the caller answers 400).
   */
  params(path: string): PathParams | undefined;
  readonly methods: readonly string[] | undefined;
}

/** A route's named path parameters (HttpContext.params): `/users/:id` -> `{ id }`. */
export type PathParams = Readonly<Record<string, string>>;

/**
 * The params of every request on a route without parameters: one frozen object, so the hot path
 * allocates nothing for them. Params objects have no prototype: a parameter named `constructor`
 * or `__proto__` is just a value.
 */
export const NO_PARAMS: PathParams = Object.freeze(Object.create(null) as Record<string, string>);

/** A compiled `match.path`. */
export interface PathPattern {
  /** The path below the pattern's prefix (HttpContext.pathRest), or undefined for no match. */
  match(path: string): string | undefined;
  /** The parameters of a path `match` took, percent-decoded; undefined when an escape is malformed. */
  params(path: string): PathParams | undefined;
  /** The parameter names, in pattern order; empty for a pattern without. */
  readonly names: readonly string[];
}

const PARAM_NAME = /^[A-Za-z_][A-Za-z0-9_]*$/;

/** One segment of a pattern with parameters. */
type Segment = { kind: 'literal'; text: string } | { kind: 'param'; name: string } | { kind: 'rest'; name: string | undefined };

/** The segments of `pattern`, or what is wrong with it (a config error for `match.path`). */
function parsePattern(pattern: string): Segment[] | string {
  if (pattern.charCodeAt(0) !== 47 /* / */) return 'a path pattern starts with "/"';
  const parts = pattern.slice(1).split('/');
  const segments: Segment[] = [];
  const seen = new Set<string>();
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const last = i === parts.length - 1;
    let name: string | undefined;
    let kind: 'param' | 'rest' | undefined;
    // `*name` as a whole segment is a parameter; `*` with anything else (`*.png`) stays a glob.
    if (part.startsWith(':')) {
      name = part.slice(1);
      kind = 'param';
      if (!PARAM_NAME.test(name)) return `"${part}": a parameter is a whole segment, ":" and a name of letters, digits and "_" not starting with a digit (as in /users/:id)`;
    } else if (part.length > 1 && part[0] === '*' && PARAM_NAME.test(part.slice(1))) {
      name = part.slice(1);
      kind = 'rest';
      if (!last) return `"${part}" takes the rest of the path, so it must be the last segment (as in /files/*path)`;
    }
    if (name === undefined || kind === undefined) {
      segments.push({ kind: 'literal', text: part });
      continue;
    }
    if (seen.has(name)) return `parameter "${name}" appears twice`;
    seen.add(name);
    segments.push(kind === 'param' ? { kind: 'param', name } : { kind: 'rest', name });
  }
  return segments;
}

/** What is wrong with a `match.path` pattern, or undefined when it is a good one. */
export function pathPatternProblem(pattern: string): string | undefined {
  const parsed = parsePattern(pattern);
  return typeof parsed === 'string' ? parsed : undefined;
}

const escapeRegExp = (text: string): string => text.replace(/[.+?^${}()|[\]\\]/g, '\\$&');

/** A literal segment (globs included: `*` within a segment, `**` across) as regex source. */
const globSource = (text: string): string =>
  text
    .split(/(\*\*|\*)/)
    .map((part) => (part === '**' ? '.*' : part === '*' ? '[^/]*' : escapeRegExp(part)))
    .join('');

/**
 * Regex source for a pattern with parameters, one named group per parameter (`:name` ->
 * `(?<name>[^/]+)`; a trailing `*name` or `*` -> the group `rest`, or `name`, after an
 * optional `/`). Also used by rewrites, whose `to` refers to the groups by name.
 */
export function patternSource(pattern: string): { source: string; names: string[]; restGroup: string | undefined } {
  const segments = parsePattern(pattern);
  if (typeof segments === 'string') throw new Error(`match.path ${JSON.stringify(pattern)}: ${segments}`);
  const names: string[] = [];
  let source = '';
  let restGroup: string | undefined;
  for (let i = 0; i < segments.length; i++) {
    const s = segments[i];
    const last = i === segments.length - 1;
    if (s.kind === 'param') {
      names.push(s.name);
      source += `/(?<${s.name}>[^/]+)`;
    } else if (s.kind === 'rest' || (last && s.text === '*')) {
      // `/x/*rest` and `/x/*` take `/x` too, with an empty rest, as a prefix route does.
      const name = s.kind === 'rest' ? s.name : undefined;
      if (name !== undefined) names.push(name);
      // `$` is not a parameter name character: the unnamed rest's group cannot clash with one.
      restGroup = name ?? '$rest';
      source += `(?:/(?<${restGroup}>.*))?`;
    } else source += `/${globSource(s.text)}`;
  }
  return { source, names, restGroup };
}

const PARAM_OR_REST = /(?:^|\/)(?::|\*[A-Za-z_])/;

/**
 * A `match.path` pattern: exact (`/health`), prefix (`/static/*`), glob (`*` within a segment,
 * `**` across), or with parameters (`/users/:id`, `/files/*path`). Exact and prefix patterns
 * compare strings; a pattern with parameters is one regex, run once per path (the last path
 * and its match are kept for `params`, which follows `match` on the same path).
 */
export function compilePattern(pattern: string): PathPattern {
  if (!PARAM_OR_REST.test(pattern)) return { match: compilePath(pattern), params: () => NO_PARAMS, names: [] };
  const { source, names, restGroup } = patternSource(pattern);
  if (names.length === 0) return { match: compilePath(pattern), params: () => NO_PARAMS, names };
  const re = new RegExp(`^${source}$`);
  let lastPath: string | undefined;
  let lastMatch: RegExpExecArray | null = null;
  const exec = (path: string): RegExpExecArray | null => {
    if (path !== lastPath) {
      lastMatch = re.exec(path);
      lastPath = path;
    }
    return lastMatch;
  };
  return {
    names,
    match(path) {
      const m = exec(path);
      if (m === null) return undefined;
      return restGroup === undefined ? path : `/${m.groups?.[restGroup] ?? ''}`;
    },
    params(path) {
      const groups = exec(path)?.groups;
      if (groups === undefined) return undefined;
      const params: Record<string, string> = Object.create(null) as Record<string, string>;
      for (const name of names) {
        const raw = groups[name] ?? '';
        if (!raw.includes('%')) params[name] = raw;
        else {
          try {
            params[name] = decodeURIComponent(raw);
          } catch {
            return undefined;
          }
        }
      }
      return Object.freeze(params);
    },
  };
}

/** A pattern without parameters as a function of the path to its pathRest (see compilePattern). */
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
  const re = new RegExp(`^${globSource(pattern)}$`);
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
    const pattern = compilePattern(route.match.path);
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
      matchPath: pattern.match,
      params: pattern.params,
    };
  });
}

/** A `.` or `..` segment, also at the end of the path. */
const DOT_SEGMENT = /\/\.\.?(\/|$)/;
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
  // (Both need a `/.`: most paths have none, and skip the regex.)
  if (path.includes('/.') && DOT_SEGMENT.test(path)) return undefined;
  return path;
}

const SEPARATOR_LIKE = /%2f|%5c|\\|;/i;

/**
 * `path` (normalised) as an upstream that decodes %2F and %5C, takes `\` for `/` and drops `;`
 * path parameters would read it, runs of `/` merged when `mergeSlashes`; undefined when the path
 * holds none of these, or `''` when that reading holds dot segments (the caller answers 400).
 */
export function lenientPath(path: string, mergeSlashes: boolean): string | undefined {
  // Each of these holds `%`, `\` or `;`: a path with none (most) skips the regex.
  if ((path.indexOf('%') === -1 && path.indexOf('\\') === -1 && path.indexOf(';') === -1) || !SEPARATOR_LIKE.test(path)) return undefined;
  let p = path.replace(/%2f|%5c|\\/gi, '/').replace(/;[^/]*/g, '');
  if (mergeSlashes) p = p.replace(/\/{2,}/g, '/');
  return DOT_SEGMENT.test(p) ? '' : p;
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

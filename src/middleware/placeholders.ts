import type { TLSSocket } from 'node:tls';
import type { HttpContext, HttpRequest } from '../handlers/types.ts';

// Placeholders: `{client_ip} {request_id}` in header rules, redirect targets and error pages.
// A template is compiled once, when the config is read, into a list of literal strings and
// getters; a request only runs the getters and joins. An unknown placeholder is a config error
// (listing the known ones), so a typo never goes out as literal text.
//
// Syntax: `{name}` is a placeholder; `{{` and `}}` are a literal `{` and `}`. A `}` on its own is
// literal text; a `{` that does not start a known placeholder is an error.

/** What a placeholder reads: a request's context (HttpContext has all of it). */
export interface PlaceholderContext {
  readonly req: HttpRequest;
  readonly listener: string;
  /** The route's name; empty before a route is chosen (a 404 for no route). */
  readonly route: string;
  /** Empty before the request-id middleware has run (or with it turned off). */
  readonly requestId: string;
  readonly pathRest: string;
  /** The route's named path parameters (`/users/:id`); read as empty when absent. */
  readonly params?: HttpContext['params'];
}

/** Values only some templates have: an error page's status and reason, a redirect's regex match. */
export interface TemplateExtras {
  readonly status?: number;
  readonly reason?: string;
  readonly match?: RegExpExecArray | null;
}

/** A compiled template: call it with a request's context to get the text. */
export interface Template {
  (ctx: PlaceholderContext, extras?: TemplateExtras): string;
  /** The literal text before the first placeholder (the whole text when there is none). */
  readonly prefix: string;
  /** Whether the text has no placeholder at all (the same for every request). */
  readonly constant: boolean;
}

export interface TemplateOptions {
  /** Allow `{status}` and `{reason}` (error pages). */
  readonly errorPage?: boolean;
  /** Allow `{re.N}` (N up to `count`) and `{re.NAME}` for a regex's capture groups (redirects). */
  readonly captures?: { readonly count: number; readonly names: readonly string[] };
  /** Applied to every placeholder's value, never to the literal text (HTML escaping, header-safe text). */
  readonly escape?: (value: string) => string;
}

/** A template that cannot be compiled; the message says why, the caller names the field. */
export class TemplateError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TemplateError';
  }
}

type Getter = (ctx: PlaceholderContext, extras: TemplateExtras | undefined) => string;

/** The client's address as a plain IP (`::ffff:1.2.3.4` -> `1.2.3.4`). */
function clientIp(req: HttpRequest): string {
  const a = req.socket?.remoteAddress ?? '';
  return a.startsWith('::ffff:') && a.includes('.') ? a.slice(7) : a;
}

function pathOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? url : url.slice(0, q);
}

function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 ? '' : url.slice(q + 1);
}

const SIMPLE: Record<string, { getter: Getter; doc: string }> = {
  client_ip: { getter: (c) => clientIp(c.req), doc: 'the client address (IPv4 without the ::ffff: prefix)' },
  client_port: { getter: (c) => String(c.req.socket?.remotePort ?? ''), doc: 'the client port' },
  method: { getter: (c) => c.req.method ?? '', doc: 'the request method' },
  host: { getter: (c) => c.req.headers.host ?? '', doc: 'the Host (HTTP/2: :authority) as sent' },
  path: { getter: (c) => pathOf(c.req.url ?? '/'), doc: 'the request path, still percent-encoded, without the query' },
  path_rest: { getter: (c) => c.pathRest, doc: 'the path below the route prefix (`/a` for `/static/a` on `/static/*`)' },
  query: { getter: (c) => queryOf(c.req.url ?? ''), doc: 'the query string without `?` (empty when none)' },
  uri: { getter: (c) => c.req.url ?? '/', doc: 'path and query as sent' },
  scheme: { getter: (c) => ((c.req.socket as TLSSocket | undefined)?.encrypted ? 'https' : 'http'), doc: '`https` on a TLS listener, else `http`' },
  request_id: { getter: (c) => c.requestId, doc: 'the request id (x-request-id)' },
  route: { getter: (c) => c.route, doc: 'the route name' },
  listener: { getter: (c) => c.listener, doc: 'the listener name' },
};

/** The placeholders every template knows, with what they are (for docs and error messages). */
export const KNOWN_PLACEHOLDERS: readonly string[] = [...Object.keys(SIMPLE).map((n) => `{${n}}`), '{header.NAME}', '{params.NAME}'];

const NAME = /^[a-z_]+(?:\.[A-Za-z0-9_-]+)?$/;
const HEADER_NAME = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

function getterFor(name: string, options: TemplateOptions): Getter | undefined {
  const simple = SIMPLE[name];
  if (simple) return simple.getter;
  if (options.errorPage) {
    if (name === 'status') return (_c, x) => String(x?.status ?? '');
    if (name === 'reason') return (_c, x) => x?.reason ?? '';
  }
  const dot = name.indexOf('.');
  if (dot === -1) return undefined;
  const kind = name.slice(0, dot);
  const key = name.slice(dot + 1);
  if (kind === 'header') {
    if (!HEADER_NAME.test(key)) throw new TemplateError(`{${name}}: "${key}" is not a header name`);
    const lower = key.toLowerCase();
    return (c) => {
      const v = c.req.headers[lower];
      return v === undefined ? '' : Array.isArray(v) ? v.join(', ') : v;
    };
  }
  if (kind === 'params') return (c) => c.params?.[key] ?? '';
  if (kind === 're' && options.captures) {
    const { count, names } = options.captures;
    if (/^\d+$/.test(key)) {
      const n = Number(key);
      if (n > count) throw new TemplateError(`{${name}}: the pattern has ${count} capture group(s)`);
      return (_c, x) => x?.match?.[n] ?? '';
    }
    if (!names.includes(key)) throw new TemplateError(`{${name}}: the pattern has no group named "${key}"${names.length ? ` (named groups: ${names.join(', ')})` : ''}`);
    return (_c, x) => x?.match?.groups?.[key] ?? '';
  }
  return undefined;
}

function known(options: TemplateOptions): string {
  const extra = [...(options.errorPage ? ['{status}', '{reason}'] : []), ...(options.captures ? ['{re.N}', '{re.NAME}'] : [])];
  return [...KNOWN_PLACEHOLDERS, ...extra].join(', ');
}

/** Compiles `text`; throws TemplateError for an unknown placeholder or an unclosed `{`. */
export function compileTemplate(text: string, options: TemplateOptions = {}): Template {
  const parts: (string | Getter)[] = [];
  let literal = '';
  let i = 0;
  while (i < text.length) {
    const ch = text[i];
    if (ch === '}') {
      literal += '}';
      i += text[i + 1] === '}' ? 2 : 1;
      continue;
    }
    if (ch !== '{') {
      literal += ch;
      i++;
      continue;
    }
    if (text[i + 1] === '{') {
      literal += '{';
      i += 2;
      continue;
    }
    const close = text.indexOf('}', i + 1);
    if (close === -1) throw new TemplateError(`unclosed "{" at position ${i} (write {{ for a literal "{")`);
    const name = text.slice(i + 1, close);
    const getter = NAME.test(name) ? getterFor(name, options) : undefined;
    if (!getter) throw new TemplateError(`unknown placeholder {${name}} (write {{ for a literal "{"); known: ${known(options)}`);
    if (literal !== '') parts.push(literal);
    literal = '';
    const escape = options.escape;
    parts.push(escape ? (c, x) => escape(getter(c, x)) : getter);
    i = close + 1;
  }
  if (literal !== '') parts.push(literal);
  const prefix = typeof parts[0] === 'string' ? parts[0] : '';
  if (parts.every((p) => typeof p === 'string')) {
    const constant = parts.join('');
    return Object.assign(() => constant, { prefix: constant, constant: true });
  }
  const render = (ctx: PlaceholderContext, extras?: TemplateExtras): string => {
    let out = '';
    for (const p of parts) out += typeof p === 'string' ? p : p(ctx, extras);
    return out;
  };
  return Object.assign(render, { prefix, constant: false });
}

/** `c` as %XX of its UTF-8 bytes (a lone surrogate as U+FFFD's). */
export function percentEncoded(c: string): string {
  let out = '';
  for (const b of Buffer.from(c, 'utf8')) out += `%${b < 16 ? '0' : ''}${b.toString(16).toUpperCase()}`;
  return out;
}

/** Escapes text for HTML element content and attribute values. */
export function escapeHtml(value: string): string {
  return value.replace(/[&<>"']/g, (c) => (c === '&' ? '&amp;' : c === '<' ? '&lt;' : c === '>' ? '&gt;' : c === '"' ? '&quot;' : '&#39;'));
}

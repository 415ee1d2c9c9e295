import { z } from 'zod';
import type { HandlerModule } from './types.ts';
import { replyError, replyText } from './http/reply.ts';
import { compileTemplate, percentEncoded, TemplateError, type Template } from '../middleware/placeholders.ts';

// Redirects: `to` is a template (placeholders.ts) for the Location, with `from`, a regular
// expression on the request path, whose captures it may use as $1..$9, {re.N} or {re.NAME}.
// Everything is compiled when the config is read: an invalid pattern or an unknown placeholder
// is a config error naming the field.
//
// Safety:
//   - header injection: the Location is percent-encoded outside printable ASCII, so CR, LF, tabs,
//     spaces and anything decoded from the client (a %0d%0a in a parameter) cannot end the field
//     or start another;
//   - open redirects: when the target's scheme and host are fixed in the config (a literal
//     `https://host/...`, a path `/x...`), client input can only change the rest. When they are
//     not (the target begins with a placeholder or capture, `/{re.1}`, `https://{host}...`), the
//     result must be a path on this site (`/a`, not `//evil.example` or `/\evil.example`), or on
//     the site the config wrote (`https://example.com$1` may not become
//     `https://example.com.evil.example`), or the request gets 400, unless `allowExternal` says
//     the client may choose the site;
//   - patterns: at most MAX_PATTERN characters, and matched against the path only (bounded by the
//     listener's header size limit); JavaScript regular expressions backtrack, so a pattern with
//     nested quantifiers (`(a+)+$`) can still take long on a crafted path: docs/headers.md.

/** The longest `from` pattern, in characters. */
export const MAX_PATTERN = 512;

export const schema = z
  .strictObject({
    type: z.literal('redirect'),
    /**
     * Where to: a URL or path, with placeholders ({path}, {query}, {host}, {params.NAME},
     * {header.NAME}...) and, with `from`, its captures as $1..$9 (`$$` for a literal `$`), {re.N}
     * or {re.NAME}.
     */
    to: z.string().min(1).max(8192),
    /** A regular expression on the request path (percent-encoded, without the query); a path it does not match gets 404. */
    from: z.string().min(1).max(MAX_PATTERN, `a pattern may have at most ${MAX_PATTERN} characters`).optional(),
    /** 301 and 308 are permanent (browsers cache them); 307 and 308 keep the method and body; 303 turns it into GET. */
    status: z.union([z.literal(301), z.literal(302), z.literal(303), z.literal(307), z.literal(308)]).default(302),
    /** Append the request's query to the target (after `&` when the target has a query already). */
    preserveQuery: z.boolean().default(true),
    /** Let client input choose the target's site (a placeholder or capture where its scheme or host is). Off: such a request gets 400. */
    allowExternal: z.boolean().default(false),
  })
  .superRefine((config, ctx) => {
    try {
      compileRedirect(config);
    } catch (err) {
      if (!(err instanceof RedirectConfigError)) throw err;
      ctx.addIssue({ code: 'custom', path: [err.field], message: err.message });
    }
  });

export type RedirectConfig = z.output<typeof schema>;

class RedirectConfigError extends Error {
  constructor(
    readonly field: 'from' | 'to',
    message: string,
  ) {
    super(message);
  }
}

/** `$1` -> `{re.1}`, `$$` -> `$`; any other `$` is literal. */
function dollarsToPlaceholders(to: string, hasPattern: boolean): string {
  return to.replace(/\$(\$|\d)/g, (_m, what: string) => {
    if (what === '$') return '$';
    if (!hasPattern) throw new RedirectConfigError('to', `$${what} is a capture of \`from\`, which is not set (write $$ for a literal "$")`);
    return `{re.${what}}`;
  });
}

/** Whether a target beginning with `prefix` (literal text) has its site fixed: nothing after it can change scheme or host. */
function siteFixed(prefix: string): boolean {
  return /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\]*[/?#]/i.test(prefix) || /^\/[^/\\]/.test(prefix) || /^[^:/?#\\]+[/?#]/.test(prefix) || /^[?#]/.test(prefix);
}

/** Whether a rendered target stays on this site: a path (not `//host`, not `/\host`), a relative reference, or a query. */
function staysOnSite(location: string): boolean {
  return /^\/(?![/\\])/.test(location) || /^[?#]/.test(location) || /^[^:/?#\\]+(?:[/?#]|$)/.test(location);
}

/** Location text: printable ASCII stays (`%` too: the path is still percent-encoded); the rest is percent-encoded. */
function locationSafe(value: string): string {
  return /^[\x21-\x7e]*$/.test(value) ? value : value.replace(/[^\x21-\x7e]/gu, percentEncoded);
}

interface CompiledRedirect {
  readonly pattern: RegExp | undefined;
  readonly target: Template;
  /** The site is not fixed by the config: a rendered target must stay on this one (or on `origin`). */
  readonly checkSite: boolean;
  /** `https://host` when the config writes one but a placeholder follows it directly. */
  readonly origin: string | undefined;
}

/** Whether `location` is on `origin`: it, then the end, `/`, `?` or `#` (not `.evil.example` or `@evil.example`). */
function onOrigin(location: string, origin: string | undefined): boolean {
  if (origin === undefined || !location.startsWith(origin)) return false;
  const next = location.charCodeAt(origin.length);
  return Number.isNaN(next) || next === 47 /* / */ || next === 63 /* ? */ || next === 35 /* # */;
}

function compileRedirect(config: RedirectConfig): CompiledRedirect {
  let pattern: RegExp | undefined;
  let captures: { count: number; names: string[] } | undefined;
  if (config.from !== undefined) {
    try {
      pattern = new RegExp(config.from);
    } catch (err) {
      throw new RedirectConfigError('from', `not a valid regular expression: ${err instanceof Error ? err.message : String(err)}`);
    }
    // An alternative that always matches shows the pattern's groups without running it on anything.
    const empty = new RegExp(`${config.from}|`).exec('')!;
    captures = { count: empty.length - 1, names: Object.keys(empty.groups ?? {}) };
  }
  let target: Template;
  try {
    target = compileTemplate(dollarsToPlaceholders(config.to, pattern !== undefined), { captures });
  } catch (err) {
    if (err instanceof TemplateError) throw new RedirectConfigError('to', err.message);
    throw err;
  }
  const checkSite = !config.allowExternal && !target.constant && !siteFixed(target.prefix);
  return { pattern, target, checkSite, origin: /^[a-z][a-z0-9+.-]*:\/\/[^/?#\\@]+/i.exec(target.prefix)?.[0] };
}

/** The request's query with its `?`, or '' when none. */
function queryOf(url: string): string {
  const q = url.indexOf('?');
  return q === -1 || q === url.length - 1 ? '' : url.slice(q);
}

/** `location` with `query` (`?a=1`) appended before any fragment, joined with `&` to a query it has. */
function withQuery(location: string, query: string): string {
  const hash = location.indexOf('#');
  const [base, fragment] = hash === -1 ? [location, ''] : [location.slice(0, hash), location.slice(hash)];
  return `${base}${base.includes('?') ? `&${query.slice(1)}` : query}${fragment}`;
}

export const redirectHandler: HandlerModule<RedirectConfig> = {
  type: 'redirect',
  summary: 'answers with a redirect (301-308) to a target built from placeholders and regex captures',
  schema,
  http: (config) => {
    const { pattern, target, checkSite, origin } = compileRedirect(config);
    const status = config.status;
    return {
      handle(ctx) {
        const url = ctx.req.url ?? '/';
        let match: RegExpExecArray | null = null;
        if (pattern) {
          const q = url.indexOf('?');
          match = pattern.exec(q === -1 ? url : url.slice(0, q));
          if (!match) return replyError(ctx.res, 404, 'not found');
        }
        let location = locationSafe(target(ctx, { match }));
        if (checkSite && !staysOnSite(location) && !onOrigin(location, origin)) return replyError(ctx.res, 400, 'the redirect target would leave this site');
        const query = config.preserveQuery ? queryOf(url) : '';
        if (query !== '') location = withQuery(location, locationSafe(query));
        replyText(ctx.res, status, `redirecting to ${location}\n`, { location });
      },
    };
  },
};

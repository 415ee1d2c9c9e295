import { ServerResponse, type OutgoingHttpHeaders } from 'node:http';
import type { H2ServerStream } from '../listeners/http/h2-engine/stream.ts';
import { z } from 'zod';
import { http2Stream, type HttpResponse } from '../handlers/types.ts';
import { compileTemplate, percentEncoded, TemplateError, type PlaceholderContext, type Template } from './placeholders.ts';
import type { Middleware } from './types.ts';

// Header rules: set, add and remove fields of the request (before the handler sees it, so a
// proxy forwards the result) and of the response (when its head goes out, so they reach every
// answer of the route: a handler's, a proxied one, and the daemon's own refusals after this
// step: a 404 of static, a 502 of the proxy, a 429 of the rate limit).
//
// Order within one side: remove, then set (replaces every field of the name), then add (one
// more field, after those there). Values are templates (placeholders.ts) rendered per request; a
// value that comes out empty is not sent (so `X-User: {header.x-user}` sends nothing when the
// client sent none), and `set` has removed the field all the same.
//
// Request fields are changed in place in both req.headers (what handlers read) and
// req.rawHeaders (what the proxy forwards from). Response fields are applied when the head is
// written: HTTP/1.1 by the response's writeHead (node calls it for an implicit head too), HTTP/2
// by its stream's respond/respondWithFD, so a handler writing to the stream
// directly (static's file bodies, gRPC) is covered as well. Not covered: 1xx interim responses
// and the 101 of a WebSocket upgrade.

const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;
/** What a literal header value may hold (RFC 9110 field-value: no CR, LF, NUL or other controls). */
const FIELD_TEXT = /^[\t\x20-\x7e\x80-\xff]*$/;
/** Characters a rendered value may not carry into a header; percent-encoded instead. */
const UNSAFE = /[^\t\x20-\x7e\x80-\xff]/gu;
const MAX_VALUE = 8192;
const MAX_RULES = 64;

/** Fields that are the daemon's to write, with why; no rule may touch them. */
const FORBIDDEN: Record<string, string> = {
  connection: 'a hop-by-hop field (RFC 9110 §7.6.1)',
  'keep-alive': 'a hop-by-hop field (RFC 9110 §7.6.1)',
  'proxy-connection': 'a hop-by-hop field',
  te: 'a hop-by-hop field (RFC 9110 §7.6.1)',
  trailer: 'a hop-by-hop field (RFC 9110 §7.6.1)',
  'transfer-encoding': 'a hop-by-hop field that frames the body (the daemon frames it)',
  upgrade: 'a hop-by-hop field (RFC 9110 §7.6.1)',
  'http2-settings': 'a hop-by-hop field of the h2c upgrade',
  'content-length': 'it frames the body (the daemon writes it from the body it sends)',
};
const FORBIDDEN_REQUEST: Record<string, string> = {
  host: 'it was used to route the request; the Host sent upstream is the proxy handler\'s `host` option',
};

const ruleSetSchema = z.strictObject({
  /** Fields to remove (any case). `remove: [server]` on the response hides an upstream's Server. */
  remove: z.array(z.string()).max(MAX_RULES).optional(),
  /** Fields to replace: every field of the name goes, this one value is sent. Values are templates. */
  set: z.record(z.string(), z.string().max(MAX_VALUE)).optional(),
  /** Fields to add, keeping those already there. Values are templates. */
  add: z.record(z.string(), z.string().max(MAX_VALUE)).optional(),
});

type RuleSetConfig = z.output<typeof ruleSetSchema>;

/** Checks one side's rules, reporting each problem at its field. */
function checkRuleSet(rules: RuleSetConfig, side: 'request' | 'response', report: (path: (string | number)[], message: string) => void): void {
  const checkName = (name: string, path: (string | number)[]): string | undefined => {
    if (name.startsWith(':')) return report(path, `"${name}" is an HTTP/2 pseudo-header field: it is the protocol's and cannot be changed by a rule`), undefined;
    if (!TOKEN.test(name)) return report(path, `"${name}" is not a valid header name`), undefined;
    const lower = name.toLowerCase();
    const why = FORBIDDEN[lower] ?? (side === 'request' ? FORBIDDEN_REQUEST[lower] : undefined);
    if (why) return report(path, `"${name}" cannot be changed by a rule: ${why}`), undefined;
    return lower;
  };
  const removed = new Set<string>();
  (rules.remove ?? []).forEach((name, i) => {
    const lower = checkName(name, [side, 'remove', i]);
    if (lower) removed.add(lower);
  });
  for (const op of ['set', 'add'] as const) {
    const seen = new Set<string>();
    const entries = Object.entries(rules[op] ?? {});
    if (entries.length > MAX_RULES) report([side, op], `at most ${MAX_RULES} fields`);
    for (const [name, value] of entries) {
      const path = [side, op, name];
      const lower = checkName(name, path);
      if (!lower) continue;
      if (seen.has(lower)) report(path, `"${name}" is named twice (header names are case-insensitive)`);
      seen.add(lower);
      if (op === 'set' && removed.has(lower)) report(path, `"${name}" is also in remove; set replaces the field already`);
      if (!FIELD_TEXT.test(value)) {
        report(path, 'a header value cannot hold line breaks, control characters or characters beyond Latin-1');
        continue;
      }
      try {
        compileTemplate(value);
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        report(path, err.message);
      }
    }
  }
}

export const headerRulesSchema = z
  .strictObject({
    /** Applied to the request before the handler (a proxy forwards the result). */
    request: ruleSetSchema.optional(),
    /** Applied to every response of the route when its head goes out, refusals included. */
    response: ruleSetSchema.optional(),
  })
  .superRefine((config, ctx) => {
    const report = (path: (string | number)[], message: string) => ctx.addIssue({ code: 'custom', path, message });
    if (config.request) checkRuleSet(config.request, 'request', report);
    if (config.response) checkRuleSet(config.response, 'response', report);
  });

export type HeaderRulesConfig = z.output<typeof headerRulesSchema>;

interface Rule {
  readonly name: string;
  readonly lower: string;
  readonly value: Template;
}

/** One side's rules, compiled. `dropped`: names whose fields go first (remove and set). */
interface CompiledRules {
  readonly dropped: ReadonlySet<string>;
  readonly set: readonly Rule[];
  readonly add: readonly Rule[];
}

/** Keeps a rendered value header-safe: a control character from a decoded parameter is percent-encoded. */
function headerSafe(value: string): string {
  return FIELD_TEXT.test(value) ? value : value.replace(UNSAFE, percentEncoded);
}

function compileRules(config: RuleSetConfig): CompiledRules {
  const rules = (record: Record<string, string> | undefined): Rule[] =>
    Object.entries(record ?? {}).map(([name, value]) => ({ name, lower: name.toLowerCase(), value: compileTemplate(value, { escape: headerSafe }) }));
  const set = rules(config.set);
  return {
    dropped: new Set([...(config.remove ?? []).map((n) => n.toLowerCase()), ...set.map((r) => r.lower)]),
    set,
    add: rules(config.add),
  };
}

type MutableHeaders = Record<string, string | string[] | undefined>;

/** Applies request rules to req.headers and req.rawHeaders, in place. Values are rendered against the request as it came. */
function applyToRequest(ctx: PlaceholderContext, rules: CompiledRules): void {
  const req = ctx.req;
  // Read first: node:http builds req.headers from rawHeaders on first use; both are changed below.
  const headers = req.headers as MutableHeaders;
  const set = rules.set.map((r) => r.value(ctx));
  const add = rules.add.map((r) => r.value(ctx));
  const raw = req.rawHeaders;
  let w = 0;
  for (let r = 0; r < raw.length; r += 2) {
    if (rules.dropped.has(raw[r].toLowerCase())) continue;
    raw[w] = raw[r];
    raw[w + 1] = raw[r + 1];
    w += 2;
  }
  raw.length = w;
  for (const lower of rules.dropped) delete headers[lower];
  // HTTP/2 and HTTP/3 field names are lower case on the wire.
  const h2 = req.httpVersionMajor >= 2;
  rules.set.forEach((rule, i) => {
    if (set[i] === '') return;
    raw.push(h2 ? rule.lower : rule.name, set[i]);
    headers[rule.lower] = set[i];
  });
  rules.add.forEach((rule, i) => {
    const value = add[i];
    if (value === '') return;
    raw.push(h2 ? rule.lower : rule.name, value);
    const had = headers[rule.lower];
    if (had === undefined) headers[rule.lower] = value;
    else if (Array.isArray(had)) headers[rule.lower] = [...had, value];
    else headers[rule.lower] = `${had}${rule.lower === 'cookie' ? '; ' : ', '}${value}`;
  });
}

/** Applies response rules to the fields a ServerResponse holds (writeHead's own have been merged in). */
function applyToHttp1(res: HttpResponse, ctx: PlaceholderContext, rules: CompiledRules): void {
  for (const lower of rules.dropped) res.removeHeader(lower);
  rules.set.forEach((rule) => {
    const value = rule.value(ctx);
    if (value !== '') res.setHeader(rule.name, value);
  });
  rules.add.forEach((rule) => {
    const value = rule.value(ctx);
    if (value !== '') res.appendHeader(rule.name, value);
  });
}

/**
 * HTTP/1.1: rules run inside writeHead, which node calls for an implicit head too. writeHead's
 * own fields are merged into the response first, as node itself does when fields were set before
 * (an object: each replaces; a flat list: replaces the names it holds, keeping its repeats).
 */
function hookHttp1(res: ServerResponse, ctx: PlaceholderContext, rules: CompiledRules): void {
  const writeHead = res.writeHead as (this: ServerResponse, status: number, ...rest: unknown[]) => ServerResponse;
  const hooked = function (this: ServerResponse, status: number, reasonOrFields?: unknown, maybeFields?: unknown): ServerResponse {
    if (this.headersSent) return writeHead.call(this, status, reasonOrFields, maybeFields);
    const reason = typeof reasonOrFields === 'string' ? reasonOrFields : undefined;
    const fields = reason === undefined ? reasonOrFields : maybeFields;
    if (Array.isArray(fields)) {
      for (let i = 0; i < fields.length; i += 2) this.removeHeader(String(fields[i]));
      for (let i = 0; i + 1 < fields.length; i += 2) this.appendHeader(String(fields[i]), fields[i + 1] as string | string[]);
    } else if (fields && typeof fields === 'object') {
      for (const [name, value] of Object.entries(fields as OutgoingHttpHeaders)) if (value !== undefined) this.setHeader(name, value);
    }
    applyToHttp1(this, ctx, rules);
    return reason === undefined ? writeHead.call(this, status) : writeHead.call(this, status, reason);
  };
  res.writeHead = hooked as ServerResponse['writeHead'];
}

/** Applies response rules to an HTTP/2 head (a copy; the caller's object is left alone). */
function applyToHttp2(fields: OutgoingHttpHeaders, ctx: PlaceholderContext, rules: CompiledRules): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in fields) if (!rules.dropped.has(name.toLowerCase())) out[name] = fields[name];
  for (const rule of rules.set) {
    const value = rule.value(ctx);
    if (value !== '') out[rule.lower] = value;
  }
  for (const rule of rules.add) {
    const value = rule.value(ctx);
    if (value === '') continue;
    const had = out[rule.lower];
    // A repeated field as one list value: HTTP/2 (and node) allow some fields once only.
    if (had === undefined) out[rule.lower] = value;
    else if (rule.lower === 'set-cookie') out[rule.lower] = [...(Array.isArray(had) ? had : [String(had)]), value];
    else out[rule.lower] = `${Array.isArray(had) ? had.join(', ') : String(had)}, ${value}`;
  }
  return out;
}

type RespondingMethod = 'respond' | 'respondWithFD';

/** HTTP/2: rules run where the head goes out, the stream's respond methods (H2Response and handlers writing to the stream alike). */
function hookHttp2(stream: H2ServerStream, ctx: PlaceholderContext, rules: CompiledRules): void {
  // node adds Date itself unless told not to: removing (or setting) it must say so.
  const ownDate = rules.dropped.has('date');
  for (const method of ['respond', 'respondWithFD'] as RespondingMethod[]) {
    const original = stream[method] as (this: H2ServerStream, ...args: unknown[]) => void;
    const hooked = function (this: H2ServerStream, a: unknown, b?: unknown, c?: unknown): void {
      // respond(headers, options); respondWithFD(fd, headers, options).
      const [headers, options] = method === 'respond' ? [a as OutgoingHttpHeaders | undefined, b as Record<string, unknown> | undefined] : [b as OutgoingHttpHeaders | undefined, c as Record<string, unknown> | undefined];
      const changed = applyToHttp2(headers ?? {}, ctx, rules);
      const opts = ownDate ? { ...options, sendDate: false } : options;
      if (method === 'respond') return original.call(this, changed, opts);
      return original.call(this, a, changed, opts);
    };
    (stream as unknown as Record<RespondingMethod, unknown>)[method] = hooked;
  }
}

/** Puts the response rules on `res`: they run when its head goes out. */
function hookResponse(res: HttpResponse, ctx: PlaceholderContext, rules: CompiledRules): void {
  if (res instanceof ServerResponse) return hookHttp1(res, ctx, rules);
  const stream = http2Stream(res);
  if (stream) return hookHttp2(stream, ctx, rules);
  // HTTP/3 (src/http3/exchange.ts): rules run just before its head goes out.
  const h3 = res as HttpResponse & { onHead?: (fn: () => void) => void };
  if (typeof h3.onHead === 'function') h3.onHead(() => applyToHttp1(res, ctx, rules));
}

/** The header-rules middleware for one route. */
export function headerRules(config: HeaderRulesConfig): Middleware {
  const request = config.request && compileRules(config.request);
  const response = config.response && compileRules(config.response);
  return (ctx, next) => {
    if (request) applyToRequest(ctx, request);
    if (response) hookResponse(ctx.res, ctx, response);
    return next();
  };
}

import { z } from 'zod';
import { duration, size } from '../config/units.ts';
import { replyError } from '../handlers/http/reply.ts';
import type { Http2Request, Http3Request, HttpRequest } from '../handlers/types.ts';
import type { Middleware, MiddlewareContext } from '../middleware/types.ts';
import type { Metrics } from '../observe/metrics.ts';
import { DEFAULT_HTTP_RULES } from './default-rules.ts';
import { MatchCounter, MatchLog } from './metrics.ts';
import { hasPercent, percentDecode, StreamingFormDecoder } from './normalize.ts';
import { compileRules, duplicateIds, Hits, ruleSchema, type CompiledRules, type Field, type Rule } from './rules.ts';

// The `inspect` middleware: matches each request's head (request line, path, query, headers)
// and the first `bodyLimit` bytes of its body against literal-pattern rules, and logs, tags or
// refuses what matches (docs/inspect.md).
//
// The body is inspected without being consumed: the request's own push() is wrapped, so each
// chunk is seen as it arrives from the connection, before any reader gets it, whoever reads it
// and however. The handler is called once the first `bodyLimit` bytes have been seen (or the body
// ended, or the request's buffer is full, or `bodyWait` passed), so a body that matches a block
// rule in that prefix is refused with 403 before anything of it reaches an upstream. When the
// handler has been called already (a buffer smaller than bodyLimit, a slow client past bodyWait)
// and a later chunk of the prefix matches, that chunk and everything after it are dropped, the
// client gets the 403 (or, if a response has begun, its connection is cut) and the upstream's
// request is aborted with the client's connection: it never gets a complete body.

/** Rules one inspect block may have (own rules; the defaults come on top). */
export const MAX_RULES = 256;

const ruleListSchema = z.array(ruleSchema).max(MAX_RULES);

const inspectObjectSchema = z
  .strictObject({
    /** Use the built-in rules (docs/inspect.md, "The default rules"). */
    defaultRules: z.boolean().default(true),
    /** Rule ids switched off here, default or own; each must name a rule. */
    disable: z.array(z.string().min(1)).max(MAX_RULES).default([]),
    /** The action of every default rule, in place of block (`log` to try the rules out first). */
    defaultAction: z.enum(['log', 'block', 'tag']).optional(),
    /** Own rules; one with a default rule's id replaces that rule. */
    rules: ruleListSchema.default([]),
    /** Bytes of the request body inspected, from its start (0: none; at most 64 KiB). */
    bodyLimit: size()
      .pipe(z.number().int().min(0).max(64 * 1024, 'expected at most 64KiB'))
      .default(8 * 1024),
    /**
     * The longest the handler waits for the first `bodyLimit` bytes of a body to arrive; then it
     * gets the request and the rest of the prefix is inspected as it streams.
     */
    bodyWait: duration()
      .pipe(z.number().int().min(1, 'expected at least 1ms').max(60_000, 'expected at most 60s'))
      .default(5_000),
    /** The request header that carries the ids of matched `tag` rules to the handler (and upstream). */
    tagHeader: z
      .string()
      .regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'expected a header name')
      .transform((s) => s.toLowerCase())
      .default('x-switchyard-inspect'),
    /** Warn lines about matches at most this many per second (the rest are counted in the next); 0: none. */
    logPerSecond: z.number().int().min(0).max(10_000).default(10),
  })
  .superRefine((c, ctx) => {
    for (const d of duplicateIds(c.rules)) ctx.addIssue({ code: 'custom', path: ['rules', d.index, 'id'], message: `"${d.id}" is the id of an earlier rule` });
    c.rules.forEach((r, i) => {
      if (r.match.raw) ctx.addIssue({ code: 'custom', path: ['rules', i, 'match', 'raw'], message: 'raw is for tcp-proxy streams; an HTTP rule matches requestLine, path, query, header, userAgent or body' });
    });
    const known = new Set([...(c.defaultRules ? DEFAULT_HTTP_RULES.map((r) => r.id) : []), ...c.rules.map((r) => r.id)]);
    c.disable.forEach((id, i) => {
      if (!known.has(id)) ctx.addIssue({ code: 'custom', path: ['disable', i], message: `no rule "${id}" here (rules: ${[...known].join(', ') || 'none'})` });
    });
    try {
      compileRules(effectiveRules(c));
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['rules'], message: err instanceof Error ? err.message : String(err) });
    }
  });

/**
 * Traffic inspection for a listener's or a route's requests (`middleware.inspect`). `true`: the
 * default rules with the defaults below; `false` on a route turns off its listener's.
 */
export const inspectSchema = z.union([z.boolean(), inspectObjectSchema]);

export type InspectInput = z.input<typeof inspectObjectSchema>;
export type InspectConfig = z.output<typeof inspectObjectSchema>;

/** The rules in force: the defaults (unless off, with defaultAction), own ones replacing by id, minus `disable`. */
export function effectiveRules(c: Pick<InspectConfig, 'defaultRules' | 'defaultAction' | 'rules' | 'disable'>): Rule[] {
  const own = new Map(c.rules.map((r) => [r.id, r]));
  const out: Rule[] = [];
  if (c.defaultRules) {
    for (const r of DEFAULT_HTTP_RULES) if (!own.has(r.id)) out.push(c.defaultAction ? { ...r, action: c.defaultAction } : r);
  }
  out.push(...c.rules);
  const off = new Set(c.disable);
  return out.filter((r) => !off.has(r.id));
}

export interface InspectOptions {
  /** The yard's metrics: switchyard_inspect_matches_total counts each match. */
  metrics?: Metrics;
}

/** May the request have a body? (No length and no chunked framing, or HEADERS that ended an HTTP/2 stream: none.) */
function mayHaveBody(req: HttpRequest): boolean {
  const length = req.headers['content-length'];
  if (length !== undefined) return length !== '0';
  if (req.httpVersionMajor === 2) return !(req as Http2Request).stream.endAfterHeaders;
  if (req.httpVersionMajor === 3) return !(req as Http3Request).endAfterHeaders;
  return req.headers['transfer-encoding'] !== undefined;
}

type MutableHeaders = Record<string, string | string[] | undefined>;

/** Removes every copy of header `lower` the client sent, from headers and rawHeaders (what a proxy forwards). */
function stripHeader(req: HttpRequest, lower: string): void {
  delete (req.headers as MutableHeaders)[lower];
  const raw = req.rawHeaders as string[];
  let w = 0;
  for (let r = 0; r < raw.length; r += 2) {
    if (raw[r].length === lower.length && raw[r].toLowerCase() === lower) continue;
    raw[w] = raw[r];
    raw[w + 1] = raw[r + 1];
    w += 2;
  }
  raw.length = w;
}

function setHeader(req: HttpRequest, lower: string, value: string): void {
  (req.headers as MutableHeaders)[lower] = value;
  (req.rawHeaders as string[]).push(lower, value);
}

/** A decoded form's scan: once as sent, then decoded once and twice when that changes it. */
function scanDecoded(hits: Hits, field: Field, text: string, plusIsSpace: boolean, backslashIsSlash: boolean): void {
  hits.scanString(field, text);
  const once = percentDecode(text, plusIsSpace, backslashIsSlash);
  if (once === text) return;
  hits.scanString(field, once);
  if (!hasPercent(once)) return;
  const twice = percentDecode(once, plusIsSpace, backslashIsSlash);
  if (twice !== once) hits.scanString(field, twice);
}

/** Matches `req`'s head against `rules` into `hits`. */
function scanHead(rules: CompiledRules, hits: Hits, req: HttpRequest): void {
  const url = req.url ?? '/';
  if (rules.requestLine) hits.scanString(rules.requestLine, `${req.method ?? ''} ${url} HTTP/${req.httpVersion}`);
  const q = url.indexOf('?');
  if (rules.path) scanDecoded(hits, rules.path, q === -1 ? url : url.slice(0, q), false, true);
  if (rules.query && q !== -1 && q + 1 < url.length) scanDecoded(hits, rules.query, url.slice(q + 1), true, false);
  if (rules.headers.size > 0) {
    for (const [name, field] of rules.headers) {
      const v = req.headers[name];
      if (v === undefined) continue;
      if (typeof v === 'string') hits.scanString(field, v);
      else for (const one of v) hits.scanString(field, one);
    }
  }
  if (rules.anyHeader) {
    const raw = req.rawHeaders;
    for (let i = 1; i < raw.length; i += 2) hits.scanString(rules.anyHeader, raw[i]);
  }
}

/** The `inspect` middleware. `input` may be raw (it is validated) or already parsed. */
export function inspect(input: InspectInput | InspectConfig | true, options: InspectOptions = {}): Middleware {
  const config = inspectObjectSchema.parse(input === true ? {} : input);
  const rules = compileRules(effectiveRules(config));
  const counter = new MatchCounter(options.metrics);
  const matchLog = new MatchLog(config.logPerSecond);
  const tagHeader = config.tagHeader;
  const bodyField = config.bodyLimit > 0 ? rules.body : undefined;
  const headHits = new Hits(rules.rules.length);
  const anyTag = rules.rules.some((r) => r.action === 'tag');

  /** Counts and logs `found`; the first block rule among them, if any. */
  const report = (ctx: MiddlewareContext, found: readonly number[], where: 'head' | 'body'): number => {
    let block = -1;
    for (const i of found) {
      const rule = rules.rules[i];
      counter.count(ctx.listener, rule);
      matchLog.warn(
        ctx.log,
        { rule: rule.id, action: rule.action, where, listener: ctx.listener, route: ctx.route, clientIp: ctx.req.socket?.remoteAddress, requestId: ctx.requestId },
        'inspect: a rule matched',
      );
      if (rule.action === 'block' && block === -1) block = i;
    }
    return block;
  };

  const tagsOf = (found: readonly number[]): string[] => found.filter((i) => rules.rules[i].action === 'tag').map((i) => rules.rules[i].id);

  const refuse = (ctx: MiddlewareContext, rule: number): void => {
    // close: the rest of the body is not read; the connection goes with the answer.
    replyError(ctx.res, rules.rules[rule].status, 'refused by request inspection', { close: true });
  };

  return (ctx, next) => {
    const req = ctx.req;
    // A tag the client wrote itself must never reach the upstream as ours.
    if (req.headers[tagHeader] !== undefined) stripHeader(req, tagHeader);
    headHits.reset();
    scanHead(rules, headHits, req);
    let found: number[] | undefined;
    if (headHits.size > 0) {
      found = headHits.list.slice();
      const block = report(ctx, found, 'head');
      if (block !== -1) {
        refuse(ctx, block);
        return;
      }
    }
    if (bodyField && mayHaveBody(req)) return inspectBody(ctx, next, bodyField, found ?? []);
    if (anyTag && found) {
      const tags = tagsOf(found);
      if (tags.length > 0) setHeader(req, tagHeader, tags.join(','));
    }
    return next();
  };

  function inspectBody(ctx: MiddlewareContext, next: () => void | Promise<void>, field: Field, headFound: number[]): Promise<void> {
    const req = ctx.req;
    const res = ctx.res;
    const limit = config.bodyLimit;
    const hits = new Hits(rules.rules.length);
    for (const i of headFound) hits.add(i);
    const states = new Int32Array(field.length);
    const ct = req.headers['content-type'];
    const form = typeof ct === 'string' && ct.slice(0, 33).toLowerCase() === 'application/x-www-form-urlencoded';
    const decoder = form ? new StreamingFormDecoder() : undefined;
    const formStates = new Int32Array(field.length);
    let seen = 0;
    let released = false;
    let blocked = false;
    let finished = false;

    /** Inspects the part of `chunk` inside the prefix; true when it made the request blocked. */
    const look = (chunk: Buffer): boolean => {
      if (seen >= limit) return false;
      const part = chunk.length > limit - seen ? chunk.subarray(0, limit - seen) : chunk;
      seen += part.length;
      const before = hits.size;
      hits.scanBytes(field, states, part);
      if (decoder) hits.scanBytes(field, formStates, decoder.decode(part));
      if (hits.size === before) return false;
      const block = report(ctx, hits.list.slice(before), 'body');
      if (block === -1) return false;
      blocked = true;
      refuse(ctx, block);
      if (released && req.httpVersionMajor >= 2) res.once('close', () => req.destroy());
      return true;
    };

    return new Promise<void>((resolve, reject) => {
      const ownPush = Object.hasOwn(req, 'push');
      const push = req.push;
      let timer: NodeJS.Timeout | undefined;
      const restore = () => {
        if (ownPush) req.push = push;
        else delete (req as { push?: unknown }).push;
      };
      const release = () => {
        if (released) return;
        released = true;
        clearTimeout(timer);
        req.off('close', gone);
        if (blocked) {
          restore();
          resolve();
          return;
        }
        if (anyTag) {
          const tags = tagsOf(hits.list);
          if (tags.length > 0) setHeader(req, tagHeader, tags.join(','));
        }
        if (finished) restore();
        let result: void | Promise<void>;
        try {
          result = next();
        } catch (err) {
          reject(err);
          return;
        }
        Promise.resolve(result).then(resolve, reject);
      };
      // The client went before the prefix was in: nothing to hand on.
      const gone = () => {
        if (released) return;
        released = true;
        clearTimeout(timer);
        restore();
        resolve();
      };
      req.push = function inspectedPush(this: HttpRequest, chunk: unknown, encoding?: BufferEncoding): boolean {
        // A blocked body goes nowhere (not even its end: a reader must not take it as complete).
        if (blocked) return true;
        if (chunk === null) {
          finished = true;
          const r = push.call(this, chunk, encoding);
          if (released) restore();
          else release();
          return r;
        }
        if (Buffer.isBuffer(chunk) && look(chunk)) {
          if (!released) release();
          return true;
        }
        const r = push.call(this, chunk, encoding);
        if (seen >= limit) {
          if (released) restore();
          else release();
        } else if (!released && req.readableLength >= req.readableHighWaterMark) {
          // Full: nothing more arrives until someone reads. The rest of the prefix is seen as it streams.
          release();
        }
        return r;
      };
      // What arrived before this step (an earlier step that waited) is looked at in place.
      if (req.readableLength > 0) {
        const buffered = req.read() as Buffer | null;
        if (buffered) {
          const wasBlocked = look(buffered);
          req.unshift(buffered);
          if (wasBlocked) {
            release();
            return;
          }
        }
      }
      if (req.readableEnded || seen >= limit) {
        finished = req.readableEnded;
        release();
        return;
      }
      req.once('close', gone);
      timer = setTimeout(release, config.bodyWait);
      // Starts the body flowing into the request's buffer (up to its high-water mark) without taking any of it.
      req.read(0);
    });
  }
}

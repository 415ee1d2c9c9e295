import { readFileSync, statSync } from 'node:fs';
import { extname, isAbsolute, resolve } from 'node:path';
import { contentType as contentTypeOf } from 'mime-types';
import { z } from 'zod';
import type { Config } from '../config/schema.ts';
import type { HttpRequest, HttpResponse } from '../handlers/types.ts';
import { useErrorPages, type ErrorPage, type ErrorPageSource } from '../handlers/http/reply.ts';
import { compileTemplate, escapeHtml, TemplateError, type PlaceholderContext, type Template } from './placeholders.ts';
import type { Middleware } from './types.ts';

// Custom pages for the errors the daemon itself answers (everything that goes through
// replyError: 404 of static or of no route, 405, 413, 429, 502, 503, 504, ...), not for an
// upstream's own error responses, which pass through as they came (as Caddy's handle_errors).
// The page keeps the refusal's status and headers (Retry-After, Allow, WWW-Authenticate...);
// only the body and its Content-Type change.
//
// Pages are read and compiled when the config is loaded: files at most MAX_PAGE bytes, kept in
// memory; a missing or oversized file is a config error naming its field. The yard reads them
// (prepareErrorPages) against the config file's folder before it builds any listener, so a
// reload with a missing page changes nothing. Which page: the status's own (`404`), else its
// class (`4xx`, `5xx`), else `default`.

/** The largest page (file or template), in bytes. */
export const MAX_PAGE = 1024 * 1024;

const KEY = /^(?:[45]\d\d|[45]xx|default)$/;
const FIELD_TEXT = /^[\t\x20-\x7e]*$/;

const pageSchema = z
  .strictObject({
    /** A file sent as the page; relative paths are against the config file's folder. Read once, at most 1 MiB. */
    file: z.string().min(1).optional(),
    /** The page's text, with placeholders: {status}, {reason}, {request_id}, {path}... (docs/error-pages.md). */
    template: z.string().max(MAX_PAGE).optional(),
    /** `file` holds placeholders too (off: the file goes out byte for byte, braces and all). */
    placeholders: z.boolean().default(false),
    /** Content-Type of the page; default: from the file's extension, `text/html; charset=utf-8` for a template. */
    contentType: z.string().min(1).optional(),
  })
  .superRefine((page, ctx) => {
    if ((page.file === undefined) === (page.template === undefined)) {
      ctx.addIssue({ code: 'custom', path: [], message: 'give either file or template' });
    }
    if (page.placeholders && page.file === undefined) ctx.addIssue({ code: 'custom', path: ['placeholders'], message: 'placeholders is for file pages (a template always has them)' });
    if (page.contentType !== undefined && !FIELD_TEXT.test(page.contentType)) ctx.addIssue({ code: 'custom', path: ['contentType'], message: 'not a valid header value' });
    if (page.file !== undefined && page.contentType === undefined && contentTypeOf(extname(page.file)) === false) {
      ctx.addIssue({ code: 'custom', path: ['file'], message: `no known content type for "${extname(page.file) || page.file}": give contentType` });
    }
    if (page.template !== undefined) {
      try {
        compileTemplate(page.template, { errorPage: true });
      } catch (err) {
        if (!(err instanceof TemplateError)) throw err;
        ctx.addIssue({ code: 'custom', path: ['template'], message: err.message });
      }
    }
  });

/**
 * `errorPages:` a page per status (`404`), class (`4xx`, `5xx`) or `default`, for the refusals
 * the daemon makes; see docs/error-pages.md.
 */
export const errorPagesSchema = z.record(z.string(), pageSchema).superRefine((pages, ctx) => {
  for (const key of Object.keys(pages)) {
    if (!KEY.test(key)) ctx.addIssue({ code: 'custom', path: [key], message: `"${key}" is not a status 400-599, 4xx, 5xx or default` });
  }
});

export type ErrorPagesConfig = z.output<typeof errorPagesSchema>;
type PageConfig = ErrorPagesConfig[string];

/** A page file that cannot be used; `path` is its config field (`listeners[0].middleware.errorPages.404.file`). */
export class ErrorPageFileError extends Error {
  constructor(
    readonly path: string,
    readonly reason: string,
  ) {
    super(`${path}: ${reason}`);
    this.name = 'ErrorPageFileError';
  }
}

/** One page, ready to send: fixed bytes, or a template rendered per refusal. */
class CompiledPage {
  constructor(
    private readonly contentType: string,
    private readonly source: Buffer | Template,
  ) {}

  render(ctx: PlaceholderContext, status: number, reason: string): ErrorPage {
    const source = this.source;
    return { body: Buffer.isBuffer(source) ? source : Buffer.from(source(ctx, { status, reason })), contentType: this.contentType };
  }
}

/** The pages of one `errorPages:` block, by status, class and default. */
export class ErrorPageSet {
  private readonly byStatus = new Map<number, CompiledPage>();
  private readonly byClass = new Map<number, CompiledPage>();
  private readonly fallback: CompiledPage | undefined;

  constructor(pages: ReadonlyMap<string, CompiledPage>) {
    for (const [key, page] of pages) {
      if (key === 'default') continue;
      if (key.endsWith('xx')) this.byClass.set(Number(key[0]), page);
      else this.byStatus.set(Number(key), page);
    }
    this.fallback = pages.get('default');
  }

  pageFor(status: number): CompiledPage | undefined {
    if (status < 400) return undefined;
    return this.byStatus.get(status) ?? this.byClass.get(Math.floor(status / 100)) ?? this.fallback;
  }
}

/** Reads a page file, at most MAX_PAGE bytes. */
function readPage(file: string, at: string): Buffer {
  try {
    const size = statSync(file).size;
    if (size > MAX_PAGE) throw new ErrorPageFileError(at, `${file} is ${size} bytes; a page may have at most ${MAX_PAGE}`);
    const bytes = readFileSync(file);
    if (bytes.length > MAX_PAGE) throw new ErrorPageFileError(at, `${file} grew past ${MAX_PAGE} bytes while it was read`);
    return bytes;
  } catch (err) {
    if (err instanceof ErrorPageFileError) throw err;
    const code = (err as NodeJS.ErrnoException).code;
    throw new ErrorPageFileError(at, code === 'ENOENT' ? `${file} not found` : code === 'EISDIR' ? `${file} is a folder` : `cannot read ${file} (${code ?? String(err)})`);
  }
}

function compilePage(page: PageConfig, baseDir: string, at: string): CompiledPage {
  let text = page.template;
  let type = page.contentType ?? 'text/html; charset=utf-8';
  if (page.file !== undefined) {
    const file = isAbsolute(page.file) ? page.file : resolve(baseDir, page.file);
    const bytes = readPage(file, `${at}.file`);
    type = page.contentType ?? (contentTypeOf(extname(file)) || 'application/octet-stream');
    if (!page.placeholders) return new CompiledPage(type, bytes);
    text = bytes.toString('utf8');
  }
  try {
    // Placeholder values in an HTML page are escaped: a header or path is the client's text.
    const escape = /html/i.test(type) ? escapeHtml : undefined;
    const template = compileTemplate(text ?? '', { errorPage: true, escape });
    return new CompiledPage(type, template.constant ? Buffer.from(template.prefix) : template);
  } catch (err) {
    if (err instanceof TemplateError) throw new ErrorPageFileError(page.file !== undefined ? `${at}.file` : `${at}.template`, err.message);
    throw err;
  }
}

/** Compiled page sets by the config object they came from (a reload's config is new objects: read again). */
const compiled = new WeakMap<ErrorPagesConfig, ErrorPageSet>();

/** Reads and compiles one block; `at` is its config path for errors. Throws ErrorPageFileError. */
export function loadErrorPages(config: ErrorPagesConfig, baseDir: string, at = 'errorPages'): ErrorPageSet {
  let set = compiled.get(config);
  if (set) return set;
  const pages = new Map<string, CompiledPage>();
  for (const [key, page] of Object.entries(config)) pages.set(key, compilePage(page, baseDir, `${at}.${key}`));
  set = new ErrorPageSet(pages);
  compiled.set(config, set);
  return set;
}

/**
 * Reads every page file of a config (listener and route blocks), relative to `baseDir`, before
 * any listener is built. Throws ErrorPageFileError naming the field.
 */
export function prepareErrorPages(config: Config, baseDir: string): void {
  config.listeners.forEach((l, i) => {
    if (l.protocol !== 'http') return;
    if (l.middleware.errorPages) loadErrorPages(l.middleware.errorPages, baseDir, `listeners[${i}].middleware.errorPages`);
    l.routes.forEach((r, j) => {
      const pages = r.middleware?.errorPages;
      if (pages) loadErrorPages(pages, baseDir, `listeners[${i}].routes[${j}].middleware.errorPages`);
    });
  });
}

/** A request's pages: the set, and the context its placeholders read (at the time of the refusal). */
class RequestErrorPages implements ErrorPageSource {
  constructor(
    private readonly pages: ErrorPageSet,
    private readonly ctx: PlaceholderContext,
  ) {}

  pageFor(status: number, reason: string): ErrorPage | undefined {
    return this.pages.pageFor(status)?.render(this.ctx, status, reason);
  }
}

/**
 * The errorPages middleware. A program that builds listeners itself (without a yard, which has
 * read the files already) gets relative file paths against the working folder.
 */
export function errorPages(config: ErrorPagesConfig): Middleware {
  const pages = loadErrorPages(config, process.cwd());
  return (ctx, next) => {
    useErrorPages(ctx.res, new RequestErrorPages(pages, ctx));
    return next();
  };
}

/**
 * The listener's pages for a request before any route is chosen, so that the listener's own
 * refusals (404 for no route, 405, 413 for a declared body too large, 400 of the checks) get
 * them too; the route's middleware replaces them once it runs.
 */
export function errorPagesBeforeRouting(res: HttpResponse, req: HttpRequest, listener: string, config: ErrorPagesConfig): void {
  const url = req.url ?? '/';
  const q = url.indexOf('?');
  useErrorPages(res, new RequestErrorPages(loadErrorPages(config, process.cwd()), { req, listener, route: '', requestId: '', pathRest: q === -1 ? url : url.slice(0, q) }));
}

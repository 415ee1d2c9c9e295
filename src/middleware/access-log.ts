import { isAbsolute } from 'node:path';
import { z } from 'zod';
import { size } from '../config/units.ts';
import { DEFAULT_MAX_BUFFER, lineFile, type LineFile } from '../observe/line-file.ts';
import type { Middleware, MiddlewareContext } from './types.ts';

// One line per request, written when the response is finished or the client went away, so
// aborted transfers are logged too. `json` (the default) is a record of the daemon's log (its
// format, JSON or pretty, is the daemon's); `common` and `combined` are the lines Apache and
// nginx write, for the tools that read those:
//
//   common:   127.0.0.1 - alice [07/Dec/2026:12:00:00 +0000] "GET /a HTTP/1.1" 200 123
//   combined: the same, then "referer" "user-agent"
//
// With `file:` the lines go to that file instead of the daemon's log (through a bounded
// writer: src/observe/line-file.ts).

export const accessLogSchema = z.strictObject({
  /**
   * json (default): a `request` record in the daemon's log (listener, route, method, url, status,
   * bytes, durationMs, remote, requestId, userAgent); common: Apache's Common Log Format;
   * combined: nginx's and Apache's combined format (common plus referer and user agent).
   */
  format: z.enum(['json', 'common', 'combined']).default('json'),
  /**
   * Write the lines to this file (an absolute path; appended, created 0640, reopened on SIGUSR1)
   * instead of the daemon's log. In `json` format each line is the record as one JSON object.
   */
  file: z
    .string()
    .min(1)
    .refine((p) => isAbsolute(p), { error: 'expected an absolute path, e.g. /var/log/switchyard/access.log' })
    .optional(),
  /**
   * With `file`: the most bytes waiting to be written. A disk slower than the requests gets its
   * lines dropped past it (counted, and reported on stderr) rather than held in memory.
   */
  maxBuffer: size()
    .pipe(z.number().int().min(4096, 'expected at least 4KiB').max(256 * 1024 * 1024, 'expected at most 256MiB'))
    .default(DEFAULT_MAX_BUFFER),
});

export type AccessLogInput = z.input<typeof accessLogSchema>;
export type AccessLogConfig = z.output<typeof accessLogSchema>;

const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec'];

function pad2(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

/** `07/Dec/2026:12:00:00 +0000`: nginx's $time_local (local time with its offset). */
export function clfTime(d: Date): string {
  const off = -d.getTimezoneOffset();
  const sign = off >= 0 ? '+' : '-';
  const abs = Math.abs(off);
  return `${pad2(d.getDate())}/${MONTHS[d.getMonth()]}/${d.getFullYear()}:${pad2(d.getHours())}:${pad2(d.getMinutes())}:${pad2(d.getSeconds())} ${sign}${pad2(Math.floor(abs / 60))}${pad2(abs % 60)}`;
}

/**
 * A value between quotes as nginx writes it: `"`, `\`, control characters and bytes past ASCII
 * as `\xHH`, so that a line can neither break nor end its field early.
 */
export function clfEscape(s: string): string {
  let out = '';
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x20 || c === 0x22 || c === 0x5c || c >= 0x7f) {
      if (c > 0xff) {
        for (const b of Buffer.from(s[i])) out += `\\x${b.toString(16).toUpperCase().padStart(2, '0')}`;
      } else out += `\\x${c.toString(16).toUpperCase().padStart(2, '0')}`;
    } else out += s[i];
  }
  return out;
}

/** The user name of a Basic Authorization header (what nginx's $remote_user is), unchecked. */
function basicUser(header: string | undefined): string | undefined {
  if (!header || header.length > 4096) return undefined;
  const m = /^basic\s+([A-Za-z0-9+/=]+)\s*$/i.exec(header);
  if (!m) return undefined;
  const decoded = Buffer.from(m[1], 'base64').toString('latin1');
  const colon = decoded.indexOf(':');
  const user = colon < 0 ? decoded : decoded.slice(0, colon);
  return user === '' ? undefined : user;
}

function header(ctx: MiddlewareContext, name: string): string | undefined {
  const v = ctx.req.headers[name];
  return Array.isArray(v) ? v[0] : v;
}

/** The remote address as a log shows it: `::ffff:` stripped from IPv4 clients of a dual-stack socket. */
function remoteOf(ctx: MiddlewareContext): string | undefined {
  // A handler may have detached the socket (undici does when it destroys a request stream).
  const a = ctx.req.socket?.remoteAddress;
  return a?.startsWith('::ffff:') ? a.slice(7) : a;
}

/** Response body bytes from Content-Length: 0 for answers without a body, undefined when streamed. */
function bodyBytes(ctx: MiddlewareContext): number | undefined {
  const status = ctx.res.statusCode;
  if (ctx.req.method === 'HEAD' || status === 204 || status === 304 || (status >= 100 && status < 200)) return 0;
  const n = Number(ctx.res.getHeader('content-length'));
  return Number.isSafeInteger(n) && n >= 0 ? n : undefined;
}

/**
 * One request in Common Log Format (`combined`: with referer and user agent), as nginx writes
 * it: `-` for an absent field; the body size from Content-Length, `-` for a streamed answer
 * whose size was not declared.
 */
export function clfLine(ctx: MiddlewareContext, combined: boolean, when: Date = new Date()): string {
  const { req, res } = ctx;
  const user = basicUser(header(ctx, 'authorization'));
  const bytes = bodyBytes(ctx);
  let line = `${remoteOf(ctx) ?? '-'} - ${user === undefined ? '-' : clfEscape(user)} [${clfTime(when)}] "${clfEscape(`${req.method ?? '-'} ${req.url ?? '-'} HTTP/${req.httpVersion}`)}" ${res.statusCode} ${bytes ?? '-'}`;
  if (combined) {
    const referer = header(ctx, 'referer');
    const ua = header(ctx, 'user-agent');
    line += ` "${referer === undefined ? '-' : clfEscape(referer)}" "${ua === undefined ? '-' : clfEscape(ua)}"`;
  }
  return line;
}

/** The fields of the `json` format's record. */
function jsonFields(ctx: MiddlewareContext, started: bigint): Record<string, unknown> {
  const { req, res } = ctx;
  return {
    listener: ctx.listener,
    route: ctx.route,
    method: req.method,
    url: req.url,
    status: res.statusCode,
    bytes: bodyBytes(ctx) || undefined,
    durationMs: Number(process.hrtime.bigint() - started) / 1e6,
    remote: remoteOf(ctx),
    requestId: ctx.requestId || undefined,
    userAgent: req.headers['user-agent'],
    // An upgraded connection (101) ends without a finished response: not an abort.
    aborted: res.writableFinished || res.statusCode === 101 ? undefined : true,
  };
}

/** The access log step; `config` as accessLogSchema gives it (the defaults when left out). */
export function accessLog(input: AccessLogInput | AccessLogConfig = {}): Middleware {
  const config = accessLogSchema.parse(input);
  const file: LineFile | undefined = config.file === undefined ? undefined : lineFile(config.file, config.maxBuffer);
  const format = config.format;
  return (ctx, next) => {
    const started = process.hrtime.bigint();
    ctx.res.once('close', () => {
      if (format === 'json') {
        const fields = jsonFields(ctx, started);
        if (file) file.write(JSON.stringify({ time: new Date().toISOString(), ...fields, msg: 'request' }) + '\n');
        else ctx.log.info(fields, 'request');
        return;
      }
      const line = clfLine(ctx, format === 'combined');
      if (file) file.write(line + '\n');
      else ctx.log.info(line);
    });
    return next();
  };
}

import type { OutgoingHttpHeaders } from 'node:http';
import type { Transform } from 'node:stream';
import * as zlib from 'node:zlib';
import type { Logger } from 'pino';
import { z } from 'zod';
import { size } from '../config/units.ts';
import { setBodyFilter, type BodyFilter } from '../handlers/http/body-filter.ts';
import type { HttpResponse } from '../handlers/types.ts';
import { EncodingNegotiator, type Encoding } from './accept-encoding.ts';
import { CompressibleTypes, MEDIA_RANGE } from './compressible.ts';
import type { Middleware } from './types.ts';

// On-the-fly response compression (gzip, brotli, and zstd where node:zlib has it: Node 22.15+).
//
// The middleware wraps the response's writeHead/write/end. The decision is made once, when the
// head is fixed (writeHead, or the first write/end for an implicit head), from the status and
// the head fields: a compressible Content-Type, no Content-Encoding yet (a precompressed file
// static chose wins), no Content-Range, not 204/206/304, no `Cache-Control: no-transform`, and
// a Content-Length, when known, of at least `minSize`. Such a response gets `Vary:
// Accept-Encoding` whatever the client accepts (a cache must key on it); when the client accepts
// a coding we offer, it also gets Content-Encoding, loses Content-Length and Accept-Ranges
// (ranges are of the uncompressed bytes; nginx drops it too), and its strong ETag turns weak
// (W/, as nginx does: the bytes differ from the identity ones). A HEAD gets the same head and no
// body, and no compressor is made for it.
//
// Backpressure: the handler's bytes go into the compressor, whose output goes to the real
// res.write. When that returns false the compressor is paused; its buffers fill (16 KiB each
// way), its write callbacks stop, and the handler's res.write returns false until the
// compressor drains, when the response emits 'drain'. The response's own 'drain' (the socket's)
// is taken by the middleware to resume the compressor and not passed to the handler, which
// waits for the compressor, not the socket. Memory per compressed response: the compressor's
// state (windows capped below) and two 16 KiB buffers, never the body.
//
// Handlers that write behind the response's back (static's sendfile and HTTP/2 respondWithFD)
// ask handlers/http/body-filter.ts first and stream instead when this would compress.

export const ENCODINGS = ['zstd', 'br', 'gzip'] as const;

/** Whether this Node's zlib has zstd (22.15+, 24+). */
export const ZSTD_AVAILABLE = typeof (zlib as ZlibWithZstd).createZstdCompress === 'function';

interface ZlibWithZstd {
  createZstdCompress?: (options?: { params?: Record<number, number> }) => Transform;
}

/** log2 of the window of brotli and zstd: 512 KiB, as nginx's brotli module, instead of 4 MiB (brotli) or 2 MiB (zstd level 3) per response. */
const WINDOW_LOG = 19;

const levelSchema = z.strictObject({
  /** gzip level, 1 (fastest) to 9 (smallest). 6 is zlib's own default and nginx users' usual choice. */
  gzip: z.number().int().min(1).max(9).default(6),
  /**
   * brotli quality, 0 to 11. 4 compresses smaller than gzip 6 at about its speed; 11 is for
   * precompressing files, far too slow per request.
   */
  br: z.number().int().min(0).max(11).default(4),
  /** zstd level, 1 to 19. 3 is zstd's own default: faster than gzip 6 and smaller. */
  zstd: z.number().int().min(1).max(19).default(3),
});

const compressOptionsSchema = z.strictObject({
  /**
   * Codings offered, most preferred first; the client's q-values decide, this order breaks ties.
   * zstd is left out where Node has none (before 22.15), and never offered there.
   */
  encodings: z
    .array(z.enum(ENCODINGS))
    .min(1)
    .default([...ENCODINGS])
    .refine((list) => new Set(list).size === list.length, 'expected each coding at most once')
    .transform((list, ctx) => {
      const usable = list.filter((e) => e !== 'zstd' || ZSTD_AVAILABLE);
      if (usable.length === 0) {
        ctx.addIssue({ code: 'custom', message: `zstd needs Node 22.15 or later (this is ${process.version}); list br or gzip too` });
        return z.NEVER;
      }
      return usable;
    }),
  /** Smallest body compressed, when its length is known (bytes, or a size like "1KiB"); smaller ones go as they are. */
  minSize: size().default(1024),
  /**
   * Content-Types compressed: `type/subtype` or `type/*`, parameters ignored. Default: every type
   * mime-db marks compressible (text, JSON, JavaScript, XML, SVG, wasm, fonts such as ttf/otf)
   * plus any text/*, +json and +xml type, except text/event-stream.
   */
  types: z
    .array(z.string().transform((s) => s.trim().toLowerCase()).pipe(z.string().regex(MEDIA_RANGE, 'expected a media type like "application/json" or "text/*"')))
    .min(1)
    .optional(),
  /** Compression level per coding. */
  level: levelSchema.default(levelSchema.parse({})),
});

/**
 * `compress: true` (the defaults), `false` (off, e.g. for a route under a compressing listener),
 * or the options above.
 */
export const compressSchema = z.union([z.boolean(), compressOptionsSchema]);

export type CompressInput = z.input<typeof compressOptionsSchema>;
export type CompressConfig = z.output<typeof compressOptionsSchema>;

/** What every compressed response of one `compress:` block shares. */
class CompressSettings {
  readonly negotiator: EncodingNegotiator;
  readonly types: CompressibleTypes;
  readonly minSize: number;

  constructor(private readonly config: CompressConfig) {
    this.negotiator = new EncodingNegotiator(config.encodings);
    this.types = new CompressibleTypes(config.types);
    this.minSize = config.minSize;
  }

  /** A compressor for one response; `sizeHint` is the body's length when known. */
  compressor(coding: Encoding, sizeHint: number | undefined): Transform {
    const { level } = this.config;
    switch (coding) {
      case 'gzip': {
        // A body of known length needs no window larger than itself (nginx does the same): a
        // 4 KiB answer gets an 8 KiB window, not 32 KiB, and a smaller state to set up.
        const windowBits = sizeHint !== undefined && sizeHint >= 0 ? Math.min(15, Math.max(9, Math.ceil(Math.log2(sizeHint + 262)))) : 15;
        return zlib.createGzip({ level: level.gzip, windowBits });
      }
      case 'br': {
        const params: Record<number, number> = {
          [zlib.constants.BROTLI_PARAM_QUALITY]: level.br,
          [zlib.constants.BROTLI_PARAM_LGWIN]: WINDOW_LOG,
        };
        if (sizeHint !== undefined && Number.isSafeInteger(sizeHint)) params[zlib.constants.BROTLI_PARAM_SIZE_HINT] = Math.min(sizeHint, 2 ** 30);
        return zlib.createBrotliCompress({ params });
      }
      case 'zstd': {
        const constants = zlib.constants as unknown as Record<string, number>;
        const create = (zlib as ZlibWithZstd).createZstdCompress!;
        return create({ params: { [constants.ZSTD_c_compressionLevel]: level.zstd, [constants.ZSTD_c_windowLog]: WINDOW_LOG } });
      }
    }
  }
}

const DEFAULTS: CompressConfig = compressOptionsSchema.parse({});

/** The compress middleware; `true` means the defaults. */
export function compress(config: CompressConfig | true): Middleware {
  const settings = new CompressSettings(config === true ? DEFAULTS : config);
  return (ctx, next) => {
    const { req, res } = ctx;
    new ResponseCompression(res, settings.negotiator.choose(req.headers['accept-encoding']), req.method === 'HEAD', settings, ctx.log);
    return next();
  };
}

/** What the plan for a response is: leave it, only add Vary, or compress it. */
const PLAIN = 0;
const VARY = 1;
const COMPRESS = 2;
type Plan = typeof PLAIN | typeof VARY | typeof COMPRESS;

const NO_TRANSFORM = /(?:^|,)\s*no-transform\s*(?:,|$)/i;
const VARIES_ALREADY = /(?:^|,)\s*(?:\*|accept-encoding)\s*(?:,|$)/i;
const IDENTITY = /^\s*identity\s*$/i;

type WriteCallback = (err?: Error | null) => void;

/** The response's methods the middleware replaces for one response (own properties, shadowing the prototype's). */
interface Patchable {
  writeHead(...args: unknown[]): unknown;
  write(...args: unknown[]): boolean;
  end(...args: unknown[]): unknown;
  emit(event: string | symbol, ...args: unknown[]): boolean;
}

/** One response's compression: installed over its writeHead/write/end before the handler runs. */
class ResponseCompression implements BodyFilter {
  private decided = false;
  /** The head was rewritten for the coding (Content-Encoding set, Content-Length gone). */
  private encoded = false;
  /** The body goes through the compressor (encoded, and not HEAD). */
  private compressing = false;
  private ended = false;
  private sizeHint: number | undefined;
  private compressor: Transform | undefined;
  /** The real res.write returned false: the compressor waits for the response's 'drain'. */
  private responseFull = false;
  private readonly writeHead0: Patchable['writeHead'];
  private readonly write0: Patchable['write'];
  private readonly end0: Patchable['end'];
  private readonly emit0: Patchable['emit'];

  constructor(
    private readonly res: HttpResponse,
    /** The coding the client gets when the response qualifies; undefined: identity. */
    private readonly coding: Encoding | undefined,
    private readonly head: boolean,
    private readonly settings: CompressSettings,
    private readonly log: Logger,
  ) {
    const p = res as unknown as Patchable;
    this.writeHead0 = p.writeHead;
    this.write0 = p.write;
    this.end0 = p.end;
    this.emit0 = p.emit;
    p.writeHead = (...args) => this.writeHead(args);
    p.write = (...args) => this.write(args);
    p.end = (...args) => this.end(args);
    setBodyFilter(res, this);
  }

  rewrites(status: number, headers: Readonly<Record<string, string | number>>): boolean {
    if (this.head || this.decided) return this.compressing;
    return this.plan(status, (name) => headers[name] ?? this.res.getHeader(name)) === COMPRESS;
  }

  private plan(status: number, field: (name: string) => unknown): Plan {
    if (status < 200 || status === 204 || status === 206 || status === 304) return PLAIN;
    const encoding = field('content-encoding');
    if (encoding !== undefined && !IDENTITY.test(String(encoding))) return PLAIN;
    if (field('content-range') !== undefined) return PLAIN;
    const type = field('content-type');
    if (type === undefined || !this.settings.types.has(String(type))) return PLAIN;
    const cacheControl = field('cache-control');
    if (cacheControl !== undefined && NO_TRANSFORM.test(String(cacheControl))) return PLAIN;
    if (this.coding === undefined) return VARY;
    const length = field('content-length');
    if (length !== undefined && Number(length) < this.settings.minSize) return VARY;
    return COMPRESS;
  }

  /** Fixes the plan from the head as it stands, and rewrites the head for it. */
  private decide(): void {
    this.decided = true;
    const res = this.res;
    if (res.headersSent) return;
    const plan = this.plan(res.statusCode, (name) => res.getHeader(name));
    if (plan === PLAIN) return;
    const vary = res.getHeader('vary');
    if (vary === undefined || !VARIES_ALREADY.test(String(vary))) res.appendHeader('vary', 'Accept-Encoding');
    if (plan === VARY) return;
    const length = res.getHeader('content-length');
    if (length !== undefined) this.sizeHint = Number(length);
    res.setHeader('content-encoding', this.coding!);
    res.removeHeader('content-length');
    res.removeHeader('accept-ranges');
    const etag = res.getHeader('etag');
    if (typeof etag === 'string' && etag.startsWith('"')) res.setHeader('etag', `W/${etag}`);
    this.encoded = true;
    this.compressing = !this.head;
  }

  private writeHead(args: unknown[]): unknown {
    const res = this.res;
    if (this.decided || res.headersSent) return this.writeHead0.apply(res, args);
    const [status, second, third] = args;
    const reason = typeof second === 'string' ? second : undefined;
    const headers = reason === undefined ? second : third;
    // The head's fields go onto the response first, so that the plan sees them all and can
    // rewrite them before node fixes the head.
    if (headers !== undefined && headers !== null) {
      const before = res.getHeaders();
      try {
        mergeFields(res, headers as OutgoingHttpHeaders | readonly unknown[]);
      } catch (err) {
        // A field node refuses (an upstream's bad value): the response is as it was, so that
        // the error answer sent next does not carry half of the refused head.
        restoreFields(res, before);
        throw err;
      }
    }
    if (typeof status === 'number') res.statusCode = status;
    this.decide();
    return reason === undefined ? this.writeHead0.call(res, status) : this.writeHead0.call(res, status, reason);
  }

  private write(args: unknown[]): boolean {
    if (!this.decided) this.decide();
    if (!this.compressing) return this.write0.apply(this.res, args);
    const [chunk, second, third] = args;
    const callback = (typeof second === 'function' ? second : third) as WriteCallback | undefined;
    if (this.ended) {
      const err = Object.assign(new Error('write after end'), { code: 'ERR_STREAM_WRITE_AFTER_END' });
      if (typeof callback === 'function') process.nextTick(callback, err);
      return false;
    }
    const data = bytes(chunk, second);
    const compressor = (this.compressor ??= this.start());
    return typeof callback === 'function' ? compressor.write(data, callback) : compressor.write(data);
  }

  private end(args: unknown[]): unknown {
    const res = this.res;
    if (!this.decided) this.decide();
    if (!this.compressing) {
      // A HEAD that would have been compressed: its body (if the handler gave one) must not make
      // node announce the uncompressed length.
      if (this.encoded) {
        const callback = args.find((a) => typeof a === 'function');
        return callback === undefined ? this.end0.call(res) : this.end0.call(res, callback);
      }
      return this.end0.apply(res, args);
    }
    if (this.ended) return res;
    this.ended = true;
    const [chunk, second, third] = args;
    const callback = typeof chunk === 'function' ? chunk : typeof second === 'function' ? second : third;
    if (typeof callback === 'function') res.once('finish', callback as () => void);
    const compressor = (this.compressor ??= this.start());
    if (chunk !== undefined && chunk !== null && typeof chunk !== 'function') compressor.end(bytes(chunk, second));
    else compressor.end();
    return res;
  }

  /** Makes the compressor and joins its output to the response. */
  private start(): Transform {
    const res = this.res;
    const compressor = this.settings.compressor(this.coding!, this.sizeHint);
    compressor.on('data', (out: Buffer) => {
      if (!this.write0.call(res, out)) {
        this.responseFull = true;
        compressor.pause();
      }
    });
    compressor.once('end', () => this.end0.call(res));
    compressor.on('drain', () => this.emit0.call(res, 'drain'));
    compressor.on('error', (err: Error) => {
      this.log.warn({ err, coding: this.coding }, 'compress: compressor failed; response cut off');
      res.destroy();
    });
    // The client went (or the handler destroyed the response): free the compressor's memory now.
    res.once('close', () => compressor.destroy());
    (res as unknown as Patchable).emit = (event, ...rest) => {
      if (event !== 'drain') return this.emit0.call(res, event, ...rest);
      if (this.responseFull) {
        this.responseFull = false;
        compressor.resume();
      }
      return true;
    };
    return compressor;
  }
}

/** A chunk as res.write takes it (string with an encoding, or bytes) as bytes for the compressor. */
function bytes(chunk: unknown, encoding: unknown): Uint8Array {
  if (typeof chunk === 'string') return Buffer.from(chunk, typeof encoding === 'string' ? (encoding as BufferEncoding) : 'utf8');
  if (chunk instanceof Uint8Array) return chunk;
  throw Object.assign(new TypeError('The "chunk" argument must be of type string or an instance of Buffer or Uint8Array'), { code: 'ERR_INVALID_ARG_TYPE' });
}

/** Puts the response's fields back to `before` (a getHeaders() copy). */
function restoreFields(res: HttpResponse, before: OutgoingHttpHeaders): void {
  for (const name of Object.keys(res.getHeaders())) if (before[name] === undefined) res.removeHeader(name);
  for (const name of Object.keys(before)) {
    const value = before[name];
    if (value !== undefined) res.setHeader(name, value);
  }
}

/**
 * Puts writeHead's fields onto the response as writeHead would: an object sets each field; a list
 * ([name, value, ...] or [[name, value], ...]) replaces the fields of the names it has, keeping
 * repeated names (Set-Cookie) as several values.
 */
function mergeFields(res: HttpResponse, headers: OutgoingHttpHeaders | readonly unknown[]): void {
  if (!Array.isArray(headers)) {
    const fields = headers as OutgoingHttpHeaders;
    for (const name in fields) {
      const value = fields[name];
      if (value !== undefined) res.setHeader(name, value);
    }
    return;
  }
  const pairs: [string, string | string[]][] = [];
  if (headers.length > 0 && Array.isArray(headers[0])) for (const p of headers as [string, string][]) pairs.push([p[0], p[1]]);
  else for (let i = 0; i + 1 < headers.length; i += 2) pairs.push([headers[i] as string, headers[i + 1] as string]);
  const seen = new Set<string>();
  for (const [name, value] of pairs) {
    const key = name.toLowerCase();
    if (!seen.has(key)) {
      seen.add(key);
      // Only a field that is there: node's removeHeader of Date, Content-Length or
      // Transfer-Encoding also changes what node adds to the head by itself.
      if (res.hasHeader(key)) res.removeHeader(key);
    }
    res.appendHeader(key, value);
  }
}

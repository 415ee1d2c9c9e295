import { randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import type { Stats } from 'node:fs';
import { replyError, replyJson, replyText } from '../http/reply.ts';
import { bodyRewritten } from '../http/body-filter.ts';
import { ServerResponse } from 'node:http';
import type { H2ServerStream } from '../../listeners/http/h2-engine/stream.ts';
import { http2Stream, type HttpContext, type HttpHandler, type HttpResponse } from '../types.ts';
import type { FsRoot } from '../fs-root.ts';
import { canSendfile, sendFile, SendfileUnsupportedError } from '../../sys/index.ts';
import type { BodyCache } from './body-cache.ts';
import type { Catalog, FileTarget, Variant } from './catalog.ts';
import { evaluatePreconditions, ifRangeHolds } from './conditional.ts';
import { acceptedCodings, chooseCoding } from './encoding.ts';
import { listingHtml, readListing, wantsJson } from './listing.ts';
import { decideRange, multipartLayout, type ByteRange, type RangeDecision } from './range.ts';
import { drained, streamRange } from './transfer.ts';

// One request through the static handler:
//
//   method     GET/HEAD only (405 + Allow)
//   target     catalog (fresh: no syscall) or resolve (parse, realpath, stat, siblings)
//   variant    identity, .br or .gz by Accept-Encoding
//   conditions If-Match/If-Unmodified-Since -> 412, If-None-Match/If-Modified-Since -> 304,
//              If-Range + Range -> 206 / 416 / 200
//   body       hot cache (small files, no syscall) | sendfile (large, plain HTTP/1.x TCP)
//              | stream (everything else)
//
// The hot path (fresh catalog entry, cached body) stays synchronous: no promise, no syscall
// before res.end().

export interface StaticOptions {
  readonly maxRanges: number;
  readonly sendfile: boolean;
  readonly sendfileThreshold: number;
  readonly streamChunk: number;
}

const ALLOW = { allow: 'GET, HEAD' };

export class StaticHandler implements HttpHandler {
  constructor(
    private readonly root: FsRoot,
    private readonly catalog: Catalog,
    private readonly cache: BodyCache,
    private readonly options: StaticOptions,
  ) {}

  handle(ctx: HttpContext): void | Promise<void> {
    const method = ctx.req.method;
    if (method !== 'GET' && method !== 'HEAD') return replyError(ctx.res, 405, 'method not allowed', { headers: ALLOW });
    const target = this.catalog.fresh(ctx.pathRest, Date.now());
    if (target !== undefined) return this.serveFile(ctx, target);
    return this.resolveAndServe(ctx);
  }

  close(): void {
    this.catalog.clear();
    this.cache.clear();
  }

  private async resolveAndServe(ctx: HttpContext): Promise<void> {
    const target = await this.catalog.resolve(ctx.pathRest, Date.now());
    switch (target.kind) {
      case 'file':
        return this.serveFile(ctx, target);
      case 'bad-request':
        ctx.log.debug({ path: ctx.pathRest, reason: target.reason }, 'static: bad path');
        return replyError(ctx.res, 400, 'bad request path');
      case 'not-found':
        ctx.log.debug({ path: ctx.pathRest, reason: target.reason }, 'static: not served');
        return replyError(ctx.res, 404, 'not found');
      case 'redirect':
        return this.redirectToDirectory(ctx);
      case 'listing':
        return this.serveListing(ctx, target.dir.path);
    }
  }

  private serveFile(ctx: HttpContext, target: FileTarget): void | Promise<void> {
    let variant = target.identity;
    if (target.br !== undefined || target.gzip !== undefined) {
      const coding = chooseCoding(acceptedCodings(ctx.req.headers['accept-encoding']), target.br !== undefined, target.gzip !== undefined);
      if (coding === 'br' && target.br) variant = target.br;
      else if (coding === 'gzip' && target.gzip) variant = target.gzip;
    }
    const decision = this.conditions(ctx, variant);
    if (decision === undefined) return;
    if (this.cache.admits(variant.size)) {
      const body = this.cache.get(variant.path, variant);
      if (body !== undefined) return this.sendBuffer(ctx, variant, decision, body);
    }
    return this.serveFromDisk(ctx, variant, decision);
  }

  /** Answers 304/412/416 itself (returns undefined), or says which range to send. */
  private conditions(ctx: HttpContext, v: Variant): RangeDecision | undefined {
    const { req, res } = ctx;
    const pre = evaluatePreconditions(req.headers, v.validators);
    if (pre === 'not-modified') {
      const h: Record<string, string> = { etag: v.validators.etag, 'last-modified': v.validators.lastModified };
      if (v.headers.vary) h.vary = v.headers.vary;
      if (v.headers['cache-control']) h['cache-control'] = v.headers['cache-control'];
      writeHead(res, 304, h);
      res.end();
      return undefined;
    }
    if (pre === 'failed') {
      replyError(res, 412, 'precondition failed', { headers: { etag: v.validators.etag } });
      return undefined;
    }
    const range = req.headers.range;
    const decision: RangeDecision =
      range === undefined || !ifRangeHolds(req.headers['if-range'] as string | undefined, v.validators) ? NO_RANGE : decideRange(range, v.size, this.options.maxRanges);
    if (decision.kind === 'unsatisfiable') {
      replyError(res, 416, 'range not satisfiable', { headers: { 'content-range': `bytes */${v.size}`, 'accept-ranges': 'bytes' } });
      return undefined;
    }
    return decision;
  }

  private sendBuffer(ctx: HttpContext, v: Variant, decision: RangeDecision, body: Buffer): void {
    const { res } = ctx;
    const head = ctx.req.method === 'HEAD';
    if (decision.kind === 'single') {
      const { start, end } = decision.range;
      writeHead(res, 206, { ...v.headers, 'content-range': `bytes ${start}-${end}/${v.size}`, 'content-length': end - start + 1 });
      res.end(head ? undefined : body.subarray(start, end + 1));
      return;
    }
    if (decision.kind === 'multi') {
      const layout = multipartLayout(decision.ranges, v.size, v.headers['content-type'], boundary());
      writeHead(res, 206, { ...v.headers, 'content-type': layout.contentType, 'content-length': layout.length });
      if (head) {
        res.end();
        return;
      }
      const chunks: Buffer[] = [];
      for (const p of layout.parts) chunks.push(p.head, body.subarray(p.range.start, p.range.end + 1));
      chunks.push(layout.tail);
      // Bounded: the parts are slices of a cached body and the headers are a few dozen bytes each.
      res.end(Buffer.concat(chunks));
      return;
    }
    writeHead(res, 200, v.wholeHeaders);
    res.end(head ? undefined : body);
  }

  private async serveFromDisk(ctx: HttpContext, catalogued: Variant, decision: RangeDecision): Promise<void> {
    const opened = await this.root.openFile(catalogued.path);
    if (opened === undefined) {
      this.catalog.forget(ctx.pathRest);
      return replyError(ctx.res, 404, 'not found');
    }
    const { handle, stat } = opened;
    let v = catalogued;
    let d: RangeDecision | undefined = decision;
    try {
      if (!sameFile(v, stat)) {
        // Changed since the catalog looked: answer for what was actually opened.
        this.catalog.forget(ctx.pathRest);
        v = this.catalog.restat(v, stat);
        d = this.conditions(ctx, v);
        if (d === undefined) return;
      }
      if (this.cache.admits(v.size) && v.size > 0) {
        const body = await readWhole(handle, v.size);
        if (body !== undefined) {
          this.cache.set(v.path, v, body);
          return this.sendBuffer(ctx, v, d, body);
        }
        this.catalog.forget(ctx.pathRest);
      }
      await this.sendHandle(ctx, v, d, handle);
    } finally {
      await handle.close().catch(() => {});
    }
  }

  private async sendHandle(ctx: HttpContext, v: Variant, decision: RangeDecision, handle: FileHandle): Promise<void> {
    const { req, res } = ctx;
    const head = req.method === 'HEAD';
    if (decision.kind === 'multi') {
      const layout = multipartLayout(decision.ranges, v.size, v.headers['content-type'], boundary());
      writeHead(res, 206, { ...v.headers, 'content-type': layout.contentType, 'content-length': layout.length });
      if (head) {
        res.end();
        return;
      }
      try {
        for (const p of layout.parts) {
          if (!res.write(p.head)) await drained(res);
          await streamRange(handle, p.range.start, p.range.end - p.range.start + 1, res, this.options.streamChunk, false);
        }
        res.end(layout.tail);
      } catch {
        res.destroy();
      }
      return;
    }
    const range: ByteRange = decision.kind === 'single' ? decision.range : { start: 0, end: v.size - 1 };
    const length = range.end - range.start + 1;
    const headers: Record<string, string | number> = { ...v.headers, 'content-length': length };
    if (decision.kind === 'single') headers['content-range'] = `bytes ${range.start}-${range.end}/${v.size}`;
    const status = decision.kind === 'single' ? 206 : 200;
    // A body rewritten on its way out (compression) must go through res.write: no fast path.
    const rewritten = !head && length > 0 && bodyRewritten(res, status, headers);
    // HTTP/2: the engine reads the file into DATA frames itself (flow control honoured; a small
    // range in one read), the h2 counterpart of sendfile.
    const h2 = http2Stream(res);
    if (h2 && !head && length > 0 && !rewritten) return respondWithHandle(res, h2, status, headers, handle, range.start, length);
    writeHead(res, status, headers);
    if (head || length === 0) {
      res.end();
      return;
    }
    try {
      if (!rewritten && res instanceof ServerResponse && this.mayUseSendfile(ctx, res, length)) {
        res.flushHeaders();
        try {
          await sendFile(res.socket!, handle.fd, range.start, length, { onBytes: (n) => ctx.addBytesSent(n) });
          res.end();
          return;
        } catch (err) {
          if (!(err instanceof SendfileUnsupportedError)) throw err;
          // Nothing was sent yet: stream instead, from the same offset.
        }
      }
      await streamRange(handle, range.start, length, res, this.options.streamChunk, true);
    } catch {
      // The client went away or the file broke off mid-body: the length promised cannot be
      // kept, so the connection must not be reused.
      res.destroy();
    }
  }

  /**
   * sendfile writes to the socket behind Node's back, so only where Node's framing is the plain
   * bytes: HTTP/1.x on a plain TCP/unix socket that this response currently owns (a pipelined
   * response queued behind another has no socket yet and streams instead).
   */
  private mayUseSendfile(ctx: HttpContext, res: ServerResponse, length: number): boolean {
    const { req } = ctx;
    if (!this.options.sendfile || length < this.options.sendfileThreshold) return false;
    if (req.httpVersionMajor !== 1 || res.socket === null || res.socket !== req.socket) return false;
    return canSendfile(res.socket);
  }

  private redirectToDirectory(ctx: HttpContext): void {
    const url = ctx.req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    // Collapse leading slashes: `//host/dir` as a Location would send the browser to another host.
    const location = `${path.replace(/^[/\\]+/, '/')}/${q === -1 ? '' : url.slice(q)}`;
    replyText(ctx.res, 301, `moved to ${location}\n`, { location });
  }

  private async serveListing(ctx: HttpContext, dirPath: string): Promise<void> {
    const url = ctx.req.url ?? '/';
    const q = url.indexOf('?');
    const rawPath = q === -1 ? url : url.slice(0, q);
    let shown: string;
    try {
      shown = decodeURIComponent(rawPath);
    } catch {
      shown = rawPath;
    }
    let listing;
    try {
      listing = await readListing(this.root, dirPath, shown);
    } catch {
      return replyError(ctx.res, 404, 'not found');
    }
    ctx.res.appendHeader('vary', 'accept');
    const headers = { 'cache-control': 'no-cache' };
    if (wantsJson(q === -1 ? '' : url.slice(q + 1), ctx.req.headers.accept)) return replyJson(ctx.res, 200, listing, headers);
    replyText(ctx.res, 200, listingHtml(listing), { ...headers, 'content-type': 'text/html; charset=utf-8' });
  }
}

const NO_RANGE: RangeDecision = { kind: 'none' };

/**
 * writeHead, except that our Vary joins one set earlier by middleware (CORS appends `Origin`)
 * instead of replacing it: a cache must key on both.
 */
function writeHead(res: HttpResponse, status: number, headers: Readonly<Record<string, string | number>>): void {
  const vary = headers.vary;
  if (vary !== undefined && res.hasHeader('vary')) {
    res.appendHeader('vary', String(vary));
    const { vary: _, ...rest } = headers;
    res.writeHead(status, rest);
    return;
  }
  res.writeHead(status, headers);
}

/**
 * Sends bytes [offset, offset + length) of an open file as an HTTP/2 response body with
 * respondWithFD, and resolves once the stream is closed (the handle must stay open until then).
 */
function respondWithHandle(res: HttpResponse, stream: H2ServerStream, status: number, headers: Record<string, string | number>, handle: FileHandle, offset: number, length: number): Promise<void> {
  return new Promise((resolve) => {
    if (stream.destroyed || stream.closed) return resolve();
    stream.once('close', () => resolve());
    const vary = headers.vary;
    const merged: Record<string, string | number | string[]> = { ...res.getHeaders() as Record<string, string | number | string[]>, ...headers, ':status': status };
    if (vary !== undefined && res.hasHeader('vary')) merged.vary = `${String(res.getHeader('vary'))}, ${String(vary)}`;
    // The response keeps the status for logs and metrics; its own head is never sent.
    res.statusCode = status;
    try {
      stream.respondWithFD(handle, merged, { offset, length });
    } catch {
      stream.destroy();
    }
  });
}

function sameFile(v: Variant, st: Stats): boolean {
  return v.ino === st.ino && v.size === st.size && v.mtimeMs === st.mtimeMs;
}

function boundary(): string {
  return `switchyard-${randomBytes(12).toString('hex')}`;
}

/** Reads exactly `size` bytes from the start; undefined when the file was shorter (changing under us). */
async function readWhole(handle: FileHandle, size: number): Promise<Buffer | undefined> {
  const buf = Buffer.allocUnsafe(size);
  let filled = 0;
  while (filled < size) {
    const { bytesRead } = await handle.read(buf, filled, size - filled, filled);
    if (bytesRead === 0) return undefined;
    filled += bytesRead;
  }
  return buf;
}

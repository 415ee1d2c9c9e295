import { ServerResponse } from 'node:http';
import type { HttpResponse } from '../types.ts';

// Small, uniform error and text replies. Every refusal the daemon makes goes through here, so a
// client always gets a status, a one-line reason and no surprises (no body on HEAD or 304).
//
// Error pages (the errorPages middleware) hook in here: a response marked with a page source
// gets that page instead of the plain-text reason, with the refusal's status and headers. A
// daemon that never marks one pays a boolean test per refusal.

/** A page sent for a refusal instead of its plain-text reason. */
export interface ErrorPage {
  readonly body: Buffer;
  readonly contentType: string;
}

/** Finds the page for a refusal (undefined: none, the plain-text reason goes out). */
export interface ErrorPageSource {
  pageFor(status: number, reason: string): ErrorPage | undefined;
}

const errorPageSources = new WeakMap<HttpResponse, ErrorPageSource>();
let errorPagesInUse = false;

/** Marks `res`: a refusal through replyError from here on is answered with `source`'s page, when it has one. */
export function useErrorPages(res: HttpResponse, source: ErrorPageSource): void {
  errorPagesInUse = true;
  errorPageSources.set(res, source);
}

export function replyText(
  res: HttpResponse,
  status: number,
  body: string,
  headers: Record<string, string | number | string[]> = {},
): void {
  const buf = Buffer.from(body);
  sendBody(res, status, buf, { 'content-type': 'text/plain; charset=utf-8', 'content-length': buf.length, ...headers });
}

/** A plain-text error: `404 not found\n`. `close` asks for the connection to be closed after it. */
export function replyError(res: HttpResponse, status: number, reason: string, options: { close?: boolean; headers?: Record<string, string | number | string[]> } = {}): void {
  const headers = { ...options.headers };
  if (options.close) {
    // HTTP/2 has no Connection header (node refuses it): its streams end, the connection stays.
    if (res instanceof ServerResponse) {
      headers.connection = 'close';
      res.shouldKeepAlive = false;
    }
  }
  if (errorPagesInUse) {
    const page = errorPageSources.get(res)?.pageFor(status, reason);
    if (page) {
      sendBody(res, status, page.body, { ...headers, 'content-type': page.contentType, 'content-length': page.body.length });
      return;
    }
  }
  replyText(res, status, `${status} ${reason}\n`, headers);
}

/** A whole body with its head; none on HEAD. A response whose head is out already is cut off instead. */
function sendBody(res: HttpResponse, status: number, body: Buffer, headers: Record<string, string | number | string[]>): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, headers);
  res.end(res.req?.method === 'HEAD' ? undefined : body);
}

export function replyJson(res: HttpResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(value, null, 2) + '\n');
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': buf.length, ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : buf);
}

import { ServerResponse } from 'node:http';
import type { HttpResponse } from '../types.ts';

// Small, uniform error and text replies. Every refusal the daemon makes goes through here, so a
// client always gets a status, a one-line reason and no surprises (no body on HEAD or 304).

export function replyText(
  res: HttpResponse,
  status: number,
  body: string,
  headers: Record<string, string | number | string[]> = {},
): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const buf = Buffer.from(body);
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': buf.length, ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : buf);
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
  replyText(res, status, `${status} ${reason}\n`, headers);
}

export function replyJson(res: HttpResponse, status: number, value: unknown, headers: Record<string, string> = {}): void {
  const buf = Buffer.from(JSON.stringify(value, null, 2) + '\n');
  res.writeHead(status, { 'content-type': 'application/json; charset=utf-8', 'content-length': buf.length, ...headers });
  res.end(res.req?.method === 'HEAD' ? undefined : buf);
}

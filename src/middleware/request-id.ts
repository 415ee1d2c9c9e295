import { randomBytes } from 'node:crypto';
import type { Middleware } from './types.ts';

// Request ids let one request be followed through logs on every hop. A client's id is kept only
// when it is short and plain, so a header cannot inject text into logs.

const VALID_ID = /^[A-Za-z0-9._:@\-]{1,128}$/;

// Ids are a per-process random prefix plus a counter: unique, cheap, sortable within a process.
const prefix = randomBytes(6).toString('base64url');
let counter = 0;

export function newRequestId(): string {
  counter = (counter + 1) % Number.MAX_SAFE_INTEGER;
  return `${prefix}-${counter.toString(36)}`;
}

export interface RequestIdOptions {
  header: string;
  trustIncoming: boolean;
}

export function requestId({ header, trustIncoming }: RequestIdOptions): Middleware {
  const name = header.toLowerCase();
  return (ctx, next) => {
    const incoming = ctx.req.headers[name];
    ctx.requestId = trustIncoming && typeof incoming === 'string' && VALID_ID.test(incoming) ? incoming : newRequestId();
    ctx.res.setHeader(name, ctx.requestId);
    return next();
  };
}

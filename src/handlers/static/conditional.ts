import type { IncomingHttpHeaders } from 'node:http';

// Validators and conditional requests (RFC 9110 §8.8 and §13). The ETag is strong and made from
// size and mtime (microseconds), plus the content coding so that a .br sibling and the plain file
// never share a tag; it changes whenever either changes, which is all a cache needs. Evaluation
// follows §13.2.2's order: If-Match, If-Unmodified-Since, If-None-Match, If-Modified-Since.

export interface Validators {
  /** Strong entity tag, quotes included. */
  readonly etag: string;
  /** HTTP-date of the mtime. */
  readonly lastModified: string;
  /** mtime in whole seconds (HTTP dates have no finer resolution). */
  readonly mtimeSec: number;
}

export function makeValidators(size: number, mtimeMs: number, coding: string): Validators {
  const micros = Math.floor(mtimeMs * 1000);
  const suffix = coding === 'identity' ? '' : `-${coding}`;
  return {
    etag: `"${size.toString(16)}-${micros.toString(16)}${suffix}"`,
    lastModified: new Date(mtimeMs).toUTCString(),
    mtimeSec: Math.floor(mtimeMs / 1000),
  };
}

export type Precondition = 'proceed' | 'not-modified' | 'failed';

/** For GET and HEAD: whether to send the body, answer 304, or answer 412. */
export function evaluatePreconditions(headers: IncomingHttpHeaders, v: Validators): Precondition {
  const ifMatch = headers['if-match'];
  if (ifMatch !== undefined) {
    if (!matchesAny(ifMatch, v.etag, true)) return 'failed';
  } else {
    const ius = headers['if-unmodified-since'];
    if (ius !== undefined) {
      const t = parseHttpDate(ius);
      if (t !== undefined && v.mtimeSec > t) return 'failed';
    }
  }
  const inm = headers['if-none-match'];
  if (inm !== undefined) return matchesAny(inm, v.etag, false) ? 'not-modified' : 'proceed';
  const ims = headers['if-modified-since'];
  if (ims !== undefined) {
    const t = parseHttpDate(ims);
    if (t !== undefined && v.mtimeSec <= t) return 'not-modified';
  }
  return 'proceed';
}

/** If-Range: the Range applies only when the client's copy is exactly the current one. */
export function ifRangeHolds(header: string | undefined, v: Validators): boolean {
  if (header === undefined) return true;
  const h = header.trim();
  if (h.startsWith('"') || h.startsWith('W/')) return h === v.etag; // weak tags never match
  const t = parseHttpDate(h);
  return t !== undefined && t === v.mtimeSec;
}

/** Whether a comma-separated entity-tag list (or `*`) holds `etag`; weak comparison unless `strong`. */
function matchesAny(list: string, etag: string, strong: boolean): boolean {
  if (list.trim() === '*') return true;
  const bare = etag; // ours are always strong
  for (const item of list.split(',')) {
    let tag = item.trim();
    if (tag.startsWith('W/')) {
      if (strong) continue;
      tag = tag.slice(2);
    }
    if (tag === bare) return true;
  }
  return false;
}

function parseHttpDate(value: string): number | undefined {
  if (value.length > 64) return undefined;
  const ms = Date.parse(value);
  return Number.isFinite(ms) ? Math.floor(ms / 1000) : undefined;
}

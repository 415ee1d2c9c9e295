import { readdir } from 'node:fs/promises';
import { join } from 'node:path';
import { replyJson } from '../http/reply.ts';
import type { HttpContext } from '../types.ts';
import type { ObjectsConfig } from './config.ts';
import { DIR_SUFFIX, META_SUFFIX, compareKeys } from './keys.ts';
import { refuse } from './reply.ts';
import { readMetaFile, type ObjectStore } from './store.ts';

// GET /<bucket>?list-type=2&prefix=&delimiter=/&max-keys=&continuation-token=&start-after=
//
// Keys come in UTF-8 byte order, as S3 lists them, by walking the bucket's directories in
// order: a directory `a.d` sorts as `a/`, so the walk meets keys in exactly the order a sorted
// list of them would have. Directories that cannot hold a key after the cursor or under the
// prefix are not opened. The answer is JSON (not S3's XML; the field names follow S3's).
//
// The continuation token is opaque to clients: base64url of where the last page stopped (the
// last key, or the last common prefix, after which everything under it is skipped). Keys added
// or removed between pages are seen or not by their place relative to the cursor, as in S3.
// `delimiter` may only be `/` (the store's own separator: common prefixes cost nothing).

interface Cursor {
  /** Everything up to and including this key (or prefix) was listed. */
  readonly after: string;
  /** `after` was a common prefix: keys under it were rolled up and are skipped too. */
  readonly prefix: boolean;
}

export interface ListedKey {
  readonly key: string;
  readonly size: number;
  readonly etag: string;
  readonly lastModified: string;
}

export interface ListPage {
  readonly contents: ListedKey[];
  readonly commonPrefixes: string[];
  readonly truncated: boolean;
  readonly next?: string;
}

export interface ListOptions {
  readonly prefix: string;
  readonly delimiter: boolean;
  readonly maxKeys: number;
  readonly cursor?: Cursor;
}

/** Longest prefix, start-after or continuation token accepted. */
const MAX_PARAM = 4096;

export async function listObjects(ctx: HttpContext, store: ObjectStore, config: ObjectsConfig, bucket: string, query: URLSearchParams): Promise<void> {
  const { res } = ctx;
  const prefix = query.get('prefix') ?? '';
  const delimiter = query.get('delimiter') ?? '';
  if (delimiter !== '' && delimiter !== '/') return refuse(res, 400, 'InvalidArgument', 'delimiter may only be "/"');
  const maxKeysText = query.get('max-keys');
  const maxKeys = maxKeysText === null ? config.maxListKeys : Number(maxKeysText);
  if (!Number.isInteger(maxKeys) || maxKeys < 0) return refuse(res, 400, 'InvalidArgument', 'max-keys must be a whole number');
  const token = query.get('continuation-token');
  const startAfter = query.get('start-after');
  if (prefix.length > MAX_PARAM || (token?.length ?? 0) > MAX_PARAM || (startAfter?.length ?? 0) > MAX_PARAM) {
    return refuse(res, 400, 'InvalidArgument', `prefix, start-after and continuation-token are at most ${MAX_PARAM} characters`);
  }
  let cursor: Cursor | undefined;
  if (token !== null) {
    cursor = decodeToken(token);
    if (cursor === undefined) return refuse(res, 400, 'InvalidArgument', 'the continuation token is not one this store gave out');
  } else if (startAfter !== null && startAfter !== '') cursor = { after: startAfter, prefix: false };
  if (!(await store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
  const page = await listPage(store, bucket, { prefix, delimiter: delimiter === '/', maxKeys: Math.min(maxKeys, config.maxListKeys), cursor });
  replyJson(res, 200, {
    name: bucket,
    prefix,
    ...(delimiter ? { delimiter } : {}),
    maxKeys: Math.min(maxKeys, config.maxListKeys),
    keyCount: page.contents.length + page.commonPrefixes.length,
    isTruncated: page.truncated,
    ...(token !== null ? { continuationToken: token } : {}),
    ...(page.next !== undefined ? { nextContinuationToken: page.next } : {}),
    contents: page.contents,
    commonPrefixes: page.commonPrefixes.map((p) => ({ prefix: p })),
  });
}

export async function listPage(store: ObjectStore, bucket: string, options: ListOptions): Promise<ListPage> {
  const { prefix, delimiter, maxKeys, cursor } = options;
  const contents: ListedKey[] = [];
  const commonPrefixes: string[] = [];
  let last: Cursor | undefined;
  let truncated = false;
  const full = () => contents.length + commonPrefixes.length >= maxKeys;

  const keyWanted = (k: string): boolean => {
    if (cursor === undefined) return true;
    if (cursor.prefix && k.startsWith(cursor.after)) return false;
    return compareKeys(k, cursor.after) > 0;
  };
  const dirMayHold = (d: string): boolean => {
    if (cursor === undefined) return true;
    if (cursor.prefix && d.startsWith(cursor.after)) return false;
    return cursor.after.startsWith(d) || compareKeys(d, cursor.after) > 0;
  };

  // Returns false once the page is full (and one more entry proved it truncated).
  const walk = async (dir: string, keyPrefix: string): Promise<boolean> => {
    let names: string[];
    try {
      names = await readdir(dir);
    } catch {
      return true; // removed while listing: nothing under it any more
    }
    const entries: { sort: string; name: string; dir: boolean }[] = [];
    for (const name of names) {
      if (name.endsWith(META_SUFFIX)) entries.push({ sort: keyPrefix + name.slice(0, -META_SUFFIX.length), name, dir: false });
      else if (name.endsWith(DIR_SUFFIX)) entries.push({ sort: keyPrefix + name.slice(0, -DIR_SUFFIX.length) + '/', name, dir: true });
    }
    entries.sort((a, b) => compareKeys(a.sort, b.sort));
    for (const e of entries) {
      if (e.dir) {
        const d = e.sort;
        if (prefix.startsWith(d)) {
          if (dirMayHold(d) && !(await walk(join(dir, e.name), d))) return false;
        } else if (d.startsWith(prefix)) {
          if (delimiter) {
            if (!dirMayHold(d) || (cursor !== undefined && !cursor.prefix && compareKeys(d, cursor.after) <= 0)) continue;
            if (full()) {
              truncated = true;
              return false;
            }
            commonPrefixes.push(d);
            last = { after: d, prefix: true };
          } else if (dirMayHold(d) && !(await walk(join(dir, e.name), d))) return false;
        }
        continue;
      }
      const k = e.sort;
      if (!k.startsWith(prefix) || !keyWanted(k)) continue;
      const meta = await readMetaFile(join(dir, e.name)).catch(() => undefined);
      if (meta === undefined) continue;
      if (full()) {
        truncated = true;
        return false;
      }
      contents.push({ key: k, size: meta.size, etag: meta.etag, lastModified: new Date(meta.mtime).toISOString() });
      last = { after: k, prefix: false };
    }
    return true;
  };

  if (maxKeys > 0) await walk(store.bucketDir(bucket), '');
  return { contents, commonPrefixes, truncated, ...(truncated && last !== undefined ? { next: encodeToken(last) } : {}) };
}

function encodeToken(c: Cursor): string {
  return Buffer.from(JSON.stringify(c.prefix ? { a: c.after, p: 1 } : { a: c.after })).toString('base64url');
}

function decodeToken(token: string): Cursor | undefined {
  try {
    const v = JSON.parse(Buffer.from(token, 'base64url').toString('utf8')) as { a?: unknown; p?: unknown };
    if (typeof v.a !== 'string') return undefined;
    return { after: v.a, prefix: v.p === 1 };
  } catch {
    return undefined;
  }
}

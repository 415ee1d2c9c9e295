import type { Stats } from 'node:fs';
import type { FoundEntry, FsRoot } from '../fs-root.ts';
import { makeValidators, type Validators } from './conditional.ts';
import type { FileIdentity } from './body-cache.ts';

// What a request path names, remembered. Resolving a path costs a realpath and a stat, plus two
// more for the precompressed siblings; a hot file asked for thousands of times a second must not
// pay that each time. The catalog keeps file answers (never errors, so a scanner cannot fill it
// with misses) for `revalidate` ms, after which the next request re-resolves. A changed file is
// therefore noticed within `revalidate`, and the body cache, keyed by identity, follows.

export type ContentCoding = 'identity' | 'br' | 'gzip';

/** One servable representation of a file: the file itself or a precompressed sibling. */
export interface Variant extends FileIdentity {
  /** Real path to open. */
  readonly path: string;
  readonly coding: ContentCoding;
  readonly validators: Validators;
  /** Response headers every answer for this variant carries (no length, no range). */
  readonly headers: Readonly<Record<string, string>>;
  /**
   * `headers` plus the length of the whole body: the headers of a plain 200, built once per
   * variant rather than copied per request (a measurable share of a small file's cost).
   */
  readonly wholeHeaders: Readonly<Record<string, string | number>>;
}

export interface FileTarget {
  readonly kind: 'file';
  readonly checkedAt: number;
  readonly identity: Variant;
  readonly br: Variant | undefined;
  readonly gzip: Variant | undefined;
}

export type Target =
  | FileTarget
  | { readonly kind: 'bad-request'; readonly reason: string }
  | { readonly kind: 'not-found'; readonly reason: string }
  /** A directory asked for without its trailing slash. */
  | { readonly kind: 'redirect' }
  | { readonly kind: 'listing'; readonly dir: FoundEntry };

export interface CatalogOptions {
  readonly index: readonly string[];
  readonly listing: boolean;
  readonly precompressed: boolean;
  /** Milliseconds a resolved file is trusted without a new stat; 0 stats on every request. */
  readonly revalidate: number;
  /** Paths remembered at once; the oldest is forgotten first. */
  readonly maxEntries: number;
  readonly contentType: (name: string) => string;
  readonly cacheControl: string | undefined;
}

export class Catalog {
  private readonly entries = new Map<string, FileTarget>();
  /**
   * Looks at the disk in progress, by request path. When a hot path's entry goes stale, every
   * request for it until the new look is done would otherwise make its own (realpath, stat and
   * two sibling lookups each): with a few hundred requests in flight that was 8% of the server's
   * time under load. They share the one look instead. At most one per path, and only while a
   * look runs.
   */
  private readonly looking = new Map<string, Promise<Target>>();

  constructor(
    private readonly root: FsRoot,
    private readonly options: CatalogOptions,
  ) {}

  /** The remembered answer for a request path, if it is still fresh. */
  fresh(path: string, now: number): FileTarget | undefined {
    const t = this.entries.get(path);
    if (t === undefined) return undefined;
    if (now - t.checkedAt < this.options.revalidate) return t;
    this.entries.delete(path);
    return undefined;
  }

  forget(path: string): void {
    this.entries.delete(path);
    this.looking.delete(path);
  }

  clear(): void {
    this.entries.clear();
    this.looking.clear();
  }

  /** What `path` names now, from the disk (shared with a look at the same path already in progress). */
  resolve(path: string, now: number): Promise<Target> {
    const inProgress = this.looking.get(path);
    if (inProgress !== undefined) return inProgress;
    const look: Promise<Target> = this.look(path, now).finally(() => {
      if (this.looking.get(path) === look) this.looking.delete(path);
    });
    this.looking.set(path, look);
    return look;
  }

  private async look(path: string, now: number): Promise<Target> {
    const parsed = this.root.parseUrlPath(path);
    if (parsed.kind === 'bad-request') return parsed;
    if (parsed.kind === 'refused') return { kind: 'not-found', reason: parsed.reason };
    const found = await this.root.lookup(parsed.segments);
    if (found.kind === 'not-found') return { kind: 'not-found', reason: 'no such file' };
    if (found.kind === 'refused') return { kind: 'not-found', reason: found.reason };
    let file: FoundEntry = found;
    if (found.kind === 'directory') {
      if (!parsed.trailingSlash && parsed.segments.length > 0) return { kind: 'redirect' };
      const index = await this.findIndex(parsed.segments);
      if (index === undefined) return this.options.listing ? { kind: 'listing', dir: found } : { kind: 'not-found', reason: 'directory without index' };
      file = index;
    } else if (parsed.trailingSlash) {
      return { kind: 'not-found', reason: 'file asked for as a directory' };
    }
    const target = await this.fileTarget(file, now);
    if (this.options.revalidate > 0) {
      if (this.entries.size >= this.options.maxEntries) {
        const oldest = this.entries.keys().next();
        if (!oldest.done) this.entries.delete(oldest.value);
      }
      this.entries.set(path, target);
    }
    return target;
  }

  /** Rebuilds a variant from a fresher stat (the file changed since the catalog looked). */
  restat(v: Variant, st: Stats): Variant {
    return makeVariant(v.path, st, v.coding, v.headers['content-type'], v.headers.vary !== undefined, this.options.cacheControl);
  }

  private async findIndex(segments: readonly string[]): Promise<FoundEntry | undefined> {
    for (const name of this.options.index) {
      const r = await this.root.lookup([...segments, name]);
      if (r.kind === 'file') return r;
    }
    return undefined;
  }

  private async fileTarget(file: FoundEntry, now: number): Promise<FileTarget> {
    const name = file.segments.length > 0 ? file.segments[file.segments.length - 1] : file.path;
    const type = this.options.contentType(name);
    let br: FoundEntry | undefined;
    let gz: FoundEntry | undefined;
    if (this.options.precompressed && file.segments.length > 0) {
      const dir = file.segments.slice(0, -1);
      const [b, g] = await Promise.all([this.root.lookup([...dir, `${name}.br`]), this.root.lookup([...dir, `${name}.gz`])]);
      if (b.kind === 'file') br = b;
      if (g.kind === 'file') gz = g;
    }
    const vary = br !== undefined || gz !== undefined;
    const cc = this.options.cacheControl;
    return {
      kind: 'file',
      checkedAt: now,
      identity: makeVariant(file.path, file.stat, 'identity', type, vary, cc),
      br: br && makeVariant(br.path, br.stat, 'br', type, vary, cc),
      gzip: gz && makeVariant(gz.path, gz.stat, 'gzip', type, vary, cc),
    };
  }
}

function makeVariant(path: string, st: Stats, coding: ContentCoding, contentType: string, vary: boolean, cacheControl: string | undefined): Variant {
  const validators = makeValidators(st.size, st.mtimeMs, coding);
  const headers: Record<string, string> = {
    'content-type': contentType,
    etag: validators.etag,
    'last-modified': validators.lastModified,
    'accept-ranges': 'bytes',
    'x-content-type-options': 'nosniff',
  };
  if (coding !== 'identity') headers['content-encoding'] = coding;
  if (vary) headers.vary = 'accept-encoding';
  if (cacheControl !== undefined) headers['cache-control'] = cacheControl;
  // Frozen: the same objects go to every response, and an HTTP/2 response passes a frozen head
  // to node without copying it (h2-exchange.ts). The length as text: node turns a number into a
  // new string on every response.
  const wholeHeaders = Object.freeze({ ...headers, 'content-length': String(st.size) });
  return { path, coding, ino: st.ino, size: st.size, mtimeMs: st.mtimeMs, validators, headers: Object.freeze(headers), wholeHeaders };
}

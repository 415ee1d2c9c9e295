import type { CounterCell, GaugeCell } from '../../observe/hot-metrics.ts';

// The hot-file cache: whole bodies of small files, bounded in total bytes, least recently used
// evicted first. An entry is keyed by real path and remembers the file's identity (inode, size,
// mtime); a lookup with a different identity is a miss, so a replaced file is never served stale
// once the catalog has re-stat'ed it. Map insertion order is the eviction queue, with a second
// chance (CLOCK): a hit only marks its entry used, and eviction moves a used entry from the front
// to the end, unmarked, instead of dropping it. Moving the entry on every hit (delete and set
// again, true LRU) was a measurable share of a small file's cost.

export interface FileIdentity {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

interface Entry extends FileIdentity {
  readonly body: Buffer;
  /** Asked for since eviction last looked at it. */
  used: boolean;
}

export interface CacheMeters {
  readonly hits: CounterCell;
  readonly misses: CounterCell;
  readonly bytes: GaugeCell;
}

export class BodyCache {
  private readonly entries = new Map<string, Entry>();
  private bytes = 0;

  constructor(
    readonly maxBytes: number,
    readonly maxFileSize: number,
    private readonly meters?: CacheMeters,
  ) {}

  /** Whether a body of this size may be cached at all. */
  admits(size: number): boolean {
    return size <= this.maxFileSize && size <= this.maxBytes;
  }

  get(path: string, id: FileIdentity): Buffer | undefined {
    const e = this.entries.get(path);
    if (e === undefined || e.ino !== id.ino || e.size !== id.size || e.mtimeMs !== id.mtimeMs) {
      this.meters?.misses.inc();
      return undefined;
    }
    this.meters?.hits.inc();
    e.used = true;
    return e.body;
  }

  set(path: string, id: FileIdentity, body: Buffer): void {
    if (!this.admits(body.length)) return;
    this.delete(path);
    // Nothing marks entries meanwhile, so each gets one second chance at most: at most twice as
    // many turns as entries.
    while (this.bytes + body.length > this.maxBytes) {
      const oldest = this.entries.entries().next();
      if (oldest.done) break;
      const [key, e] = oldest.value;
      if (e.used) {
        e.used = false;
        this.entries.delete(key);
        this.entries.set(key, e);
      } else this.delete(key);
    }
    this.entries.set(path, { ino: id.ino, size: id.size, mtimeMs: id.mtimeMs, body, used: false });
    this.account(body.length);
  }

  delete(path: string): void {
    const e = this.entries.get(path);
    if (!e) return;
    this.entries.delete(path);
    this.account(-e.body.length);
  }

  clear(): void {
    this.account(-this.bytes);
    this.entries.clear();
  }

  get size(): number {
    return this.bytes;
  }

  private account(delta: number): void {
    this.bytes += delta;
    this.meters?.bytes.inc(delta);
  }
}

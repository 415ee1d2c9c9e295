import type { CounterCell, GaugeCell } from '../../observe/hot-metrics.ts';

// The hot-file cache: whole bodies of small files, bounded in total bytes, least recently used
// evicted first. An entry is keyed by real path and remembers the file's identity (inode, size,
// mtime); a lookup with a different identity is a miss, so a replaced file is never served stale
// once the catalog has re-stat'ed it. Map insertion order is the recency list: a hit moves the
// entry to the end.

export interface FileIdentity {
  readonly ino: number;
  readonly size: number;
  readonly mtimeMs: number;
}

interface Entry extends FileIdentity {
  readonly body: Buffer;
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
    this.entries.delete(path);
    this.entries.set(path, e);
    return e.body;
  }

  set(path: string, id: FileIdentity, body: Buffer): void {
    if (!this.admits(body.length)) return;
    this.delete(path);
    while (this.bytes + body.length > this.maxBytes) {
      const oldest = this.entries.keys().next();
      if (oldest.done) break;
      this.delete(oldest.value);
    }
    this.entries.set(path, { ino: id.ino, size: id.size, mtimeMs: id.mtimeMs, body });
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

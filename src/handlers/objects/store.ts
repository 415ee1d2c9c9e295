import { createHash, randomBytes, type Hash } from 'node:crypto';
import type { Stats } from 'node:fs';
import { mkdir, open, readdir, readFile, rename, rm, rmdir, stat, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BODY_SUFFIX, DIR_SUFFIX, META_SUFFIX, keyPlace } from './keys.ts';

// The object store on disk. Layout under the root:
//
//   <bucket>/...                 one directory per bucket; keys below it (keys.ts)
//   .staging/tmp/<owner>-<rand>  bodies being received: never where a reader looks
//   .staging/uploads/<id>/       multipart uploads in progress (multipart.ts)
//
// A write is: body streamed into .staging/tmp while hashed -> fsync -> renamed next to its key
// as `<name>.<id>.b` -> metadata (size, sha256, content type, etag, mtime, body name) written to
// a temp file, fsync'ed, renamed over `<name>.m` -> directory fsync'ed -> the previous body
// unlinked. The metadata rename is the commit: a reader sees the old object or the new one,
// whole, never a mix, and a crash at any point leaves the old object (or nothing) visible.
// What a crash can leave behind is garbage nobody reads: temp files (removed when the store
// opens) and a body renamed in place whose metadata never landed (removed by the sweep that
// runs when the store opens).
//
// Temp files and bodies are named after the process that wrote them (`<boot>p<pid>-<rand>`,
// `boot` random per process): a store opened again in the same process (a config reload), or
// by another worker process on the same root (`workers:`), must not remove the temp files and
// bodies a live writer is still working on. A name whose process is gone, or whose pid is ours
// with another boot (an earlier incarnation, e.g. pid 1 in a container), is left over.

const BOOT = randomBytes(4).toString('hex');
const OWNER = `${BOOT}p${process.pid}`;
const OWNER_IN_NAME = /([0-9a-f]{8})p(\d+)-[0-9a-f]+(?:\.b)?$/;

/** Whether a temp file or body of this name was left by a process that is no longer writing it. */
export function leftOver(name: string): boolean {
  const m = OWNER_IN_NAME.exec(name);
  if (m === null) return true;
  if (m[1] === BOOT) return false;
  const pid = Number(m[2]);
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return false;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'ESRCH';
  }
}

/** What `<name>.m` holds. */
export interface ObjectMeta {
  readonly key: string;
  readonly size: number;
  /** SHA-256 of the body, hex. */
  readonly sha256: string;
  /** MD5 of the body, hex, when the PUT sent Content-MD5. */
  readonly md5?: string;
  readonly contentType: string;
  /** Entity tag, quotes included: the SHA-256 hex. */
  readonly etag: string;
  /** When it was stored, ms since the epoch. */
  readonly mtime: number;
  /** File name of the body, in the same directory as the metadata. */
  readonly body: string;
}

/** A body received into .staging/tmp, synced, not yet anywhere a reader looks. */
export interface TempBody {
  readonly path: string;
  readonly size: number;
  readonly sha256: Buffer;
  readonly md5?: Buffer;
}

export class TooLargeError extends Error {
  override readonly name = 'TooLargeError';
}

/** The body ended before the length the client announced (Content-Length). */
export class ShortBodyError extends Error {
  override readonly name = 'ShortBodyError';
}

export interface OpenedObject {
  readonly meta: ObjectMeta;
  readonly handle: FileHandle;
  readonly stat: Stats;
}

export class ObjectStore {
  private readonly locks = new Map<string, Promise<void>>();

  private constructor(
    readonly root: string,
    private readonly fsyncOn: boolean,
  ) {}

  /** Creates the root and staging folders when missing and removes what a crashed process left in .staging/tmp. */
  static async open(root: string, fsyncOn: boolean, log: Logger): Promise<ObjectStore> {
    const store = new ObjectStore(root, fsyncOn);
    await mkdir(store.tmpDir, { recursive: true });
    await mkdir(store.uploadsDir, { recursive: true });
    let removed = 0;
    for (const name of await readdir(store.tmpDir)) {
      if (!leftOver(name)) continue;
      await rm(join(store.tmpDir, name), { force: true, recursive: true });
      removed++;
    }
    if (removed > 0) log.info({ root, removed }, 'objects: removed temp files of an earlier run');
    return store;
  }

  get tmpDir(): string {
    return join(this.root, '.staging', 'tmp');
  }

  get uploadsDir(): string {
    return join(this.root, '.staging', 'uploads');
  }

  bucketDir(bucket: string): string {
    return join(this.root, bucket);
  }

  async bucketExists(bucket: string): Promise<boolean> {
    return (await stat(this.bucketDir(bucket)).catch(() => undefined))?.isDirectory() === true;
  }

  /** true when created, false when it was there already. */
  async createBucket(bucket: string): Promise<boolean> {
    try {
      await mkdir(this.bucketDir(bucket));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EEXIST') return false;
      throw err;
    }
    await this.syncDir(this.root);
    return true;
  }

  async deleteBucket(bucket: string): Promise<'deleted' | 'missing' | 'not-empty'> {
    try {
      await rmdir(this.bucketDir(bucket));
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT') return 'missing';
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return 'not-empty';
      throw err;
    }
    await this.syncDir(this.root);
    return 'deleted';
  }

  async listBuckets(): Promise<string[]> {
    const entries = await readdir(this.root, { withFileTypes: true });
    return entries.filter((e) => e.isDirectory() && !e.name.startsWith('.')).map((e) => e.name).sort();
  }

  /** A fresh path in .staging/tmp. */
  tempPath(): string {
    return join(this.tmpDir, `${OWNER}-${randomBytes(8).toString('hex')}`);
  }

  /**
   * Streams `source` into a temp file, hashing as it goes (MD5 too when `md5`), and syncs it.
   * Throws TooLargeError past `limit` bytes, ShortBodyError when fewer than `expected` came; the
   * temp file is removed on any failure.
   */
  async receive(source: AsyncIterable<Buffer>, limit: number, options: { md5: boolean; expected?: number }): Promise<TempBody> {
    const path = this.tempPath();
    const handle = await open(path, 'wx', 0o644);
    const sha = createHash('sha256');
    const md5: Hash | undefined = options.md5 ? createHash('md5') : undefined;
    let size = 0;
    try {
      for await (const chunk of source) {
        size += chunk.length;
        if (size > limit) throw new TooLargeError(`more than ${limit} bytes`);
        sha.update(chunk);
        md5?.update(chunk);
        await writeAll(handle, chunk);
      }
      if (options.expected !== undefined && size !== options.expected) throw new ShortBodyError(`${size} of ${options.expected} bytes arrived`);
      if (this.fsyncOn) await handle.sync();
    } catch (err) {
      await handle.close().catch(() => {});
      await unlink(path).catch(() => {});
      throw err;
    }
    await handle.close();
    return { path, size, sha256: sha.digest(), md5: md5?.digest() };
  }

  /** Throws a received body away. */
  async discard(temp: TempBody): Promise<void> {
    await unlink(temp.path).catch(() => {});
  }

  /** Puts a received body in place as `key` (the commit described at the top); returns the new metadata. */
  async commit(bucket: string, key: string, segments: readonly string[], temp: TempBody, contentType: string): Promise<ObjectMeta> {
    const place = keyPlace(segments);
    const dir = join(this.bucketDir(bucket), ...place.dirs);
    const sha256 = temp.sha256.toString('hex');
    const meta: ObjectMeta = {
      key,
      size: temp.size,
      sha256,
      ...(temp.md5 ? { md5: temp.md5.toString('hex') } : {}),
      contentType,
      etag: `"${sha256}"`,
      mtime: Date.now(),
      body: `${place.name}.${OWNER}-${randomBytes(6).toString('hex')}${BODY_SUFFIX}`,
    };
    const metaTemp = this.tempPath();
    try {
      const mh = await open(metaTemp, 'wx', 0o644);
      try {
        await mh.writeFile(JSON.stringify(meta));
        if (this.fsyncOn) await mh.sync();
      } finally {
        await mh.close();
      }
      await this.locked(bucket, key, async () => {
        // An empty parent may be removed by a concurrent delete between mkdir and rename: again.
        for (let attempt = 0; ; attempt++) {
          await mkdir(dir, { recursive: true });
          try {
            await rename(temp.path, join(dir, meta.body));
            break;
          } catch (err) {
            if ((err as NodeJS.ErrnoException).code !== 'ENOENT' || attempt >= 3) throw err;
          }
        }
        const previous = await readMetaFile(join(dir, place.name + META_SUFFIX));
        await rename(metaTemp, join(dir, place.name + META_SUFFIX));
        await this.syncDir(dir);
        if (previous !== undefined && previous.body !== meta.body) await unlink(join(dir, previous.body)).catch(() => {});
      });
    } catch (err) {
      await unlink(metaTemp).catch(() => {});
      await unlink(temp.path).catch(() => {});
      throw err;
    }
    return meta;
  }

  async readMeta(bucket: string, segments: readonly string[]): Promise<ObjectMeta | undefined> {
    const place = keyPlace(segments);
    return readMetaFile(join(this.bucketDir(bucket), ...place.dirs, place.name + META_SUFFIX));
  }

  /** Opens the current body of a key; undefined when there is no such object. */
  async openObject(bucket: string, segments: readonly string[]): Promise<OpenedObject | undefined> {
    const place = keyPlace(segments);
    const dir = join(this.bucketDir(bucket), ...place.dirs);
    // A write may replace the body between reading the metadata and opening it: read again.
    for (let attempt = 0; attempt < 3; attempt++) {
      const meta = await readMetaFile(join(dir, place.name + META_SUFFIX));
      if (meta === undefined) return undefined;
      let handle: FileHandle;
      try {
        handle = await open(join(dir, meta.body), 'r');
      } catch (err) {
        if ((err as NodeJS.ErrnoException).code === 'ENOENT') continue;
        throw err;
      }
      return { meta, handle, stat: await handle.stat() };
    }
    return undefined;
  }

  /** Removes a key; false when there was none. Empty parent directories go too. */
  async delete(bucket: string, key: string, segments: readonly string[]): Promise<boolean> {
    const place = keyPlace(segments);
    const bucketDir = this.bucketDir(bucket);
    const dir = join(bucketDir, ...place.dirs);
    return this.locked(bucket, key, async () => {
      const metaPath = join(dir, place.name + META_SUFFIX);
      const meta = await readMetaFile(metaPath);
      if (meta === undefined) return false;
      await unlink(metaPath);
      await this.syncDir(dir);
      await unlink(join(dir, meta.body)).catch(() => {});
      for (let i = place.dirs.length; i > 0; i--) {
        try {
          await rmdir(join(bucketDir, ...place.dirs.slice(0, i)));
        } catch {
          break;
        }
      }
      return true;
    });
  }

  /**
   * Removes bodies no metadata names (a crash between a body's rename and its metadata's), in
   * every bucket. Bodies of live processes are left alone: they may be a commit in progress.
   */
  async sweepOrphans(): Promise<number> {
    let removed = 0;
    const walk = async (dir: string, depth: number): Promise<void> => {
      if (depth > 1024) return;
      const names = await readdir(dir).catch(() => [] as string[]);
      const referenced = new Set<string>();
      const bodies: string[] = [];
      for (const name of names) {
        if (name.endsWith(META_SUFFIX)) {
          const meta = await readMetaFile(join(dir, name));
          if (meta) referenced.add(meta.body);
        } else if (name.endsWith(BODY_SUFFIX)) bodies.push(name);
        else if (name.endsWith(DIR_SUFFIX)) await walk(join(dir, name), depth + 1);
      }
      for (const b of bodies) {
        if (referenced.has(b) || !leftOver(b)) continue;
        await unlink(join(dir, b)).catch(() => {});
        removed++;
      }
    };
    for (const bucket of await this.listBuckets()) await walk(this.bucketDir(bucket), 0);
    return removed;
  }

  async syncDir(dir: string): Promise<void> {
    if (!this.fsyncOn) return;
    const h = await open(dir, 'r');
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  }

  /** Runs `fn` with no other commit or delete of the same key in between (in this process). */
  private async locked<T>(bucket: string, key: string, fn: () => Promise<T>): Promise<T> {
    const id = `${bucket}\0${key}`;
    const before = this.locks.get(id) ?? Promise.resolve();
    let release!: () => void;
    const mine = new Promise<void>((r) => (release = r));
    const tail = before.then(() => mine);
    this.locks.set(id, tail);
    await before;
    try {
      return await fn();
    } finally {
      release();
      if (this.locks.get(id) === tail) this.locks.delete(id);
    }
  }
}

/** Metadata of one object; undefined when missing or unreadable (a half-written file cannot exist: it is renamed in whole). */
export async function readMetaFile(path: string): Promise<ObjectMeta | undefined> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT' || code === 'ENOTDIR') return undefined;
    throw err;
  }
  const value = JSON.parse(text) as ObjectMeta;
  if (typeof value.body !== 'string' || typeof value.size !== 'number' || typeof value.sha256 !== 'string') throw new Error(`objects: metadata ${path} is not valid`);
  return value;
}

async function writeAll(handle: FileHandle, chunk: Buffer): Promise<void> {
  let off = 0;
  while (off < chunk.length) {
    const { bytesWritten } = await handle.write(chunk, off, chunk.length - off);
    off += bytesWritten;
  }
}

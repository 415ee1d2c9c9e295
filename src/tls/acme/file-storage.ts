import { randomBytes } from 'node:crypto';
import { link, mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises';
import { dirname, join } from 'node:path';
import { checkStorageName, type AcmeStorage, type Release } from './storage.ts';

// ACME storage in a folder of the data folder: one file per blob (0600, folders 0700, written to a
// temporary file and renamed over the old one), and a lock file `<name>.lock` holding its owner's
// token and expiry. For daemons on one machine (or one local file system) sharing the folder.

interface LockFile {
  token: string;
  expires: number;
}

function isErrno(err: unknown, code: string): boolean {
  return err instanceof Error && (err as NodeJS.ErrnoException).code === code;
}

export class FileAcmeStorage implements AcmeStorage {
  constructor(readonly root: string) {}

  private path(name: string): string {
    checkStorageName(name);
    return join(this.root, ...name.split('/'));
  }

  async get(name: string): Promise<Buffer | undefined> {
    try {
      return await readFile(this.path(name));
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return undefined;
      throw err;
    }
  }

  async set(name: string, value: Buffer | string): Promise<void> {
    const path = this.path(name);
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const tmp = `${path}.${randomBytes(6).toString('hex')}.tmp`;
    const fh = await open(tmp, 'wx', 0o600);
    try {
      await fh.writeFile(value);
      await fh.sync();
    } finally {
      await fh.close();
    }
    try {
      await rename(tmp, path);
    } catch (err) {
      await unlink(tmp).catch(() => undefined);
      throw err;
    }
  }

  async delete(name: string): Promise<void> {
    try {
      await unlink(this.path(name));
    } catch (err) {
      if (!isErrno(err, 'ENOENT')) throw err;
    }
  }

  async lock(name: string, ttlMs: number): Promise<Release | undefined> {
    const path = `${this.path(name)}.lock`;
    await mkdir(dirname(path), { recursive: true, mode: 0o700 });
    const token = randomBytes(16).toString('hex');
    for (let attempt = 0; attempt < 3; attempt++) {
      try {
        const fh = await open(path, 'wx', 0o600);
        try {
          await fh.writeFile(JSON.stringify({ token, expires: Date.now() + ttlMs } satisfies LockFile));
        } finally {
          await fh.close();
        }
        return () => this.unlock(path, token);
      } catch (err) {
        if (!isErrno(err, 'EEXIST')) throw err;
      }
      let held = await readLock(path);
      if (held === 'gone') continue;
      if (held === undefined) {
        // Empty or half written: being written now, or left by a holder that died while writing
        // it; the latter is taken for expired once it is older than ttlMs.
        const since = await stat(path).then((s) => s.mtimeMs, () => undefined);
        if (since === undefined) continue;
        held = { token: '', expires: since + ttlMs };
      }
      if (held.expires > Date.now()) return undefined;
      // Expired: move it aside under a name of our own (only one taker's rename finds it), and
      // make sure it was the expired one and not a fresh lock someone took meanwhile.
      const aside = `${path}.${token}.stale`;
      try {
        await rename(path, aside);
      } catch (err) {
        if (isErrno(err, 'ENOENT')) continue;
        throw err;
      }
      const moved = await readLock(aside);
      if (moved !== 'gone' && moved !== undefined && moved.token !== held.token) {
        // Someone else's fresh lock: put it back (unless yet another one is there by now).
        await link(aside, path).catch(() => undefined);
        await unlink(aside).catch(() => undefined);
        return undefined;
      }
      await unlink(aside).catch(() => undefined);
    }
    return undefined;
  }

  private async unlock(path: string, token: string): Promise<void> {
    const held = await readLock(path);
    if (held === 'gone' || held === undefined || held.token !== token) return;
    // Same dance as a takeover, so that a lock taken by another after ours ran out stays.
    const aside = `${path}.${token}.release`;
    try {
      await rename(path, aside);
    } catch (err) {
      if (isErrno(err, 'ENOENT')) return;
      throw err;
    }
    const moved = await readLock(aside);
    if (moved !== 'gone' && moved !== undefined && moved.token !== token) await link(aside, path).catch(() => undefined);
    await unlink(aside).catch(() => undefined);
  }

  async close(): Promise<void> {}
}

async function readLock(path: string): Promise<LockFile | undefined | 'gone'> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    if (isErrno(err, 'ENOENT')) return 'gone';
    throw err;
  }
  try {
    const v = JSON.parse(text) as Partial<LockFile>;
    if (typeof v.token === 'string' && typeof v.expires === 'number') return { token: v.token, expires: v.expires };
  } catch {
    // being written
  }
  return undefined;
}

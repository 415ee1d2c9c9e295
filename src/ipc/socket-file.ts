import { chmodSync, lstatSync, unlinkSync } from 'node:fs';
import net from 'node:net';
import { IpcError } from './errors.ts';

// Unix socket paths for the IPC transports, with the same rules the daemon's unix listener
// follows (src/listeners/unix.ts): `@name` is Linux's abstract namespace (no file at all); a socket
// file left by a dead process is replaced; one a live process still answers on is "in use"; a
// path that is not a socket is never deleted. The file is created with a tight umask around bind
// (so it is never briefly open to others) and then chmod'ed to the requested mode.

export function isAbstract(path: string): boolean {
  return path.startsWith('@');
}

/** The string Node's listen/connect wants: a leading NUL for the abstract namespace. */
export function bindPath(path: string): string {
  return isAbstract(path) ? `\0${path.slice(1)}` : path;
}

/** Removes a stale socket file at `path`; throws IpcError when something live or not a socket is there. */
export async function clearStaleSocket(path: string): Promise<void> {
  if (isAbstract(path)) return;
  let isSocket: boolean;
  try {
    isSocket = lstatSync(path).isSocket();
  } catch {
    return; // nothing there
  }
  if (!isSocket) throw new IpcError('SWITCHYARD_IPC_PERMISSION', `${path}: a file that is not a socket is in the way (not removed)`);
  const alive = await new Promise<boolean>((resolve) => {
    const probe = net.connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (alive) throw new IpcError('SWITCHYARD_IPC_PERMISSION', `${path}: address already in use (a live process answers on this socket)`);
  unlinkSync(path);
}

/** Binds `server` on `path` (file mode `mode`, or abstract). */
export async function listenSocketFile(server: net.Server, path: string, mode: number): Promise<void> {
  await clearStaleSocket(path);
  await new Promise<void>((resolve, reject) => {
    // The umask must cover the bind itself; it is restored as soon as listening starts (or fails).
    const previous = process.umask(0o777 & ~mode);
    const onError = (err: NodeJS.ErrnoException) => {
      process.umask(previous);
      reject(
        new IpcError(err.code === 'EACCES' ? 'SWITCHYARD_IPC_PERMISSION' : 'SWITCHYARD_IPC_UNSUPPORTED', `cannot listen on ${path}: ${err.code ?? err.message}`, {
          cause: err,
        }),
      );
    };
    server.once('error', onError);
    server.listen({ path: bindPath(path), backlog: 1024 }, () => {
      process.umask(previous);
      server.off('error', onError);
      try {
        if (!isAbstract(path)) chmodSync(path, mode);
        resolve();
      } catch (err) {
        server.close();
        reject(new IpcError('SWITCHYARD_IPC_PERMISSION', `cannot chmod ${path}: ${(err as Error).message}`, { cause: err }));
      }
    });
  });
}

import cluster from 'node:cluster';
import { chmodSync, linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import { connect, createServer, type Server } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import type { ListenerSummary } from '../handlers/types.ts';
import { StreamListener, type StreamListenerOptions } from './stream.ts';
import { ListenError, listenErrorReason } from './types.ts';
import { DEFAULT_BACKLOG, type UnixListenerSocketOptions } from '../config/socket-options.ts';
import { unixConnectionOptions } from './socket-options.ts';
import { libc } from '../sys/libc.ts';
import { listeningServerFd } from '../sys/socket-fd.ts';

// Unix socket listeners. The socket file is created owner-only (mode 0600 unless configured),
// with a tight umask during bind so it is never briefly open to others. A socket file left by a
// dead process is replaced; one that a live process still answers on is an "in use" error; a path
// that is not a socket at all is never deleted. `@name` binds in Linux's abstract namespace.
//
// The socket file and closing. libuv unlinks the path a server bound when that server closes, by
// name. When a new daemon takes the listening socket over (upgrade.ts), the old one closes its
// server while the new one goes on accepting on the same socket: an unlink there would leave the
// file missing, and linking it back afterwards (the fallback below) still leaves a moment in
// which clients get ENOENT, long enough to be hit under load. So the listener does not keep the
// server that bound the path: it listens on a duplicate of its fd (a server made from an fd has
// no path of its own to unlink), closes the binding one while the file is held by a hard link,
// and removes the file itself on a plain stop, only when the path still names its own socket.

export class UnixListener extends StreamListener {
  readonly protocol = 'unix' as const;
  private readonly path: string;

  constructor(
    options: StreamListenerOptions,
    path: string,
    private readonly mode: number,
    baseDir: string,
    /** `socket:` (docs/socket-options.md): backlog at listen, buffer sizes on each connection. */
    private readonly socket?: UnixListenerSocketOptions,
  ) {
    super(options);
    this.path = path.startsWith('@') ? path : resolvePath(baseDir, path);
    const perConnection = unixConnectionOptions(socket, this.name, options.log);
    if (perConnection) this.server.on('connection', perConnection);
  }

  /** Set by an upgrade (upgrade.ts): the new daemon listens on this socket's file too. */
  private keepFile = false;
  /**
   * The socket file's inode while this listener is what removes it on stop (it listens on an fd,
   * so libuv will not); undefined when libuv's own close does, or for abstract names.
   */
  private ownedFile: number | undefined;

  /** On stopAccepting, leave the socket file in place (the daemon that takes over listens on it). */
  keepFileOnClose(): void {
    this.keepFile = true;
  }

  override async stopAccepting(): Promise<void> {
    if (this.ownedFile !== undefined) {
      // Removed before the socket closes (as libuv does): the other way round, a socket another
      // process has just created under the same name could be the one removed.
      if (!this.keepFile) this.removeOwnFile();
      return super.stopAccepting();
    }
    if (!this.keepFile || this.path.startsWith('@')) return super.stopAccepting();
    // libuv removes the file of a server this process bound, in close(): a hard link keeps the
    // socket, and it is back under its name right after, in the same turn (a client connecting
    // between the two system calls gets ENOENT; only without the native dup(), see the top).
    const spare = keptFileName(this.path);
    try {
      linkSync(this.path, spare);
    } catch {
      return super.stopAccepting();
    }
    this.server.close();
    try {
      renameSync(spare, this.path);
    } catch {
      try {
        unlinkSync(spare);
      } catch {
        // nothing left to tidy
      }
    }
  }

  private removeOwnFile(): void {
    try {
      if (lstatSync(this.path).ino === this.ownedFile) unlinkSync(this.path);
    } catch {
      // already gone, or not ours to remove
    }
    this.ownedFile = undefined;
  }

  private get bindPath(): string {
    return this.path.startsWith('@') ? `\0${this.path.slice(1)}` : this.path;
  }

  async start(): Promise<void> {
    const inherited = this.options.inherit;
    if (inherited) {
      // Handed over by the daemon this one replaces (its native handle): listening already, the
      // file and its mode in place.
      await new Promise<void>((resolve, reject) => {
        this.server.once('error', reject);
        this.server.listen(inherited, () => {
          this.server.off('error', reject);
          this.server.on('error', (err) => this.options.log.error({ err, listener: this.name }, 'listener error'));
          resolve();
        });
      });
      this.bound = { path: this.path };
      // The socket came as an fd: libuv has no path to remove on close, so this listener does.
      if (!this.path.startsWith('@')) this.ownedFile = inodeOf(this.path);
      return;
    }
    if (!this.path.startsWith('@')) await this.clearStaleSocket();
    const backlog = this.socket?.backlog ?? DEFAULT_BACKLOG;
    // A worker's listen goes through the cluster's primary, which holds the socket; abstract
    // names have no file. Everything else binds on a server of its own first (see the top).
    const binder = this.path.startsWith('@') || cluster.isWorker || !libc() ? this.server : createServer();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        process.umask(previous);
        reject(new ListenError(this.name, this.path, listenErrorReason(err), { cause: err }));
      };
      binder.once('error', onError);
      // The umask must cover the bind itself; it is restored as soon as listening starts.
      const previous = process.umask(0o777 & ~this.mode);
      binder.listen({ path: this.bindPath, backlog }, () => {
        process.umask(previous);
        binder.off('error', onError);
        if (!this.path.startsWith('@')) chmodSync(this.path, this.mode);
        resolve();
      });
    });
    if (binder !== this.server) await this.listenOnDuplicate(binder, backlog);
    this.server.on('error', (err) => this.options.log.error({ err, listener: this.name }, 'listener error'));
    this.bound = { path: this.path };
  }

  /**
   * Moves listening from `binder` (which bound the path) to this listener's server, on a
   * duplicate of the same socket's fd, and closes `binder` without losing the file.
   */
  private async listenOnDuplicate(binder: Server, backlog: number): Promise<void> {
    const native = libc();
    const fd = listeningServerFd(binder);
    const copy = native && fd !== undefined ? native.dup(fd) : -1;
    if (copy < 0) {
      binder.close();
      const reason = native ? `cannot duplicate the listening socket (errno ${native.errno()})` : 'cannot duplicate the listening socket';
      throw new ListenError(this.name, this.path, reason);
    }
    await new Promise<void>((resolve, reject) => {
      this.server.once('error', reject);
      // Node takes a backlog for an fd only as the second argument (options.backlog is ignored).
      this.server.listen({ fd: copy }, backlog, () => {
        this.server.off('error', reject);
        resolve();
      });
    });
    const spare = keptFileName(this.path);
    linkSync(this.path, spare);
    binder.close();
    renameSync(spare, this.path);
    this.ownedFile = inodeOf(this.path);
  }
  private async clearStaleSocket(): Promise<void> {
    let isSocket: boolean;
    try {
      isSocket = lstatSync(this.path).isSocket();
    } catch {
      return; // nothing there
    }
    if (!isSocket) throw new ListenError(this.name, this.path, 'a file that is not a socket is in the way (not removed)');
    const alive = await new Promise<boolean>((resolve) => {
      const probe = connect({ path: this.path });
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => resolve(false));
    });
    if (alive) throw new ListenError(this.name, this.path, 'address already in use (a live process answers on this socket)');
    unlinkSync(this.path);
  }

  summary(): ListenerSummary {
    const tryIt = this.path.startsWith('@') ? `socat - ABSTRACT-CONNECT:${this.path.slice(1)}` : `nc -U ${this.path}`;
    return { name: this.name, protocol: 'unix', url: `unix:${this.path}`, handlers: [this.options.handlerType], tryIt };
  }
}

function inodeOf(path: string): number | undefined {
  try {
    return lstatSync(path).ino;
  } catch {
    return undefined;
  }
}

function keptFileName(path: string): string {
  return `${path}.upgrade-${process.pid}`;
}

import { chmodSync, linkSync, lstatSync, renameSync, unlinkSync } from 'node:fs';
import { connect } from 'node:net';
import { resolve as resolvePath } from 'node:path';
import type { ListenerSummary } from '../handlers/types.ts';
import { StreamListener, type StreamListenerOptions } from './stream.ts';
import { ListenError, listenErrorReason } from './types.ts';
import { DEFAULT_BACKLOG, type UnixListenerSocketOptions } from '../config/socket-options.ts';
import { unixConnectionOptions } from './socket-options.ts';

// Unix socket listeners. The socket file is created owner-only (mode 0600 unless configured),
// with a tight umask during bind so it is never briefly open to others. A socket file left by a
// dead process is replaced; one that a live process still answers on is an "in use" error; a path
// that is not a socket at all is never deleted. `@name` binds in Linux's abstract namespace.

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

  /** On stopAccepting, leave the socket file in place (the daemon that takes over listens on it). */
  keepFileOnClose(): void {
    this.keepFile = true;
  }

  override async stopAccepting(): Promise<void> {
    if (!this.keepFile || this.path.startsWith('@')) return super.stopAccepting();
    // Closing a socket this process bound removes its file (libuv unlinks it, synchronously in
    // close()): a hard link keeps it, and it is back under its name right after, in the same
    // turn, so a client connecting meanwhile almost never sees it missing.
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
      return;
    }
    if (!this.path.startsWith('@')) await this.clearStaleSocket();
    await new Promise<void>((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => {
        process.umask(previous);
        reject(new ListenError(this.name, this.path, listenErrorReason(err), { cause: err }));
      };
      this.server.once('error', onError);
      // The umask must cover the bind itself; it is restored as soon as listening starts.
      const previous = process.umask(0o777 & ~this.mode);
      this.server.listen({ path: this.bindPath, backlog: this.socket?.backlog ?? DEFAULT_BACKLOG }, () => {
        process.umask(previous);
        this.server.off('error', onError);
        this.server.on('error', (err) => this.options.log.error({ err, listener: this.name }, 'listener error'));
        if (!this.path.startsWith('@')) chmodSync(this.path, this.mode);
        this.bound = { path: this.path };
        resolve();
      });
    });
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

function keptFileName(path: string): string {
  return `${path}.upgrade-${process.pid}`;
}

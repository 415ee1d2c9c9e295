import net from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { peerCredentials } from '../../sys/peercred.ts';
import type { Channel, ChannelOptions, PeerCredentials } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { AcceptQueue, type ChannelServer } from '../server.ts';
import { bindPath, isAbstract, listenSocketFile } from '../socket-file.ts';
import { StreamChannel } from '../stream-channel.ts';

// Unix socket transport: a StreamChannel over a unix stream socket, with the peer's credentials
// (SO_PEERCRED) on every channel. `path` is a file path, or `@name` for Linux's abstract
// namespace. The socket file is created owner-only (0600) unless `mode` says otherwise.
//
// `allow` restricts who may connect. It is checked before a single byte is read: the server
// accepts with pauseOnConnect (libuv does not start reading), asks the kernel for the peer's
// credentials, and either wraps the socket in a channel or destroys it at once. A peer is allowed
// when its uid is in `uids` or its (primary) gid is in `gids`. If credentials cannot be read
// (no native calls here), an allow list refuses everyone: it fails closed.

export interface UnixAllow {
  uids?: readonly number[];
  gids?: readonly number[];
}

export interface UnixListenOptions extends ChannelOptions {
  /** File mode of the socket file; default 0o600. Ignored for abstract names. */
  mode?: number;
  /** Who may connect; default everyone who can reach the socket. */
  allow?: UnixAllow;
  /** Called for each refused peer (for logging); `peer` is undefined when credentials were unreadable. */
  onRefused?(peer: PeerCredentials | undefined): void;
  /** Messages queued for a slow reader before the socket is paused. */
  receiveQueue?: number;
}

export interface UnixChannelServer extends ChannelServer {
  /** Connections refused by the allow list so far. */
  readonly refused: number;
}

export interface UnixConnectOptions extends ChannelOptions {
  /** Milliseconds to wait for connect; default 10 s. */
  connectTimeout?: number;
  receiveQueue?: number;
}

function normalize(path: string): string {
  return isAbstract(path) ? path : resolvePath(path);
}

function allowed(allow: UnixAllow, peer: PeerCredentials | undefined): boolean {
  if (!peer) return false;
  return (allow.uids?.includes(peer.uid) ?? false) || (allow.gids?.includes(peer.gid) ?? false);
}

export async function listenUnix(path: string, options: UnixListenOptions = {}): Promise<UnixChannelServer> {
  const address = normalize(path);
  const { mode = 0o600, allow, onRefused } = options;
  const accepted = new AcceptQueue();
  let refused = 0;
  const server = net.createServer({ pauseOnConnect: true }, (socket) => {
    const peer = peerCredentials(socket);
    if (allow && !allowed(allow, peer)) {
      refused++;
      socket.destroy();
      onRefused?.(peer);
      return;
    }
    accepted.push(new StreamChannel('unix', socket, { maxMessageSize: options.maxMessageSize, receiveQueue: options.receiveQueue, peer }));
    socket.resume(); // pauseOnConnect left the socket with flowing === false
  });
  await listenSocketFile(server, address, mode);
  server.on('error', (err) => accepted.end(err));
  return {
    address,
    get refused() {
      return refused;
    },
    accept: () => accepted,
    [Symbol.asyncIterator]: () => accepted[Symbol.asyncIterator](),
    // libuv unlinks the socket file when a path-bound server closes.
    close: () =>
      new Promise<void>((resolve) => {
        accepted.end();
        server.close(() => resolve());
      }),
  };
}

/** Connects to a unix channel server; the channel's `peer` is the server process's credentials. */
export async function connectUnix(path: string, options: UnixConnectOptions = {}): Promise<Channel> {
  const address = normalize(path);
  const timeout = options.connectTimeout ?? 10_000;
  const socket = net.connect({ path: bindPath(address) });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new IpcError('SWITCHYARD_IPC_TIMEOUT', `unix connect to ${address} took over ${timeout} ms`));
    }, timeout);
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      const code = err.code === 'EACCES' || err.code === 'EPERM' ? 'SWITCHYARD_IPC_PERMISSION' : 'SWITCHYARD_IPC_PEER_GONE';
      reject(new IpcError(code, `unix connect to ${address} failed: ${err.code ?? err.message}`, { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    });
  });
  return new StreamChannel('unix', socket, { maxMessageSize: options.maxMessageSize, receiveQueue: options.receiveQueue, peer: peerCredentials(socket) });
}

import type { FileHandle } from 'node:fs/promises';
import net from 'node:net';
import { resolve as resolvePath } from 'node:path';
import { ScmRightsError, closeFd, receiveFdRaw, sendFdRaw } from '../sys/scm-rights.ts';
import { listeningServerFd } from '../sys/socket-fd.ts';
import { plainSocketFd } from '../sys/socket-fd.ts';
import { IpcError } from './errors.ts';
import { bindPath, isAbstract } from './socket-file.ts';

// Passing open descriptors to another process over a unix socket (SCM_RIGHTS, seed 003 §3.3):
// an open file, a connected socket or a listening server, received as a usable Node object.
//
// Wire format: each descriptor travels as exactly ONE byte of ordinary stream data, sent by one
// sendmsg(2) that also carries one SCM_RIGHTS control message with one 32-bit fd. The byte is the
// kind: 'F' (0x46) a file, 'S' (0x53) a connected socket, 'L' (0x4c) a listening socket. The kernel
// attaches the descriptor to that byte; the receiver reads one byte per recvmsg(2), so two
// descriptors are never merged and no byte is read without its descriptor.
//
// Use a unix connection dedicated to this (not one a Channel reads): on the receiving side nothing
// but receiveFd may read the socket, since a plain read(2) of the byte silently drops the
// descriptor. `connectForFds` makes such a client socket (paused before it ever reads); a server can
// use `net.createServer({ pauseOnConnect: true })`. The sender keeps its own copy of each
// descriptor: close it (server.close(), socket.destroy(), fh.close()) once the receiver has it.

export type FdKind = 'file' | 'socket' | 'server';

const TAGS: Record<FdKind, number> = { file: 0x46, socket: 0x53, server: 0x4c };
const KINDS = new Map<number, FdKind>(Object.entries(TAGS).map(([k, t]) => [t, k as FdKind]));

export type Passable = number | FileHandle | net.Socket | net.Server;

function describe(what: Passable, kind: FdKind | undefined): { fd: number; kind: FdKind } {
  if (typeof what === 'number') return { fd: what, kind: kind ?? 'file' };
  if (what instanceof net.Server) {
    const fd = listeningServerFd(what);
    if (fd === undefined) throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', 'the server is not listening (or has no fd)');
    return { fd, kind: 'server' };
  }
  if (what instanceof net.Socket) {
    const fd = plainSocketFd(what);
    if (fd === undefined) throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', 'the socket has no plain fd (closed, or TLS)');
    return { fd, kind: 'socket' };
  }
  return { fd: what.fd, kind: 'file' };
}

function socketFdOf(via: net.Socket): number {
  const fd = plainSocketFd(via);
  if (fd === undefined) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'the unix socket to pass descriptors over is closed');
  return fd;
}

function asIpcError(err: unknown): unknown {
  if (err instanceof ScmRightsError) {
    return new IpcError(err.peerGone ? 'SWITCHYARD_IPC_PEER_GONE' : err.errno === undefined ? 'SWITCHYARD_IPC_UNSUPPORTED' : 'SWITCHYARD_IPC_PROTOCOL', err.message, { cause: err });
  }
  return err;
}

/** Sends a descriptor over the connected unix socket `via`. A bare number is sent as `kind` (default 'file'). */
export async function sendFd(via: net.Socket, what: Passable, kind?: FdKind): Promise<void> {
  const d = describe(what, kind);
  // Bytes Node still holds for this socket must reach the kernel first, so the order is kept.
  if (via.writableLength > 0) await new Promise<void>((resolve) => via.once('drain', resolve));
  try {
    await sendFdRaw(socketFdOf(via), d.fd, TAGS[d.kind]);
  } catch (err) {
    throw asIpcError(err);
  }
}

const pending = new WeakMap<net.Socket, Promise<unknown>>();

/** Receives the next descriptor from `via` (which nothing else reads) as a raw fd and its kind. */
export function receiveFd(via: net.Socket): Promise<{ kind: FdKind; fd: number }> {
  // One recvmsg at a time per socket: later calls queue behind earlier ones.
  const previous = pending.get(via) ?? Promise.resolve();
  const next = previous.catch(() => undefined).then(async () => {
    let got: { tag: number; fd: number };
    try {
      got = await receiveFdRaw(socketFdOf(via));
    } catch (err) {
      throw asIpcError(err);
    }
    const kind = KINDS.get(got.tag);
    if (!kind) {
      closeFd(got.fd);
      throw new IpcError('SWITCHYARD_IPC_PROTOCOL', `unknown descriptor kind byte 0x${got.tag.toString(16)}`);
    }
    return { kind, fd: got.fd };
  });
  pending.set(via, next);
  return next;
}

async function expect(via: net.Socket, kind: FdKind): Promise<number> {
  const got = await receiveFd(via);
  if (got.kind !== kind) {
    closeFd(got.fd);
    throw new IpcError('SWITCHYARD_IPC_PROTOCOL', `expected a ${kind} descriptor, got a ${got.kind}`);
  }
  return got.fd;
}

/** Receives a file descriptor (use it with fs.read*, fs.createReadStream(null, { fd }), ...). */
export function receiveFile(via: net.Socket): Promise<number> {
  return expect(via, 'file');
}

/** Receives a connected socket as a net.Socket. */
export async function receiveSocket(via: net.Socket): Promise<net.Socket> {
  const fd = await expect(via, 'socket');
  return new net.Socket({ fd, readable: true, writable: true });
}

/** Receives a listening socket and starts `server` (a new net.Server by default) accepting on it. */
export async function receiveServer<S extends net.Server = net.Server>(via: net.Socket, server?: S): Promise<S> {
  const fd = await expect(via, 'server');
  const s = server ?? (net.createServer() as S);
  await new Promise<void>((resolve, reject) => {
    s.once('error', reject);
    s.listen({ fd }, () => {
      s.off('error', reject);
      resolve();
    });
  });
  return s;
}

/** Connects to a unix socket for receiving descriptors: the socket is paused before Node ever reads it. */
export function connectForFds(path: string): Promise<net.Socket> {
  const address = isAbstract(path) ? path : resolvePath(path);
  const socket = net.connect({ path: bindPath(address) });
  socket.pause(); // before 'connect': Node then never starts reading (its first read happens only if not paused)
  return new Promise((resolve, reject) => {
    socket.once('error', (err: NodeJS.ErrnoException) => reject(new IpcError('SWITCHYARD_IPC_PEER_GONE', `connect to ${address} failed: ${err.code ?? err.message}`, { cause: err })));
    socket.once('connect', () => resolve(socket));
  });
}

import type { Server, Socket } from 'node:net';

// Node does not expose a socket's file descriptor in its typings; it lives on the internal
// `_handle`. This is the one place that reaches for it (connected sockets and listening servers). Only plain TCP and unix-socket handles
// qualify: a TLS socket's fd carries ciphertext, and bytes written there behind the TLS layer's
// back would corrupt the session (and leak plaintext), so those never get an fd here.

interface RawHandle {
  fd?: number;
}

/** The kernel fd of a plain (non-TLS) connected socket, or undefined when there is none to use. */
export function plainSocketFd(socket: Socket): number | undefined {
  if ((socket as Socket & { encrypted?: boolean }).encrypted) return undefined;
  if (socket.destroyed || !socket.writable) return undefined;
  const handle = (socket as unknown as { _handle?: RawHandle | null })._handle;
  const name = handle?.constructor?.name;
  if (name !== 'TCP' && name !== 'Pipe') return undefined;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** The kernel fd of a listening net.Server (for passing it to another process), or undefined. */
export function listeningServerFd(server: Server): number | undefined {
  if (!server.listening) return undefined;
  const handle = (server as unknown as { _handle?: RawHandle | null })._handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

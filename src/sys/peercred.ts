import type { Socket } from 'node:net';
import type { PeerCredentials } from '../ipc/channel.ts';
import { nativeLibc } from './koffi.ts';
import { plainSocketFd } from './socket-fd.ts';

// SO_PEERCRED: who is on the other end of a connected unix socket. The kernel records the peer's
// pid/uid/gid when the connection is made (for the accepting side: the connecting process; for
// the connecting side: the process that called listen()), so reading it needs no bytes from the
// peer and works before any data is read.

const SOL_SOCKET = 1;
const SO_PEERCRED = 17;
const UCRED_SIZE = 12; // struct ucred { pid_t pid; uid_t uid; gid_t gid; }: three 32-bit ints

type Getsockopt = (fd: number, level: number, name: number, value: Buffer, length: [number]) => number;
let getsockopt: Getsockopt | null | undefined;

function bind(): Getsockopt | null {
  if (getsockopt !== undefined) return getsockopt;
  const native = nativeLibc();
  if (!native) return (getsockopt = null);
  const fn = native.lib.func('int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)');
  return (getsockopt = (fd, level, name, value, length) => fn(fd, level, name, value, length) as number);
}

/** The credentials of a connected unix socket's peer, or undefined (not unix, closed, no native calls). */
export function peerCredentials(socket: Socket): PeerCredentials | undefined {
  const fd = plainSocketFd(socket);
  return fd === undefined ? undefined : peerCredentialsOfFd(fd);
}

/** Same, from a raw fd of a connected unix socket. */
export function peerCredentialsOfFd(fd: number): PeerCredentials | undefined {
  const call = bind();
  if (!call) return undefined;
  const value = Buffer.alloc(UCRED_SIZE);
  const length: [number] = [UCRED_SIZE];
  if (call(fd, SOL_SOCKET, SO_PEERCRED, value, length) !== 0 || length[0] < UCRED_SIZE) return undefined;
  return { pid: value.readInt32LE(0), uid: value.readUInt32LE(4), gid: value.readUInt32LE(8) };
}

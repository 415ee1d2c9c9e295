import { nativeLibc, nativeUnavailableReason } from './koffi.ts';

// One datagram to a unix datagram socket (AF_UNIX, SOCK_DGRAM), which Node's dgram cannot open:
// socket(2), sendto(2), close(2) through koffi. Each send opens and closes its own socket (as
// libsystemd's sd_notify does), never blocks (MSG_DONTWAIT; a full receive queue is EAGAIN for
// the caller to retry) and never raises SIGPIPE. Used by systemd's notifications (yard/sd-notify.ts).

const AF_UNIX = 1;
const SOCK_DGRAM = 2;
const SOCK_CLOEXEC = 0o2000000;
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
export const EAGAIN = 11;
export const EINTR = 4;
/** sizeof(struct sockaddr_un): 2 bytes of family, 108 of path. */
const SUN_PATH_MAX = 108;

interface Native {
  socket(domain: number, type: number, protocol: number): number;
  sendto(fd: number, buf: Buffer, len: number, flags: number, addr: Buffer, addrlen: number): number;
  close(fd: number): number;
  errno(): number;
}

let native: Native | null | undefined;

function bind(): Native | null {
  if (native !== undefined) return native;
  const n = nativeLibc();
  if (!n) return (native = null);
  const { koffi, lib } = n;
  const socket = lib.func('int socket(int domain, int type, int protocol)');
  const sendto = lib.func('long sendto(int fd, const void *buf, size_t len, int flags, const void *addr, uint32_t addrlen)');
  const close = lib.func('int close(int fd)');
  return (native = {
    socket: (d, t, p) => socket(d, t, p) as number,
    sendto: (fd, buf, len, flags, addr, addrlen) => Number(sendto(fd, buf, len, flags, addr, addrlen)),
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
  });
}

/** Why unix datagrams cannot be sent on this machine (no koffi), or undefined when they can. */
export function unixDatagramUnavailableReason(): string | undefined {
  return bind() ? undefined : (nativeUnavailableReason() ?? 'koffi is unavailable');
}

/** A unix socket address as struct sockaddr_un, with the length sendto(2) is given. */
export interface UnixSocketAddress {
  addr: Buffer;
  length: number;
}

/**
 * struct sockaddr_un for an absolute path or an abstract name written `@name`: a path ends with a
 * NUL counted in the length; an abstract name starts with a NUL and has none at the end.
 */
export function unixSocketAddress(value: string): UnixSocketAddress {
  if (!value.startsWith('/') && !value.startsWith('@')) throw new Error(`a unix socket address is an absolute path or @name, got "${value}"`);
  const abstract = value.startsWith('@');
  const name = Buffer.from(abstract ? value.slice(1) : value);
  const pathBytes = abstract ? 1 + name.length : name.length + 1;
  if (pathBytes > SUN_PATH_MAX) throw new Error(`a unix socket address is at most ${SUN_PATH_MAX} bytes, got "${value}"`);
  const addr = Buffer.alloc(2 + SUN_PATH_MAX);
  addr.writeUInt16LE(AF_UNIX, 0);
  name.copy(addr, abstract ? 3 : 2);
  return { addr, length: 2 + pathBytes };
}

/** What one send did: sent (all of it), or the errno / short count that stopped it. */
export type DatagramSendResult = { sent: true } | { sent: false; errno: number; why: string };

/** Sends `buf` as one datagram to `to`; throws only when koffi is unavailable (check first). */
export function sendUnixDatagram(to: UnixSocketAddress, buf: Buffer, label: string): DatagramSendResult {
  const n = bind();
  if (!n) throw new Error(`unix datagrams cannot be sent: ${nativeUnavailableReason() ?? 'koffi is unavailable'}`);
  const fd = n.socket(AF_UNIX, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) {
    const errno = n.errno();
    return { sent: false, errno, why: `socket() failed (errno ${errno})` };
  }
  const sent = n.sendto(fd, buf, buf.length, MSG_DONTWAIT | MSG_NOSIGNAL, to.addr, to.length);
  const errno = sent < 0 ? n.errno() : 0;
  n.close(fd);
  if (sent === buf.length) return { sent: true };
  if (sent >= 0) return { sent: false, errno: 0, why: `sendto() sent ${sent} of ${buf.length} bytes` };
  return { sent: false, errno, why: `sendto(${label}) failed (errno ${errno})` };
}

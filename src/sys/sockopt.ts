import { Server, type Socket } from 'node:net';
import { nativeLibc, nativeUnavailableReason } from './koffi.ts';
import { listeningServerFd, plainSocketFd } from './socket-fd.ts';

// setsockopt(2)/getsockopt(2) for the integer socket options Node does not expose: keepalive's
// interval and probe count, buffer sizes of TCP sockets, TCP Fast Open's queue, IPV6_V6ONLY as
// set. Every option here is one C int. Linux only (the numbers below are the generic Linux ABI,
// which x86, ARM, RISC-V, s390 and PowerPC share for these options; MIPS, SPARC, Alpha and
// PA-RISC number SOL_SOCKET options differently, so they get "unavailable").

const SOL_SOCKET = 1;
const IPPROTO_IP = 0;
const IPPROTO_TCP = 6;
const SOL_UDP = 17;
const IPPROTO_IPV6 = 41;

/** The options this module reads and writes, by what they are. */
export const SOCKET_OPTIONS = {
  /** SO_REUSEADDR (libuv sets it on every TCP listening socket). */
  reuseAddr: { level: SOL_SOCKET, name: 2, label: 'SO_REUSEADDR' },
  /** SO_SNDBUF: the kernel stores twice the value set (bookkeeping), at most 2 x net.core.wmem_max. */
  sendBuffer: { level: SOL_SOCKET, name: 7, label: 'SO_SNDBUF' },
  /** SO_RCVBUF: the kernel stores twice the value set, at most 2 x net.core.rmem_max. */
  receiveBuffer: { level: SOL_SOCKET, name: 8, label: 'SO_RCVBUF' },
  /** SO_KEEPALIVE: 1 on, 0 off. */
  keepAlive: { level: SOL_SOCKET, name: 9, label: 'SO_KEEPALIVE' },
  /** SO_REUSEPORT. */
  reusePort: { level: SOL_SOCKET, name: 15, label: 'SO_REUSEPORT' },
  /** SO_ACCEPTCONN (read only): 1 on a listening socket. */
  acceptConn: { level: SOL_SOCKET, name: 30, label: 'SO_ACCEPTCONN' },
  /** TCP_NODELAY: 1 sends small segments at once (Nagle off). */
  noDelay: { level: IPPROTO_TCP, name: 1, label: 'TCP_NODELAY' },
  /** TCP_KEEPIDLE: seconds idle before the first keepalive probe. */
  keepIdle: { level: IPPROTO_TCP, name: 4, label: 'TCP_KEEPIDLE' },
  /** TCP_KEEPINTVL: seconds between probes. */
  keepInterval: { level: IPPROTO_TCP, name: 5, label: 'TCP_KEEPINTVL' },
  /** TCP_KEEPCNT: unanswered probes before the connection is dropped. */
  keepCount: { level: IPPROTO_TCP, name: 6, label: 'TCP_KEEPCNT' },
  /** TCP_FASTOPEN on a listening socket: the queue of connections accepted with data in their SYN. */
  fastOpen: { level: IPPROTO_TCP, name: 23, label: 'TCP_FASTOPEN' },
  /** IPV6_V6ONLY: 1 when an IPv6 socket takes IPv6 only (no IPv4-mapped peers). */
  ipv6Only: { level: IPPROTO_IPV6, name: 26, label: 'IPV6_V6ONLY' },
  /** IP_MULTICAST_ALL: 0 makes a udp socket receive only the groups it joined (multicast-all.ts). */
  multicastAll: { level: IPPROTO_IP, name: 49, label: 'IP_MULTICAST_ALL' },
  /** IPV6_MULTICAST_ALL (Linux 4.20+): the same for IPv6. */
  ipv6MulticastAll: { level: IPPROTO_IPV6, name: 29, label: 'IPV6_MULTICAST_ALL' },
  /** UDP_SEGMENT (Linux 4.18+): the segment size of UDP generic segmentation offload (udp-gso.ts). */
  udpSegment: { level: SOL_UDP, name: 103, label: 'UDP_SEGMENT' },
} as const;

export type SocketOptionName = keyof typeof SOCKET_OPTIONS;

/** Architectures whose SOL_SOCKET option numbers are the generic ones above. */
const GENERIC_ABI = new Set(['x64', 'ia32', 'arm', 'arm64', 'riscv64', 's390x', 'ppc64', 'loong64']);

/** A setsockopt or getsockopt the kernel refused. `code` is the errno name (EPERM, EINVAL...). */
export class SocketOptionError extends Error {
  constructor(
    readonly option: SocketOptionName,
    readonly errno: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = 'SocketOptionError';
  }
}

interface Calls {
  set(fd: number, level: number, name: number, value: Buffer, length: number): number;
  get(fd: number, level: number, name: number, value: Buffer, length: [number]): number;
  errno(): number;
  strerror(errno: number): string;
  codes: Record<number, string>;
}

let calls: Calls | null | undefined;
let failure: string | undefined;

function bind(): Calls | null {
  if (calls !== undefined) return calls;
  if (!GENERIC_ABI.has(process.arch)) {
    failure = `socket option numbers are only wired for the generic Linux ABI (this is ${process.arch})`;
    return (calls = null);
  }
  const native = nativeLibc();
  if (!native) {
    failure = nativeUnavailableReason();
    return (calls = null);
  }
  const { koffi, lib } = native;
  const setsockopt = lib.func('int setsockopt(int fd, int level, int optname, const uint8_t *optval, uint32_t optlen)');
  const getsockopt = lib.func('int getsockopt(int fd, int level, int optname, _Out_ uint8_t *optval, _Inout_ uint32_t *optlen)');
  const strerror = lib.func('const char *strerror(int errnum)');
  const codes: Record<number, string> = {};
  for (const [code, n] of Object.entries(koffi.os.errno)) codes[n] ??= code;
  return (calls = {
    set: (fd, level, name, value, length) => setsockopt(fd, level, name, value, length) as number,
    get: (fd, level, name, value, length) => getsockopt(fd, level, name, value, length) as number,
    errno: () => koffi.errno(),
    strerror: (e) => strerror(e) as string,
    codes,
  });
}

/** Whether socket options can be set here; when not, `socketOptionsUnavailableReason` says why. */
export function socketOptionsAvailable(): boolean {
  return bind() !== null;
}

/** Why socket options cannot be set here (for one log line), or undefined when they can. */
export function socketOptionsUnavailableReason(): string | undefined {
  bind();
  return failure;
}

function refused(c: Calls, what: string, option: SocketOptionName): SocketOptionError {
  const e = c.errno();
  const code = c.codes[e] ?? `errno ${e}`;
  return new SocketOptionError(option, e, code, `${what} failed: ${c.strerror(e)} (${code})`);
}

function callsOrThrow(option: SocketOptionName): Calls {
  const c = bind();
  if (!c) throw new SocketOptionError(option, 0, 'UNSUPPORTED', `${SOCKET_OPTIONS[option].label} cannot be set: ${failure}`);
  return c;
}

/** setsockopt(fd, option, value) for an int option; throws SocketOptionError when the kernel refuses. */
export function setSocketOption(fd: number, option: SocketOptionName, value: number): void {
  const c = callsOrThrow(option);
  const { level, name, label } = SOCKET_OPTIONS[option];
  const buf = Buffer.alloc(4);
  buf.writeInt32LE(value | 0);
  if (c.set(fd, level, name, buf, 4) !== 0) throw refused(c, `setsockopt ${label} ${value}`, option);
}

/** getsockopt(fd, option) for an int option; throws SocketOptionError when the kernel refuses. */
export function getSocketOption(fd: number, option: SocketOptionName): number {
  const c = callsOrThrow(option);
  const { level, name, label } = SOCKET_OPTIONS[option];
  const buf = Buffer.alloc(4);
  const length: [number] = [4];
  if (c.get(fd, level, name, buf, length) !== 0) throw refused(c, `getsockopt ${label}`, option);
  return length[0] === 1 ? buf.readUInt8(0) : buf.readInt32LE(0);
}

interface WrappedHandle {
  fd?: number;
  /** TLSWrap's TCP handle underneath (set by node:tls on a socket it made its own handle for). */
  _parent?: WrappedHandle;
}

/**
 * The fd whose options are the connection's: a plain socket's own, a TLS socket's TCP handle
 * underneath (setting an option writes no bytes, so reaching under the TLS layer is safe here,
 * unlike writing), or a listening server's. Undefined when there is none (closed, a worker's
 * round-robin placeholder handle, not a kernel socket).
 */
export function optionFd(socket: Socket | Server): number | undefined {
  if (socket instanceof Server) return listeningServerFd(socket);
  if (!(socket as Socket & { encrypted?: boolean }).encrypted) return plainSocketFd(socket);
  if (socket.destroyed) return undefined;
  const fd = (socket as unknown as { _handle?: WrappedHandle | null })._handle?._parent?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

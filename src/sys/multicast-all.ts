import type { Socket } from 'node:dgram';
import { nativeLibc, nativeUnavailableReason } from './koffi.ts';

// IP_MULTICAST_ALL / IPV6_MULTICAST_ALL off on a udp socket. Linux turns them on by default: a
// socket bound to the wildcard address then receives the datagrams of every group that ANY
// socket of the host joined on its port, whether it joined that group itself or not, so a
// listener that left a group (or never joined it) would go on receiving it while a neighbour is
// a member. Off, a socket gets exactly the groups it joined. Node exposes neither option.

const IPPROTO_IP = 0;
const IP_MULTICAST_ALL = 49;
const IPPROTO_IPV6 = 41;
const IPV6_MULTICAST_ALL = 29;

let setsockopt: ((fd: number, level: number, name: number, value: Buffer, length: number) => number) | null | undefined;
let failure: string | undefined;

function bind(): typeof setsockopt {
  if (setsockopt !== undefined) return setsockopt;
  const native = nativeLibc();
  if (!native) {
    failure = nativeUnavailableReason();
    return (setsockopt = null);
  }
  const fn = native.lib.func('int setsockopt(int fd, int level, int optname, const uint8_t *optval, uint32_t optlen)');
  return (setsockopt = (fd, level, name, value, length) => fn(fd, level, name, value, length) as number);
}

/**
 * The fd of a bound dgram socket. Node keeps its handle under a symbol ("state symbol"); the
 * `_handle` getter reaches the same one but prints a deprecation warning (DEP0112).
 */
function datagramSocketFd(socket: Socket): number | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const handle = state && (socket as unknown as Record<symbol, { handle?: { fd?: number } | null } | undefined>)[state]?.handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/**
 * Makes `socket` (bound) receive only the groups it joined itself. Returns undefined when done,
 * else why not (no native calls here, no fd, or the kernel refused: older than Linux 4.20 for
 * IPv6), for one warning: the socket then still works, with the kernel's default.
 */
export function receiveOwnGroupsOnly(socket: Socket, family: 4 | 6): string | undefined {
  const call = bind();
  if (!call) return failure;
  const fd = datagramSocketFd(socket);
  if (typeof fd !== 'number' || fd < 0) return 'the socket has no file descriptor';
  const off = Buffer.alloc(4);
  const [level, name, label] = family === 4 ? [IPPROTO_IP, IP_MULTICAST_ALL, 'IP_MULTICAST_ALL'] : [IPPROTO_IPV6, IPV6_MULTICAST_ALL, 'IPV6_MULTICAST_ALL'];
  if (call(fd, level, name, off, 4) !== 0) return `setsockopt ${label} 0 was refused`;
  return undefined;
}

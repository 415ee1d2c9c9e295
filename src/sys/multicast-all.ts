import type { Socket } from 'node:dgram';
import { datagramHandle } from './dgram-handle.ts';
import { setSocketOption } from './sockopt.ts';

// IP_MULTICAST_ALL / IPV6_MULTICAST_ALL off on a udp socket. Linux turns them on by default: a
// socket bound to the wildcard address then receives the datagrams of every group that ANY
// socket of the host joined on its port, whether it joined that group itself or not, so a
// listener that left a group (or never joined it) would go on receiving it while a neighbour is
// a member. Off, a socket gets exactly the groups it joined. Node exposes neither option.

/**
 * Makes `socket` (bound) receive only the groups it joined itself. Returns undefined when done,
 * else why not (no native calls here, no fd, or the kernel refused: older than Linux 4.20 for
 * IPv6), for one warning: the socket then still works, with the kernel's default.
 */
export function receiveOwnGroupsOnly(socket: Socket, family: 4 | 6): string | undefined {
  const fd = datagramHandle(socket)?.fd;
  if (typeof fd !== 'number' || fd < 0) return 'the socket has no file descriptor';
  try {
    setSocketOption(fd, family === 4 ? 'multicastAll' : 'ipv6MulticastAll', 0);
  } catch (err) {
    return (err as Error).message;
  }
  return undefined;
}

import type { Socket } from 'node:dgram';
import { nativeLibc, nativeUnavailableReason } from './koffi.ts';

// UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18+) on a dgram socket: once set, a
// datagram larger than the segment size is cut by the kernel into datagrams of that size (the
// last one may be shorter), so a sender hands the kernel up to 64 packets in one send. QUIC
// sends runs of equal-size packets; this turns each run into one system call. Node exposes no
// way to set it.

const SOL_UDP = 17;
const UDP_SEGMENT = 103;

let setsockopt: ((fd: number, level: number, name: number, value: Buffer, length: number) => number) | null | undefined;
let failure: string | undefined;

function bind(): typeof setsockopt {
  if (setsockopt !== undefined) return setsockopt;
  if (process.platform !== 'linux') {
    failure = 'UDP segmentation offload is a Linux feature';
    return (setsockopt = null);
  }
  const native = nativeLibc();
  if (!native) {
    failure = nativeUnavailableReason();
    return (setsockopt = null);
  }
  const fn = native.lib.func('int setsockopt(int fd, int level, int optname, const uint8_t *optval, uint32_t optlen)');
  return (setsockopt = (fd, level, name, value, length) => fn(fd, level, name, value, length) as number);
}

/** The fd of a bound dgram socket (Node keeps its handle under its "state symbol"). */
function datagramSocketFd(socket: Socket): number | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const handle = state && (socket as unknown as Record<symbol, { handle?: { fd?: number } | null } | undefined>)[state]?.handle;
  const fd = handle?.fd;
  return typeof fd === 'number' && fd >= 0 ? fd : undefined;
}

/** Most segments the kernel takes in one send (UDP_MAX_SEGMENTS). */
export const MAX_GSO_SEGMENTS = 64;

/**
 * Sets UDP_SEGMENT to `segmentSize` on a bound socket. Undefined when done, else why not (no
 * native calls, no fd, a kernel without it): the socket then sends one datagram per send.
 */
export function enableUdpSegmentation(socket: Socket, segmentSize: number): string | undefined {
  const call = bind();
  if (!call) return failure;
  const fd = datagramSocketFd(socket);
  if (fd === undefined) return 'the socket has no file descriptor';
  const value = Buffer.alloc(4);
  value.writeInt32LE(segmentSize);
  if (call(fd, SOL_UDP, UDP_SEGMENT, value, 4) !== 0) return 'setsockopt UDP_SEGMENT was refused (Linux 4.18 or later is needed)';
  return undefined;
}

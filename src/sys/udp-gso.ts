import type { Socket } from 'node:dgram';
import { datagramHandle } from './dgram-handle.ts';
import { setSocketOption } from './sockopt.ts';

// UDP generic segmentation offload (UDP_SEGMENT, Linux 4.18+) on a dgram socket: once set, a
// datagram larger than the segment size is cut by the kernel into datagrams of that size (the
// last one may be shorter), so a sender hands the kernel up to 64 packets in one send. QUIC
// sends runs of equal-size packets; this turns each run into one system call. Node exposes no
// way to set it.

/** Most segments the kernel takes in one send (UDP_MAX_SEGMENTS). */
export const MAX_GSO_SEGMENTS = 64;

/**
 * Sets UDP_SEGMENT to `segmentSize` on a bound socket. Undefined when done, else why not (no
 * native calls, no fd, a kernel without it): the socket then sends one datagram per send.
 */
export function enableUdpSegmentation(socket: Socket, segmentSize: number): string | undefined {
  if (process.platform !== 'linux') return 'UDP segmentation offload is a Linux feature';
  const fd = datagramHandle(socket)?.fd;
  if (typeof fd !== 'number' || fd < 0) return 'the socket has no file descriptor';
  try {
    setSocketOption(fd, 'udpSegment', segmentSize);
  } catch (err) {
    return `${(err as Error).message} (Linux 4.18 or later is needed)`;
  }
  return undefined;
}

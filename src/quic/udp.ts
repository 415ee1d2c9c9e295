import { createSocket, type Socket as UdpSocket, type SocketOptions } from 'node:dgram';
import { lookup as dnsLookup, type LookupOneOptions } from 'node:dns';
import { isIP } from 'node:net';

// The UDP sockets of the transport. Node's dgram resolves the address of every send through its
// lookup function, which for an IP literal still costs a process.nextTick per datagram; QUIC
// always sends to IP addresses, so ours answers them at once (names still go to the resolver).

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string, family: number) => void;

function lookupLiteral(hostname: string, options: LookupOneOptions | number | LookupCallback, callback?: LookupCallback): void {
  const cb = (typeof options === 'function' ? options : callback)!;
  const family = isIP(hostname);
  if (family !== 0) return cb(null, hostname, family);
  dnsLookup(hostname, typeof options === 'object' ? options : { family: typeof options === 'number' ? options : 0 }, cb);
}

/** Socket buffers asked for (the kernel caps them at net.core.rmem_max / wmem_max). */
const BUFFER_BYTES = 4 * 1024 * 1024;

/** `reusePort`: SO_REUSEPORT (Node 22.12+; @types/node may not list it yet). */
export function createUdpSocket(type: 'udp4' | 'udp6', options: { reusePort?: boolean } = {}): UdpSocket {
  const reuse = options.reusePort ? { reusePort: true } : {};
  return createSocket({ type, recvBufferSize: BUFFER_BYTES, sendBufferSize: BUFFER_BYTES, lookup: lookupLiteral as never, ...reuse } as SocketOptions);
}

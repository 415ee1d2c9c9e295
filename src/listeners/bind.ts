import type { Server } from 'node:net';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/address.ts';
import { ListenError, listenErrorReason } from './types.ts';
import { listenOptions, type TcpListenerSocketOptions } from '../config/socket-options.ts';
import { applyToTcpListeningSocket } from './socket-options.ts';
import { workerSlot } from '../yard/workers.ts';

/**
 * Binds a TCP server (net or http) to `host:port`. A bind failure rejects with a ListenError that
 * names the listener, the address and the cause; errors after that are logged, never thrown.
 * `socket` is the listener's `socket:` (socket-options.ts): backlog and ipv6Only go to listen(),
 * the rest is set on the listening socket once it listens (an inherited one too).
 */
export function listenTcp(server: Server, listener: string, where: string, log: Logger, inherited?: Server, socket?: TcpListenerSocketOptions): Promise<{ host: string; port: number }> {
  const hp = parseHostPort(where);
  if (!hp) return Promise.reject(new ListenError(listener, where, 'not a host:port address'));
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new ListenError(listener, where, listenErrorReason(err), { cause: err }));
    server.once('error', onError);
    // A socket handed over by the daemon this one replaces (upgrade.ts) is listening already.
    const ready = () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err, listener }, 'listener error'));
      applyToTcpListeningSocket(server, socket, listener, log);
      const a = server.address();
      resolve(a && typeof a === 'object' ? { host: a.address, port: a.port } : hp);
    };
    if (inherited) server.listen(inherited, ready);
    else server.listen({ host: hp.host, port: hp.port, ...listenOptions(socket) }, ready);
  });
}

/**
 * Whether this Node's dgram takes `reusePort` (createSocket option, SO_REUSEPORT): Node 22.12+
 * on 22, 23.1+ (older versions ignore the option, and a second bind fails with EADDRINUSE).
 */
export function dgramReusePort(version = process.versions.node): boolean {
  const [major = 0, minor = 0] = version.split('.').map(Number);
  return major > 23 || (major === 23 && minor >= 1) || (major === 22 && minor >= 12);
}

let udpModeLogged = false;

/**
 * How a QUIC endpoint (a quic listener, an http listener's HTTP/3) in this process gets its UDP
 * socket. In a worker of `workers: N` (src/yard/workers.ts), 'own': a socket of its own bound
 * with SO_REUSEPORT, so that the kernel steers each client's datagrams (by their addresses) to
 * the same worker, the one holding its connection. 'shared' otherwise: the primary's one socket
 * (cluster's sharing), where any worker may read a datagram of any connection; that is what a
 * Node without dgram reusePort gets, and a port of 0 (each own socket would get a port of its
 * own). A single process binds as always ('single'). Logged once per daemon (by worker 1).
 */
export function quicUdpMode(port: number, log: Logger, slot = workerSlot()): 'single' | 'own' | 'shared' {
  if (slot === undefined) return 'single';
  const supported = dgramReusePort();
  const mode = supported && port !== 0 ? 'own' : 'shared';
  if (!udpModeLogged && slot === 1) {
    udpModeLogged = true;
    if (supported) log.info({ quicUdp: 'reuseport' }, 'quic/HTTP/3: each worker binds its own UDP socket (SO_REUSEPORT): a connection\'s packets reach the worker that holds it');
    else log.warn({ quicUdp: 'shared', node: process.versions.node }, `quic/HTTP/3: the workers share one UDP socket (Node ${process.versions.node} has no dgram reusePort; 22.12+ has): packets of a connection may reach a worker that does not hold it, and QUIC connections are slow`);
  }
  return mode;
}

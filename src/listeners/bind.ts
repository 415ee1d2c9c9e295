import type { Server } from 'node:net';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/address.ts';
import { ListenError, listenErrorReason } from './types.ts';
import { listenOptions, type TcpListenerSocketOptions } from '../config/socket-options.ts';
import { applyToTcpListeningSocket } from './socket-options.ts';

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

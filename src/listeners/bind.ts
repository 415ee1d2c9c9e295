import type { Server } from 'node:net';
import type { Logger } from 'pino';
import { parseHostPort } from '../config/address.ts';
import { ListenError, listenErrorReason } from './types.ts';

/**
 * Binds a TCP server (net or http) to `host:port`. A bind failure rejects with a ListenError that
 * names the listener, the address and the cause; errors after that are logged, never thrown.
 */
export function listenTcp(server: Server, listener: string, where: string, log: Logger, inherited?: Server): Promise<{ host: string; port: number }> {
  const hp = parseHostPort(where);
  if (!hp) return Promise.reject(new ListenError(listener, where, 'not a host:port address'));
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new ListenError(listener, where, listenErrorReason(err), { cause: err }));
    server.once('error', onError);
    // A socket handed over by the daemon this one replaces (upgrade.ts) is listening already.
    const ready = () => {
      server.off('error', onError);
      server.on('error', (err) => log.error({ err, listener }, 'listener error'));
      const a = server.address();
      resolve(a && typeof a === 'object' ? { host: a.address, port: a.port } : hp);
    };
    if (inherited) server.listen(inherited, ready);
    else server.listen({ host: hp.host, port: hp.port, backlog: 1024 }, ready);
  });
}

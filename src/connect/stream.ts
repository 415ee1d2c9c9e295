import { connect, type NetConnectOpts, type Socket } from 'node:net';
import { ConnectError, describeNetError } from './errors.ts';

// Opening a stream socket with a deadline, shared by tcp, unix and the frame clients: the promise
// settles once, with a connected socket or a ConnectError naming the URL and the cause.

export interface StreamConnectOptions {
  /** Give up after this many milliseconds. Default 10 s. */
  connectTimeout?: number;
}

export const DEFAULT_CONNECT_TIMEOUT = 10_000;

export function openSocket(options: NetConnectOpts, href: string, { connectTimeout = DEFAULT_CONNECT_TIMEOUT }: StreamConnectOptions = {}): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect(options);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError(href, describeNetError({ code: 'ETIMEDOUT' }, connectTimeout)));
    }, connectTimeout);
    const onError = (err: Error) => {
      clearTimeout(timer);
      reject(new ConnectError(href, describeNetError(err, connectTimeout), { cause: err }));
    };
    socket.once('error', onError);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve(socket);
    });
  });
}

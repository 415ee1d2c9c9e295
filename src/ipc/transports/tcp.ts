import net from 'node:net';
import type { Channel, ChannelOptions } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { AcceptQueue, type ChannelServer } from '../server.ts';
import { StreamChannel } from '../stream-channel.ts';

// TCP transport: a StreamChannel over a net.Socket with Nagle off (small messages go out at once).

export interface TcpAddress {
  host: string;
  /** 0 picks a free port; the server's `address` / `port` tell which. */
  port: number;
}

export interface TcpOptions extends ChannelOptions {
  /** Milliseconds to wait for connect; default 10 s. */
  connectTimeout?: number;
}

export interface TcpChannelServer extends ChannelServer {
  readonly port: number;
}

function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

export async function listenTcp(address: TcpAddress, options: TcpOptions = {}): Promise<TcpChannelServer> {
  const accepted = new AcceptQueue();
  const server = net.createServer({ noDelay: true }, (socket) => {
    socket.setNoDelay(true);
    accepted.push(new StreamChannel('tcp', socket, options));
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(address.port, address.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  server.on('error', (err) => accepted.end(err));
  const bound = server.address() as net.AddressInfo;
  return {
    address: formatAddress(bound.address, bound.port),
    port: bound.port,
    accept: () => accepted,
    [Symbol.asyncIterator]: () => accepted[Symbol.asyncIterator](),
    close: () =>
      new Promise<void>((resolve) => {
        accepted.end();
        server.close(() => resolve());
      }),
  };
}

export async function connectTcp(address: TcpAddress, options: TcpOptions = {}): Promise<Channel> {
  const timeout = options.connectTimeout ?? 10_000;
  const socket = net.connect({ host: address.host, port: address.port, noDelay: true });
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new IpcError('SWITCHYARD_IPC_TIMEOUT', `tcp connect to ${formatAddress(address.host, address.port)} took over ${timeout} ms`));
    }, timeout);
    socket.once('connect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      resolve();
    });
    const onError = (err: NodeJS.ErrnoException) => {
      clearTimeout(timer);
      reject(new IpcError('SWITCHYARD_IPC_PEER_GONE', `tcp connect to ${formatAddress(address.host, address.port)} failed: ${err.code ?? err.message}`, { cause: err }));
    };
    socket.once('error', onError);
  });
  socket.setNoDelay(true);
  return new StreamChannel('tcp', socket, options);
}

import { createSocket, type Socket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { ConnectError, ConnectionLostError, describeNetError } from './errors.ts';

// A connected UDP socket: datagrams go to one peer and only that peer's datagrams come back.
// Connecting also lets the kernel report an ICMP "port unreachable" as ECONNREFUSED on a later
// send or receive, so "nothing listens there" is an error rather than silence.

export interface UdpClientOptions {
  /** Each datagram received from the peer. */
  onMessage(data: Buffer): void;
  /** An error after the socket was set up (ECONNREFUSED when the peer's port is closed). */
  onError?(err: ConnectionLostError): void;
}

export interface UdpClient {
  readonly socket: Socket;
  /** Sends one datagram; resolves when the kernel took it. */
  send(data: Uint8Array): Promise<void>;
  close(): Promise<void>;
}

export async function openUdp(target: { host: string; port: number }, options: UdpClientOptions): Promise<UdpClient> {
  const href = `udp://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  let address = target.host;
  let family = isIP(address);
  if (family === 0) {
    try {
      ({ address, family } = await lookup(target.host));
    } catch (err) {
      throw new ConnectError(href, describeNetError(err), { cause: err });
    }
  }
  const socket = createSocket(family === 6 ? 'udp6' : 'udp4');
  await new Promise<void>((resolve, reject) => {
    socket.once('error', (err) => reject(new ConnectError(href, describeNetError(err), { cause: err })));
    socket.connect(target.port, address, () => resolve());
  });
  socket.removeAllListeners('error');
  socket.on('error', (err) => options.onError?.(new ConnectionLostError(href, describeNetError(err), { cause: err })));
  socket.on('message', (msg) => options.onMessage(msg));
  let closed = false;
  return {
    socket,
    send(data) {
      return new Promise((resolve, reject) =>
        socket.send(data, (err) => (err ? reject(new ConnectionLostError(href, describeNetError(err), { cause: err })) : resolve())),
      );
    },
    close() {
      if (closed) return Promise.resolve();
      closed = true;
      return new Promise((resolve) => socket.close(() => resolve()));
    },
  };
}

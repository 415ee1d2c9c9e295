import type { Socket } from 'node:net';
import { openSocket, type StreamConnectOptions } from './stream.ts';

/** A connected TCP socket to host:port (with Nagle off: a connect client sends what is typed). */
export async function connectTcp(target: { host: string; port: number }, options: StreamConnectOptions = {}): Promise<Socket> {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const socket = await openSocket({ host: target.host, port: target.port, noDelay: true }, `tcp://${host}:${target.port}`, options);
  return socket;
}

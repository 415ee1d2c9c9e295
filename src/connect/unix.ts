import type { Socket } from 'node:net';
import { openSocket, type StreamConnectOptions } from './stream.ts';
import { socketPath } from './url.ts';

/** A connected unix stream socket: a file path, or `@name` for Linux's abstract namespace. */
export function connectUnix(path: string, options: StreamConnectOptions = {}): Promise<Socket> {
  return openSocket({ path: socketPath(path) }, `unix:${path}`, options);
}

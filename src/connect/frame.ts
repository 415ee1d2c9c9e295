import type { Socket } from 'node:net';
import { drained } from '../protocol/drained.ts';
import { FrameError, readFrames, writeFrame } from '../protocol/frame.ts';
import { ConnectionLostError } from './errors.ts';
import { openSocket, type StreamConnectOptions } from './stream.ts';
import { socketPath } from './url.ts';

// A client for the length-prefixed frame protocol (docs/frames.md) over TCP or a unix socket.
// Frames are read with readFrames (so a slow onFrame slows the server) and written with
// writeFrame (large payloads uncopied, send waits for 'drain').

export interface FrameClientOptions extends StreamConnectOptions {
  /** Largest frame accepted from the server. Default 16 MiB. */
  maxFrameSize?: number;
  /** Each frame from the server; returning a promise pauses reading until it settles. */
  onFrame(frame: Uint8Array): void | Promise<void>;
}

export interface FrameClient {
  readonly socket: Socket;
  /** Sends one frame; resolves once it is written or queued below the socket's high-water mark. */
  send(payload: Uint8Array): Promise<void>;
  /** Half-closes: no more frames from us; the server's keep arriving until it closes. */
  end(): void;
  /** Resolves when the server has closed cleanly (between frames); rejects when the connection broke. */
  readonly closed: Promise<void>;
}

export const DEFAULT_CLIENT_MAX_FRAME = 16 * 1024 * 1024;

export async function connectFrames(target: { host: string; port: number } | { path: string }, options: FrameClientOptions): Promise<FrameClient> {
  const href = 'path' in target ? `frame+unix:${target.path}` : `frame+tcp://${target.host.includes(':') ? `[${target.host}]` : target.host}:${target.port}`;
  const socket = await openSocket('path' in target ? { path: socketPath(target.path) } : { host: target.host, port: target.port, noDelay: true }, href, options);
  // Our end() must not end the server's side of the conversation: its answers still come.
  socket.allowHalfOpen = true;
  const maxFrameSize = options.maxFrameSize ?? DEFAULT_CLIENT_MAX_FRAME;
  let broken: ConnectionLostError | undefined;
  const closed = new Promise<void>((resolve, reject) => {
    readFrames(
      socket,
      { maxFrameSize, allowEmpty: true, onEnd: () => (socket.end(), resolve()) },
      options.onFrame,
      (err) => {
        broken = new ConnectionLostError(href, lostReason(err, maxFrameSize), { cause: err });
        socket.destroy();
        reject(broken);
      },
    );
    socket.once('close', () => (broken ? reject(broken) : resolve()));
  });
  closed.catch(() => {});
  return {
    socket,
    closed,
    async send(payload) {
      if (broken) throw broken;
      if (socket.destroyed || socket.writableEnded) throw new ConnectionLostError(href, 'the connection is closed');
      if (writeFrame(socket, payload)) return;
      await drained(socket);
    },
    end() {
      socket.end();
    },
  };
}

function lostReason(err: Error, maxFrameSize: number): string {
  if (err instanceof FrameError) {
    if (err.code === 'SWITCHYARD_FRAME_TOO_LARGE') return `the server sent a ${err.message.replace(/ is over the limit of \d+$/, '')}, over this client's limit of ${maxFrameSize} (--max-frame-size)`;
    if (err.code === 'SWITCHYARD_FRAME_TRUNCATED') return 'the server closed the connection in the middle of a frame';
    return `bad frame from the server: ${err.message}`;
  }
  const code = (err as NodeJS.ErrnoException).code;
  if (code === 'ECONNRESET') return 'connection reset by the server';
  return err.message;
}

import type { Socket } from 'node:net';
import { drained } from '../protocol/drained.ts';
import { z } from 'zod';
import { size } from '../config/units.ts';
import { FrameError, MAX_FRAME_LENGTH, encodeFrame, readFrames, writeFrame, type FrameReader } from '../protocol/frame.ts';
import type { ConnContext, HandlerModule, StreamHandler } from './types.ts';

// Echo for the length-prefixed frame protocol (docs/frames.md): every frame comes back as the
// same frame. A frame over the limit gets one error frame and the connection is closed; the
// refusal happens on the header alone, so no buffer is ever sized by what a peer announces.
// A client that does not read its echoes stops being read from (readFrames pauses the socket
// while a write waits for 'drain'), so it cannot grow our memory.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('frame-echo'),
  /** Largest frame payload accepted; a larger announced length gets the FRAME_TOO_LARGE error frame. */
  maxFrameSize: size().pipe(z.number().int().min(0).max(MAX_FRAME_LENGTH)).default(1024 * 1024),
});

export type FrameEchoConfig = z.output<typeof schema>;

/** After our error frame, how long a client that never closes its side keeps the socket. */
const LINGER_MS = 5000;

/** The error frame's payload (docs/frames.md). */
export function errorFramePayload(code: string, message: string): Buffer {
  return Buffer.from(JSON.stringify({ type: 'error', code, message }));
}

interface Conn {
  socket: Socket;
  reader: FrameReader;
}

class FrameEchoHandler implements StreamHandler {
  private readonly conns = new Set<Conn>();
  private draining = false;

  constructor(private readonly config: FrameEchoConfig) {}

  handle(socket: Socket, ctx: ConnContext): void {
    // A client that half-closes still gets the echoes of the frames it sent before its FIN;
    // we end our side once they are written (onEnd).
    socket.allowHalfOpen = true;
    const conn: Conn = { socket, reader: undefined as unknown as FrameReader };
    this.conns.add(conn);
    socket.once('close', () => this.conns.delete(conn));
    const afterFrame = () => {
      if (this.draining) queueMicrotask(() => this.closeIfIdle(conn));
    };
    conn.reader = readFrames(
      socket,
      { maxFrameSize: this.config.maxFrameSize, allowEmpty: true, onEnd: () => socket.end() },
      (frame) => {
        ctx.countRequest('ok');
        if (writeFrame(socket, frame)) return afterFrame();
        return drained(socket).then(afterFrame);
      },
      (err) => this.onError(socket, ctx, err),
    );
    if (this.draining) this.closeIfIdle(conn);
  }

  /** The yard is stopping: each connection is closed at its next frame boundary. */
  drain(): void {
    this.draining = true;
    for (const c of this.conns) this.closeIfIdle(c);
  }

  private closeIfIdle(conn: Conn): void {
    if (!conn.reader.idle || conn.socket.destroyed) return;
    conn.reader.stop();
    endAndDiscard(conn.socket);
  }

  private onError(socket: Socket, ctx: ConnContext, err: Error): void {
    if (!(err instanceof FrameError)) {
      // The socket's own error (reset): the listener logs and destroys it.
      socket.destroy();
      return;
    }
    if (err.code === 'SWITCHYARD_FRAME_TRUNCATED') {
      ctx.log.debug({ listener: ctx.listener, remote: socket.remoteAddress }, 'frame-echo: client closed in the middle of a frame');
      ctx.countRequest('truncated');
      socket.end();
      return;
    }
    ctx.log.debug({ listener: ctx.listener, remote: socket.remoteAddress, err: err.message }, 'frame-echo: refused a frame');
    ctx.countRequest(err.code === 'SWITCHYARD_FRAME_TOO_LARGE' ? 'frame_too_large' : 'bad_frame');
    const code = err.code === 'SWITCHYARD_FRAME_TOO_LARGE' ? 'FRAME_TOO_LARGE' : 'BAD_FRAME';
    endAndDiscard(socket, encodeFrame(errorFramePayload(code, err.message)));
  }
}

/**
 * Ends our side and reads (and drops) whatever else the client sends until it closes: closing
 * with unread bytes would make the kernel answer with a reset, which can destroy the client's
 * copy of our last frame before it reads it.
 */
function endAndDiscard(socket: Socket, last?: Buffer): void {
  if (socket.destroyed) return;
  if (last) socket.end(last);
  else socket.end();
  socket.resume();
  setTimeout(() => socket.destroy(), LINGER_MS).unref();
}


export const frameEchoHandler: HandlerModule<FrameEchoConfig> = {
  type: 'frame-echo',
  summary: 'length-prefixed frames (u32 BE length + payload) echoed back; oversize gets an error frame (docs/frames.md)',
  schema,
  stream: (config) => new FrameEchoHandler(config),
};

import type { Socket } from 'node:net';
import { FrameDecoder, FrameError } from '../../protocol/frame.ts';
import { jsonFrame, wireEvent, type Outbound } from './hub.ts';
import { parseCommand, type ChatError } from './protocol.ts';
import type { Welcome } from './session.ts';
import { StreamChatSession, type StreamSessionOptions } from './stream-session.ts';

// Framed chat (docs/chat.md, "Framed chat"): the WebSocket protocol's JSON objects, each in one
// u32-length-prefixed frame, both ways. Like WebSocket, nothing happens until the client joins.
// A frame over maxFrameSize cannot be skipped (the stream cannot be resynchronised), so it gets
// a FRAME_TOO_LARGE error frame and the connection ends.

export interface FrameSessionOptions extends StreamSessionOptions {
  maxFrameSize: number;
}

export class FrameChatSession extends StreamChatSession {
  private readonly decoder: FrameDecoder;
  /** A frame over the limit was seen: the stream cannot be read any further. */
  private broken = false;

  constructor(socket: Socket, options: FrameSessionOptions, onGone: (s: StreamChatSession, leaving: Promise<void>) => void) {
    super(socket, options, onGone);
    // Empty frames are let through to be answered as bad JSON, like any other malformed request.
    this.decoder = new FrameDecoder({ maxFrameSize: options.maxFrameSize, allowEmpty: true });
  }

  notice(text: string): void {
    this.end(jsonFrame({ type: 'notice', text }));
  }

  tell(text: string): void {
    this.write(jsonFrame({ type: 'notice', text }));
  }

  protected parse(chunk: Buffer): void {
    if (this.broken) return;
    let frames: Uint8Array[];
    try {
      frames = this.decoder.push(chunk);
    } catch (err) {
      if (!(err instanceof FrameError)) throw err;
      this.broken = true;
      // Requests before it are still answered, then the error, then the end. (Frames of this
      // same read before the bad one are lost with it: the decoder gives all or nothing.)
      const message = err.code === 'SWITCHYARD_FRAME_TOO_LARGE' ? err.message : 'bad frame';
      this.unit(() => {
        this.session.inOrder(() => this.write(jsonFrame({ type: 'error', code: 'FRAME_TOO_LARGE', message })));
        this.finish();
      });
      return;
    }
    for (const f of frames) this.unit(Buffer.from(f.buffer, f.byteOffset, f.byteLength));
  }

  protected endOfInput(): void {
    // A frame cut short by EOF is not a request; nothing to do.
  }

  protected handle(frame: Buffer): void {
    const parsed = parseCommand(frame);
    if (parsed.ok) return this.session.run(parsed.command, this.options.defaultRoom);
    const { error, id } = parsed;
    this.session.inOrder(() => this.error(error, id));
  }

  event(out: Outbound): void {
    this.write(out.frame);
  }

  left(out: Outbound): void {
    this.write(out.frame);
  }

  welcome(w: Welcome): void {
    this.write(jsonFrame({ type: 'welcome', room: w.room, nick: w.nick, members: w.members, history: w.history.map(wireEvent), seq: w.seq }));
  }

  presence(room: string, members: string[]): void {
    this.write(jsonFrame({ type: 'presence', room, members }));
  }

  error(err: ChatError, id?: string): void {
    this.write(jsonFrame(id === undefined ? { type: 'error', code: err.code, message: err.message } : { type: 'error', code: err.code, message: err.message, id }));
  }
}

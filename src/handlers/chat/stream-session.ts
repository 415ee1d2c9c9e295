import type { Socket } from 'node:net';
import type { Outbound } from './hub.ts';
import type { ChatError } from './protocol.ts';
import { ChatSession, type SessionOptions, type SessionSink, type Welcome } from './session.ts';

// What the two byte-stream transports (TCP/unix lines and frames) share: flow control both ways.
//
// Out: a client that does not read must cost the server at most `sendQueueLimit` bytes (plus one
// write). Each write checks what the socket holds unsent; past the limit the socket is destroyed
// (a goodbye could not get out anyway), so the fan-out to everyone else never waits on it.
// In: the socket is paused while more than PAUSE_AT commands wait, and resumed when they are
// done, so a fast writer is slowed to the store's pace instead of queueing without bound.
// A half-close (`printf 'hi\n' | nc -N`) is honoured: what was sent is carried out, then we end.

export interface StreamSessionOptions extends SessionOptions {
  /** Where a connection starts (lines) or where a join without a room goes (frames). */
  defaultRoom: string;
  /** Bytes waiting toward one client before it is cut off. */
  sendQueueLimit: number;
  /** Called when a client is cut off for not reading (metrics). */
  onSlow: () => void;
}

/** Commands waiting before the socket stops being read. */
const PAUSE_AT = 64;
/** After our end, how long a client that never closes its side keeps the socket. */
const LINGER_MS = 5000;

export abstract class StreamChatSession implements SessionSink {
  readonly session: ChatSession;
  /** No more input is taken; the connection ends once pending commands are done. */
  protected closing = false;

  constructor(
    protected readonly socket: Socket,
    protected readonly options: StreamSessionOptions,
    /** Called once when the connection is gone, with the session's leave (settles when the nick is released). */
    onGone: (s: StreamChatSession, leaving: Promise<void>) => void,
  ) {
    socket.allowHalfOpen = true;
    this.session = new ChatSession(this, options);
    this.session.onDrained(() => {
      if (!this.closing && socket.isPaused()) socket.resume();
    });
    socket.on('data', (chunk: Buffer) => {
      if (this.closing) return;
      this.onBytes(chunk);
      if (this.session.pending > PAUSE_AT) socket.pause();
    });
    socket.once('end', () => {
      if (!this.closing) this.onEnd();
      this.finish();
    });
    socket.once('close', () => onGone(this, this.session.disconnect()));
  }

  /** Bytes from the client. */
  protected abstract onBytes(chunk: Buffer): void;
  /** The client half-closed; a partial last input may still be a whole request. */
  protected abstract onEnd(): void;

  /** The server is stopping: the notice, then end. */
  abstract notice(text: string): void;

  abstract event(out: Outbound): void;
  abstract left(out: Outbound): void;
  abstract welcome(w: Welcome): void;
  abstract presence(room: string, members: string[]): void;
  abstract error(err: ChatError, id?: string): void;

  abort(): void {
    this.socket.destroy();
  }

  /**
   * Queues bytes toward the client, unless it already holds more than the limit unread: then it
   * is cut off. Memory per client stays under the limit plus one write (a welcome with history
   * may be big; it still gets out to a client that reads).
   */
  protected write(data: Buffer | string): void {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    if (socket.writableLength > this.options.sendQueueLimit) {
      this.options.onSlow();
      socket.destroy();
      return;
    }
    socket.write(data);
  }

  /** Stops taking input, lets what was asked finish, writes `last` if given, then ends. */
  protected finish(last?: Buffer | string): void {
    if (this.closing) return;
    this.closing = true;
    // Input is read and dropped from now on, so that the client's FIN is still seen.
    this.socket.resume();
    void this.session.whenIdle().then(() => this.end(last));
  }

  /** Ends now (after `last`), whatever is still pending. */
  protected end(last?: Buffer | string): void {
    this.closing = true;
    if (last !== undefined) this.write(last);
    if (this.socket.destroyed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }
}

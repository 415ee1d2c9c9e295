import type { WsPeer } from '../ws/peer.ts';
import { wireEvent, type Outbound } from './hub.ts';
import { ChatError, parseCommand } from './protocol.ts';
import { ChatSession, type SessionOptions, type SessionSink, type Welcome } from './session.ts';

// A chat session over WebSocket: one JSON object per text message, both ways (docs/chat.md).
// The endpoint under the peer has already enforced message size (1009), rate (1008), the send
// queue toward a slow reader (1013) and dead peers (ping timeout); room events go out as the
// hub's shared JSON Buffer, sent as a text message without being copied.

/**
 * Commands a client may have waiting. The endpoint's rate limit normally keeps far below this;
 * without one (or with a store that stalls), this is what bounds the memory a client can pin.
 * It is above what one socket read can hold (~1900 of the smallest messages in 64 KiB).
 */
export const WS_MAX_PENDING = 4096;

export class WsChatSession implements SessionSink {
  readonly session: ChatSession;

  constructor(
    private readonly peer: WsPeer,
    /** The room of the URL: where a `join` without `room` goes. */
    private readonly urlRoom: string,
    options: SessionOptions,
    /** Called once when the connection is gone, with the session's leave (settles when the nick is released). */
    onGone: (s: WsChatSession, leaving: Promise<void>) => void,
  ) {
    this.session = new ChatSession(this, options);
    peer.onMessage((data, isBinary) => this.onMessage(data, isBinary));
    peer.onClose(() => onGone(this, this.session.disconnect()));
  }

  tell(text: string): void {
    this.sendJson({ type: 'notice', text });
  }

  /** The server is stopping: a notice, then 1001 (sent by the endpoint's drain). */
  notice(text: string): void {
    this.sendJson({ type: 'notice', text });
  }

  private onMessage(data: Buffer, isBinary: boolean): void {
    if (isBinary) return this.refuse(new ChatError('BAD_MESSAGE', 'binary messages are not part of the chat protocol; send JSON as text'));
    if (this.session.pending >= WS_MAX_PENDING) {
      this.peer.close(1008, 'too many requests waiting');
      return;
    }
    const parsed = parseCommand(data);
    if (!parsed.ok) return this.refuse(parsed.error, parsed.id);
    this.session.run(parsed.command, this.urlRoom);
  }

  /** An error for a malformed request, in its place among the answers to earlier ones. */
  private refuse(err: ChatError, id?: string): void {
    this.session.inOrder(() => this.error(err, id));
  }

  private sendJson(value: unknown): void {
    this.peer.send(JSON.stringify(value));
  }

  event(out: Outbound): void {
    this.peer.send(out.json, false);
  }

  left(out: Outbound): void {
    this.peer.send(out.json, false);
  }

  welcome(w: Welcome): void {
    this.sendJson({ type: 'welcome', room: w.room, nick: w.nick, members: w.members, history: w.history.map(wireEvent), seq: w.seq });
  }

  presence(room: string, members: string[]): void {
    this.sendJson({ type: 'presence', room, members });
  }

  error(err: ChatError, id?: string): void {
    this.sendJson(id === undefined ? { type: 'error', code: err.code, message: err.message } : { type: 'error', code: err.code, message: err.message, id });
  }

  abort(reason: string): void {
    this.peer.close(1011, reason);
  }
}

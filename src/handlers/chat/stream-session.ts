import type { Socket } from 'node:net';
import { TokenBucket, tokenBucketPolicy, type TokenBucketConfig } from '../../protocol/token-bucket.ts';
import type { Outbound } from './hub.ts';
import type { ChatError } from './protocol.ts';
import { ChatSession, type SessionOptions, type SessionSink, type Welcome } from './session.ts';

// What the two byte-stream transports (TCP/unix lines and frames) share: flow control both ways.
//
// Out: a client that does not read must cost the server at most `sendQueueLimit` bytes (plus one
// write). Each write checks what the socket holds unsent; past the limit the socket is destroyed
// (a goodbye could not get out anyway), so the fan-out to everyone else never waits on it.
//
// In: each read is cut into requests (lines or frames) that wait in `units` and are handled one
// by one while the rate limit has tokens and the session has fewer than PAUSE_AT commands
// waiting. While any wait, the socket is not read, so TCP's own flow control slows the client:
// a fast writer is throttled, never buffered without bound (at most one read's worth waits) and
// never disconnected for it. A half-close (`printf 'hi\n' | nc -N`) is honoured: what was sent
// is carried out, then the connection ends.

export interface StreamSessionOptions extends SessionOptions {
  /** Where a connection starts (lines) or where a join without a room goes (frames). */
  defaultRoom: string;
  /** Bytes waiting toward one client before it is cut off. */
  sendQueueLimit: number;
  /** Requests a client may make, or false for no limit. */
  rateLimit: TokenBucketConfig | false;
  /** Called when a client is cut off for not reading (metrics). */
  onSlow: () => void;
}

/** A request cut from the input, or a local answer that must keep its place among them. */
export type Unit = Buffer | (() => void);

/** Commands waiting in the session before requests stop being handled. */
const PAUSE_AT = 64;
/** After our end, how long a client that never closes its side keeps the socket. */
const LINGER_MS = 5000;
/** The longest delay setTimeout honours; longer ones fire after 1 ms. */
const MAX_TIMER_MS = 2_147_483_647;

export abstract class StreamChatSession implements SessionSink {
  readonly session: ChatSession;
  /** Requests are no longer handled; the connection ends once pending commands are done. */
  protected closing = false;
  /** The client has ended its side: once `units` are handled, we end ours. */
  private inputDone = false;
  private units: Unit[] = [];
  private next = 0;
  private readonly bucket: TokenBucket | undefined;
  private refillTimer: NodeJS.Timeout | undefined;
  /** Bytes written (corked) in this tick; 0 when not corked. */
  private tickBytes = 0;

  constructor(
    protected readonly socket: Socket,
    protected readonly options: StreamSessionOptions,
    /** Called once when the connection is gone, with the session's leave (settles when the nick is released). */
    onGone: (s: StreamChatSession, leaving: Promise<void>) => void,
  ) {
    socket.allowHalfOpen = true;
    this.bucket = options.rateLimit ? new TokenBucket(tokenBucketPolicy(options.rateLimit), Date.now()) : undefined;
    this.session = new ChatSession(this, options);
    this.session.onDrained(() => this.pump());
    socket.on('data', (chunk: Buffer) => {
      if (this.closing || this.inputDone) return;
      this.parse(chunk);
      this.pump();
    });
    socket.once('end', () => {
      if (this.closing) return;
      this.endOfInput();
      this.inputDone = true;
      this.pump();
    });
    socket.once('close', () => {
      clearTimeout(this.refillTimer);
      onGone(this, this.session.disconnect());
    });
  }

  /** Cuts bytes from the client into units (see `unit`). */
  protected abstract parse(chunk: Buffer): void;
  /** The client half-closed: a partial last request may still be a whole one. */
  protected abstract endOfInput(): void;
  /** Handles one request. */
  protected abstract handle(request: Buffer): void;

  /** The server is stopping: the notice, then end. */
  abstract notice(text: string): void;
  abstract tell(text: string): void;

  abstract event(out: Outbound): void;
  abstract left(out: Outbound): void;
  abstract welcome(w: Welcome): void;
  abstract presence(room: string, members: string[]): void;
  abstract error(err: ChatError, id?: string): void;

  /** Queues a request, or a local answer to run in its turn. */
  protected unit(u: Unit): void {
    this.units.push(u);
  }

  abort(): void {
    this.socket.destroy();
  }

  /** Handles waiting units while tokens and the session allow; reads the socket only when none wait. */
  private pump(): void {
    const units = this.units;
    while (this.next < units.length && !this.closing) {
      if (this.session.pending > PAUSE_AT) break; // resumed by onDrained
      const u = units[this.next];
      if (typeof u === 'function') {
        this.next++;
        u();
        continue;
      }
      if (!this.take()) break; // resumed by the refill timer
      this.next++;
      this.handle(u);
    }
    if (this.next < units.length && !this.closing) {
      this.socket.pause();
      return;
    }
    this.units = [];
    this.next = 0;
    if (this.closing) return;
    if (this.inputDone) return this.finish();
    if (this.socket.isPaused()) this.socket.resume();
  }

  /** Takes a token of the rate limit; without one, arms the timer that pumps again when there is. */
  private take(): boolean {
    const bucket = this.bucket;
    if (bucket === undefined) return true;
    const now = Date.now();
    if (bucket.take(now)) return true;
    if (!this.refillTimer) {
      // A timer that fires early (or a clock that moved) only means another wait. A slow
      // fractional rate can mean a wait past what setTimeout takes (it would fire at once).
      this.refillTimer = setTimeout(() => {
        this.refillTimer = undefined;
        this.pump();
      }, Math.min(bucket.waitMs(now), MAX_TIMER_MS));
    }
    return false;
  }

  /**
   * Queues bytes toward the client, unless it already holds more than the limit unread from
   * before this tick: then it is cut off. Memory per client stays under the limit plus what one
   * tick writes (one read's worth of fan-out, or a welcome with its history).
   *
   * Writes of one tick are corked into one system call: a burst of room events (a read with many
   * messages fans out in one go) costs each client one write instead of one per event.
   */
  protected write(data: Buffer | string): void {
    const socket = this.socket;
    if (socket.destroyed || socket.writableEnded) return;
    if (socket.writableLength - this.tickBytes > this.options.sendQueueLimit) {
      this.options.onSlow();
      socket.destroy();
      return;
    }
    if (this.tickBytes === 0) {
      socket.cork();
      process.nextTick(this.uncork);
    }
    socket.write(data);
    this.tickBytes += typeof data === 'string' ? Buffer.byteLength(data) : data.length;
  }

  private readonly uncork = (): void => {
    this.tickBytes = 0;
    this.socket.uncork();
  };

  /** Stops handling requests, lets what was asked finish, writes `last` if given, then ends. */
  protected finish(last?: Buffer | string): void {
    if (this.closing) return;
    this.closing = true;
    clearTimeout(this.refillTimer);
    // Input is read and dropped from now on, so that the client's FIN is still seen.
    this.socket.resume();
    void this.session.whenIdle().then(() => this.end(last));
  }

  /** Ends now (after `last`), whatever is still pending. */
  protected end(last?: Buffer | string): void {
    this.closing = true;
    clearTimeout(this.refillTimer);
    if (last !== undefined) this.write(last);
    if (this.socket.destroyed) return;
    this.socket.end();
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }
}

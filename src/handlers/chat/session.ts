import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { LeaveReason, RoomEvent } from '../../state/types.ts';
import { Outbound, type Hub, type HubMember } from './hub.ts';
import { ChatError, checkText, quote, type Command } from './protocol.ts';

// One chat connection's state, whatever carries it (WebSocket, TCP lines, frames). The
// transports turn bytes into calls here and this file's SessionSink calls back into bytes.
//
// Commands run one at a time, in arrival order, because each is a few store round trips (with
// Redis, real ones) and must see the state the previous one left: a message right after a nick
// change goes out under the new nick. The queue is bounded by the transports: they stop reading
// (TCP) or close the connection (WebSocket) when `pending` passes their limit.
//
// Ordering contract with the client: the welcome comes first, carrying the room's seq just before
// the session's own join; then every event from that join on, each exactly once, seq by seq.
// Events that arrive while the join is under way are held back (bounded) until the welcome is out.

export interface Welcome {
  room: string;
  nick: string;
  /** Sorted nicks, the session's own included. */
  members: string[];
  /** Message events, oldest first, all older than the session's join. */
  history: RoomEvent[];
  /** The room's seq just before the session's own join event (the next thing it receives). */
  seq: number;
  /** True for the session's first join (line clients are greeted differently then). */
  first: boolean;
}

/** What a transport does with the session's output. Calls after the transport closed are ignored by it. */
export interface SessionSink {
  /** A room event, shared with every other local recipient. */
  event(out: Outbound): void;
  welcome(w: Welcome): void;
  presence(room: string, members: string[]): void;
  /** This session's own leave (a `leave` command, or a join elsewhere); it gets nothing more from that room. */
  left(out: Outbound): void;
  /** A notice that does not end the session (the transport keeps it open). */
  tell(text: string): void;
  error(err: ChatError, id?: string): void;
  /** The session cannot go on consistently; the transport closes the connection. */
  abort(reason: string): void;
}

export interface SessionOptions {
  hub: Hub;
  /** Messages replayed on join. */
  history: number;
  /** Largest message text, in UTF-8 bytes. */
  maxMessageLength: number;
  log: Logger;
}

/** Events held back while a join is under way, at most; a room busier than that aborts the join. */
const JOIN_BUFFER_LIMIT = 10_000;
/** Random guest nicks tried before giving up (65536 exist; a room would need most of them taken). */
const GUEST_TRIES = 16;

type Op = { run: () => Promise<void>; id?: string };

export class ChatSession implements HubMember {
  readonly owner: string;
  private current: { room: string; nick: string } | undefined;
  /** The nick last used, kept after a leave so that a line client's `/join` keeps it. */
  private lastNick: string | undefined;
  /**
   * The session's nick at the point of the event stream being delivered, which can lag behind
   * `current.nick` while its own nick event is in flight: a line client uses it to recognise its
   * own messages and join.
   */
  private seen: string | undefined;
  private joining: Outbound[] | undefined;
  private joined = false;
  private readonly queue: Op[] = [];
  /** A queued command is running. */
  private busy = false;
  /** Messages handed to the store and not yet confirmed (see say). */
  private inflight = 0;
  private gone = false;
  private idleWaiters: (() => void)[] = [];
  private drainedListener: (() => void) | undefined;

  constructor(
    private readonly sink: SessionSink,
    private readonly options: SessionOptions,
  ) {
    this.owner = options.hub.newOwner();
  }

  /** Room and nick while in a room. */
  get where(): { room: string; nick: string } | undefined {
    return this.current;
  }

  /** The nick of this session as of the event being delivered now (see `seen`). */
  get streamNick(): string | undefined {
    return this.seen;
  }

  /** Commands waiting, running, or messages not yet confirmed by the store. */
  get pending(): number {
    return this.queue.length + (this.busy ? 1 : 0) + this.inflight;
  }

  /** Called each time nothing is pending any more (transports resume reading then). */
  onDrained(fn: () => void): void {
    this.drainedListener = fn;
  }

  /** Runs one parsed client command; a join without a room goes to `defaultRoom`. */
  run(cmd: Command, defaultRoom: string): void {
    switch (cmd.type) {
      case 'join':
        return this.join(cmd.room ?? defaultRoom, cmd.nick, cmd.id);
      case 'message':
        return this.say(cmd.text, cmd.id);
      case 'nick':
        return this.changeNick(cmd.nick, cmd.id);
      case 'who':
        return this.who(cmd.id);
      case 'leave':
        return this.leave(cmd.id);
    }
  }

  /** Runs `fn` after the commands queued before it, so that a local reply keeps its place among the answers. */
  inOrder(fn: () => void): void {
    if (this.gone) return;
    if (!this.busy && this.queue.length === 0) return fn();
    this.enqueue({ run: async () => fn() });
  }

  /** Joins `room` as `nick`; without a nick, the last one used, or a guest nick. */
  join(room: string, nick?: string, id?: string): void {
    this.enqueue({ id, run: () => this.doJoin(room, nick ?? this.lastNick) });
  }

  say(text: string, id?: string): void {
    if (this.gone) return;
    const cur = this.current;
    if (!this.busy && this.queue.length === 0 && cur && this.joined) {
      // The hot path: nothing ahead of it, so the message is handed to the store now instead of
      // waiting its turn. Order still holds: the store takes publishes in call order (memory:
      // synchronously; redis: one connection, in order), and a later command, queued behind
      // nothing, is issued after this call.
      const tooLong = checkText(text, this.options.maxMessageLength);
      if (tooLong) return this.sink.error(tooLong, id);
      this.inflight++;
      this.options.hub.store.publish({ type: 'message', room: cur.room, nick: cur.nick, text }, { historyLimit: this.options.history }).then(this.published, (err: unknown) => {
        this.fail(err, id);
        this.published();
      });
      return;
    }
    this.enqueue({
      id,
      run: async () => {
        const now = this.need();
        const tooLong = checkText(text, this.options.maxMessageLength);
        if (tooLong) throw tooLong;
        await this.options.hub.store.publish({ type: 'message', room: now.room, nick: now.nick, text }, { historyLimit: this.options.history });
      },
    });
  }

  private readonly published = (): void => {
    this.inflight--;
    this.settle();
  };

  changeNick(nick: string, id?: string): void {
    this.enqueue({ id, run: () => this.doNick(nick) });
  }

  who(id?: string): void {
    this.enqueue({
      id,
      run: async () => {
        const cur = this.need();
        this.sink.presence(cur.room, await this.options.hub.store.members(cur.room));
      },
    });
  }

  leave(id?: string): void {
    this.enqueue({
      id,
      run: async () => {
        this.need();
        this.sink.left(new Outbound(await this.leaveCurrent('left')));
      },
    });
  }

  /**
   * The connection is gone: drops waiting commands, lets the running one finish, then leaves the
   * room (reason `disconnected`). Resolves when the claim is released.
   */
  disconnect(): Promise<void> {
    if (!this.gone) {
      this.gone = true;
      this.queue.length = 0;
      this.queue.push({
        run: async () => {
          if (this.current) await this.leaveCurrent('disconnected');
        },
      });
      if (!this.busy) void this.pump();
    }
    return this.whenIdle();
  }

  /** Resolves when nothing is pending. */
  whenIdle(): Promise<void> {
    if (!this.busy && this.inflight === 0 && this.queue.length === 0) return Promise.resolve();
    return new Promise((resolve) => this.idleWaiters.push(resolve));
  }

  /** HubMember: an event of the current room. */
  deliver(out: Outbound): void {
    if (this.joining) {
      if (this.joining.length >= JOIN_BUFFER_LIMIT) {
        this.joining = undefined;
        this.sink.abort('the room was too busy to join');
        void this.disconnect();
        return;
      }
      this.joining.push(out);
      return;
    }
    if (this.joined) this.pass(out);
  }

  private pass(out: Outbound): void {
    const e = out.event;
    if (e.type === 'nick' && e.from === this.seen) {
      // Let the sink see the change under the old nick (it is the confirmation), then move on.
      this.sink.event(out);
      this.seen = e.nick;
      return;
    }
    this.sink.event(out);
  }

  private need(): { room: string; nick: string } {
    if (!this.current) throw new ChatError('NOT_JOINED', 'not in a room; join one first');
    return this.current;
  }

  private enqueue(op: Op): void {
    if (this.gone) return;
    this.queue.push(op);
    if (!this.busy) void this.pump();
  }

  private async pump(): Promise<void> {
    this.busy = true;
    for (let op = this.queue.shift(); op; op = this.queue.shift()) {
      try {
        await op.run();
      } catch (err) {
        this.fail(err, op.id);
      }
    }
    this.busy = false;
    this.settle();
  }

  private fail(err: unknown, id: string | undefined): void {
    if (err instanceof ChatError) return this.sink.error(err, id);
    this.options.log.warn({ err, owner: this.owner }, 'chat: room store failed');
    this.sink.error(new ChatError('UNAVAILABLE', 'chat rooms are unavailable right now; try again'), id);
  }

  private settle(): void {
    if (this.busy || this.inflight > 0 || this.queue.length > 0) return;
    for (const w of this.idleWaiters.splice(0)) w();
    if (!this.gone) this.drainedListener?.();
  }

  private async doJoin(room: string, nick: string | undefined): Promise<void> {
    const store = this.options.hub.store;
    const cur = this.current;
    const same = cur !== undefined && nick !== undefined && cur.room === room && cur.nick === nick;
    // The new nick is claimed before the old room is left, so that a taken nick leaves the
    // session where it was. Rejoining under the same name needs the claim released first.
    let claimed: string | undefined;
    if (!same) {
      claimed = nick === undefined ? await this.claimGuest(room) : (await store.claim(room, nick, this.owner)) ? nick : undefined;
      if (claimed === undefined) throw taken(room, nick);
    }
    if (cur) {
      try {
        this.sink.left(new Outbound(await this.leaveCurrent('left')));
      } catch (err) {
        if (claimed !== undefined) await store.release(room, claimed, this.owner).catch(() => undefined);
        throw err;
      }
    }
    if (same) {
      if (!(await store.claim(room, nick!, this.owner))) throw taken(room, nick);
      claimed = nick;
    }
    await this.enter(room, claimed!);
  }

  private async claimGuest(room: string): Promise<string | undefined> {
    for (let i = 0; i < GUEST_TRIES; i++) {
      const nick = `guest-${randomBytes(2).toString('hex')}`;
      if (await this.options.hub.store.claim(room, nick, this.owner)) return nick;
    }
    return undefined;
  }

  /** With the nick claimed: subscribe, announce, then welcome and release the held-back events. */
  private async enter(room: string, nick: string): Promise<void> {
    const { hub, history: historyLimit } = this.options;
    const store = hub.store;
    const held: Outbound[] = [];
    this.joining = held;
    this.joined = false;
    try {
      await hub.add(room, this);
    } catch (err) {
      this.joining = undefined;
      await store.release(room, nick, this.owner).catch(() => undefined);
      throw err;
    }
    const first = this.lastNick === undefined;
    this.current = { room, nick };
    this.lastNick = nick;
    this.seen = nick;
    let joinSeq: number;
    let members: string[];
    let history: RoomEvent[];
    try {
      joinSeq = (await store.publish({ type: 'join', room, nick }, { historyLimit })).seq;
      [members, history] = await Promise.all([store.members(room), historyLimit > 0 ? store.history(room, historyLimit) : Promise.resolve([])]);
    } catch (err) {
      this.joining = undefined;
      this.current = undefined;
      this.seen = undefined;
      hub.remove(room, this);
      await store.release(room, nick, this.owner).catch(() => undefined);
      throw err;
    }
    // Aborted (join buffer overflow) while the store was answering.
    if (this.joining !== held) return;
    this.sink.welcome({ room, nick, members, history: history.filter((e) => e.seq < joinSeq), seq: joinSeq - 1, first });
    this.joining = undefined;
    this.joined = true;
    for (const out of held) if (out.event.seq >= joinSeq) this.pass(out);
  }

  /**
   * The store found this session's nick in another member's hands (this node was cut off from
   * the shared state for longer than a claim lives). The room already saw this session leave
   * (`expired`) and the nick is someone else's now, so the session is out of the room without
   * releasing or announcing anything, and is told so.
   */
  claimLost(room: string, nick: string): void {
    this.inOrder(() => {
      const cur = this.current;
      if (!cur || cur.room !== room || cur.nick !== nick) return;
      this.current = undefined;
      this.joined = false;
      this.joining = undefined;
      this.seen = undefined;
      this.options.hub.remove(room, this);
      this.sink.tell(`your nick ${quote(nick)} in ${room} was taken by someone else while this server was cut off from the shared room state; you are no longer in ${room} (join again)`);
    });
  }

  /** Leaves the current room: stops its events, releases the nick, announces the leave. */
  private async leaveCurrent(reason: LeaveReason): Promise<RoomEvent> {
    const cur = this.current!;
    const { hub, history } = this.options;
    this.current = undefined;
    this.joined = false;
    this.joining = undefined;
    this.seen = undefined;
    hub.remove(cur.room, this);
    // Released before the leave is announced: whoever reads the members after the event must
    // not still find this nick there.
    await hub.store.release(cur.room, cur.nick, this.owner);
    return hub.store.publish({ type: 'leave', room: cur.room, nick: cur.nick, reason }, { historyLimit: history });
  }

  private async doNick(nick: string): Promise<void> {
    const cur = this.need();
    if (nick === cur.nick) return;
    const store = this.options.hub.store;
    if (!(await store.claim(cur.room, nick, this.owner))) throw taken(cur.room, nick);
    const old = cur.nick;
    try {
      await store.publish({ type: 'nick', room: cur.room, from: old, nick }, { historyLimit: this.options.history });
    } catch (err) {
      await store.release(cur.room, nick, this.owner).catch(() => undefined);
      throw err;
    }
    cur.nick = nick;
    this.lastNick = nick;
    await store.release(cur.room, old, this.owner);
  }
}

function taken(room: string, nick: string | undefined): ChatError {
  return nick === undefined
    ? new ChatError('NICK_TAKEN', `no free guest nick in ${room}; join with a nick of your own`)
    : new ChatError('NICK_TAKEN', `nick ${quote(nick)} is taken in ${room}`);
}

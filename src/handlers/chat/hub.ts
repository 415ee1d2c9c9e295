import { randomBytes } from 'node:crypto';
import type { Logger } from 'pino';
import type { RoomEvent, RoomStore } from '../../state/types.ts';
import { FRAME_HEADER_SIZE } from '../../protocol/frame.ts';

// The local side of rooms for one chat handler instance. However many of its sessions sit in a
// room, the hub holds ONE store subscription for it and fans each event out to them. Fan-out is
// the hot path (one sender, hundreds of readers), so an event is serialised at most once per
// wire format, lazily, into an Outbound that every recipient shares: the same Buffer goes to
// every WebSocket peer and every framed socket, the same line Buffer to every TCP line client.
// Nothing is copied or re-encoded per recipient.

/** A local session as the hub sees it. */
export interface HubMember {
  /** The session's owner id, as its claims in the store carry it. */
  readonly owner: string;
  /** Called for every event of the room the member was added to, in sequence order. */
  deliver(out: Outbound): void;
  /** The member's claim on `nick` in `room` now belongs to someone else (RoomStore.onClaimLost). */
  claimLost(room: string, nick: string): void;
}

/** The wire object of an event: exactly the fields docs/chat.md lists, whatever the store adds. */
export function wireEvent(e: RoomEvent): Record<string, unknown> {
  switch (e.type) {
    case 'message':
      return { type: 'message', room: e.room, seq: e.seq, ts: e.ts, nick: e.nick, text: e.text };
    case 'join':
      return { type: 'join', room: e.room, seq: e.seq, ts: e.ts, nick: e.nick };
    case 'leave':
      return { type: 'leave', room: e.room, seq: e.seq, ts: e.ts, nick: e.nick, reason: e.reason };
    case 'nick':
      return { type: 'nick', room: e.room, seq: e.seq, ts: e.ts, from: e.from, nick: e.nick };
  }
}

/**
 * Keeps a text on one line and free of terminal control sequences: a WebSocket user's `\n` or
 * ESC must not forge lines or repaint the terminal of someone on `nc`.
 */
export function lineSafe(text: string): string {
  // eslint-disable-next-line no-control-regex
  return /[\x00-\x1f\x7f-\x9f\u2028\u2029]/.test(text) ? text.replace(/\t/g, ' ').replace(/[\x00-\x1f\x7f-\x9f\u2028\u2029]/g, '\ufffd') : text;
}

/** The text line an event is shown as to TCP line clients (docs/chat.md, "TCP lines"). */
export function eventLine(e: RoomEvent): string {
  switch (e.type) {
    case 'message':
      return `${e.nick}: ${lineSafe(e.text)}\n`;
    case 'join':
      return `* ${e.nick} joined ${e.room}\n`;
    case 'leave':
      return e.reason === 'left' ? `* ${e.nick} left ${e.room}\n` : `* ${e.nick} left ${e.room} (${e.reason})\n`;
    case 'nick':
      return `* ${e.from} is now ${e.nick}\n`;
  }
}

/** One JSON object as a frame: the u32 length and the UTF-8 bytes, in a single allocation. */
export function jsonFrame(value: unknown): Buffer {
  const s = JSON.stringify(value);
  const len = Buffer.byteLength(s);
  const buf = Buffer.allocUnsafe(FRAME_HEADER_SIZE + len);
  buf.writeUInt32BE(len, 0);
  buf.write(s, FRAME_HEADER_SIZE);
  return buf;
}

/** An event with its encodings, each made on first use and then shared by every recipient. */
export class Outbound {
  private framed: Buffer | undefined;
  private payload: Buffer | undefined;
  private text: Buffer | undefined;

  constructor(readonly event: RoomEvent) {}

  /** The length-prefixed frame (framed TCP sessions). */
  get frame(): Buffer {
    return (this.framed ??= jsonFrame(wireEvent(this.event)));
  }

  /** The JSON bytes (WebSocket text message): a view into `frame`, so both cost one encoding. */
  get json(): Buffer {
    return (this.payload ??= this.frame.subarray(FRAME_HEADER_SIZE));
  }

  /** The text line (TCP line sessions), newline included. */
  get line(): Buffer {
    return (this.text ??= Buffer.from(eventLine(this.event)));
  }
}

interface RoomEntry {
  readonly members: Set<HubMember>;
  /** Settles when the store subscription is live (or has failed). */
  readonly ready: Promise<void>;
  unsubscribe?: () => void;
}

export class Hub {
  /** This hub's part of every owner id: random, so owners never collide across daemons. */
  readonly nodeId = randomBytes(6).toString('hex');
  private sessions = 0;
  private readonly rooms = new Map<string, RoomEntry>();
  private closed = false;
  private readonly stopClaimLost: () => void;

  constructor(
    readonly store: RoomStore,
    private readonly log: Logger,
  ) {
    this.stopClaimLost = store.onClaimLost((room, nick, owner) => {
      for (const m of this.rooms.get(room)?.members ?? []) if (m.owner === owner) m.claimLost(room, nick);
    });
  }

  /** A new owner id for a session: `<node id>:<n>`, unique across every node sharing the store. */
  newOwner(): string {
    return `${this.nodeId}:${++this.sessions}`;
  }

  /** Local members in `room` now. */
  size(room: string): number {
    return this.rooms.get(room)?.members.size ?? 0;
  }

  /**
   * Adds `member` to `room` and resolves once the room's subscription is live, so that any event
   * published after this resolves reaches the member. Rejects if the store cannot subscribe (the
   * member is then not added).
   */
  async add(room: string, member: HubMember): Promise<void> {
    if (this.closed) throw new Error('chat hub is closed');
    let entry = this.rooms.get(room);
    if (!entry) {
      const members = new Set<HubMember>();
      const created: RoomEntry = {
        members,
        ready: this.store.subscribe(room, (e) => this.fanOut(created, e)).then(
          (unsubscribe) => {
            // Everyone left (or the hub closed) while the subscription was being set up.
            if (members.size === 0 || this.rooms.get(room) !== created) unsubscribe();
            else created.unsubscribe = unsubscribe;
          },
          (err: unknown) => {
            if (this.rooms.get(room) === created) this.rooms.delete(room);
            members.clear();
            throw err;
          },
        ),
      };
      entry = created;
      this.rooms.set(room, entry);
    }
    entry.members.add(member);
    try {
      await entry.ready;
    } catch (err) {
      entry.members.delete(member);
      throw err;
    }
    if (!entry.members.has(member)) throw new Error(`left ${room} while joining`);
  }

  /** Removes `member` from `room`; the last local member out ends the subscription. */
  remove(room: string, member: HubMember): void {
    const entry = this.rooms.get(room);
    if (!entry || !entry.members.delete(member) || entry.members.size > 0) return;
    this.rooms.delete(room);
    // Still subscribing: the `ready` handler sees the room gone and unsubscribes.
    entry.unsubscribe?.();
  }

  /** Ends every subscription; members get nothing more. */
  close(): void {
    this.closed = true;
    this.stopClaimLost();
    for (const entry of this.rooms.values()) {
      entry.members.clear();
      entry.unsubscribe?.();
    }
    this.rooms.clear();
  }

  private fanOut(entry: RoomEntry, e: RoomEvent): void {
    if (entry.members.size === 0) return;
    const out = new Outbound(e);
    for (const m of entry.members) {
      try {
        m.deliver(out);
      } catch (err) {
        // One broken session must not keep the event from the others.
        this.log.error({ err, room: e.room }, 'chat: delivering an event failed');
      }
    }
  }
}

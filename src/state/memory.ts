import { DEFAULT_MAX_HISTORY_BYTES, maxRoomHistoryBytes } from './config.ts';
import type { ClaimLostListener, PublishOptions, RoomEvent, RoomEventInput, RoomListener, RoomStore } from './types.ts';

// Rooms held in this process: the default backend. Every chat handler of the yard shares one,
// so a TCP user and a WebSocket user on different listeners meet in the same room.
//
// History is bounded three ways: per room by the publisher's historyLimit (messages) and by
// maxRoomHistoryBytes, and over the whole store by maxHistoryBytes. Rooms in use are bounded only
// by the connections using them, so a count of rooms alone cannot bound the bytes they hold.

type MessageEvent = Extract<RoomEvent, { type: 'message' }>;

/**
 * Heap of one kept message beyond its strings' characters: the event object, its `ts` (a heap
 * number), its slot in the history array and the headers of its three strings. Measured at
 * about 150 bytes on Node 20 (x64) for the plain object that keep() stores.
 */
export const EVENT_OVERHEAD = 160;

/**
 * The heap a kept message is reckoned to hold: 2 bytes per UTF-16 unit of its text, nick and
 * room (V8 keeps Latin-1 strings at 1 byte per character, so this is an upper bound for flat
 * strings, about twice the truth for ASCII chat) plus EVENT_OVERHEAD. O(1): lengths only.
 */
export function messageCost(e: MessageEvent): number {
  return 2 * (e.text.length + e.nick.length + e.room.length) + EVENT_OVERHEAD;
}

interface Room {
  seq: number;
  /** nick -> owner */
  readonly nicks: Map<string, string>;
  /** The kept messages, oldest first, from `head` on; the slots before `head` were dropped. */
  history: (MessageEvent | undefined)[];
  head: number;
  /** messageCost() summed over the kept messages. */
  bytes: number;
  readonly listeners: Set<RoomListener>;
}

export interface MemoryRoomStoreOptions {
  /**
   * Rooms nobody is in that are kept for their history (and sequence), oldest forgotten first.
   * Rooms in use are bounded by the connections that use them; this bounds the rest, so that
   * clients cannot grow memory by visiting ever new room names.
   */
  maxIdleRooms?: number;
  /**
   * Bytes of history (messageCost() summed) over all rooms, in use or idle; past it the room
   * written least recently loses its oldest messages. One room keeps at most 1/16 of it.
   */
  maxHistoryBytes?: number;
}

export class MemoryRoomStore implements RoomStore {
  readonly backend = 'memory';
  private readonly rooms = new Map<string, Room>();
  /** Names of rooms with history and nobody in them, least recently left first. */
  private readonly idle = new Set<string>();
  /** Rooms holding history, least recently given a message first: whom the budget trims first. */
  private readonly written = new Map<string, Room>();
  private readonly maxIdleRooms: number;
  private readonly maxHistoryBytes: number;
  private readonly maxRoomBytes: number;
  private bytes = 0;

  constructor(options: MemoryRoomStoreOptions = {}) {
    this.maxIdleRooms = options.maxIdleRooms ?? 1000;
    this.maxHistoryBytes = options.maxHistoryBytes ?? DEFAULT_MAX_HISTORY_BYTES;
    this.maxRoomBytes = maxRoomHistoryBytes(this.maxHistoryBytes);
  }

  private room(name: string): Room {
    this.idle.delete(name);
    let r = this.rooms.get(name);
    if (!r) {
      r = { seq: 0, nicks: new Map(), history: [], head: 0, bytes: 0, listeners: new Set() };
      this.rooms.set(name, r);
    }
    return r;
  }

  /**
   * Forgets a room nobody is in or listens to: at once when nothing ever happened in it, else
   * (its sequence and history still matter to returning members) once it is among the oldest idle.
   */
  private sweep(name: string): void {
    const r = this.rooms.get(name);
    if (!r || r.nicks.size > 0 || r.listeners.size > 0) return;
    if (r.seq === 0 && r.bytes === 0) {
      this.rooms.delete(name);
      return;
    }
    this.idle.delete(name);
    this.idle.add(name);
    for (const oldest of this.idle) {
      if (this.idle.size <= this.maxIdleRooms) break;
      this.idle.delete(oldest);
      const gone = this.rooms.get(oldest);
      this.rooms.delete(oldest);
      if (gone && gone.bytes > 0) {
        this.bytes -= gone.bytes;
        this.written.delete(oldest);
      }
    }
  }

  /** Rooms held now (in use or idle with history). */
  get size(): number {
    return this.rooms.size;
  }

  /** History held now, in messageCost() bytes over every room: never above maxHistoryBytes. */
  get historyBytes(): number {
    return this.bytes;
  }

  /**
   * Adds `event` to the room's history, then trims: the room to `limit` messages and to
   * maxRoomBytes, then the store to maxHistoryBytes, oldest messages of the least recently
   * written rooms first. Every message is added once and dropped at most once, so this is
   * amortised O(1) per message whatever the number of rooms.
   */
  private keep(name: string, r: Room, event: MessageEvent, limit: number): void {
    const cost = messageCost(event);
    // Could never fit: not kept (the room's history shows a gap in seq) rather than emptying it.
    if (cost > this.maxRoomBytes) return;
    r.history.push(event);
    r.bytes += cost;
    this.bytes += cost;
    this.written.delete(name);
    this.written.set(name, r);
    while (r.history.length - r.head > limit || r.bytes > this.maxRoomBytes) this.dropOldest(name, r);
    while (this.bytes > this.maxHistoryBytes) {
      // Never empty here: every counted byte belongs to a room in `written`.
      const [victimName, victim] = this.written.entries().next().value as [string, Room];
      this.dropOldest(victimName, victim);
    }
  }

  private dropOldest(name: string, r: Room): void {
    const e = r.history[r.head];
    if (e === undefined) return;
    r.history[r.head++] = undefined;
    const cost = messageCost(e);
    r.bytes -= cost;
    this.bytes -= cost;
    if (r.head === r.history.length) {
      r.history = [];
      r.head = 0;
      this.written.delete(name);
    } else if (r.head >= 64 && r.head * 2 >= r.history.length) {
      // Copying what is left costs no more than the drops that led here: amortised O(1).
      r.history = r.history.slice(r.head);
      r.head = 0;
    }
  }

  async claim(room: string, nick: string, owner: string): Promise<boolean> {
    const r = this.room(room);
    const holder = r.nicks.get(nick);
    if (holder !== undefined && holder !== owner) return false;
    r.nicks.set(nick, owner);
    return true;
  }

  async release(room: string, nick: string, owner: string): Promise<void> {
    const r = this.rooms.get(room);
    if (r?.nicks.get(nick) === owner) r.nicks.delete(nick);
    this.sweep(room);
  }

  async list(limit: number): Promise<{ room: string; members: number }[]> {
    const out: { room: string; members: number }[] = [];
    for (const [room, r] of this.rooms) {
      if (out.length >= limit) break;
      if (r.nicks.size > 0 || r.history.length > r.head) out.push({ room, members: r.nicks.size });
    }
    return out.sort((a, b) => a.room.localeCompare(b.room));
  }

  async members(room: string): Promise<string[]> {
    return [...(this.rooms.get(room)?.nicks.keys() ?? [])].sort();
  }

  async history(room: string, limit: number): Promise<RoomEvent[]> {
    const r = this.rooms.get(room);
    if (!r || limit <= 0) return [];
    return r.history.slice(Math.max(r.head, r.history.length - Math.floor(limit))) as MessageEvent[];
  }

  async publish(input: RoomEventInput, options: PublishOptions): Promise<RoomEvent> {
    const r = this.room(input.room);
    const seq = ++r.seq;
    const ts = Date.now();
    if (input.type === 'message') {
      // A plain literal: the spread below makes V8 give the object a far larger layout (about
      // 360 bytes against 100), and kept messages live long.
      const event: MessageEvent = { type: 'message', room: input.room, nick: input.nick, text: input.text, seq, ts };
      if (options.historyLimit >= 1) this.keep(input.room, r, event, Math.floor(options.historyLimit));
      return this.deliver(r, event);
    }
    return this.deliver(r, { ...input, seq, ts } as RoomEvent);
  }

  private deliver(r: Room, event: RoomEvent): RoomEvent {
    for (const l of r.listeners) l(event);
    this.sweep(event.room);
    return event;
  }

  async subscribe(room: string, listener: RoomListener): Promise<() => void> {
    const r = this.room(room);
    // A wrapper per subscription, so that one listener function may subscribe twice.
    const entry: RoomListener = (e) => listener(e);
    r.listeners.add(entry);
    return () => {
      r.listeners.delete(entry);
      this.sweep(room);
    };
  }

  onClaimLost(_listener: ClaimLostListener): () => void {
    // Claims live in this process with the sessions holding them: nothing can expire them.
    return () => undefined;
  }

  async close(): Promise<void> {
    this.rooms.clear();
    this.idle.clear();
    this.written.clear();
    this.bytes = 0;
  }
}

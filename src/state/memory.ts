import type { ClaimLostListener, PublishOptions, RoomEvent, RoomEventInput, RoomListener, RoomStore } from './types.ts';

// Rooms held in this process: the default backend. Every chat handler of the yard shares one,
// so a TCP user and a WebSocket user on different listeners meet in the same room.

interface Room {
  seq: number;
  /** nick -> owner */
  readonly nicks: Map<string, string>;
  /** Ring of the newest messages, oldest first once unrolled. */
  history: RoomEvent[];
  readonly listeners: Set<RoomListener>;
}

export interface MemoryRoomStoreOptions {
  /**
   * Rooms nobody is in that are kept for their history (and sequence), oldest forgotten first.
   * Rooms in use are bounded by the connections that use them; this bounds the rest, so that
   * clients cannot grow memory by visiting ever new room names.
   */
  maxIdleRooms?: number;
}

export class MemoryRoomStore implements RoomStore {
  readonly backend = 'memory';
  private readonly rooms = new Map<string, Room>();
  /** Names of rooms with history and nobody in them, least recently left first. */
  private readonly idle = new Set<string>();
  private readonly maxIdleRooms: number;

  constructor(options: MemoryRoomStoreOptions = {}) {
    this.maxIdleRooms = options.maxIdleRooms ?? 1000;
  }

  private room(name: string): Room {
    this.idle.delete(name);
    let r = this.rooms.get(name);
    if (!r) {
      r = { seq: 0, nicks: new Map(), history: [], listeners: new Set() };
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
    if (r.seq === 0 && r.history.length === 0) {
      this.rooms.delete(name);
      return;
    }
    this.idle.delete(name);
    this.idle.add(name);
    for (const oldest of this.idle) {
      if (this.idle.size <= this.maxIdleRooms) break;
      this.idle.delete(oldest);
      this.rooms.delete(oldest);
    }
  }

  /** Rooms held now (in use or idle with history). */
  get size(): number {
    return this.rooms.size;
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

  async members(room: string): Promise<string[]> {
    return [...(this.rooms.get(room)?.nicks.keys() ?? [])].sort();
  }

  async history(room: string, limit: number): Promise<RoomEvent[]> {
    const h = this.rooms.get(room)?.history ?? [];
    return limit <= 0 ? [] : h.slice(-limit);
  }

  async publish(input: RoomEventInput, options: PublishOptions): Promise<RoomEvent> {
    const r = this.room(input.room);
    const event = { ...input, seq: ++r.seq, ts: Date.now() } as RoomEvent;
    if (event.type === 'message' && options.historyLimit > 0) {
      r.history.push(event);
      // Trim in batches so that a busy room does not shift the array on every message.
      if (r.history.length >= options.historyLimit * 2) r.history = r.history.slice(-options.historyLimit);
    }
    for (const l of r.listeners) l(event);
    this.sweep(input.room);
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
  }
}

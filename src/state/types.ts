// Chat room state as the chat handlers see it, whatever holds it: one process (memory) or many
// daemons sharing a Redis (redis). Handlers keep their own local sessions; the store owns what
// must be the same everywhere: who holds which nick, the per-room sequence, the history, and the
// fan-out of events to every subscriber on every node.

/** Why a member left a room. `expired`: its daemon stopped refreshing it (died, or lost Redis). */
export type LeaveReason = 'left' | 'disconnected' | 'expired' | 'kicked';

/** One event in a room, stamped by the store with the room's next sequence number and the time. */
export type RoomEvent =
  | { type: 'message'; room: string; seq: number; ts: number; nick: string; text: string }
  | { type: 'join'; room: string; seq: number; ts: number; nick: string }
  | { type: 'leave'; room: string; seq: number; ts: number; nick: string; reason: LeaveReason }
  | { type: 'nick'; room: string; seq: number; ts: number; from: string; nick: string };

type Unstamped<E> = E extends RoomEvent ? Omit<E, 'seq' | 'ts'> : never;

/** What a handler publishes: the store adds `seq` and `ts`. */
export type RoomEventInput = Unstamped<RoomEvent>;

export type RoomListener = (event: RoomEvent) => void;

/** A claim this node held was found in another owner's hands (see RoomStore.onClaimLost). */
export type ClaimLostListener = (room: string, nick: string, owner: string) => void;

export interface PublishOptions {
  /** Messages kept in the room's history (the newest ones); 0 keeps none. */
  historyLimit: number;
}

export interface RoomStore {
  /** `memory` or `redis`, for logs and the banner. */
  readonly backend: string;
  /**
   * Claims `nick` in `room` for `owner` (a session id unique across every node). True when the
   * nick is free or already this owner's; false when another live owner holds it. A claim stays
   * live while the store's node runs (the redis store refreshes it; it expires when the node dies).
   */
  claim(room: string, nick: string, owner: string): Promise<boolean>;
  /** Gives up `nick` in `room` if `owner` holds it; nothing otherwise. */
  release(room: string, nick: string, owner: string): Promise<void>;
  /**
   * Rooms with someone in them or a history, at most `limit` (for the admin API): names and
   * how many are present. Redis: found with SCAN, so it costs one pass over the prefix's keys.
   */
  list(limit: number): Promise<{ room: string; members: number }[]>;
  /** The nicks present in `room` now (live claims), sorted. */
  members(room: string): Promise<string[]>;
  /** The newest `limit` message events of `room`, oldest first. */
  history(room: string, limit: number): Promise<RoomEvent[]>;
  /**
   * Stamps the event (room sequence number, server time in ms), keeps messages in the history,
   * and delivers it to every subscriber of the room on every node, the publisher's own included.
   */
  publish(event: RoomEventInput, options: PublishOptions): Promise<RoomEvent>;
  /**
   * Calls `listener` for each event of `room` from now on, in sequence order. Resolves once the
   * subscription is live (an event published after that is delivered); resolves to the
   * function that ends it.
   */
  subscribe(room: string, listener: RoomListener): Promise<() => void>;
  /**
   * Calls `listener` when a claim of this node's turns out to belong to someone else now: the
   * node was cut off from the shared state longer than the claim lives, the claim expired, and
   * another member took the nick. The session that held it is no longer in that room. Returns
   * the function that stops the calls. (A store in one process never loses a claim.)
   */
  onClaimLost(listener: ClaimLostListener): () => void;
  /** Releases this node's claims (others see them leave) and closes connections. */
  close(): Promise<void>;
}

/** The yard's shared state, handed to handlers when they are provisioned. */
export interface SharedState {
  readonly rooms: RoomStore;
}

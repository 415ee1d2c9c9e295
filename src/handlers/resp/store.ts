import { Deque } from './deque.ts';
import type { EvictionPolicy } from './config.ts';

// The keyspace: one database of keys (latin1 strings, so any bytes are a key) to values, with
// expiry times, an approximate byte count, and the sampling Redis uses to pick keys to evict and
// to find expired ones. Keys also sit in an array (each entry knows its slot, removal swaps the
// last one in) so that a random key is O(1); keys with a TTL sit in a second such array.

export type Value =
  | { readonly type: 'string'; data: Buffer }
  | { readonly type: 'hash'; data: Map<string, Buffer> }
  | { readonly type: 'list'; data: Deque<Buffer> };

export type ValueType = Value['type'];

export interface Entry {
  readonly key: string;
  value: Value;
  /** Absolute expiry time in ms since the epoch; 0 = none. */
  expiresAt: number;
  /** Last access, in LRU_UNIT_MS since the store began (a coarse clock is enough for LRU by sampling). */
  lru: number;
  /** Bytes this entry is counted for in `usedMemory`. */
  size: number;
  slot: number;
  /** Slot in the TTL array; -1 when the key has no TTL. */
  vslot: number;
}

/**
 * The LRU clock's unit. Entries keep their last access as a small integer (V8 keeps it in the
 * object itself; a millisecond timestamp would be a separate heap number per entry, one more
 * cache miss per lookup): 16 ms units stay small integers for half a year of uptime (and are
 * still right, only slower, after that).
 */
const LRU_UNIT_MS = 16;

/** Per-entry bookkeeping counted on top of the key and value bytes (object headers, map slot). */
export const ENTRY_OVERHEAD = 64;
/** Per hash field or list element. */
export const ITEM_OVERHEAD = 24;

export function valueSize(v: Value): number {
  switch (v.type) {
    case 'string':
      return v.data.length;
    case 'hash': {
      let n = 0;
      for (const [f, x] of v.data) n += f.length + x.length + ITEM_OVERHEAD;
      return n;
    }
    case 'list': {
      let n = 0;
      for (const x of v.data) n += x.length + ITEM_OVERHEAD;
      return n;
    }
  }
}

export interface StoreStats {
  expiredKeys: number;
  evictedKeys: number;
  hits: number;
  misses: number;
}

export class Store {
  private readonly map = new Map<string, Entry>();
  private readonly slots: Entry[] = [];
  private readonly volatile: Entry[] = [];
  usedMemory = 0;
  /** Writes since the last snapshot. */
  dirty = 0;
  readonly stats: StoreStats = { expiredKeys: 0, evictedKeys: 0, hits: 0, misses: 0 };
  /**
   * The time commands see, in ms: set once per batch of commands (tick), as Redis caches its
   * clock per command, so that a batch does not ask the system for the time per key.
   */
  private clock = Date.now();
  private readonly lruEpoch = this.clock;
  /** `clock` in LRU units since the store began. */
  private lruClock = 0;

  tick(): void {
    this.clock = Date.now();
    this.lruClock = Math.floor((this.clock - this.lruEpoch) / LRU_UNIT_MS);
  }

  private now(): number {
    return this.clock;
  }

  get size(): number {
    return this.map.size;
  }

  get expiresCount(): number {
    return this.volatile.length;
  }

  /** The live entry of `key` (an expired one is deleted on the way), touching its LRU clock. */
  lookup(key: string): Entry | undefined {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    // vslot first: a key without a TTL never reads its expiry time (a heap number, another miss).
    if (e.vslot >= 0 && e.expiresAt <= this.now()) {
      this.remove(e);
      this.stats.expiredKeys++;
      return undefined;
    }
    e.lru = this.lruClock;
    return e;
  }

  /** Like lookup, counting a hit or a miss (reads of values). */
  read(key: string): Entry | undefined {
    const e = this.lookup(key);
    if (e) this.stats.hits++;
    else this.stats.misses++;
    return e;
  }

  /**
   * Sets `key` to `value`, replacing whatever was there; `expiresAt` 0 clears the TTL. `current`
   * is the key's entry when the caller just looked it up (saves a second lookup).
   */
  set(key: string, value: Value, expiresAt: number, current: Entry | undefined | null = null): Entry {
    let e = current === null ? this.map.get(key) : current;
    if (e === undefined) {
      e = { key, value, expiresAt: 0, lru: this.lruClock, size: 0, slot: this.slots.length, vslot: -1 };
      this.map.set(key, e);
      this.slots.push(e);
    } else {
      e.value = value;
      e.lru = this.lruClock;
    }
    this.setExpiry(e, expiresAt);
    this.resize(e);
    this.dirty++;
    return e;
  }

  /** A write that changed the entry's value in place (same size): its TTL, LRU clock and the dirty count. */
  touchWrite(e: Entry, expiresAt: number): void {
    e.lru = this.lruClock;
    this.setExpiry(e, expiresAt);
    this.dirty++;
  }

  /** Counts the entry's bytes again after its value changed in place. */
  resize(e: Entry, size = ENTRY_OVERHEAD + e.key.length + valueSize(e.value)): void {
    this.usedMemory += size - e.size;
    e.size = size;
  }

  /** Adds `delta` bytes to an entry whose value grew or shrank by that much (cheaper than resize). */
  grow(e: Entry, delta: number): void {
    e.size += delta;
    this.usedMemory += delta;
    this.dirty++;
  }

  setExpiry(e: Entry, expiresAt: number): void {
    e.expiresAt = expiresAt;
    if (expiresAt !== 0 && e.vslot < 0) {
      e.vslot = this.volatile.length;
      this.volatile.push(e);
    } else if (expiresAt === 0 && e.vslot >= 0) {
      this.unslot(this.volatile, e.vslot, 'vslot');
      e.vslot = -1;
    }
  }

  delete(key: string): boolean {
    const e = this.lookup(key);
    if (!e) return false;
    this.remove(e);
    return true;
  }

  remove(e: Entry): void {
    if (this.map.get(e.key) !== e) return;
    this.map.delete(e.key);
    this.unslot(this.slots, e.slot, 'slot');
    if (e.vslot >= 0) this.unslot(this.volatile, e.vslot, 'vslot');
    e.vslot = -1;
    this.usedMemory -= e.size;
    this.dirty++;
  }

  private unslot(arr: Entry[], i: number, field: 'slot' | 'vslot'): void {
    const last = arr.pop() as Entry;
    if (i < arr.length) {
      arr[i] = last;
      last[field] = i;
    }
  }

  clear(): void {
    this.map.clear();
    this.slots.length = 0;
    this.volatile.length = 0;
    this.usedMemory = 0;
    this.dirty++;
  }

  /** Entry at a slot index (SCAN's cursor walks the slots downwards; see commands/keys.ts). */
  slotAt(i: number): Entry | undefined {
    return this.slots[i];
  }

  get slotCount(): number {
    return this.slots.length;
  }

  entries(): IterableIterator<Entry> {
    return this.map.values();
  }

  /**
   * Active expiry: samples up to `budget` keys with a TTL and deletes the expired ones, in rounds
   * of 20, going on while more than a quarter of a round was expired (Redis's rule).
   * Returns how many were deleted.
   */
  sweepExpired(budget: number): number {
    this.tick();
    let deleted = 0;
    let looked = 0;
    const now = this.now();
    while (looked < budget && this.volatile.length > 0) {
      const round = Math.min(20, this.volatile.length, budget - looked);
      let expired = 0;
      for (let i = 0; i < round; i++) {
        const e = this.volatile[Math.floor(Math.random() * this.volatile.length)];
        looked++;
        if (e.expiresAt <= now) {
          this.remove(e);
          this.stats.expiredKeys++;
          expired++;
          deleted++;
          if (this.volatile.length === 0) break;
        }
      }
      if (expired * 4 <= round) break;
    }
    return deleted;
  }

  /**
   * Evicts keys under `policy` until `usedMemory` is at most `limit`. Returns false when it could
   * not get there (noeviction, or nothing left that the policy may take).
   */
  evict(limit: number, policy: EvictionPolicy, samples: number): boolean {
    // Bounded: at most every key once.
    for (let guard = this.map.size + 1; this.usedMemory > limit && guard > 0; guard--) {
      if (policy === 'noeviction') return false;
      const pool = policy === 'volatile-lru' ? this.volatile : this.slots;
      if (pool.length === 0) return false;
      let victim: Entry;
      if (policy === 'allkeys-random') victim = pool[Math.floor(Math.random() * pool.length)];
      else {
        victim = pool[Math.floor(Math.random() * pool.length)];
        for (let i = 1; i < samples; i++) {
          const e = pool[Math.floor(Math.random() * pool.length)];
          if (e.lru < victim.lru) victim = e;
        }
      }
      this.remove(victim);
      this.stats.evictedKeys++;
    }
    return this.usedMemory <= limit;
  }
}

// A connection's open HTTP/2 streams by id: an open-addressing table over one array, for the
// engine's sessions and the upstream client's connections.
//
// Why not a Map: a long-lived Map's backing table lives in V8's old generation, and every stream
// that comes and goes (set, delete) makes V8 rehash it from time to time into a new table
// allocated in the old generation too. The table it replaces, now dead but not collected until
// the next full GC, still points at the streams it held; the young-generation collector takes
// such pointers from old objects as live, so those streams (and their requests, responses and
// header lists) survive every scavenge and are promoted, which makes the next table point at
// younger ones again. Measured on a 16 x 16 stream h2load run against a `respond` route: every
// scavenge took 9-16 ms and promoted 1-2 MB (an HTTP/1.1 listener: 0.8 ms, nothing promoted);
// with this table 2.3 ms. Here a slot that no longer holds a stream holds `undefined`, so
// nothing stale is ever left behind.
//
// HTTP/2 stream ids grow by two per stream, so `id >>> 1` spreads consecutive streams over
// consecutive slots (QUIC's grow by four, their two low bits the stream's kind: `id` itself);
// linear probing with backward-shift deletion keeps every probe run free of holes. QUIC
// connections use the same table (src/quic/connection.ts): the same churn, the same cure.

/** What the table keeps: anything with its stream id. */
export interface HasStreamId {
  readonly id: number;
}

export class StreamTable<S extends HasStreamId> {
  private slots: (S | undefined)[];
  private mask: number;
  private count = 0;

  /**
   * `expected`: how many streams are usually open at once (the table grows past half full).
   * `shift`: how far ids are shifted right to make a slot (1 for HTTP/2's odd or even ids, 0 for QUIC).
   */
  constructor(
    expected = 64,
    private readonly shift = 1,
  ) {
    let capacity = 16;
    while (capacity < expected * 2) capacity *= 2;
    this.slots = new Array<S | undefined>(capacity).fill(undefined);
    this.mask = capacity - 1;
  }

  get size(): number {
    return this.count;
  }

  get(id: number): S | undefined {
    const slots = this.slots;
    const mask = this.mask;
    for (let i = (id >>> this.shift) & mask; ; i = (i + 1) & mask) {
      const s = slots[i];
      if (s === undefined || s.id === id) return s;
    }
  }

  /** Adds `stream` (its id not in the table yet). */
  set(stream: S): void {
    if ((this.count + 1) * 2 > this.slots.length) this.grow();
    this.place(stream);
    this.count++;
  }

  delete(id: number): boolean {
    const slots = this.slots;
    const mask = this.mask;
    let i = (id >>> this.shift) & mask;
    for (;;) {
      const s = slots[i];
      if (s === undefined) return false;
      if (s.id === id) break;
      i = (i + 1) & mask;
    }
    // Backward shift: streams after the hole in its probe run move up, so that no lookup stops
    // early at it and no tombstone is needed.
    let hole = i;
    for (let j = (i + 1) & mask; ; j = (j + 1) & mask) {
      const s = slots[j];
      if (s === undefined) break;
      const home = (s.id >>> this.shift) & mask;
      // `s` may fill the hole when its home is not in the cyclic range (hole, j].
      if (hole <= j ? home <= hole || home > j : home <= hole && home > j) {
        slots[hole] = s;
        hole = j;
      }
    }
    slots[hole] = undefined;
    this.count--;
    return true;
  }

  clear(): void {
    this.slots.fill(undefined);
    this.count = 0;
  }

  /** The open streams, as a new array (safe to close them while walking it). */
  values(): S[] {
    const out: S[] = [];
    for (const s of this.slots) if (s !== undefined) out.push(s);
    return out;
  }

  private place(stream: S): void {
    const slots = this.slots;
    const mask = this.mask;
    let i = (stream.id >>> this.shift) & mask;
    while (slots[i] !== undefined) i = (i + 1) & mask;
    slots[i] = stream;
  }

  private grow(): void {
    const old = this.slots;
    this.slots = new Array<S | undefined>(old.length * 2).fill(undefined);
    this.mask = this.slots.length - 1;
    for (const s of old) if (s !== undefined) this.place(s);
  }
}

import { createHmac, randomBytes } from 'node:crypto';

// Remembers, for a short time, that a password matched a hash, so that a client sending the same
// credentials on every request pays one slow hash check, not one per request (Caddy's basic auth
// does the same). The key is an HMAC of user, hash and password under a key made at start and
// never kept anywhere else: the map holds no password, nor a fast hash of one that could be
// tried offline. Bounded in entries (the oldest goes first) and in age.

export class VerifiedCache {
  private readonly key = randomBytes(32);
  /** digest -> when it stops counting (ms on performance.now()'s clock); Map order is insertion order. */
  private readonly entries = new Map<string, number>();

  constructor(
    private readonly ttlMs: number,
    private readonly maxEntries: number,
  ) {}

  private digest(username: string, hash: string, password: string): string {
    return createHmac('sha256', this.key).update(username).update('\0').update(hash).update('\0').update(password).digest('base64');
  }

  /** Whether this exact (user, hash, password) matched within the last ttl. */
  has(username: string, hash: string, password: string, now: number): boolean {
    if (this.ttlMs === 0) return false;
    const d = this.digest(username, hash, password);
    const until = this.entries.get(d);
    if (until === undefined) return false;
    if (until > now) return true;
    this.entries.delete(d);
    return false;
  }

  add(username: string, hash: string, password: string, now: number): void {
    if (this.ttlMs === 0) return;
    const d = this.digest(username, hash, password);
    this.entries.delete(d);
    while (this.entries.size >= this.maxEntries) {
      const oldest = this.entries.keys().next().value;
      if (oldest === undefined) break;
      this.entries.delete(oldest);
    }
    this.entries.set(d, now + this.ttlMs);
  }

  get size(): number {
    return this.entries.size;
  }
}

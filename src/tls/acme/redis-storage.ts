import { randomBytes } from 'node:crypto';
import { Redis } from 'ioredis';
import type { RedisStateConfig } from '../../state/index.ts';
import { redactRedisUrl, redisClientOptions } from '../../state/redis.ts';
import { checkStorageName, type AcmeStorage, type Release } from './storage.ts';

// ACME storage in Redis, for daemons that share `state.backend: redis`. Keys (P = keyPrefix):
//   P acme:<name>        string  the blob
//   P acme-lock:<name>   string  the lock holder's token, with PX expiry (SET NX PX)
// A lock is given back only by its holder (compare and delete, one script), so a holder whose
// lock ran out cannot free another daemon's.

const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
`;

export class RedisAcmeStorage implements AcmeStorage {
  /**
   * @param redis a connected client; closed by close() only when `owned`
   * @param prefix put before every key (the state config's keyPrefix)
   */
  constructor(
    private readonly redis: Redis,
    private readonly prefix: string,
    private readonly owned = false,
  ) {}

  /** Its own connection to the Redis of `config`, failing within connectTimeout with one line naming the (redacted) URL. */
  static async connect(config: RedisStateConfig): Promise<RedisAcmeStorage> {
    const where = redactRedisUrl(config.url);
    let connected = false;
    // Once up, it reconnects forever (an order fails meanwhile and is retried with backoff).
    const client = new Redis(config.url, { ...redisClientOptions(config, () => connected), connectionName: 'switchyard-acme' });
    let last = 'no answer';
    client.on('error', (err: Error) => (last = err.message));
    try {
      await client.connect();
    } catch {
      client.disconnect();
      throw new Error(`cannot reach redis at ${where} for ACME storage: ${last}`);
    }
    connected = true;
    return new RedisAcmeStorage(client, config.keyPrefix, true);
  }

  private key(name: string): string {
    checkStorageName(name);
    return `${this.prefix}acme:${name}`;
  }

  async get(name: string): Promise<Buffer | undefined> {
    return (await this.redis.getBuffer(this.key(name))) ?? undefined;
  }

  async set(name: string, value: Buffer | string): Promise<void> {
    await this.redis.set(this.key(name), value);
  }

  async delete(name: string): Promise<void> {
    await this.redis.del(this.key(name));
  }

  async lock(name: string, ttlMs: number): Promise<Release | undefined> {
    checkStorageName(name);
    const key = `${this.prefix}acme-lock:${name}`;
    const token = randomBytes(16).toString('hex');
    const ok = await this.redis.set(key, token, 'PX', Math.max(1, Math.round(ttlMs)), 'NX');
    if (ok !== 'OK') return undefined;
    return async () => {
      await this.redis.eval(RELEASE, 1, key, token);
    };
  }

  async close(): Promise<void> {
    if (!this.owned) return;
    if (this.redis.status === 'ready') await this.redis.quit().catch(() => undefined);
    this.redis.disconnect();
  }
}

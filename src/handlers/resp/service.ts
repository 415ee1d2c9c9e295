import type { RespConfig } from './config.ts';
import type { Connection } from './connection.ts';
import { PubSubHub } from './pubsub.ts';
import { Store } from './store.ts';

// One cache: the keyspace, pub/sub, the clients connected to it and the counters INFO shows.
// A handler (index.ts) owns one; all its connections (tcp or unix) share it.

export class RespService {
  readonly store = new Store();
  readonly pubsub = new PubSubHub();
  readonly clients = new Set<Connection>();
  readonly startedAt = Date.now();
  commandsProcessed = 0;
  connectionsReceived = 0;
  rejectedConnections = 0;
  private nextId = 1;
  /** When the keyspace was last saved to the snapshot file (ms), 0 when never. */
  lastSave = 0;
  /** Saves the keyspace now (SAVE); undefined when no snapshot file is configured. */
  save: (() => Promise<void>) | undefined;

  constructor(readonly config: RespConfig) {}

  newClientId(): number {
    return this.nextId++;
  }

  /**
   * Makes room before a command that may grow memory. False when the keyspace is over
   * `maxmemory` and the policy cannot bring it back under (the command gets OOM).
   */
  makeRoom(): boolean {
    const { maxmemory, maxmemoryPolicy, maxmemorySamples } = this.config;
    if (maxmemory === 0 || this.store.usedMemory <= maxmemory) return true;
    return this.store.evict(maxmemory, maxmemoryPolicy, maxmemorySamples);
  }
}

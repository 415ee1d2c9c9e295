import type { Logger } from 'pino';
import type { RespConfig } from './config.ts';
import type { Connection } from './connection.ts';
import { PubSubHub } from './pubsub.ts';
import { saveSnapshot } from './snapshot.ts';
import { Store } from './store.ts';

// One cache: the keyspace, pub/sub, the clients connected to it, the counters INFO shows, and
// what keeps it going between commands (the expiry sweep, the snapshot saves). A handler
// (index.ts) provisions one, and a reload that keeps the listener hands the same one to the
// handler it provisions: the cache outlives the handlers, and runs with the config of the
// newest handler that holds it.

/** Where the snapshot goes and how often, resolved from the config; undefined: none. */
export interface SnapshotPlan {
  readonly file: string;
  readonly interval: number;
}

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
  private sweepTimer: NodeJS.Timeout | undefined;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> | undefined;
  private snapshot: SnapshotPlan | undefined;

  constructor(
    public config: RespConfig,
    snapshot: SnapshotPlan | undefined,
    private log: Logger,
  ) {
    this.snapshot = snapshot;
    this.startTimers();
  }

  newClientId(): number {
    return this.nextId++;
  }

  /** Whether SAVE/BGSAVE have a file to write. */
  get canSave(): boolean {
    return this.snapshot !== undefined;
  }

  /**
   * Takes a reload's config: limits, the eviction policy and the snapshot plan apply from now on
   * (to the connections already open too, except the parser limits each was opened with), and a
   * lower `maxmemory` evicts down to it at once under the new policy.
   */
  reconfigure(config: RespConfig, snapshot: SnapshotPlan | undefined, log: Logger): void {
    this.config = config;
    this.snapshot = snapshot;
    this.log = log;
    this.startTimers();
    const { maxmemory, maxmemoryPolicy, maxmemorySamples } = config;
    if (maxmemory > 0 && this.store.usedMemory > maxmemory && maxmemoryPolicy !== 'noeviction') {
      const before = this.store.size;
      this.store.evict(maxmemory, maxmemoryPolicy, maxmemorySamples);
      this.log.info({ evicted: before - this.store.size, maxmemory }, 'resp: keys evicted to fit the new maxmemory');
    }
  }

  private startTimers(): void {
    this.stopTimers();
    const { expireSweepInterval, expireSweepBudget } = this.config;
    this.sweepTimer = setInterval(() => this.store.sweepExpired(expireSweepBudget), expireSweepInterval);
    this.sweepTimer.unref();
    if (this.snapshot) {
      this.snapshotTimer = setInterval(() => {
        if (this.store.dirty > 0) this.save().catch(() => {});
      }, this.snapshot.interval);
      this.snapshotTimer.unref();
    }
  }

  private stopTimers(): void {
    clearInterval(this.sweepTimer);
    clearInterval(this.snapshotTimer);
    this.sweepTimer = undefined;
    this.snapshotTimer = undefined;
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

  /** Saves the keyspace (one save at a time; a call during a save waits for it and saves again). */
  save(): Promise<void> {
    const run = async () => {
      const plan = this.snapshot;
      if (!plan) return;
      const dirty = this.store.dirty;
      const t0 = Date.now();
      try {
        const bytes = await saveSnapshot(this.store, plan.file);
        this.store.dirty = Math.max(0, this.store.dirty - dirty);
        this.lastSave = Date.now();
        this.log.debug({ file: plan.file, bytes, ms: Date.now() - t0 }, 'resp: snapshot saved');
      } catch (err) {
        this.log.error({ file: plan.file, err: (err as Error).message }, 'resp: snapshot could not be saved');
        throw err;
      }
    };
    const next = (this.saving ?? Promise.resolve()).catch(() => {}).then(run);
    const tracked: Promise<void> = next.finally(() => {
      if (this.saving === tracked) this.saving = undefined;
    });
    this.saving = tracked;
    return next;
  }

  /**
   * The last handler holding this cache has closed: timers stop, clients go, the keyspace is
   * saved (unless `save` is false: a snapshot that could not be loaded must not be overwritten).
   */
  async close(save = true): Promise<void> {
    this.stopTimers();
    for (const c of this.clients) c.socket.destroy();
    if (save && this.snapshot) await this.save().catch(() => {});
  }
}

import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import type { Logger } from 'pino';
import type { ConnContext, HandlerModule, ProvisionContext, StreamHandler } from '../types.ts';
import { respSchema, type RespConfig } from './config.ts';
import { Connection } from './connection.ts';
import { RespService } from './service.ts';
import { loadSnapshot, saveSnapshot } from './snapshot.ts';

// The `resp` handler: a Redis-compatible cache (RESP2 and RESP3) on tcp and unix listeners
// (docs/resp.md). One cache per handler; its keyspace lives in this process, with an optional
// snapshot file to survive restarts.

export { respSchema } from './config.ts';
export type { RespConfig } from './config.ts';

class RespHandler implements StreamHandler {
  private readonly sweepTimer: NodeJS.Timeout;
  private snapshotTimer: NodeJS.Timeout | undefined;
  private saving: Promise<void> | undefined;

  constructor(
    readonly service: RespService,
    private readonly log: Logger,
    private readonly snapshotFile: string | undefined,
  ) {
    const { expireSweepInterval, expireSweepBudget, snapshot } = service.config;
    this.sweepTimer = setInterval(() => service.store.sweepExpired(expireSweepBudget), expireSweepInterval);
    this.sweepTimer.unref();
    if (snapshotFile && snapshot) {
      service.save = () => this.save();
      this.snapshotTimer = setInterval(() => {
        if (service.store.dirty > 0) this.save().catch(() => {});
      }, snapshot.interval);
      this.snapshotTimer.unref();
    }
  }

  handle(socket: Socket, ctx: ConnContext): void {
    const service = this.service;
    service.connectionsReceived++;
    if (service.clients.size >= service.config.maxClients) {
      service.rejectedConnections++;
      ctx.countRequest('max_clients');
      socket.end('-ERR max number of clients reached\r\n');
      setTimeout(() => socket.destroy(), 1000).unref();
      return;
    }
    const conn = new Connection(socket, service, ctx);
    service.clients.add(conn);
    socket.once('close', () => {
      service.clients.delete(conn);
      conn.dispose();
    });
    conn.start();
  }

  /** Saves the keyspace (one save at a time; a call during a save waits for it and saves again). */
  save(): Promise<void> {
    const file = this.snapshotFile;
    if (!file) return Promise.resolve();
    const run = async () => {
      const dirty = this.service.store.dirty;
      const t0 = Date.now();
      try {
        const bytes = await saveSnapshot(this.service.store, file);
        this.service.store.dirty = Math.max(0, this.service.store.dirty - dirty);
        this.service.lastSave = Date.now();
        this.log.debug({ file, bytes, ms: Date.now() - t0 }, 'resp: snapshot saved');
      } catch (err) {
        this.log.error({ file, err: (err as Error).message }, 'resp: snapshot could not be saved');
        throw err;
      }
    };
    const next = (this.saving ?? Promise.resolve()).catch(() => {}).then(run);
    this.saving = next.finally(() => {
      if (this.saving === tracked) this.saving = undefined;
    });
    const tracked = this.saving;
    return next;
  }

  drain(): void {
    for (const c of this.service.clients) c.close();
  }

  async close(): Promise<void> {
    clearInterval(this.sweepTimer);
    if (this.snapshotTimer) clearInterval(this.snapshotTimer);
    for (const c of this.service.clients) c.socket.destroy();
    if (this.snapshotFile) await this.save().catch(() => {});
  }
}

async function provision(config: RespConfig, ctx: ProvisionContext): Promise<RespHandler> {
  const service = new RespService(config);
  const file = config.snapshot ? resolve(ctx.baseDir, config.snapshot.file) : undefined;
  if (file) {
    const n = await loadSnapshot(service.store, file);
    service.lastSave = n >= 0 ? Date.now() : 0;
    ctx.log.info({ listener: ctx.listener, file, keys: n < 0 ? 0 : service.store.size }, n < 0 ? 'resp: no snapshot yet, starting empty' : 'resp: snapshot loaded');
  }
  return new RespHandler(service, ctx.log, file);
}

export const respHandler: HandlerModule<RespConfig> = {
  type: 'resp',
  summary: 'a Redis-compatible cache (RESP2/RESP3): strings, hashes, lists, TTLs, pub/sub, maxmemory eviction (docs/resp.md)',
  schema: respSchema,
  stream: provision,
};

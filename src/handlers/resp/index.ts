import type { Socket } from 'node:net';
import { resolve } from 'node:path';
import type { ConnContext, HandlerModule, ProvisionContext, StreamHandler } from '../types.ts';
import { respSchema, type RespConfig } from './config.ts';
import { Connection } from './connection.ts';
import { forgetCache, keepCache, keptCache } from './kept-caches.ts';
import { RespService, type SnapshotPlan } from './service.ts';
import { loadSnapshot } from './snapshot.ts';

// The `resp` handler: a Redis-compatible cache (RESP2 and RESP3) on tcp and unix listeners
// (docs/resp.md). One cache per listener; its keyspace lives in this process, carries over a
// reload that keeps the listener, and can be saved to a snapshot file to survive restarts.

export { respSchema } from './config.ts';
export type { RespConfig } from './config.ts';

/** Handlers holding each cache: after a reload the old one still serves the connections it accepted, the new one the new connections, both on the same cache. */
const holders = new WeakMap<RespService, Set<RespHandler>>();

/** How often a handler provisioned for a kept cache looks whether the reload switched to it. */
const SWITCH_CHECK_MS = 50;

class RespHandler implements StreamHandler {
  /** Connections this handler accepted (the cache's clients may include an older handler's). */
  private readonly conns = new Set<Connection>();
  /** Until the reload that provisioned us switches to our config (see watchSwitch). */
  private switchTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly service: RespService,
    private readonly config: RespConfig,
    private readonly snapshot: SnapshotPlan | undefined,
    private readonly ctx: ProvisionContext,
  ) {
    const set = holders.get(service);
    if (set) set.add(this);
    else holders.set(service, new Set([this]));
  }

  /**
   * A handler provisioned for a kept cache applies its config to the cache only once the reload
   * has switched to it (a reload can still fail after provisioning, and then the cache must go
   * on as it was): when its first connection comes, or when the yard's running config is the
   * one that holds it, whichever is first.
   */
  watchSwitch(): void {
    this.switchTimer = setInterval(() => {
      const running = this.ctx.yard.config.listeners.find((l) => l.name === this.ctx.listener);
      if (running && 'handler' in running && running.handler === this.config) this.switchedTo();
    }, SWITCH_CHECK_MS);
    this.switchTimer.unref();
  }

  private switchedTo(): void {
    if (this.switchTimer === undefined) return;
    clearInterval(this.switchTimer);
    this.switchTimer = undefined;
    this.service.reconfigure(this.config, this.snapshot, this.ctx.log);
    this.ctx.log.info({ listener: this.ctx.listener, keys: this.service.store.size }, 'resp: cache kept across the reload, new config applied');
  }

  handle(socket: Socket, ctx: ConnContext): void {
    this.switchedTo();
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
    this.conns.add(conn);
    socket.once('close', () => {
      service.clients.delete(conn);
      this.conns.delete(conn);
      conn.dispose();
    });
    conn.start();
  }

  drain(): void {
    for (const c of this.conns) c.close();
  }

  async close(): Promise<void> {
    clearInterval(this.switchTimer);
    this.switchTimer = undefined;
    for (const c of this.conns) c.socket.destroy();
    const set = holders.get(this.service);
    set?.delete(this);
    if (set && set.size > 0) return;
    holders.delete(this.service);
    forgetCache(this.ctx.yard, this.ctx.listener, this.service);
    await this.service.close();
  }
}

async function provision(config: RespConfig, ctx: ProvisionContext): Promise<RespHandler> {
  const snapshot = config.snapshot ? { file: resolve(ctx.baseDir, config.snapshot.file), interval: config.snapshot.interval } : undefined;
  const kept = keptCache(ctx.yard, ctx.listener);
  if (kept) {
    // A reload that keeps this listener: the same cache, taking the new config once in force.
    const handler = new RespHandler(kept, config, snapshot, ctx);
    handler.watchSwitch();
    return handler;
  }
  const service = new RespService(config, snapshot, ctx.log);
  if (snapshot) {
    try {
      const n = await loadSnapshot(service.store, snapshot.file);
      service.lastSave = n >= 0 ? Date.now() : 0;
      ctx.log.info({ listener: ctx.listener, file: snapshot.file, keys: n < 0 ? 0 : service.store.size }, n < 0 ? 'resp: no snapshot yet, starting empty' : 'resp: snapshot loaded');
    } catch (err) {
      await service.close(false);
      throw err;
    }
  }
  keepCache(ctx.yard, ctx.listener, service);
  return new RespHandler(service, config, snapshot, ctx);
}

export const respHandler: HandlerModule<RespConfig> = {
  type: 'resp',
  summary: 'a Redis-compatible cache (RESP2/RESP3): strings, hashes, lists, TTLs, pub/sub, maxmemory eviction (docs/resp.md)',
  schema: respSchema,
  stream: provision,
};

import { z } from 'zod';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { HandlerModule, HttpContext, HttpHandler, YardView } from '../types.ts';
import { replyError, replyJson } from '../http/reply.ts';
import { readBody } from '../http/body.ts';
import { parseConfig, parseConfigText } from '../../config/load.ts';
import { ConfigError } from '../../config/errors.ts';
import { redact } from './redact.ts';
import { callerOf, type Caller } from './caller.ts';
import { DashboardPage, SnapshotBuilder, SnapshotFeed, prefersHtml, serveDashboardPage } from './dashboard.ts';
import type { Metrics } from '../../observe/metrics.ts';
import type { Logger } from 'pino';
import { primaryLink, type PrimaryLink } from '../../yard/workers.ts';
import { mergeListeners, mergeSnapshots, type WorkerListener, type WorkerSnapshot } from './cluster.ts';
import { upstreamsView } from './upstreams-view.ts';

// The writable admin API (Caddy's admin endpoint, nginx's reload, Envoy's admin): on the admin
// listener, next to /metrics and /upstreams.
//
//   GET  /                                     the dashboard page for browsers (Accept: text/html);
//                                              this list as JSON for everyone else
//   GET  /events                               the dashboard's live feed: server-sent events, a
//                                              JSON snapshot a second (dashboard.ts)
//   GET  /config                               the running config, secrets redacted
//   POST /load                                 a whole config (JSON or YAML), validated as `check`
//                                              does and swapped in (Yard.reload); 200 with what
//                                              changed, 400 for an invalid config, 422 when it
//                                              cannot start (the running one is untouched)
//   POST /reload                               the config file read again and loaded the same way
//   GET  /listeners                            every listener: address, handlers, in-flight work
//   GET  /upstreams                            every upstream group's live state (when the route
//                                              leads here rather than to the `upstreams` handler)
//   POST /upstreams/NAME/targets/ID/drain      take a target out (in-flight requests finish)
//   POST /upstreams/NAME/targets/ID/enable     put it back
//   GET  /rooms                                chat rooms with someone in them or a history
//
// With `workers: N` (src/yard/workers.ts) this runs in every worker, and /events, /listeners,
// /upstreams and drain/enable answer for all of them: through the primary, which asks every
// worker (cluster.ts merges what they report). The single-process answers keep their shape;
// the cluster adds fields (`workers`, per-worker states) to them.
//
// Who may: callers on loopback (127.0.0.0/8, ::1), or anyone presenting the token (Authorization:
// Bearer ...) when one is configured; everyone else gets 403, whatever the path. Every change is
// logged with who made it (address, and whether by token).

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('admin'),
  /**
   * A bearer token that lets callers from other addresses in (loopback callers need none).
   * Prefer `tokenFile`: a config shown by GET /config has this redacted, but it sits in the file.
   */
  token: z.string().min(16, 'an admin token must be at least 16 characters').optional(),
  /** A file holding the token (first line), read at start; relative to the config file's folder. */
  tokenFile: z.string().min(1).optional(),
  /** Largest config POST /load takes. */
  maxConfigSize: z.number().int().min(1024).max(64 * 1024 * 1024).default(4 * 1024 * 1024),
});

export type AdminConfig = z.output<typeof schema>;

const ROOMS_LIMIT = 1000;

/** GET / of the admin API: what it offers. */
const ENDPOINTS = [
  'GET / (the dashboard, with Accept: text/html)', 'GET /events (the dashboard\'s live feed, server-sent events)', 'GET /config', 'POST /load', 'POST /reload', 'POST /upgrade', 'GET /listeners', 'GET /upstreams',
  'POST /upstreams/NAME/targets/ID/drain', 'POST /upstreams/NAME/targets/ID/enable', 'GET /rooms', 'GET /metrics', 'GET /health',
];

class AdminHandler implements HttpHandler {
  private readonly page = new DashboardPage();
  private readonly feed: SnapshotFeed;

  constructor(
    private readonly yard: YardView,
    private readonly token: string | undefined,
    private readonly maxConfigSize: number,
    metrics: Metrics,
    log: Logger,
    /** Where a config sent to POST /load resolves its relative paths (as the running one does). */
    private readonly baseDir: string,
    /** In a worker of a primary: the line through which every worker is asked. */
    private readonly cluster: PrimaryLink | undefined,
  ) {
    const snapshots = new SnapshotBuilder(yard, metrics);
    const link = cluster;
    this.feed = new SnapshotFeed({
      // With workers, each worker samples itself when the primary asks (cluster.ts WorkerReporter).
      sample: link ? async () => mergeSnapshots(await link.collect<WorkerSnapshot>('snapshot')) : () => snapshots.snapshot(),
      start: () => {
        if (!link) snapshots.start();
      },
      stop: () => {
        if (!link) snapshots.stop();
      },
      // A reload provisions a new admin handler: subscribers of this one are let go to reconnect to it.
      epoch: () => yard.config,
      log,
    });
  }

  /** The yard is stopping: dashboard subscribers are let go (they would hold the stop up). */
  drain(): void {
    this.feed.drain();
  }

  close(): void {
    this.feed.close();
  }

  async handle(ctx: HttpContext): Promise<void> {
    const { req, res } = ctx;
    const caller = callerOf(req, this.token);
    if (!caller.allowed) return replyError(res, 403, this.token ? 'admin API: loopback callers only, or a valid bearer token' : 'admin API: loopback callers only (no token is configured)');
    const path = (req.url ?? '/').split('?')[0];
    const method = req.method ?? 'GET';
    const nocache = { 'cache-control': 'no-store' };

    if (path === '/') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed(ctx, 'GET, HEAD');
      if (prefersHtml(req.headers.accept)) return serveDashboardPage(ctx, this.page);
      return replyJson(res, 200, { endpoints: ENDPOINTS }, { ...nocache, vary: 'Accept' });
    }
    if (path === '/events') {
      if (method !== 'GET') return notAllowed(ctx, 'GET');
      return this.feed.subscribe(ctx);
    }
    if (path === '/config') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed(ctx, 'GET, HEAD');
      return replyJson(res, 200, redact(this.yard.config), nocache);
    }
    if (path === '/listeners') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed(ctx, 'GET, HEAD');
      if (this.cluster) return replyJson(res, 200, mergeListeners(await this.cluster.collect<WorkerListener[]>('listeners')), nocache);
      const inFlight = this.yard.inFlightByListener();
      return replyJson(res, 200, { listeners: this.yard.listeners().map((l) => ({ ...l, inFlight: inFlight[l.name] ?? 0 })) }, nocache);
    }
    if (path === '/upstreams') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed(ctx, 'GET, HEAD');
      return replyJson(res, 200, await upstreamsView(this.yard), nocache);
    }
    if (path === '/rooms') {
      if (method !== 'GET' && method !== 'HEAD') return notAllowed(ctx, 'GET, HEAD');
      return replyJson(res, 200, { rooms: await this.yard.rooms(ROOMS_LIMIT) }, nocache);
    }
    if (path === '/load') {
      if (method !== 'POST') return notAllowed(ctx, 'POST');
      return this.load(ctx, caller);
    }
    if (path === '/reload') {
      if (method !== 'POST') return notAllowed(ctx, 'POST');
      ctx.log.info({ by: caller.who }, 'admin: reload (config file read again)');
      const result = await this.yard.reloadFromSource();
      return replyJson(res, result.ok ? 200 : 422, result, nocache);
    }
    if (path === '/upgrade') {
      if (method !== 'POST') return notAllowed(ctx, 'POST');
      ctx.log.info({ by: caller.who }, 'admin: upgrade');
      const result = await this.yard.upgrade(`admin API (${caller.who})`);
      return replyJson(res, result.ok ? 200 : 422, result, nocache);
    }
    const m = /^\/upstreams\/([^/]+)\/targets\/([^/]+)\/(drain|enable)$/.exec(path);
    if (m) {
      if (method !== 'POST') return notAllowed(ctx, 'POST');
      let name: string, id: string;
      try {
        [name, id] = [decodeURIComponent(m[1]), decodeURIComponent(m[2])];
      } catch {
        return replyError(res, 400, 'the upstream or target name is not valid percent-encoding');
      }
      const drained = m[3] === 'drain';
      if (this.cluster) return this.setTargetEverywhere(ctx, caller, name, id, drained);
      const group = this.yard.upstreams().find((g) => g.name === name);
      if (!group) return replyError(res, 404, `no upstream named "${name}"`);
      if (!group.setDrained(id, drained)) return replyError(res, 404, `upstream "${name}" has no target "${id}"`);
      ctx.log.info({ by: caller.who, upstream: name, target: id }, `admin: target ${drained ? 'drained' : 'enabled'}`);
      return replyJson(res, 200, { upstream: name, target: id, drained }, nocache);
    }
    return replyError(res, 404, 'not found');
  }

  /**
   * Drain or enable through the primary, in every worker: 200 once every one applied it, 404 when
   * every one that answered has no such upstream or target, 504 (with each worker's outcome) when
   * one did not acknowledge in time or is not running. The primary logs it, once.
   */
  private async setTargetEverywhere(ctx: HttpContext, caller: Caller, name: string, id: string, drained: boolean): Promise<void> {
    const result = await this.cluster!.setTarget(name, id, drained, caller.who);
    const nocache = { 'cache-control': 'no-store' };
    if (result.workers.every((w) => w.ok)) return replyJson(ctx.res, 200, result, nocache);
    const answered = result.workers.filter((w) => w.error === 'no-upstream' || w.error === 'no-target' || w.ok);
    if (answered.length > 0 && answered.every((w) => w.error === 'no-upstream')) return replyError(ctx.res, 404, `no upstream named "${name}"`);
    if (answered.length > 0 && answered.every((w) => !w.ok)) return replyError(ctx.res, 404, `upstream "${name}" has no target "${id}"`);
    const missed = result.workers.filter((w) => !w.ok).map((w) => `worker ${w.worker}${w.pid ? ` (pid ${w.pid})` : ''}: ${w.error}`);
    return replyJson(ctx.res, 504, { ...result, error: `not every worker acknowledged: ${missed.join('; ')}` }, nocache);
  }

  private async load(ctx: HttpContext, caller: Caller): Promise<void> {
    const { req, res } = ctx;
    const body = await readBody(req, this.maxConfigSize);
    const type = String(req.headers['content-type'] ?? '');
    let next;
    try {
      const raw = parseConfigText(body.toString('utf8'), type.includes('json') ? 'POST /load (body.json)' : 'POST /load (body.yaml)');
      next = parseConfig(raw, 'POST /load', { baseDir: this.baseDir });
    } catch (err) {
      if (err instanceof ConfigError) return replyJson(res, 400, { ok: false, error: err.message, issues: err.issues });
      throw err;
    }
    ctx.log.info({ by: caller.who }, 'admin: load (a new config)');
    const result = await this.yard.reload(next);
    replyJson(res, result.ok ? 200 : 422, result, { 'cache-control': 'no-store' });
  }
}

function notAllowed(ctx: HttpContext, allow: string): void {
  replyError(ctx.res, 405, 'method not allowed', { headers: { allow } });
}

export const adminHandler: HandlerModule<AdminConfig> = {
  type: 'admin',
  summary: 'the admin API: running config, load/reload, listeners, drain/enable targets, chat rooms (loopback or a token)',
  schema,
  validate: (config, ctx) => {
    if (!config.tokenFile) return [];
    const file = resolve(ctx.baseDir, config.tokenFile);
    let token: string;
    try {
      token = readFileSync(file, 'utf8').split('\n')[0].trim();
    } catch (err) {
      return [{ path: ['tokenFile'], message: `cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}` }];
    }
    return token.length < 16 ? [{ path: ['tokenFile'], message: `the token in ${file} must be at least 16 characters` }] : [];
  },
  http: (config, ctx) => {
    let token = config.token;
    if (config.tokenFile) {
      const file = resolve(ctx.baseDir, config.tokenFile);
      try {
        token = readFileSync(file, 'utf8').split('\n')[0].trim();
      } catch (err) {
        throw new Error(`tokenFile: cannot read ${file}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`);
      }
      if (token.length < 16) throw new Error(`tokenFile: the token in ${file} must be at least 16 characters`);
    }
    return new AdminHandler(ctx.yard, token, config.maxConfigSize, ctx.metrics, ctx.log, ctx.baseDir, primaryLink());
  },
};

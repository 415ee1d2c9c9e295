import type { Logger } from 'pino';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { isDeepStrictEqual } from 'node:util';
import { formatHostPort, parseHostPort } from '../config/address.ts';
import type { Config, ListenerConfig } from '../config/schema.ts';
import { parseConfig } from '../config/load.ts';
import { handlerModule } from '../handlers/registry.ts';
import type { DatagramHandler, HttpHandler, ListenerSummary, ProvisionContext, StreamHandler, YardView } from '../handlers/types.ts';
import { HttpListener } from '../listeners/http/server.ts';
import { TcpListener } from '../listeners/tcp.ts';
import { UnixListener } from '../listeners/unix.ts';
import { UdpListener } from '../listeners/udp.ts';
import { loadQuic } from '../quic/load.ts';
import { http3SocketName, type BoundAddress, type Listener, type ListenerHandlers, type ListeningSocket } from '../listeners/types.ts';
import type { Server as NetServer } from 'node:net';
import type { Socket as DgramSocket } from 'node:dgram';
import { Metrics } from '../observe/metrics.ts';
import { createLogger } from '../observe/logger.ts';
import { ProvisionError } from './errors.ts';
import type { ListenerTls } from '../listeners/tls.ts';
import { InternalCA, createCertificateStore, defaultDataDir, isTlsConfigError, tlsErrorPath, type TlsEvent } from '../tls/index.ts';
// The ACME client (acme-client, axios, node-forge) is loaded only when a listener orders certificates.
import type { CertificateManager, AcmeStorage } from '../tls/acme/index.ts';
import { Http01Challenges } from '../tls/acme/http01.ts';
import { TlsAlpnChallenges, peekTlsAlpn01 } from '../tls/acme/tls-alpn01.ts';
import { AcmeTlsSource } from '../tls/acme/listener-source.ts';
import { isAcmeTls, type AcmeListenerTls, type ListenerTlsConfig } from '../config/tls.ts';
import { UpstreamGroup } from '../upstream/group.ts';
import { UpstreamTlsError } from '../upstream/tls.ts';
import { openSharedState } from '../state/index.ts';
import { RateLimits, RateLimitStoreSetupError, redisRateLimitPaths } from '../middleware/rate-limit.ts';
import { ErrorPageFileError, prepareErrorPages } from '../middleware/error-pages.ts';
import type { SharedState } from '../state/types.ts';
import type { ConfigInput } from '../config/schema.ts';
import { withInlineMiddleware } from './inline-middleware.ts';

// The daemon: builds handlers and listeners from a Config and runs their lifecycle.
//   start: provision every handler (a refusal names the config path), then bind every listener;
//          if anything fails, whatever was started is closed again and the error thrown.
//   stop:  stop accepting everywhere, let in-flight requests and transfers finish up to the
//          grace period, then close what is left and clean up the handlers.

export interface YardOptions {
  /** Folder relative paths in the config are resolved against. Default: cwd. */
  baseDir?: string;
  /** A logger to use instead of JSON lines on stdout. */
  logger?: Logger;
  /** Overrides `logging.level`. */
  logLevel?: Config['logging']['level'];
  /** Metrics registry; a fresh one per yard by default. */
  metrics?: Metrics;
  /** Where the local CA lives (`tls: { issuer: internal }`); default: see defaultDataDir in src/tls. */
  dataDir?: string;
  /**
   * Reads the config again from where it came from (the file `serve` was given, with the same
   * overrides): what a reload without a config in hand (SIGHUP, POST /reload) loads.
   */
  configSource?: () => Promise<Config>;
  /**
   * Listening sockets handed over by the daemon this one replaces (upgrade.ts), by listener name
   * with where they listen: a listener of the same name and address takes its socket instead of
   * binding, so not one connection is refused across the upgrade.
   */
  inherited?: Map<string, { where: string; socket: ListeningSocket }>;
  /** Starts a zero-downtime upgrade (serve sets it: src/yard/upgrade.ts); POST /upgrade calls it. */
  upgrade?: (by: string) => Promise<{ ok: true; pid: number } | { ok: false; error: string }>;
  /**
   * In a worker process (workers.ts): a reload (POST /load, POST /reload, SIGHUP) goes to every
   * worker through the primary, which calls reloadHere in each; reload() calls this instead.
   */
  reloadAll?: (next: Config) => Promise<ReloadResult>;
  /**
   * Told when any reload (SIGHUP, the admin API's /load and /reload) begins and ends: serve uses it
   * for systemd's RELOADING=1 and READY=1.
   */
  notifyReload?: { reloading: () => void; done: () => void };
  /**
   * `false`: provision everything (handlers, upstream groups and their health checks, rate
   * limits) but bind no listener; requests reach an http listener through requestListener()
   * instead (routes mounted into another server, src/yard/mount.ts). Default: true.
   */
  bind?: boolean;
}

interface Closable {
  /** Called when the stop begins, so that long-lived sessions (WebSocket, chat) leave in time. */
  drain?(): void;
  close?(): void | Promise<void>;
}

export interface StopResult {
  /** Connections still open when the grace period ran out, and so cut off. */
  cutOff: number;
}

/** What a reload did: what changed, or why nothing did (the running config is then untouched). */
export type ReloadResult = { ok: true; changed: string[] } | { ok: false; error: string };

export class Yard implements YardView {
  readonly metrics: Metrics;
  readonly log: Logger;
  private current: Config;
  private listenerList: Listener[] = [];
  /** The handlers of each listener, as provisioned for the running config. */
  private handlerSets = new Map<string, Closable[]>();
  /** Handlers a reload replaced, kept until nothing uses them (then closed); closed by stop() at the latest. */
  private readonly retiring = new Set<Closable[]>();
  /** Listeners a reload removed, draining (their in-flight work counts until they are destroyed). */
  private readonly leaving = new Set<Listener>();
  /** Upstream groups a reload replaced, closed once the handlers that used them are. */
  private readonly retiringGroups = new Set<UpstreamGroup>();
  private groups = new Map<string, UpstreamGroup>();
  /** One reload at a time: the next waits for this one. */
  private reloadChain: Promise<unknown> = Promise.resolve();
  private stopping: Promise<StopResult> | undefined;
  private shared: SharedState | undefined;
  /** Rate limits' shared stores (one Redis connection when a limit says store: redis). */
  private readonly rateLimits: RateLimits;
  /** The local CA, opened by the first listener that asks for it and shared by the rest. */
  private localCa: Promise<InternalCA> | undefined;
  /** ACME: whether any listener orders certificates; the storage, responders and managers. */
  private readonly acmeInUse: boolean;
  private acmeStorage: Promise<AcmeStorage> | undefined;
  private readonly http01 = new Http01Challenges();
  private readonly tlsAlpn01 = new TlsAlpnChallenges();
  private readonly acmeManagers: CertificateManager[] = [];

  private constructor(
    config: Config,
    private readonly options: YardOptions,
  ) {
    this.current = config;
    this.metrics = options.metrics ?? new Metrics();
    this.log = options.logger ?? createLogger(options.logLevel ?? config.logging.level);
    this.acmeInUse = config.listeners.some((l) => l.protocol !== 'udp' && l.tls !== undefined && isAcmeTls(l.tls));
    this.rateLimits = new RateLimits(config.state, { metrics: this.metrics, log: this.log });
  }

  /** The running config (a reload replaces it). */
  get config(): Config {
    return this.current;
  }

  /** Provisions and binds everything in `config`. */
  static async start(config: Config, options: YardOptions = {}): Promise<Yard> {
    const yard = new Yard(config, options);
    try {
      try {
        yard.shared = await openSharedState(config.state, yard.log);
      } catch (err) {
        throw new ProvisionError('state', config.state.backend, err instanceof Error ? err.message : String(err), { cause: err });
      }
      try {
        await yard.rateLimits.prepare(redisRateLimitPaths(config));
      } catch (err) {
        if (err instanceof RateLimitStoreSetupError) throw new ProvisionError(err.path, 'rateLimit', err.reason, { cause: err });
        throw err;
      }
      try {
        // Error page files, read against the config's folder before any listener uses them.
        prepareErrorPages(config, options.baseDir ?? process.cwd());
      } catch (err) {
        if (err instanceof ErrorPageFileError) throw new ProvisionError(err.path, 'errorPages', err.reason, { cause: err });
        throw err;
      }
      for (const [name, u] of Object.entries(config.upstreams)) {
        try {
          const group = new UpstreamGroup(name, u, { metrics: yard.metrics, log: yard.log, baseDir: options.baseDir });
          yard.groups.set(name, group);
          // Files of its `tls:` block (CA, client certificate), read and checked before any use.
          await group.prepare();
        } catch (err) {
          const at = err instanceof UpstreamTlsError ? `upstreams.${name}.${err.field}` : `upstreams.${name}`;
          throw new ProvisionError(at, 'upstream', err instanceof Error ? err.message : String(err), { cause: err });
        }
      }
      for (const [i, l] of config.listeners.entries()) {
        const set: Closable[] = [];
        yard.handlerSets.set(l.name, set);
        yard.listenerList.push(await yard.build(l, i, set, yard.groups));
      }
      if (options.bind !== false) for (const l of yard.listenerList) await l.start();
      for (const g of yard.groups.values()) g.start();
      // Orders validate against the listeners, so they begin once every listener is up.
      for (const m of yard.acmeManagers) void m.start();
    } catch (err) {
      for (const l of yard.listenerList) {
        try {
          await l.stopAccepting();
        } catch {
          // never started
        }
        l.destroy();
      }
      await yard.closeHandlers();
      await yard.closeGroups();
      await yard.closeAcme();
      await yard.rateLimits.close();
      await yard.closeState();
      throw err;
    }
    return yard;
  }

  /** The bound address of a listener, by name (port 0 in the config resolved to the real port). */
  address(name: string): { host: string; port: number } {
    const a = this.boundAddress(name);
    if (!('port' in a)) throw new Error(`listener "${name}" is a unix socket; use boundAddress()`);
    return a;
  }

  boundAddress(name: string): BoundAddress {
    const l = this.listenerList.find((x) => x.name === name);
    if (!l) throw new Error(`no listener named "${name}"`);
    return l.address();
  }

  listeners(): ListenerSummary[] {
    // Unbound listeners (YardOptions.bind false) have no address to show.
    if (this.options.bind === false) return [];
    return this.listenerList.map((l) => l.summary());
  }

  /**
   * The `(req, res)` of an http listener, for a server of one's own (node:http, or a framework's
   * raw request and response): the request takes the listener's phases from its checks on
   * (route, 404/405, body size, middleware, handler, a 500 for a handler that fails), as one
   * arriving on its socket would. Meant for a yard started with `bind: false` (src/yard/mount.ts).
   */
  requestListener(name: string): (req: IncomingMessage, res: ServerResponse) => void {
    const l = this.listenerList.find((x) => x.name === name);
    if (!(l instanceof HttpListener)) throw new Error(`no http listener named "${name}"`);
    return (req, res) => l.dispatch(req, res);
  }

  upstreams(): UpstreamGroup[] {
    return [...this.groups.values()];
  }

  /** Every listening socket with its listener's name and address, for a new daemon to take over (upgrade.ts). */
  listeningSockets(): { name: string; where: string; socket: ListeningSocket }[] {
    const out: { name: string; where: string; socket: ListeningSocket }[] = [];
    for (const l of this.listenerList) {
      const socket = l.listening();
      const config = this.current.listeners.find((c) => c.name === l.name);
      if (socket && config) out.push({ name: l.name, where: boundWhere(config, l), socket });
      // An http listener's HTTP/3 UDP socket goes too, under its own name: the new daemon's
      // HTTP/3 starts on it at once instead of waiting for the old daemon to free the port.
      const udp = l.http3Listening?.();
      const a = udp && config ? udpAddress(udp) : undefined;
      if (udp && a) out.push({ name: http3SocketName(l.name), where: `udp:${formatHostPort(a)}`, socket: udp });
    }
    return out;
  }

  /** A zero-downtime upgrade, when the daemon was started by `serve` (which knows how to start itself again). */
  upgrade(by: string): Promise<{ ok: true; pid: number } | { ok: false; error: string }> {
    const run = this.options.upgrade;
    if (!run) return Promise.resolve({ ok: false, error: 'this daemon was not started by `switchyard serve`: it cannot start a new one of itself' });
    return run(by);
  }

  /** Reads the config again from its source (YardOptions.configSource) and reloads it. */
  async reloadFromSource(): Promise<ReloadResult> {
    const source = this.options.configSource;
    if (!source) return { ok: false, error: 'this daemon was not started from a config file it can read again (give the new config to POST /load)' };
    let next: Config;
    try {
      next = await source();
    } catch (err) {
      return { ok: false, error: err instanceof Error ? err.message : String(err) };
    }
    return this.reload(next);
  }

  inFlightByListener(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const l of this.listenerList) out[l.name] = l.inFlight();
    return out;
  }

  async rooms(limit: number): Promise<{ room: string; members: number }[]> {
    return this.shared ? this.shared.rooms.list(limit) : [];
  }

  /** Connections (or requests) still in flight across every listener (those a reload removed included). */
  inFlight(): number {
    let n = this.listenerList.reduce((sum, l) => sum + l.inFlight(), 0);
    for (const l of this.leaving) n += l.inFlight();
    return n;
  }

  /** Every handler the yard holds: the running config's and those a reload is retiring. */
  private allHandlers(): Closable[] {
    const out: Closable[] = [];
    for (const set of this.handlerSets.values()) out.push(...set);
    for (const set of this.retiring) out.push(...set);
    return out;
  }

  /** Graceful stop; calling it again returns the same promise. */
  stop(grace = this.config.shutdown.grace): Promise<StopResult> {
    this.stopping ??= this.drain(grace);
    return this.stopping;
  }

  /** An upgrade handed the listening sockets over: unix listeners leave their socket files when they stop accepting. */
  keepUnixSocketFiles(): void {
    for (const l of this.listenerList) if (l instanceof UnixListener) l.keepFileOnClose();
  }

  private async drain(grace: number): Promise<StopResult> {
    for (const l of this.listenerList) await l.stopAccepting();
    for (const h of this.allHandlers()) {
      try {
        h.drain?.();
      } catch (err) {
        this.log.error({ err }, 'handler drain failed');
      }
    }
    const deadline = Date.now() + grace;
    while (this.inFlight() > 0 && Date.now() < deadline) {
      await new Promise((resolve) => setTimeout(resolve, Math.min(50, Math.max(1, deadline - Date.now()))));
    }
    const cutOff = this.inFlight();
    if (cutOff > 0) this.log.warn({ cutOff, graceMs: grace }, 'grace period over: closing connections still open');
    for (const l of this.listenerList) l.destroy();
    for (const l of this.leaving) l.destroy();
    this.leaving.clear();
    await this.closeHandlers();
    await this.closeGroups();
    await this.closeAcme();
    await this.rateLimits.close();
    await this.closeState();
    return { cutOff };
  }

  private async closeAcme(): Promise<void> {
    for (const m of this.acmeManagers.splice(0)) await m.close();
    const storage = this.acmeStorage;
    this.acmeStorage = undefined;
    try {
      await (await storage)?.close();
    } catch (err) {
      this.log.error({ err }, 'acme storage cleanup failed');
    }
  }

  private async closeState(): Promise<void> {
    const shared = this.shared;
    this.shared = undefined;
    try {
      await shared?.rooms.close();
    } catch (err) {
      this.log.error({ err }, 'shared state cleanup failed');
    }
  }

  private async closeGroups(): Promise<void> {
    for (const g of [...this.groups.values(), ...this.retiringGroups]) {
      try {
        await g.close();
      } catch (err) {
        this.log.error({ err, upstream: g.name }, 'upstream cleanup failed');
      }
    }
    this.groups.clear();
    this.retiringGroups.clear();
  }

  private async closeHandlers(): Promise<void> {
    const all = this.allHandlers();
    this.handlerSets.clear();
    this.retiring.clear();
    await closeAll(all, this.log);
  }

  /**
   * Loads a new config into the running daemon, as `check` would validate it: listeners whose
   * binding (protocol, address or path, TLS, HTTP/2 settings, header size limit) is unchanged
   * keep their sockets and take the new routes, middleware, handlers and limits at once, while
   * requests and connections already in progress finish on the handlers they started with (which
   * are closed once nothing uses them); new listeners bind, removed ones stop accepting and
   * drain; upstream groups whose config is unchanged carry over with their pools and health
   * state (a changed group starts from its predecessor's health and ejections); the shared
   * state (chat rooms) stays. Anything that fails before the switch (a handler that cannot be
   * provisioned, a port that cannot be bound) leaves the running config untouched and is
   * returned as the error. One reload at a time; a second waits for the first.
   */
  reload(next: Config): Promise<ReloadResult> {
    const notify = this.options.notifyReload;
    notify?.reloading();
    const run = this.options.reloadAll ? this.options.reloadAll(next) : this.reloadHere(next);
    return notify ? run.finally(() => notify.done()) : run;
  }

  /** reload() in this process only (what it is without workers; a worker's part of a reload of them all). */
  reloadHere(next: Config): Promise<ReloadResult> {
    const run = this.reloadChain.then(() => this.applyReload(next));
    this.reloadChain = run.catch(() => undefined);
    return run;
  }

  private async applyReload(next: Config): Promise<ReloadResult> {
    if (this.stopping) return { ok: false, error: 'the daemon is stopping' };
    const prev = this.current;
    if (!isDeepStrictEqual(prev.state, next.state)) return { ok: false, error: 'state: the shared state backend cannot change on a reload; restart the daemon for that' };
    if (prev.workers !== next.workers) return { ok: false, error: 'workers: the number of worker processes cannot change on a reload; restart the daemon for that' };
    const changed: string[] = [];
    const groups = new Map<string, UpstreamGroup>();
    const newGroups: UpstreamGroup[] = [];
    const sets = new Map<string, Closable[]>();
    interface Step {
      config: ListenerConfig;
      /** Kept: the running listener and its new handlers. */
      kept?: { listener: Listener; handlers: ListenerHandlers };
      /** New (or replacing one whose binding changed). */
      built?: Listener;
      started?: boolean;
    }
    const steps: Step[] = [];
    const undo = async () => {
      for (const st of steps) {
        if (st.built && st.started) {
          await st.built.stopAccepting().catch(() => undefined);
          st.built.destroy();
        }
      }
      await closeAll([...sets.values()].flat(), this.log);
      for (const g of newGroups) await g.close().catch(() => undefined);
    };
    try {
      await this.rateLimits.prepare(redisRateLimitPaths(next));
      prepareErrorPages(next, this.options.baseDir ?? process.cwd());
      for (const [name, u] of Object.entries(next.upstreams)) {
        const old = this.groups.get(name);
        if (old && isDeepStrictEqual(old.config, u)) {
          groups.set(name, old);
          continue;
        }
        const group = new UpstreamGroup(name, u, { metrics: this.metrics, log: this.log, baseDir: this.options.baseDir });
        newGroups.push(group);
        try {
          await group.prepare();
        } catch (err) {
          const at = err instanceof UpstreamTlsError ? `upstreams.${name}.${err.field}` : `upstreams.${name}`;
          throw new ProvisionError(at, 'upstream', err instanceof Error ? err.message : String(err), { cause: err });
        }
        if (old) group.inheritHealth(old);
        groups.set(name, group);
        changed.push(old ? `upstream ${name}: changed` : `upstream ${name}: added`);
      }
      for (const name of this.groups.keys()) if (!(name in next.upstreams)) changed.push(`upstream ${name}: removed`);

      for (const [i, l] of next.listeners.entries()) {
        const set: Closable[] = [];
        sets.set(l.name, set);
        const oldConfig = prev.listeners.find((x) => x.name === l.name);
        const old = this.listenerList.find((x) => x.name === l.name);
        if (old && oldConfig && sameBinding(oldConfig, l, old)) {
          steps.push({ config: l, kept: { listener: old, handlers: await this.provisionHandlers(l, i, set, groups) } });
          if (!isDeepStrictEqual(oldConfig, l)) changed.push(`listener ${l.name}: reconfigured`);
        } else {
          steps.push({ config: l, built: await this.build(l, i, set, groups) });
          changed.push(old ? `listener ${l.name}: replaced (its binding changed)` : `listener ${l.name}: added`);
        }
      }
      // Bind the new listeners now, except those whose address a listener going away still
      // holds: they bind once it has stopped (below).
      for (const st of steps) {
        if (!st.built || this.heldByLeaving(st.config, next)) continue;
        await st.built.start();
        st.started = true;
      }
    } catch (err) {
      await undo();
      const error = err instanceof Error ? err.message : String(err);
      this.log.warn({ err: error }, 'reload failed: the running config is unchanged');
      return { ok: false, error };
    }

    // The switch: from here on, the new config serves.
    const retirements: Promise<void>[] = [];
    const keptNames = new Set(steps.filter((st) => st.kept).map((st) => st.config.name));
    const going = this.listenerList.filter((l) => !keptNames.has(l.name));
    for (const l of going) {
      if (!next.listeners.some((x) => x.name === l.name)) changed.push(`listener ${l.name}: removed`);
      await l.stopAccepting().catch(() => undefined);
      this.leaving.add(l);
      const set = this.handlerSets.get(l.name);
      if (set) this.retiring.add(set);
      retirements.push(this.drainLeaving(l, set));
    }
    const listeners: Listener[] = [];
    for (const st of steps) {
      if (st.kept) {
        const set = this.handlerSets.get(st.config.name);
        if (set) this.retiring.add(set);
        const released = st.kept.listener.reconfigure(st.config, st.kept.handlers).then(() => this.release(set));
        retirements.push(released);
        listeners.push(st.kept.listener);
        continue;
      }
      const built = st.built!;
      if (!st.started) {
        try {
          await built.start();
        } catch (err) {
          // The address was just freed by the listener this one replaces; failing here is rare
          // (another process took it). Reported; the rest of the new config serves.
          this.log.error({ err, listener: built.name }, 'reload: a replaced listener could not bind again');
          changed.push(`listener ${built.name}: FAILED to bind (${err instanceof Error ? err.message : String(err)})`);
          continue;
        }
      }
      listeners.push(built);
    }
    const oldGroups = [...this.groups.values()].filter((g) => ![...groups.values()].includes(g));
    for (const g of oldGroups) this.retiringGroups.add(g);
    this.current = next;
    this.listenerList = listeners;
    this.handlerSets = sets;
    this.groups = groups;
    for (const g of newGroups) g.start();
    // Replaced groups go once every handler that could still use them has gone.
    void Promise.all(retirements).then(async () => {
      for (const g of oldGroups) {
        if (!this.retiringGroups.delete(g)) continue;
        await g.close().catch((err: unknown) => this.log.error({ err, upstream: g.name }, 'upstream cleanup failed'));
      }
    });
    this.log.info({ changed }, 'reloaded');
    return { ok: true, changed };
  }

  /** Whether a listener of `next` binds where a listener that is going away (removed or replaced) still listens. */
  private heldByLeaving(l: ListenerConfig, next: Config): boolean {
    const where = bindingAddress(l);
    return this.current.listeners.some((o) => {
      const running = this.listenerList.find((x) => x.name === o.name);
      const held = running ? boundWhere(o, running) : bindingAddress(o);
      return held === where && !next.listeners.some((n) => n.name === o.name && running !== undefined && sameBinding(o, n, running));
    });
  }

  /** A removed listener: its in-flight work gets the grace period, then it is closed with its handlers. */
  private async drainLeaving(l: Listener, set: Closable[] | undefined): Promise<void> {
    const deadline = Date.now() + this.current.shutdown.grace;
    while (l.inFlight() > 0 && Date.now() < deadline && this.leaving.has(l)) await new Promise((r) => setTimeout(r, 50));
    if (!this.leaving.delete(l)) return; // stop() took it over
    l.destroy();
    await this.release(set);
  }

  /** Closes handlers a reload replaced, once nothing uses them. */
  private async release(set: Closable[] | undefined): Promise<void> {
    if (!set || !this.retiring.delete(set)) return;
    await closeAll(set, this.log);
  }

  private async provision<H extends Closable>(
    handler: { type: string },
    kind: 'http' | 'stream' | 'datagram',
    path: string,
    listener: string,
    into: Closable[],
    groups: Map<string, UpstreamGroup>,
  ): Promise<H> {
    const mod = handlerModule(handler.type);
    const factory = mod?.[kind];
    if (!mod || !factory) throw new ProvisionError(path, handler.type, `no ${kind} handler of this type`);
    const state = this.shared;
    if (!state) throw new Error('shared state is not open');
    const ctx: ProvisionContext = {
      state,
      yard: this,
      baseDir: this.options.baseDir ?? process.cwd(),
      listener,
      log: this.log,
      metrics: this.metrics,
      upstream: (name) => {
        const g = groups.get(name);
        if (!g) throw new Error(`no upstream named "${name}"`);
        return g;
      },
    };
    try {
      const h = (await (factory as (c: unknown, x: ProvisionContext) => unknown)(handler, ctx)) as H;
      into.push(h);
      return h;
    } catch (err) {
      throw new ProvisionError(path, handler.type, err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  /**
   * A listener's certificates from its `tls:` block: files checked up front, a leaf of the
   * yard's one local CA, or certificates ordered over ACME. Problems are provision errors naming
   * the field.
   */
  private async certificates(config: ListenerTlsConfig, at: string, l: ListenerConfig, alpn: string[] | undefined): Promise<ListenerTls> {
    const listener = l.name;
    if (isAcmeTls(config)) return this.acmeCertificates(config, at, l, alpn);
    try {
      const ca = config.issuer === 'internal' ? await (this.localCa ??= InternalCA.open({ dataDir: this.options.dataDir })) : undefined;
      // The local CA issues for the names the routes serve when none are given (wildcards too).
      const names = config.issuer === 'internal' && config.names === undefined ? routeHostNames(l, true) : config.names;
      const store = await createCertificateStore({ ...config, names }, {
        baseDir: this.options.baseDir,
        alpn,
        ca,
        onEvent: (event: TlsEvent) => {
          const failed = event.type === 'reload-failed' || event.type === 'renew-failed' || event.type === 'watch-failed';
          this.log[failed ? 'warn' : 'info']({ listener, tls: event.type, err: 'error' in event ? event.error.message : undefined }, `tls: ${event.type}`);
        },
      });
      return { source: store, rootCertFile: ca?.rootCertFile };
    } catch (err) {
      const path = isTlsConfigError(err) ? `${at}.${tlsErrorPath(err)}` : `${at}.tls`;
      throw new ProvisionError(path, 'tls', err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  /**
   * ACME: one storage and one pair of challenge responders per yard (every http listener answers
   * HTTP-01, every ACME TLS listener TLS-ALPN-01); one renewal manager per listener, started once
   * every listener is up, since validation connects to them.
   */
  private async acmeCertificates(config: AcmeListenerTls, at: string, l: ListenerConfig, alpn: string[] | undefined): Promise<ListenerTls> {
    const names = config.names ?? (l.protocol === 'http' ? routeHostNames(l) : []);
    if (names.length === 0) {
      throw new ProvisionError(`${at}.tls.names`, 'tls', 'give the names to order certificates for (or match.host on this listener\'s routes)');
    }
    try {
      const { createAcme, openAcmeStorage } = await import('../tls/acme/index.ts');
      this.acmeStorage ??= openAcmeStorage(this.config.state, this.options.dataDir ?? defaultDataDir());
      const acme = await createAcme(config, { storage: await this.acmeStorage, http01: this.http01, tlsAlpn01: this.tlsAlpn01 });
      acme.manager.add(names);
      const listener = l.name;
      const count = this.metrics.acmeEvents;
      for (const type of ['loaded', 'issued', 'renewed'] as const) {
        acme.manager.on(type, (e) => {
          count.labels(listener, type).inc();
          this.log.info({ listener, names: e.names, notAfter: e.notAfter }, `tls: certificate ${type}`);
        });
      }
      acme.manager.on('failed', (e) => {
        count.labels(listener, 'failed').inc();
        this.log.warn({ listener, names: e.names, err: e.error.message, failures: e.failures, retryInMs: e.retryInMs, serving: e.serving !== undefined }, 'tls: certificate order failed');
      });
      this.acmeManagers.push(acme.manager);
      const source = new AcmeTlsSource({ manager: acme.manager, alpn, minVersion: config.minVersion, maxVersion: config.maxVersion, ciphers: config.ciphers });
      const tlsAlpn01 = this.tlsAlpn01;
      return {
        source,
        alpnChallenges: config.challenges.includes('tls-alpn-01') ? (socket) => peekTlsAlpn01(socket, tlsAlpn01) : undefined,
      };
    } catch (err) {
      if (err instanceof ProvisionError) throw err;
      throw new ProvisionError(`${at}.tls`, 'tls', err instanceof Error ? err.message : String(err), { cause: err });
    }
  }

  /** The handlers of a listener's config: its routes' (http) or its one handler. */
  private async provisionHandlers(l: ListenerConfig, i: number, into: Closable[], groups: Map<string, UpstreamGroup>): Promise<ListenerHandlers> {
    const at = `listeners[${i}]`;
    switch (l.protocol) {
      case 'http': {
        const handlers: HttpHandler[] = [];
        for (const [j, r] of l.routes.entries()) {
          const handler = await this.provision<HttpHandler>(r.handler, 'http', `${at}.routes[${j}].handler`, l.name, into, groups);
          // `use` merges like every middleware field: the route's replaces the listener's.
          const use = { ...l.middleware, ...r.middleware }.use;
          handlers.push(use ? withInlineMiddleware(handler, use) : handler);
        }
        return handlers;
      }
      case 'tcp':
      case 'unix':
      case 'quic':
        return this.provision<StreamHandler>(l.handler, 'stream', `${at}.handler`, l.name, into, groups);
      case 'udp':
        return this.provision<DatagramHandler>(l.handler, 'datagram', `${at}.handler`, l.name, into, groups);
    }
  }

  /**
   * A socket the daemon this one replaces handed over for `l` (same name, same address), taken
   * once. `http3`: the http listener's HTTP/3 UDP socket (`<name>#h3`, on the listener's host;
   * the listener itself checks it is on its TCP side's bound port: HttpListener.startHttp3).
   */
  private inheritedSocket(l: ListenerConfig, http3 = false): ListeningSocket | undefined {
    const inherited = this.options.inherited;
    const name = http3 ? http3SocketName(l.name) : l.name;
    const entry = inherited?.get(name);
    if (!entry) return undefined;
    const hp = l.protocol === 'unix' ? undefined : parseHostPort(l.address);
    const wanted = l.protocol === 'unix' ? bindingAddress(l) : undefined;
    const [kind, rest] = [entry.where.slice(0, entry.where.indexOf(':')), entry.where.slice(entry.where.indexOf(':') + 1)];
    const ok =
      wanted !== undefined
        ? entry.where === wanted
        : hp !== undefined && kind === (http3 || l.protocol === 'udp' || l.protocol === 'quic' ? 'udp' : 'tcp') && (() => {
            const got = parseHostPort(rest);
            return got !== undefined && got.host === hp.host && (hp.port === 0 || hp.port === got.port);
          })();
    if (!ok) return undefined;
    inherited!.delete(name);
    return entry.socket;
  }

  private async build(l: ListenerConfig, i: number, into: Closable[], groups: Map<string, UpstreamGroup>): Promise<Listener> {
    const at = `listeners[${i}]`;
    const common = { metrics: this.metrics, log: this.log };
    const inherit = this.inheritedSocket(l);
    const handlers = await this.provisionHandlers(l, i, into, groups);
    switch (l.protocol) {
      case 'http': {
        const tls = l.tls ? await this.certificates(l.tls, at, l, l.http2.enabled ? ['h2', 'http/1.1'] : ['http/1.1']) : undefined;
        // Taken even when this config has no HTTP/3 (the listener closes it then): held unused, it would keep the port.
        const inheritHttp3 = this.inheritedSocket(l, true) as DgramSocket | undefined;
        return new HttpListener({ ...common, rateLimits: this.rateLimits, config: l, handlers: handlers as HttpHandler[], accessLogDefault: this.config.logging.accessLog, baseDir: this.options.baseDir, tls, http01: this.acmeInUse ? this.http01 : undefined, inherit: inherit as NetServer | undefined, inheritHttp3 });
      }
      case 'tcp':
      case 'unix': {
        const tls = l.tls ? await this.certificates(l.tls, at, l, undefined) : undefined;
        const opts = { ...common, name: l.name, handlerType: l.handler.type, handler: handlers as StreamHandler, limits: l.limits, tls, inherit: inherit as NetServer | undefined };
        return l.protocol === 'tcp'
          ? new TcpListener(opts, l.address, l.socket)
          : new UnixListener(opts, l.path, parseInt(l.mode, 8), this.options.baseDir ?? process.cwd(), l.socket);
      }
      case 'udp':
        return new UdpListener({ ...common, config: l, handler: handlers as DatagramHandler, inherit: inherit as DgramSocket | undefined });
      case 'quic': {
        const tls = await this.certificates(l.tls, at, l, undefined);
        const { QuicListener } = await loadQuic(() => import('../listeners/quic.ts'));
        return new QuicListener({ ...common, config: l, handler: handlers as StreamHandler, tls, inherit: inherit as DgramSocket | undefined });
      }
    }
  }
}

/** Closes handlers one after another; a failure is logged, never thrown. */
async function closeAll(handlers: Closable[], log: Logger): Promise<void> {
  for (const h of handlers) {
    try {
      await h.close?.();
    } catch (err) {
      log.error({ err }, 'handler cleanup failed');
    }
  }
}

/**
 * Whether `b` asks for where `a`'s running listener is: the same path, or the same host and
 * port, where port 0 in `b` takes whatever port it has now and port 0 in `a` stands for the
 * port it was given.
 */
function sameAddress(a: ListenerConfig, b: ListenerConfig, running: Listener): boolean {
  if (a.protocol === 'unix' || b.protocol === 'unix') return bindingAddress(a) === bindingAddress(b);
  const want = parseHostPort(b.address);
  const have = parseHostPort(a.address);
  if (!want || !have) return bindingAddress(a) === bindingAddress(b);
  if (want.host !== have.host) return false;
  if (want.port === 0) return true;
  let port = have.port;
  if (port === 0) {
    try {
      const bound = running.address();
      if ('port' in bound) port = bound.port;
    } catch {
      // not bound
    }
  }
  return port === want.port;
}

/** Where a running listener is bound, in bindingAddress's form. */
function boundWhere(l: ListenerConfig, running: Listener): string {
  if (l.protocol === 'unix') return bindingAddress(l);
  try {
    const bound = running.address();
    if ('port' in bound) return `${l.protocol === 'udp' || l.protocol === 'quic' ? 'udp' : 'tcp'}:${formatHostPort(bound)}`;
  } catch {
    // not bound
  }
  return bindingAddress(l);
}

/** A udp socket's bound address; undefined once it is closed. */
function udpAddress(socket: DgramSocket): { host: string; port: number } | undefined {
  try {
    const a = socket.address();
    return { host: a.address, port: a.port };
  } catch {
    return undefined;
  }
}

/** Where a listener binds: its address, or its unix socket path. */
function bindingAddress(l: ListenerConfig): string {
  return l.protocol === 'unix' ? `unix:${l.path}` : `${l.protocol === 'udp' || l.protocol === 'quic' ? 'udp' : 'tcp'}:${l.address}`;
}

/**
 * Whether a listener can take `b` over from `a` on its running socket: what is fixed when its
 * server is made (protocol, address or path and mode, TLS, HTTP/2 settings, the header size
 * limit node's parser is built with) is the same.
 */
function sameBinding(a: ListenerConfig, b: ListenerConfig, running: Listener): boolean {
  if (a.protocol !== b.protocol || !sameAddress(a, b, running)) return false;
  // `socket:` of a stream listener is set at listen (docs/socket-options.md): a change rebinds.
  if (a.protocol !== 'udp' && a.protocol !== 'quic' && !isDeepStrictEqual(a.socket, (b as typeof a).socket)) return false;
  switch (a.protocol) {
    case 'http': {
      const y = b as typeof a;
      return isDeepStrictEqual(a.tls, y.tls) && isDeepStrictEqual(a.http2, y.http2) && isDeepStrictEqual(a.http3, y.http3) && a.limits.maxHeaderSize === y.limits.maxHeaderSize;
    }
    case 'tcp':
      return isDeepStrictEqual(a.tls, (b as typeof a).tls);
    case 'unix':
      return a.mode === (b as typeof a).mode && isDeepStrictEqual(a.tls, (b as typeof a).tls);
    case 'udp':
      return a.reuseAddr === (b as typeof a).reuseAddr;
    case 'quic':
      return isDeepStrictEqual(a.tls, (b as typeof a).tls);
  }
}

/**
 * The host names an http listener's routes match: exact ones only by default (wildcards cannot be
 * ordered over HTTP-01/TLS-ALPN-01), `*.example.com` ones too with `wildcards` (the local CA).
 */
function routeHostNames(l: ListenerConfig, wildcards = false): string[] {
  if (l.protocol !== 'http') return [];
  const names = l.routes.flatMap((r) => (r.match.host === undefined ? [] : Array.isArray(r.match.host) ? r.match.host : [r.match.host]));
  return [...new Set(names.map((n) => n.toLowerCase()).filter((n) => wildcards || !n.includes('*')))];
}

/**
 * A config written in TypeScript, checked at compile time: an unknown handler `type`, a misspelt
 * field or a value of the wrong kind is a type error, as it would be a ConfigError at run time.
 * Returns its argument unchanged (`serve(defineConfig({...}))`).
 */
export function defineConfig(config: ConfigInput): ConfigInput {
  return config;
}

/**
 * Validates `config` (a plain object as read from YAML/JSON, or built in code) and starts a yard.
 * Written in TypeScript, it is checked at compile time through defineConfig (or `satisfies ConfigInput`).
 * Throws ConfigError for a bad config, ProvisionError or ListenError when it cannot start.
 */
export async function serve(config: unknown, options: YardOptions = {}): Promise<Yard> {
  return Yard.start(parseConfig(config, 'config'), options);
}

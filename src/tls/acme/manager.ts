import { createSecureContext, type SecureContext } from 'node:tls';
import { backoffDelay, type BackoffPolicy } from './backoff.ts';
import { fromStored, namesId, normaliseNames, toStored, type IssuedCertificate } from './certificate.ts';
import { systemClock, type Clock } from './clock.ts';
import type { CertificateSource } from './issuer.ts';
import type { AcmeStorage } from './storage.ts';

// Keeps a certificate for each set of names: loads the stored one, orders one when there is none
// or it is past renewAt of its lifetime, and keeps serving the one it has until the new one is in
// hand. A failed order is tried again after a backoff (doubling, with jitter, between retry.min
// and retry.max). Several daemons on one storage: the one that takes the set's lock orders;
// the others find the new certificate in the storage when they look again.
//
// Storage names (under the source's storagePrefix, one per directory):
//   <prefix>/certs/<id>.json   key and chain of one set of names (id: first name + hash of all)
//   lock <prefix>/certs/<id>   held while ordering it

export interface CertificateEvent {
  names: string[];
  notBefore: Date;
  notAfter: Date;
}

export interface AcmeEvents {
  /** A certificate found in the storage (at start, or one another daemon ordered). */
  loaded: CertificateEvent;
  /** The first certificate for these names, ordered by this daemon. */
  issued: CertificateEvent;
  /** A new certificate replaced the one being served. */
  renewed: CertificateEvent & { previousNotAfter: Date };
  /** An order (or the storage) failed; the next try is in retryInMs. */
  failed: { names: string[]; error: Error; failures: number; retryInMs: number; serving: CertificateEvent | undefined };
}

export interface CertificateManagerOptions {
  source: CertificateSource;
  storage: AcmeStorage;
  /** Share of the lifetime after which a certificate is renewed (default 2/3). */
  renewAt?: number;
  /** Backoff after failures (default 1 min .. 6 h). */
  retry?: BackoffPolicy;
  /** How long the order lock holds (default 10 min): longer than an order takes. */
  lockTtlMs?: number;
  /** When another daemon holds the order lock, look again after this long (default 15 s). */
  lockWaitMs?: number;
  /** Longest sleep between looks, so that far-off renewals and clock changes are noticed (default 1 h). */
  maxSleepMs?: number;
  clock?: Clock;
  /** For the backoff's jitter; [0, 1). */
  random?: () => number;
}

interface Entry {
  names: string[];
  id: string;
  current: IssuedCertificate | undefined;
  context: SecureContext | undefined;
  failures: number;
  dueAt: number;
}

function toError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function describe(cert: IssuedCertificate): CertificateEvent {
  return { names: cert.names, notBefore: cert.notBefore, notAfter: cert.notAfter };
}

type Listener<K extends keyof AcmeEvents> = (event: AcmeEvents[K]) => void;

export class CertificateManager {
  private readonly entries = new Map<string, Entry>();
  private readonly byName = new Map<string, Entry>();
  private readonly listeners: { [K in keyof AcmeEvents]: Set<Listener<K>> } = {
    loaded: new Set(),
    issued: new Set(),
    renewed: new Set(),
    failed: new Set(),
  };
  private readonly clock: Clock;
  private readonly renewAt: number;
  private readonly retry: BackoffPolicy;
  private cancelTimer: (() => void) | undefined;
  private running: Promise<void> | undefined;
  private started = false;
  private closed = false;

  constructor(private readonly options: CertificateManagerOptions) {
    this.clock = options.clock ?? systemClock;
    this.renewAt = options.renewAt ?? 2 / 3;
    this.retry = options.retry ?? { minMs: 60_000, maxMs: 6 * 3_600_000 };
    if (!(this.renewAt > 0 && this.renewAt < 1)) throw new Error('renewAt must be between 0 and 1');
  }

  on<K extends keyof AcmeEvents>(event: K, listener: Listener<K>): () => void {
    const set = this.listeners[event] as Set<Listener<K>>;
    const entry: Listener<K> = (e) => listener(e);
    set.add(entry);
    return () => set.delete(entry);
  }

  private emit<K extends keyof AcmeEvents>(event: K, payload: AcmeEvents[K]): void {
    for (const l of [...(this.listeners[event] as Set<Listener<K>>)]) {
      try {
        l(payload);
      } catch {
        // a listener's failure is its own
      }
    }
  }

  /** Manages a certificate for `names` (checked at once when started). Adding the same set again does nothing. */
  add(names: readonly string[]): void {
    const sorted = normaliseNames(names);
    if (sorted.length === 0) throw new Error('a certificate needs at least one name');
    const id = namesId(sorted);
    if (this.entries.has(id)) return;
    for (const n of sorted) {
      const other = this.byName.get(n);
      if (other) throw new Error(`${n} is already in the certificate for ${other.names.join(', ')}`);
    }
    const entry: Entry = { names: sorted, id, current: undefined, context: undefined, failures: 0, dueAt: this.clock.now() };
    this.entries.set(id, entry);
    for (const n of sorted) this.byName.set(n, entry);
    this.schedule();
  }

  /** The certificate being served for the set `names`, if any. */
  certificate(names: readonly string[]): IssuedCertificate | undefined {
    return this.entries.get(namesId(names))?.current;
  }

  /** The context to serve `servername` with (for the listener's SNICallback), if a certificate is in hand. */
  contextFor(servername: string): SecureContext | undefined {
    return this.byName.get(servername.toLowerCase())?.context;
  }

  /** When the set `names` is looked at next (ms since the epoch, the clock's time). */
  nextCheckAt(names: readonly string[]): number | undefined {
    return this.entries.get(namesId(names))?.dueAt;
  }

  /** Looks at every set now (loading, ordering as needed), then keeps looking on time. */
  start(): Promise<void> {
    this.started = true;
    return this.runDue();
  }

  /** Looks at every set that is due by the clock; resolves when done. One run at a time. */
  runDue(): Promise<void> {
    if (this.closed) return Promise.resolve();
    if (this.running) return this.running;
    // .finally() runs after this assignment even when nothing is due (no await in the run).
    const run = this.checkDue().finally(() => {
      if (this.running === run) this.running = undefined;
      this.schedule();
    });
    this.running = run;
    return run;
  }

  private async checkDue(): Promise<void> {
    const now = this.clock.now();
    for (const entry of [...this.entries.values()]) {
      if (this.closed) break;
      if (entry.dueAt <= now) await this.check(entry);
    }
  }

  private schedule(): void {
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    if (!this.started || this.closed || this.entries.size === 0 || this.running) return;
    const next = Math.min(...[...this.entries.values()].map((e) => e.dueAt));
    const wait = Math.min(Math.max(0, next - this.clock.now()), this.options.maxSleepMs ?? 3_600_000);
    this.cancelTimer = this.clock.setTimer(() => void this.runDue(), wait);
  }

  private renewalTime(cert: IssuedCertificate): number {
    const from = cert.notBefore.getTime();
    return from + this.renewAt * (cert.notAfter.getTime() - from);
  }

  private storageName(entry: Entry): string {
    return `${this.options.source.storagePrefix}/certs/${entry.id}`;
  }

  /** The stored certificate of `entry`, or undefined (none, or damaged: then it is ordered anew). */
  private async loadStored(entry: Entry): Promise<IssuedCertificate | undefined> {
    const blob = await this.options.storage.get(`${this.storageName(entry)}.json`);
    if (!blob) return undefined;
    try {
      return fromStored(blob);
    } catch {
      return undefined;
    }
  }

  private use(entry: Entry, cert: IssuedCertificate): void {
    entry.context = createSecureContext({ key: cert.key, cert: cert.chain });
    entry.current = cert;
    entry.failures = 0;
    entry.dueAt = this.renewalTime(cert);
  }

  /** Adopts the stored certificate when it is newer than the one served; true when it is not due. */
  private async adoptStored(entry: Entry): Promise<boolean> {
    const stored = await this.loadStored(entry);
    if (stored && (!entry.current || stored.notAfter > entry.current.notAfter)) {
      this.use(entry, stored);
      this.emit('loaded', describe(stored));
    }
    return entry.current !== undefined && this.clock.now() < this.renewalTime(entry.current);
  }

  private async check(entry: Entry): Promise<void> {
    const { storage, source } = this.options;
    try {
      if (await this.adoptStored(entry)) {
        entry.dueAt = this.renewalTime(entry.current as IssuedCertificate);
        return;
      }
      const release = await storage.lock(this.storageName(entry), this.options.lockTtlMs ?? 10 * 60_000);
      if (!release) {
        // Another daemon is ordering it: look for its result later.
        entry.dueAt = this.clock.now() + (this.options.lockWaitMs ?? 15_000);
        return;
      }
      try {
        // It may have finished just before we took the lock.
        if (await this.adoptStored(entry)) {
          entry.dueAt = this.renewalTime(entry.current as IssuedCertificate);
          return;
        }
        const previous = entry.current;
        const cert = await source.issue(entry.names);
        await storage.set(`${this.storageName(entry)}.json`, toStored(cert));
        this.use(entry, cert);
        if (previous) this.emit('renewed', { ...describe(cert), previousNotAfter: previous.notAfter });
        else this.emit('issued', describe(cert));
      } finally {
        await release().catch(() => undefined);
      }
    } catch (err) {
      entry.failures++;
      const retryInMs = backoffDelay(this.retry, entry.failures, this.options.random);
      entry.dueAt = this.clock.now() + retryInMs;
      this.emit('failed', {
        names: entry.names,
        error: toError(err),
        failures: entry.failures,
        retryInMs,
        serving: entry.current ? describe(entry.current) : undefined,
      });
    }
  }

  /** Stops looking; waits for a look under way (an order in flight finishes or fails). */
  async close(): Promise<void> {
    this.closed = true;
    this.cancelTimer?.();
    this.cancelTimer = undefined;
    await this.running;
  }
}

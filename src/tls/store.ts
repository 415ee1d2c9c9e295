import tls from 'node:tls';
import { TlsConfigError } from './errors.ts';
import { loadKeyPair, type KeyPair, type KeyPairFiles } from './pem.ts';
import { normalizeName, wildcardOf } from './names.ts';
import { contextSecurityOptions, DEFAULT_TICKET_KEY_ROTATION_MS, newTicketKeys, type TlsSecurityOptions } from './security.ts';
import { watchFiles, type FileWatch } from './watch.ts';
import { leafRenewalTime, type InternalCA } from './ca.ts';
import { loadClientCa, type ClientAuthOptions } from './client-cert.ts';

// The certificates of one listener. A handshake picks one by SNI: an exact name first, then a
// `*.` wildcard one label deep, then the default (clients without SNI, or asking for a name no
// certificate has). Pairs from files are re-read when they change (or on reload()) and swapped in
// for new handshakes only: a connection keeps the context it was made with, so nothing is
// dropped, and a bad new pair leaves the old one serving. Leaves of the internal CA are renewed
// at 2/3 of their life the same way.

/** Longest delay Node's timers take (2^31-1 ms); a later renewal is rescheduled in steps. */
const MAX_TIMER_MS = 2_147_483_647;
/** After a failed renewal, try again this soon (or at half the remaining life, if sooner). */
const RENEW_RETRY_MS = 60_000;
export const DEFAULT_RELOAD_DEBOUNCE_MS = 250;

export interface CertificateSource extends KeyPairFiles {
  /** Serve this one to clients without SNI or with an unknown name (default: the first listed). */
  default?: boolean;
}

export interface InternalIssuerOptions {
  /** The local CA (InternalCA.open()). */
  ca: InternalCA;
  /** Names the leaf is for; localhost, 127.0.0.1 and ::1 are always added. */
  names: string[];
}

export interface CertificateStoreOptions extends TlsSecurityOptions {
  /** Pairs from PEM files; SNI picks among them by the names in each certificate. */
  certificates?: CertificateSource[];
  /** A leaf from the local CA for names the files do not cover (files win for a name both have). */
  internal?: InternalIssuerOptions;
  /** Re-read the files when they change (default true). reload() works either way. */
  watch?: boolean;
  /** Quiet time after the last change before re-reading (default 250 ms). */
  debounceMs?: number;
  /** Reloads, renewals, rotations and their failures; the caller logs them. Never throws into the store. */
  onEvent?: (event: TlsEvent) => void;
  /** Clock for validity checks and renewal (ms since the epoch); tests move it. */
  now?: () => number;
  /** Refuse key files readable by group/others (default true). */
  checkKeyPermissions?: boolean;
  /**
   * Client certificates (mTLS): asked for in every handshake and checked against these CA files,
   * which are re-read with the certificate files (docs/tls.md, "Client certificates").
   */
  clientAuth?: ClientAuthOptions;
}

/** What a certificate in the store is, for logs and status pages. */
export interface CertificateInfo {
  source: 'file' | 'internal';
  /** Index in `certificates` for a file pair. */
  entry?: number;
  certFile?: string;
  names: string[];
  notBefore: Date;
  notAfter: Date;
  serialNumber: string;
  fingerprint256: string;
}

export type TlsEvent =
  /** A changed pair was read and now serves new handshakes. */
  | { type: 'reloaded'; certificate: CertificateInfo }
  /** A changed pair is unusable; the old one keeps serving. `entry` -1: the clientAuth.ca files (the old CAs stay). */
  | { type: 'reload-failed'; entry: number; error: TlsConfigError }
  /** The internal CA's leaf was replaced before it expired. */
  | { type: 'renewed'; certificate: CertificateInfo }
  | { type: 'renew-failed'; error: Error; retryInMs: number }
  /** New session-ticket key; tickets under the old one get a full handshake. */
  | { type: 'ticket-keys-rotated' }
  /** A folder could not be watched (changes there need reload()). */
  | { type: 'watch-failed'; dir: string; error: Error };

export interface ReloadResult {
  reloaded: CertificateInfo[];
  failed: TlsConfigError[];
}

interface Entry {
  source: 'file' | 'internal';
  index?: number;
  files?: CertificateSource;
  pair: KeyPair;
  context: tls.SecureContext;
}

interface State {
  entries: Entry[];
  exact: Map<string, Entry>;
  wildcard: Map<string, Entry>;
  fallback: Entry;
}

export function describeCertificate(pair: KeyPair, source: 'file' | 'internal', entry?: number): CertificateInfo {
  return {
    source,
    entry,
    certFile: pair.certFile,
    names: pair.names,
    notBefore: pair.notBefore,
    notAfter: pair.notAfter,
    serialNumber: pair.leaf.serialNumber,
    fingerprint256: pair.leaf.fingerprint256,
  };
}

export class CertificateStore {
  private state!: State;
  private ticketKeys: Buffer = newTicketKeys();
  private readonly servers = new Set<tls.Server>();
  private readonly security: tls.SecureContextOptions;
  private readonly now: () => number;
  private watcher?: FileWatch;
  private ticketTimer?: NodeJS.Timeout;
  private renewTimer?: NodeJS.Timeout;
  private queue: Promise<unknown> = Promise.resolve();
  private closed = false;
  /** The CAs client certificates are checked against (clientAuth), as PEM blocks. */
  private clientCa: string[] | undefined;

  /** The SNICallback for tls.createServer / https.createServer / http2.createSecureServer. */
  readonly SNICallback = (servername: string, cb: (err: Error | null, ctx?: tls.SecureContext) => void): void => {
    cb(null, this.selectEntry(servername).context);
  };

  private constructor(private readonly options: CertificateStoreOptions) {
    this.security = contextSecurityOptions(options);
    this.now = options.now ?? Date.now;
  }

  /**
   * Loads and checks every pair (and the internal leaf), then starts watching and rotating.
   * Throws TlsConfigError (with `entry` set for a file pair) when any is unusable.
   */
  static async create(options: CertificateStoreOptions): Promise<CertificateStore> {
    const store = new CertificateStore(options);
    if (options.clientAuth) store.clientCa = await loadClientCa(options.clientAuth.ca);
    const entries: Entry[] = [];
    for (const [index, files] of (options.certificates ?? []).entries()) {
      entries.push(store.entry(await store.load(files, index), 'file', files, index));
    }
    if (options.internal) entries.push(store.entry(await options.internal.ca.leaf(options.internal.names), 'internal'));
    if (entries.length === 0) {
      throw new TlsConfigError('SWITCHYARD_TLS_NO_CERTIFICATE', 'no certificate: give certificates (cert and key files) or an issuer');
    }
    store.state = buildState(entries);
    store.start();
    return store;
  }

  /** Options for the server (tls/https/http2 secure): the default certificate, SNI, ALPN, tickets. */
  serverOptions(): tls.TlsOptions {
    return {
      ...this.defaultContextOptions(),
      // With one certificate every name gets the default context, which reloads and renewals
      // replace (setSecureContext): an SNICallback would only cost each handshake a call into
      // JavaScript and back (node asks it from OpenSSL's certificate callback). The number of
      // certificates is fixed for the store's life: a reload replaces pairs, never adds one.
      SNICallback: this.state.entries.length > 1 ? this.SNICallback : undefined,
      ALPNProtocols: this.options.alpn,
      ...(this.options.clientAuth ? { requestCert: true, rejectUnauthorized: this.options.clientAuth.mode === 'require' } : {}),
    };
  }

  /**
   * Lets reloads, renewals and ticket rotations reach a server made with serverOptions(): its
   * default context (what clients without SNI get) is replaced with setSecureContext, its ticket
   * key with setTicketKeys. Detached when the server closes.
   */
  attach(server: tls.Server): void {
    this.servers.add(server);
    server.once('close', () => this.servers.delete(server));
  }

  /** The certificate a handshake for `servername` gets (undefined: no SNI). */
  select(servername?: string): KeyPair {
    return this.selectEntry(servername).pair;
  }

  /** The certificates served now. */
  certificates(): CertificateInfo[] {
    return this.state.entries.map((e) => describeCertificate(e.pair, e.source, e.index));
  }

  /**
   * Re-reads every file pair; changed good pairs serve new handshakes, bad ones are reported and
   * the old pair stays. For SIGHUP; the file watch calls it too. Runs one at a time.
   */
  reload(): Promise<ReloadResult> {
    const run = this.queue.then(() => this.reloadNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Replaces the session-ticket key now (the timer does it every ticketKeyRotationMs). */
  rotateTicketKeys(): void {
    this.ticketKeys = newTicketKeys();
    for (const server of this.servers) server.setTicketKeys(this.ticketKeys);
    this.emit({ type: 'ticket-keys-rotated' });
  }

  /**
   * Renews the internal leaf if 2/3 of its life has passed (by the store's clock); true when it
   * did. The renewal timer calls it; tests with a moved clock call it themselves.
   */
  renewIfDue(): Promise<boolean> {
    const run = this.queue.then(() => this.renewNow());
    this.queue = run.catch(() => undefined);
    return run;
  }

  /** Stops watching, rotating and renewing. Servers keep what they have. */
  close(): void {
    this.closed = true;
    this.watcher?.close();
    clearInterval(this.ticketTimer);
    clearTimeout(this.renewTimer);
    this.servers.clear();
  }

  private selectEntry(servername?: string): Entry {
    const s = this.state;
    if (!servername) return s.fallback;
    const name = normalizeName(servername);
    const wild = wildcardOf(name);
    return s.exact.get(name) ?? (wild ? s.wildcard.get(wild) : undefined) ?? s.fallback;
  }

  private defaultContextOptions(): tls.SecureContextOptions {
    const pair = this.state.fallback.pair;
    return { ...this.security, cert: pair.certPem, key: pair.keyPem, passphrase: pair.passphrase, ticketKeys: this.ticketKeys, ca: this.clientCa };
  }

  private async load(files: CertificateSource, index: number): Promise<KeyPair> {
    try {
      return await loadKeyPair(files, { now: this.now, checkKeyPermissions: this.options.checkKeyPermissions });
    } catch (err) {
      if (err instanceof TlsConfigError) err.entry = index;
      throw err;
    }
  }

  private entry(pair: KeyPair, source: 'file' | 'internal', files?: CertificateSource, index?: number): Entry {
    // Every context carries the client CAs: after SNI the handshake verifies with the chosen one's.
    const context = tls.createSecureContext({ ...this.security, cert: pair.certPem, key: pair.keyPem, passphrase: pair.passphrase, ca: this.clientCa });
    return { source, index, files, pair, context };
  }

  private start(): void {
    const o = this.options;
    const files = [...(o.certificates ?? []).flatMap((c) => [c.cert, c.key]), ...(o.clientAuth?.ca ?? [])];
    if ((o.watch ?? true) && files.length > 0) {
      this.watcher = watchFiles(
        files,
        o.debounceMs ?? DEFAULT_RELOAD_DEBOUNCE_MS,
        () => void this.reload(),
        (error, dir) => this.emit({ type: 'watch-failed', dir, error }),
      );
    }
    if (o.sessionTickets !== false) {
      this.ticketTimer = setInterval(() => this.rotateTicketKeys(), Math.min(o.ticketKeyRotationMs ?? DEFAULT_TICKET_KEY_ROTATION_MS, MAX_TIMER_MS));
      this.ticketTimer.unref();
    }
    this.scheduleRenewal();
  }

  private async reloadNow(): Promise<ReloadResult> {
    const result: ReloadResult = { reloaded: [], failed: [] };
    if (this.closed) return result;
    let entries = [...this.state.entries];
    let changed = false;
    let caChanged = false;
    if (this.options.clientAuth) {
      try {
        const ca = await loadClientCa(this.options.clientAuth.ca);
        if (ca.join('\n') !== this.clientCa?.join('\n')) {
          this.clientCa = ca;
          // New CAs: every context is rebuilt with them (certificates unchanged).
          entries = entries.map((e) => this.entry(e.pair, e.source, e.files, e.index));
          changed = caChanged = true;
        }
      } catch (err) {
        const error = err instanceof TlsConfigError ? err : new TlsConfigError('SWITCHYARD_TLS_FILE_UNREADABLE', (err as Error).message, undefined, 'ca', { cause: err });
        result.failed.push(error);
        this.emit({ type: 'reload-failed', entry: -1, error });
      }
    }
    for (const [i, old] of entries.entries()) {
      if (old.source !== 'file' || !old.files || old.index === undefined) continue;
      let pair: KeyPair;
      try {
        pair = await this.load(old.files, old.index);
      } catch (err) {
        const error = err instanceof TlsConfigError ? err : new TlsConfigError('SWITCHYARD_TLS_FILE_UNREADABLE', (err as Error).message, old.files.cert, 'cert', { cause: err });
        error.entry = old.index;
        result.failed.push(error);
        this.emit({ type: 'reload-failed', entry: old.index, error });
        continue;
      }
      if (pair.certPem === old.pair.certPem && pair.keyPem === old.pair.keyPem && pair.passphrase === old.pair.passphrase) continue;
      entries[i] = this.entry(pair, 'file', old.files, old.index);
      result.reloaded.push(describeCertificate(pair, 'file', old.index));
      changed = true;
    }
    if (changed && !this.closed) {
      this.swap(entries);
      for (const certificate of result.reloaded) this.emit({ type: 'reloaded', certificate });
      // A resumed session is not verified again: sessions from before a CA change (a client CA
      // removed) must not resume, so their tickets go with the old key.
      if (caChanged && this.options.sessionTickets !== false) this.rotateTicketKeys();
    }
    return result;
  }

  private async renewNow(): Promise<boolean> {
    const internal = this.options.internal;
    const i = this.state.entries.findIndex((e) => e.source === 'internal');
    if (!internal || i < 0 || this.closed) return false;
    if (this.now() < leafRenewalTime(this.state.entries[i].pair)) return false;
    const pair = await internal.ca.issue(internal.names);
    if (this.closed) return false;
    const entries = [...this.state.entries];
    entries[i] = this.entry(pair, 'internal');
    this.swap(entries);
    this.emit({ type: 'renewed', certificate: describeCertificate(pair, 'internal') });
    return true;
  }

  /** One assignment: a handshake sees the old state or the new one, never a mix. */
  private swap(entries: Entry[]): void {
    this.state = buildState(entries);
    const options = this.defaultContextOptions();
    for (const server of this.servers) server.setSecureContext(options);
    this.scheduleRenewal();
  }

  private scheduleRenewal(): void {
    clearTimeout(this.renewTimer);
    const internal = this.state.entries.find((e) => e.source === 'internal');
    if (!internal || this.closed) return;
    const due = leafRenewalTime(internal.pair) - this.now();
    this.renewTimer = setTimeout(() => {
      this.renewIfDue().then(
        (renewed) => {
          // Not due yet (the delay was capped at Node's longest timer): schedule the rest.
          if (!renewed) this.scheduleRenewal();
        },
        (err: unknown) => {
          const left = internal.pair.notAfter.getTime() - this.now();
          const retryInMs = Math.max(1000, Math.min(RENEW_RETRY_MS, left / 2));
          this.emit({ type: 'renew-failed', error: err as Error, retryInMs });
          clearTimeout(this.renewTimer);
          this.renewTimer = setTimeout(() => this.scheduleRenewal(), retryInMs);
          this.renewTimer.unref();
        },
      );
    }, Math.min(Math.max(due, 0), MAX_TIMER_MS));
    this.renewTimer.unref();
  }

  private emit(event: TlsEvent): void {
    try {
      this.options.onEvent?.(event);
    } catch {
      // A caller's logging failure must not stop a reload or a renewal half way.
    }
  }
}

function buildState(entries: Entry[]): State {
  const exact = new Map<string, Entry>();
  const wildcard = new Map<string, Entry>();
  // Earlier entries win a name both have: files are listed before the internal leaf.
  for (const e of entries) {
    for (const name of e.pair.names) {
      const map = name.startsWith('*.') ? wildcard : exact;
      if (!map.has(name)) map.set(name, e);
    }
  }
  const fallback = entries.find((e) => e.files?.default) ?? entries[0];
  return { entries, exact, wildcard, fallback };
}

import { Agent } from 'node:https';
import { rootCertificates } from 'node:tls';
import * as acme from 'acme-client';
import { directoryId, chainValidity, normaliseNames, type IssuedCertificate } from './certificate.ts';
import type { ChallengeType } from './config.ts';
import { Http01Challenges } from './http01.ts';
import type { AcmeStorage } from './storage.ts';
import { TlsAlpnChallenges } from './tls-alpn01.ts';

// Orders certificates from one ACME directory (RFC 8555) through acme-client: the account (its
// key made once and kept in the storage, the account found again by that key on every start),
// the order, one challenge per name (HTTP-01 or TLS-ALPN-01, answered by the responders the
// listeners consult), finalisation with a fresh EC P-256 key per certificate, the chain.
//
// acme-client talks HTTP through one axios instance for the whole process. Two settings of it are
// made here, once: requests to a directory given a CA of its own (directoryCa) go through an
// agent trusting that CA (chosen by the request's origin, so other directories are unaffected);
// and its own retries of failed requests are off (they sleep 5 s, 10 s, ... inside an order): a
// failed order is retried by the renewal manager with its backoff. Its retry of badNonce answers
// (RFC 8555 section 6.5) is separate and stays.

/** Anything that hands out certificates for names: the ACME issuer, or a test's stand-in. */
export interface CertificateSource {
  /** Storage names of this source's certificates start with this (one directory, one account). */
  readonly storagePrefix: string;
  issue(names: string[]): Promise<IssuedCertificate>;
}

export interface AcmeIssuerOptions {
  /** The directory URL. */
  directory: string;
  email?: string;
  /** PEM of CAs to trust, besides the system's, for the directory's HTTPS. */
  directoryCa?: string | Buffer;
  termsOfServiceAgreed?: boolean;
  externalAccountBinding?: { kid: string; hmacKey: string };
  /** Most preferred first; default TLS-ALPN-01 then HTTP-01. */
  challenges?: readonly ChallengeType[];
  storage: AcmeStorage;
  /** The responders to fill; new ones when not given. */
  http01?: Http01Challenges;
  tlsAlpn01?: TlsAlpnChallenges;
  /** Polling of pending challenges and orders: first wait, longest wait, tries. */
  poll?: { minMs?: number; maxMs?: number; attempts?: number };
  /** How long the account-creation lock holds (several daemons starting together make one account). */
  lockTtlMs?: number;
}

const agents = new Map<string, Agent>();
let axiosConfigured = false;

function configureAxios(): void {
  if (axiosConfigured) return;
  axiosConfigured = true;
  const settings = (acme.axios.defaults as { acmeSettings?: { retryMaxAttempts: number } }).acmeSettings;
  if (settings) settings.retryMaxAttempts = 0;
  acme.axios.interceptors.request.use((config) => {
    if (config.url !== undefined) {
      try {
        const agent = agents.get(new URL(config.url, config.baseURL).origin);
        if (agent) config.httpsAgent = agent;
      } catch {
        // not a URL: leave it to axios
      }
    }
    return config;
  });
}

function trustFor(directory: string, ca: string | Buffer): void {
  const origin = new URL(directory).origin;
  agents.set(origin, new Agent({ ca: [...rootCertificates, ca.toString()], keepAlive: true }));
}

function message(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}

export class AcmeIssuer implements CertificateSource {
  readonly storagePrefix: string;
  readonly http01: Http01Challenges;
  readonly tlsAlpn01: TlsAlpnChallenges;
  private readonly challenges: readonly ChallengeType[];
  private client: Promise<acme.Client> | undefined;

  constructor(private readonly options: AcmeIssuerOptions) {
    configureAxios();
    if (options.directoryCa !== undefined) trustFor(options.directory, options.directoryCa);
    this.storagePrefix = directoryId(options.directory);
    this.http01 = options.http01 ?? new Http01Challenges();
    this.tlsAlpn01 = options.tlsAlpn01 ?? new TlsAlpnChallenges();
    this.challenges = options.challenges ?? ['tls-alpn-01', 'http-01'];
  }

  private get accountKeyName(): string {
    return `${this.storagePrefix}/account-key.pem`;
  }

  /** The account key from the storage; made (once, under a lock) when there is none. */
  private async accountKey(): Promise<Buffer> {
    const { storage } = this.options;
    const ttl = this.options.lockTtlMs ?? 60_000;
    const deadline = Date.now() + ttl;
    for (;;) {
      const key = await storage.get(this.accountKeyName);
      if (key) return key;
      const release = await storage.lock(`${this.storagePrefix}/account`, ttl);
      if (release) {
        try {
          const again = await storage.get(this.accountKeyName);
          if (again) return again;
          const made = await acme.crypto.createPrivateEcdsaKey('P-256');
          await storage.set(this.accountKeyName, made);
          return made;
        } finally {
          await release();
        }
      }
      if (Date.now() > deadline) throw new Error('another daemon holds the ACME account lock and made no account key');
      await new Promise((r) => setTimeout(r, 250));
    }
  }

  /** The client with its account: created at the CA, or found again by its key (RFC 8555 section 7.3.1). */
  private connect(): Promise<acme.Client> {
    this.client ??= (async () => {
      const client = new acme.Client({
        directoryUrl: this.options.directory,
        accountKey: await this.accountKey(),
        externalAccountBinding: this.options.externalAccountBinding,
        backoffAttempts: this.options.poll?.attempts ?? 12,
        backoffMin: this.options.poll?.minMs ?? 1000,
        backoffMax: this.options.poll?.maxMs ?? 10_000,
      });
      await client.createAccount({
        termsOfServiceAgreed: this.options.termsOfServiceAgreed ?? true,
        contact: this.options.email === undefined ? [] : [`mailto:${this.options.email}`],
      });
      return client;
    })();
    return this.client;
  }

  /** The account's URL at the CA; opens the account on first use. */
  async account(): Promise<string> {
    try {
      return (await this.connect()).getAccountUrl();
    } catch (err) {
      this.client = undefined;
      throw new Error(`ACME account at ${this.options.directory}: ${message(err)}`, { cause: err });
    }
  }

  /** Orders a certificate for `names` and waits for it. Throws on any failure (nothing is stored here). */
  async issue(names: string[]): Promise<IssuedCertificate> {
    const sorted = normaliseNames(names);
    if (sorted.length === 0) throw new Error('no names to order a certificate for');
    try {
      return await this.order(sorted);
    } catch (err) {
      // Next time the account is looked up again: the CA may have forgotten it (pebble restarts).
      this.client = undefined;
      throw new Error(`ACME order for ${sorted.join(', ')} at ${this.options.directory}: ${message(err)}`, { cause: err });
    }
  }

  private async order(names: string[]): Promise<IssuedCertificate> {
    const client = await this.connect();
    const order = await client.createOrder({ identifiers: names.map((value) => ({ type: 'dns', value })) });
    const authorizations = await client.getAuthorizations(order);
    await Promise.all(authorizations.map((authz) => this.authorize(client, authz)));
    const key = await acme.crypto.createPrivateEcdsaKey('P-256');
    const [, csr] = await acme.crypto.createCsr({ commonName: names.find((n) => n.length <= 64), altNames: names }, key);
    const finalized = await client.finalizeOrder(order, csr);
    const chain = await client.getCertificate(finalized);
    return { names, key: key.toString(), chain, ...chainValidity(chain) };
  }

  private async authorize(client: acme.Client, authz: acme.Authorization): Promise<void> {
    if (authz.status === 'valid') return;
    const name = authz.identifier.value;
    // The library's types name only http-01 and dns-01; a tls-alpn-01 challenge has the same shape.
    const offered = new Map<string, (typeof authz.challenges)[number]>(authz.challenges.map((c) => [c.type as string, c]));
    const type = this.challenges.find((t) => offered.has(t));
    const challenge = type === undefined ? undefined : offered.get(type);
    if (type === undefined || challenge === undefined) {
      throw new Error(`${name}: the CA offers ${[...offered.keys()].join(', ') || 'no challenge'}; this issuer answers ${this.challenges.join(', ')}`);
    }
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    const { token } = challenge;
    if (type === 'http-01') {
      this.http01.set(token, keyAuthorization);
    } else {
      const alpnKey = await acme.crypto.createPrivateEcdsaKey('P-256');
      const [, cert] = await acme.crypto.createAlpnCertificate(authz, keyAuthorization, alpnKey);
      this.tlsAlpn01.set(name, alpnKey, cert);
    }
    try {
      await client.completeChallenge(challenge);
      await client.waitForValidStatus(authz);
    } finally {
      if (type === 'http-01') this.http01.delete(token);
      else this.tlsAlpn01.delete(name);
    }
  }
}

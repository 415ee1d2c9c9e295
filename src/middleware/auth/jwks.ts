import { stat, readFile } from 'node:fs/promises';
import { isAbsolute, resolve } from 'node:path';
import { performance } from 'node:perf_hooks';
import { createLocalJWKSet, errors, type FlattenedJWSInput, type JSONWebKeySet, type JWSHeaderParameters, type LocalJWKSet, type CryptoKey } from 'jose';
import type { Logger } from 'pino';
import { Agent, request } from 'undici';
import { z } from 'zod';
import { duration, size } from '../../config/units.ts';
import { httpUrlSchema } from './schema.ts';

// The keys JWTs are checked with: a JSON Web Key Set (RFC 7517) from a URL (an identity
// provider's jwks_uri) or from a file. Fetched on first need, then kept:
//
// - a URL is fetched again `refresh` after the last success, in the background (requests go on
//   with the keys in hand meanwhile); a token naming a key id the set lacks (the provider
//   rotated keys) fetches at once, at most once per `cooldown`;
// - a file is looked at (stat) at most every `refresh`, and read again when its size or
//   modification time changed;
// - a fetch that fails keeps the keys in hand: an outage of the provider does not stop tokens
//   signed with keys already known. Only with no keys at all (never fetched) is a token
//   unjudgeable: the request gets 503 (KeysUnavailableError), and fetches are retried at most
//   once a second.
//
// A fetch is bounded in time (`timeout`) and in size (`maxSize`); redirects are not followed.

const urlSourceSchema = z.strictObject({
  /** Where the key set is (an identity provider's `jwks_uri`). */
  url: httpUrlSchema,
  /** How long fetched keys are used before they are fetched again (in the background). */
  refresh: duration()
    .pipe(z.number().int().min(1000, 'expected a duration of at least 1s'))
    .default(600_000),
  /** A token with an unknown key id fetches the set again at once, but at most this often. */
  cooldown: duration()
    .pipe(z.number().int().min(0))
    .default(30_000),
  /** The longest one fetch may take. */
  timeout: duration()
    .pipe(z.number().int().min(1).max(60_000, 'expected a duration of at most 60s'))
    .default(5_000),
  /** The largest key set accepted. */
  maxSize: size()
    .pipe(z.number().int().min(1).max(16 * 1024 * 1024, 'expected a size of at most 16MiB'))
    .default(1024 * 1024),
});

const fileSourceSchema = z.strictObject({
  /** A file holding the key set as JSON; a relative path is taken from the daemon's working folder. */
  file: z.string().min(1),
  /** How often the file is looked at for a change (size or modification time). */
  refresh: duration()
    .pipe(z.number().int().min(100, 'expected a duration of at least 100ms'))
    .default(5_000),
  /** The largest key set accepted. */
  maxSize: size()
    .pipe(z.number().int().min(1).max(16 * 1024 * 1024, 'expected a size of at most 16MiB'))
    .default(1024 * 1024),
});

/** `jwks:` a URL (shorthand for `{ url }`), `{ url, refresh, cooldown, timeout, maxSize }` or `{ file, refresh, maxSize }`. */
export const jwksSchema = z.union([httpUrlSchema.transform((url) => urlSourceSchema.parse({ url })), urlSourceSchema, fileSourceSchema]);

export type JwksConfig = z.output<typeof jwksSchema>;

/** Keys cannot be had: never fetched, and the last try failed. Requests get 503. */
export class KeysUnavailableError extends Error {
  constructor(reason: string) {
    super(`signing keys unavailable: ${reason}`);
    this.name = 'KeysUnavailableError';
  }
}

/** How soon a source with no keys at all is tried again. */
const EMPTY_RETRY_MS = 1000;

type Load = () => Promise<JSONWebKeySet | 'unchanged'>;

let fetchAgent: Agent | undefined;
/** One small pool for every key-set fetch (they are rare); idle sockets do not hold the process. */
function agent(): Agent {
  return (fetchAgent ??= new Agent({ connections: 4, keepAliveTimeout: 10_000 }));
}

function parseKeySet(text: string, where: string): JSONWebKeySet {
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    throw new Error(`${where}: not JSON`);
  }
  if (value === null || typeof value !== 'object' || !Array.isArray((value as { keys?: unknown }).keys)) throw new Error(`${where}: not a JSON Web Key Set (no "keys" array)`);
  return value as JSONWebKeySet;
}

function urlLoad(config: z.output<typeof urlSourceSchema>): Load {
  return async () => {
    const where = config.url;
    const res = await request(config.url, {
      dispatcher: agent(),
      headers: { accept: 'application/jwk-set+json, application/json' },
      signal: AbortSignal.timeout(config.timeout),
    });
    if (res.statusCode !== 200) {
      res.body.destroy();
      throw new Error(`${where} answered ${res.statusCode}`);
    }
    const chunks: Buffer[] = [];
    let length = 0;
    for await (const chunk of res.body as AsyncIterable<Buffer>) {
      length += chunk.length;
      if (length > config.maxSize) {
        res.body.destroy();
        throw new Error(`${where}: key set larger than ${config.maxSize} bytes`);
      }
      chunks.push(chunk);
    }
    return parseKeySet(Buffer.concat(chunks).toString('utf8'), where);
  };
}

function fileLoad(config: z.output<typeof fileSourceSchema>, baseDir: string): Load {
  const path = isAbsolute(config.file) ? config.file : resolve(baseDir, config.file);
  let seen = '';
  return async () => {
    const s = await stat(path);
    const version = `${s.size}:${s.mtimeMs}:${s.ino}`;
    if (version === seen) return 'unchanged';
    if (s.size > config.maxSize) throw new Error(`${path}: key set larger than ${config.maxSize} bytes`);
    const set = parseKeySet(await readFile(path, 'utf8'), path);
    seen = version;
    return set;
  };
}

/** A key set kept fresh as the header says; `key` is what jose's jwtVerify asks for a token's key. */
export class KeySource {
  private keys: LocalJWKSet | undefined;
  private fetchedAt = -Infinity;
  private triedAt = -Infinity;
  private lastError = 'not fetched yet';
  private inFlight: Promise<void> | undefined;
  private readonly load: Load;
  private readonly refreshMs: number;
  private readonly cooldownMs: number;
  private readonly now: () => number;
  /** The URL or file, for logs. */
  readonly where: string;

  constructor(
    config: JwksConfig,
    options: { baseDir?: string; now?: () => number } = {},
  ) {
    this.now = options.now ?? (() => performance.now());
    if ('url' in config) {
      this.load = urlLoad(config);
      this.cooldownMs = config.cooldown;
      this.where = config.url;
    } else {
      this.load = fileLoad(config, options.baseDir ?? process.cwd());
      // A file costs a stat to look at: an unknown key id looks again once the refresh is due.
      this.cooldownMs = config.refresh;
      this.where = config.file;
    }
    this.refreshMs = config.refresh;
  }

  /** Fetches the set now (one fetch at a time; callers share it). Never throws: a failure is kept in lastError. */
  private refresh(log: Logger): Promise<void> {
    this.inFlight ??= (async () => {
      this.triedAt = this.now();
      try {
        const set = await this.load();
        if (set !== 'unchanged') {
          this.keys = createLocalJWKSet(set);
          log.info({ jwks: this.where, keys: set.keys.length }, 'jwt: key set loaded');
        }
        this.fetchedAt = this.now();
      } catch (err) {
        this.lastError = err instanceof Error ? err.message : String(err);
        log.warn({ jwks: this.where, err: this.lastError, keptKeys: this.keys !== undefined }, 'jwt: key set fetch failed');
      } finally {
        this.inFlight = undefined;
      }
    })();
    return this.inFlight;
  }

  /** The key for a token's header; throws KeysUnavailableError, or jose's errors (no matching key). */
  async key(header: JWSHeaderParameters, token: FlattenedJWSInput, log: Logger): Promise<CryptoKey> {
    const now = this.now();
    if (!this.keys) {
      if (now - this.triedAt >= EMPTY_RETRY_MS) await this.refresh(log);
      else if (this.inFlight) await this.inFlight;
      if (!this.keys) throw new KeysUnavailableError(this.lastError);
    } else if (now - this.fetchedAt >= this.refreshMs && now - this.triedAt >= Math.min(this.cooldownMs, this.refreshMs)) {
      void this.refresh(log);
    }
    const keys = this.keys;
    try {
      return await keys(header, token);
    } catch (err) {
      if (!(err instanceof errors.JWKSNoMatchingKey) || this.now() - this.triedAt < this.cooldownMs) throw err;
      await this.refresh(log);
      return (this.keys ?? keys)(header, token);
    }
  }
}

import { createHash, createPrivateKey, KeyObject, randomBytes, webcrypto, X509Certificate } from 'node:crypto';
import { chmod, mkdir, readdir, readFile, rename, rm, stat, writeFile } from 'node:fs/promises';
import { hostname, userInfo } from 'node:os';
import { isIP } from 'node:net';
import { join, resolve } from 'node:path';
import { TlsConfigError } from './errors.ts';
import { defaultDataDir } from './data-dir.ts';
import { normalizeName } from './names.ts';
import { parseKeyPair, readPemFile, type KeyPair } from './pem.ts';

// The local development CA (`issuer: internal`, like Caddy's `tls internal`): a root made once
// and kept, an intermediate signed by it, and short-lived leaf certificates for the names asked.
// Trusting the root once (see `switchyard ca`) makes every leaf trusted, and a leaf's key never
// lives long enough to matter if it leaks.
//
// Layout under the data folder (folders 0700, files 0600):
//   pki/local/root.crt, root.key                 10 years
//   pki/local/intermediate.crt, intermediate.key 7 days, replaced at 2/3 of its life
//   pki/local/leaves/<id>.crt (leaf + intermediate), <id>.key

export const ROOT_LIFETIME_MS = 10 * 365 * 24 * 3_600_000;
export const INTERMEDIATE_LIFETIME_MS = 7 * 24 * 3_600_000;
export const DEFAULT_LEAF_LIFETIME_MS = 24 * 3_600_000;
/** A certificate is renewed once this share of its lifetime has passed. */
export const RENEW_AT_FRACTION = 2 / 3;
/** Names every internal leaf carries, so `https://localhost` and `https://127.0.0.1` always work. */
export const LOCAL_NAMES = ['localhost', '127.0.0.1', '::1'];
/** Bounds: names in one certificate, and leaves kept in memory. */
export const MAX_NAMES_PER_LEAF = 100;
export const MAX_CACHED_LEAVES = 256;
/** Leaves are dated back this much, for clients whose clocks run a little behind. */
const BACKDATE_MS = 60_000;

const EC = { name: 'ECDSA', namedCurve: 'P-256' } as const;
const SIGN = { name: 'ECDSA', hash: 'SHA-256' } as const;

export interface InternalCaOptions {
  /** Data folder (default: see defaultDataDir). The CA lives in `<dataDir>/pki/local`. */
  dataDir?: string;
  /** Clock (ms since the epoch); tests move it. */
  now?: () => number;
  /** Lifetime of issued leaves (default 24 h; at least 1 s, for tests of renewal). */
  leafLifetimeMs?: number;
}

interface Authority {
  cert: X509Certificate;
  pem: string;
  key: webcrypto.CryptoKey;
}

type X509Lib = typeof import('@peculiar/x509');

/** When a certificate of this lifetime should be replaced. */
export function renewalTime(notBefore: Date, notAfter: Date, fraction = RENEW_AT_FRACTION): number {
  return notBefore.getTime() + (notAfter.getTime() - notBefore.getTime()) * fraction;
}

/**
 * When a leaf of this CA is due for renewal: 2/3 of the lifetime it was issued with, counted from
 * when it was issued (its notBefore is back-dated, which must not count as life already spent).
 */
export function leafRenewalTime(pair: { notBefore: Date; notAfter: Date }): number {
  return renewalTime(new Date(pair.notBefore.getTime() + BACKDATE_MS), pair.notAfter);
}

/** Lower-cased, deduplicated, `localhost`/loopback added, sorted; refuses what is not a host name or IP. */
export function leafNames(names: string[]): string[] {
  const out = new Set<string>();
  for (const raw of [...names, ...LOCAL_NAMES]) {
    const n = normalizeName(raw);
    if (!isIP(n) && !/^(\*\.)?([a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)(\.[a-z0-9_]([a-z0-9_-]{0,61}[a-z0-9_])?)*$/.test(n)) {
      throw new TlsConfigError('SWITCHYARD_TLS_CA', `cannot issue a certificate for ${JSON.stringify(raw)}: not a host name, *.wildcard or IP address`);
    }
    out.add(n);
  }
  if (out.size > MAX_NAMES_PER_LEAF) {
    throw new TlsConfigError('SWITCHYARD_TLS_CA', `cannot issue a certificate for ${out.size} names; at most ${MAX_NAMES_PER_LEAF}`);
  }
  return [...out].sort();
}

export class InternalCA {
  readonly dataDir: string;
  readonly dir: string;
  readonly rootCertFile: string;
  private readonly now: () => number;
  private readonly leafLifetimeMs: number;
  private readonly leaves = new Map<string, KeyPair>();
  private intermediate!: Authority;
  private issuing: Promise<unknown> = Promise.resolve();

  private constructor(
    private readonly lib: X509Lib,
    readonly root: Authority,
    /** Whether this open() made the root (the user has to trust it now). */
    readonly created: boolean,
    options: InternalCaOptions,
  ) {
    this.dataDir = resolve(options.dataDir ?? defaultDataDir());
    this.dir = join(this.dataDir, 'pki', 'local');
    this.rootCertFile = join(this.dir, 'root.crt');
    this.now = options.now ?? Date.now;
    this.leafLifetimeMs = Math.max(1000, options.leafLifetimeMs ?? DEFAULT_LEAF_LIFETIME_MS);
  }

  /** The root certificate in PEM, the one clients are to trust. */
  get rootCertPem(): string {
    return this.root.pem;
  }

  /** Opens the CA in its data folder, making the root and intermediate the first time. */
  static async open(options: InternalCaOptions = {}): Promise<InternalCA> {
    const { x509 } = await import('./x509-lib.ts');
    const dataDir = resolve(options.dataDir ?? defaultDataDir());
    const dir = join(dataDir, 'pki', 'local');
    const now = options.now ?? Date.now;
    await privateFolder(dataDir);
    await privateFolder(join(dataDir, 'pki'));

    let created = false;
    if (!(await exists(join(dir, 'root.crt')))) created = await createAuthority(x509, dir, now);
    const root = await loadAuthority(dir, 'root', now);
    const ca = new InternalCA(x509, root, created, { ...options, dataDir });
    ca.intermediate = await loadAuthority(dir, 'intermediate', now).catch((err: unknown) => {
      // A missing or expired intermediate is made anew; the root is what users trust, not it.
      if (err instanceof TlsConfigError && (err.code === 'SWITCHYARD_TLS_FILE_MISSING' || err.code === 'SWITCHYARD_TLS_CERT_EXPIRED')) return undefined;
      throw err;
    }) as Authority;
    if (!ca.intermediate || !ca.intermediate.cert.verify(root.cert.publicKey)) await ca.renewIntermediate();
    await privateFolder(join(dir, 'leaves'));
    return ca;
  }

  /**
   * A certificate for `names` (plus localhost, 127.0.0.1 and ::1): the one in memory or on disk
   * while it is within the first 2/3 of its life, else a new one.
   */
  async leaf(names: string[]): Promise<KeyPair> {
    const all = leafNames(names);
    const id = createHash('sha256').update(all.join(',')).digest('hex').slice(0, 24);
    const cached = this.leaves.get(id) ?? (await this.loadLeaf(id, all));
    if (cached && this.now() < leafRenewalTime(cached)) {
      this.remember(id, cached);
      return cached;
    }
    return this.issue(names);
  }

  /** A new certificate for `names` (plus the local names), kept in memory and on disk. */
  issue(names: string[]): Promise<KeyPair> {
    const all = leafNames(names);
    // One at a time: an intermediate renewal must not run twice, and the files of a leaf are
    // written by one writer.
    const run = this.issuing.then(() => this.issueNow(all));
    this.issuing = run.catch(() => undefined);
    return run;
  }

  private async issueNow(names: string[]): Promise<KeyPair> {
    const x509 = this.lib;
    const now = this.now();
    if (now >= renewalTime(new Date(this.intermediate.cert.validFrom), new Date(this.intermediate.cert.validTo))) {
      await this.renewIntermediate();
    }
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const issuer = new x509.X509Certificate(this.intermediate.pem);
    const notBefore = new Date(now - BACKDATE_MS);
    // Never past the intermediate: a leaf outliving its issuer would fail verification.
    const notAfter = new Date(Math.min(now + this.leafLifetimeMs, new Date(this.intermediate.cert.validTo).getTime()));
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=${names.find((n) => !isIP(n) && n !== 'localhost') ?? names[0]}`,
      issuer: issuer.subject,
      notBefore,
      notAfter,
      publicKey: keys.publicKey as CryptoKey,
      signingKey: this.intermediate.key as CryptoKey,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(false, undefined, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
        new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth]),
        new x509.SubjectAlternativeNameExtension(names.map((n) => (isIP(n) ? { type: 'ip' as const, value: n } : { type: 'dns' as const, value: n }))),
        await x509.AuthorityKeyIdentifierExtension.create(issuer.publicKey),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
      ],
    });
    const certPem = `${cert.toString('pem')}\n${this.intermediate.pem}`;
    const keyPem = keyToPem(keys.privateKey);
    const id = createHash('sha256').update(names.join(',')).digest('hex').slice(0, 24);
    await writePrivate(join(this.dir, 'leaves', `${id}.key`), keyPem);
    await writePrivate(join(this.dir, 'leaves', `${id}.crt`), certPem);
    const pair = parseKeyPair(certPem, keyPem, {
      now: () => now,
      certFile: join(this.dir, 'leaves', `${id}.crt`),
      keyFile: join(this.dir, 'leaves', `${id}.key`),
    });
    this.remember(id, pair);
    return pair;
  }

  private remember(id: string, pair: KeyPair): void {
    this.leaves.delete(id);
    this.leaves.set(id, pair);
    if (this.leaves.size > MAX_CACHED_LEAVES) this.leaves.delete(this.leaves.keys().next().value as string);
  }

  /** A leaf left on disk by an earlier run, if it is whole, ours and for exactly these names. */
  private async loadLeaf(id: string, names: string[]): Promise<KeyPair | undefined> {
    try {
      const certFile = join(this.dir, 'leaves', `${id}.crt`);
      const keyFile = join(this.dir, 'leaves', `${id}.key`);
      const pair = parseKeyPair(await readPemFile(certFile, 'cert', false), await readPemFile(keyFile, 'key', true), {
        now: this.now,
        certFile,
        keyFile,
      });
      const top = pair.chain[pair.chain.length - 1];
      if (!top.verify(this.root.cert.publicKey)) return undefined;
      if ([...pair.names].sort().join(',') !== names.join(',')) return undefined;
      return pair;
    } catch {
      // Missing, expired, from another root: a new one is issued, which replaces the files.
      return undefined;
    }
  }

  private async renewIntermediate(): Promise<void> {
    const x509 = this.lib;
    const now = this.now();
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const root = new x509.X509Certificate(this.root.pem);
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: serial(),
      subject: `CN=Switchyard Local Authority - ECC Intermediate, O=${orgName()}`,
      issuer: root.subject,
      notBefore: new Date(now - BACKDATE_MS),
      notAfter: new Date(Math.min(now + INTERMEDIATE_LIFETIME_MS, new Date(this.root.cert.validTo).getTime())),
      publicKey: keys.publicKey as CryptoKey,
      signingKey: this.root.key as CryptoKey,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(true, 0, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.AuthorityKeyIdentifierExtension.create(root.publicKey),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
      ],
    });
    const pem = cert.toString('pem') + '\n';
    await writePrivate(join(this.dir, 'intermediate.key'), keyToPem(keys.privateKey));
    await writePrivate(join(this.dir, 'intermediate.crt'), pem);
    this.intermediate = { cert: new X509Certificate(pem), pem, key: keys.privateKey };
  }

  /** Removes leaf files whose certificate has expired (they are never served again). */
  async pruneLeaves(): Promise<number> {
    let removed = 0;
    const dir = join(this.dir, 'leaves');
    for (const name of await readdir(dir).catch(() => [] as string[])) {
      if (!name.endsWith('.crt')) continue;
      try {
        const cert = new X509Certificate(await readFile(join(dir, name)));
        if (new Date(cert.validTo).getTime() >= this.now()) continue;
      } catch {
        // unreadable or not a certificate: ours to clean up as well
      }
      await rm(join(dir, name), { force: true });
      await rm(join(dir, name.replace(/\.crt$/, '.key')), { force: true });
      removed++;
    }
    return removed;
  }
}

/** Makes root and intermediate in a fresh folder, then renames it into place: two processes starting at once end with one CA. */
async function createAuthority(x509: X509Lib, dir: string, now: () => number): Promise<boolean> {
  const tmp = `${dir}.tmp-${process.pid}-${randomBytes(4).toString('hex')}`;
  await mkdir(tmp, { mode: 0o700 });
  try {
    const keys = (await webcrypto.subtle.generateKey(EC, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair;
    const t = now();
    const name = `CN=Switchyard Local Authority - ${new Date(t).getUTCFullYear()} ECC Root, O=${orgName()}`;
    const cert = await x509.X509CertificateGenerator.createSelfSigned({
      serialNumber: serial(),
      name,
      notBefore: new Date(t - BACKDATE_MS),
      notAfter: new Date(t + ROOT_LIFETIME_MS),
      keys: keys as CryptoKeyPair,
      signingAlgorithm: SIGN,
      extensions: [
        new x509.BasicConstraintsExtension(true, 1, true),
        new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
        await x509.SubjectKeyIdentifierExtension.create(keys.publicKey as CryptoKey),
      ],
    });
    await writePrivate(join(tmp, 'root.key'), keyToPem(keys.privateKey));
    await writePrivate(join(tmp, 'root.crt'), cert.toString('pem') + '\n');
    try {
      await rename(tmp, dir);
      return true;
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOTEMPTY' || code === 'EEXIST') return false; // another process won
      throw caError(`cannot create ${dir}`, err);
    }
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
}

async function loadAuthority(dir: string, which: 'root' | 'intermediate', now: () => number): Promise<Authority> {
  const certFile = join(dir, `${which}.crt`);
  const keyFile = join(dir, `${which}.key`);
  const pair = parseKeyPair(await readPemFile(certFile, 'cert', false), await readPemFile(keyFile, 'key', true), { now, certFile, keyFile });
  const der = createPrivateKey(pair.keyPem).export({ type: 'pkcs8', format: 'der' });
  const key = await webcrypto.subtle.importKey('pkcs8', der, EC, false, ['sign']);
  return { cert: pair.leaf, pem: pair.certPem, key };
}

/** A folder only its owner can enter; a looser one we made earlier (or the user did) is tightened. */
async function privateFolder(dir: string): Promise<void> {
  try {
    await mkdir(dir, { recursive: true, mode: 0o700 });
    const st = await stat(dir);
    if (!st.isDirectory()) throw new Error('not a folder');
    if (process.platform !== 'win32' && (st.mode & 0o077) !== 0 && st.uid === process.getuid?.()) await chmod(dir, 0o700);
  } catch (err) {
    throw caError(`cannot use ${dir} as the CA's data folder`, err);
  }
}

/** Writes a file 0600 under a temporary name and renames it over the old one: readers never see half a key. */
async function writePrivate(file: string, data: string): Promise<void> {
  const tmp = `${file}.tmp-${randomBytes(4).toString('hex')}`;
  try {
    await writeFile(tmp, data, { mode: 0o600, flag: 'wx' });
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw caError(`cannot write ${file}`, err);
  }
}

function caError(what: string, err: unknown): TlsConfigError {
  return new TlsConfigError('SWITCHYARD_TLS_CA', `${what}: ${(err as Error).message}`, undefined, 'dataDir', { cause: err });
}

async function exists(file: string): Promise<boolean> {
  return stat(file).then(
    () => true,
    () => false,
  );
}

function keyToPem(key: webcrypto.CryptoKey): string {
  return KeyObject.from(key).export({ type: 'pkcs8', format: 'pem' }) as string;
}

/** 16 random bytes with the top bit clear: positive, as RFC 5280 wants, and unguessable. */
function serial(): string {
  const b = randomBytes(16);
  b[0] &= 0x7f;
  if (b[0] === 0) b[0] = 1;
  return b.toString('hex');
}

/** Whose CA this is, in trust stores that list many: user and host. */
function orgName(): string {
  let user = 'user';
  try {
    user = userInfo().username;
  } catch {
    // no passwd entry (a container's random uid)
  }
  return `Switchyard development CA ${user}@${hostname()}`.replace(/[,=+<>#;\\"]/g, '');
}

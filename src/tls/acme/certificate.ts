import { createHash, X509Certificate } from 'node:crypto';

// A certificate as the issuer hands it over and the storage keeps it: its key and chain (PEM)
// together in one blob, so that a reader never sees a key of one and the chain of another.

export interface IssuedCertificate {
  /** The names it was ordered for, as given. */
  names: string[];
  /** The private key (PEM, PKCS#8, EC P-256). */
  key: string;
  /** Leaf first, then the intermediates (PEM). */
  chain: string;
  notBefore: Date;
  notAfter: Date;
}

interface StoredForm {
  v: 1;
  names: string[];
  key: string;
  chain: string;
}

/** Validity of the first certificate of a PEM chain. */
export function chainValidity(chain: string): { notBefore: Date; notAfter: Date } {
  const leaf = new X509Certificate(chain);
  return { notBefore: new Date(leaf.validFrom), notAfter: new Date(leaf.validTo) };
}

export function toStored(cert: IssuedCertificate): string {
  return JSON.stringify({ v: 1, names: cert.names, key: cert.key, chain: cert.chain } satisfies StoredForm);
}

/** The certificate kept in `blob`; throws when it is not one (damaged, or of a later version). */
export function fromStored(blob: Buffer): IssuedCertificate {
  const v = JSON.parse(blob.toString('utf8')) as Partial<StoredForm>;
  if (v.v !== 1 || !Array.isArray(v.names) || typeof v.key !== 'string' || typeof v.chain !== 'string') {
    throw new Error('not a stored ACME certificate');
  }
  return { names: v.names.map(String), key: v.key, chain: v.chain, ...chainValidity(v.chain) };
}

/** The names, lower case, without duplicates, sorted: one set of names is one certificate. */
export function normaliseNames(names: readonly string[]): string[] {
  return [...new Set(names.map((n) => n.toLowerCase().replace(/\.$/, '')))].sort();
}

/** A storage-name-safe id for a set of names: the first name and a hash of them all. */
export function namesId(names: readonly string[]): string {
  const sorted = normaliseNames(names);
  const hash = createHash('sha256').update(sorted.join(',')).digest('hex').slice(0, 12);
  return `${sorted[0].slice(0, 100)}-${hash}`;
}

/** A storage-name-safe id for a directory URL: its host and a hash of the URL. */
export function directoryId(url: string): string {
  const host = new URL(url).host.replace(/[^A-Za-z0-9.-]/g, '_');
  return `${host}-${createHash('sha256').update(url).digest('hex').slice(0, 8)}`;
}

import { z } from 'zod';
import { isAbsolute, resolve } from 'node:path';
import { duration } from '../config/units.ts';
import { CertificateStore, DEFAULT_RELOAD_DEBOUNCE_MS, type TlsEvent } from './store.ts';
import { InternalCA } from './ca.ts';
import { DEFAULT_SESSION_TIMEOUT_MS, DEFAULT_TICKET_KEY_ROTATION_MS } from './security.ts';

// The `tls:` block of a listener, for the listener schema to import:
//
//   tls:
//     certificates:                    # from files; SNI picks by the names in each certificate
//       - { cert: ./certs/example.pem, key: ./certs/example.key }
//       - { cert: ./certs/wild.pem, key: ./certs/wild.key, passphrase: "...", default: true }
//     issuer: internal                 # or a leaf from the local CA for these names
//     names: [app.test, "*.app.test"]  #   (localhost, 127.0.0.1 and ::1 are always added)
//     minVersion: TLSv1.2
//     alpn: [h2, http/1.1]             # default: what the listener speaks
//     sessionTimeout: 5m
//     sessionTickets: true
//     ticketKeyRotation: 1h
//     reload: { watch: true, debounce: 250ms }
//     clientAuth:                      # client certificates (mTLS)
//       ca: ./certs/clients-ca.pem     #   PEM file(s) of the CAs client certificates chain to
//       mode: require                  #   or request (asked for, requests go on without)
//
// Certificates and an issuer may be combined: files win for the names they have, and the first
// file (or the one marked default) is what clients without SNI get. ACME adds its own `issuer`
// value next to `internal` (src/tls/acme/).

const tlsVersion = z.enum(['TLSv1.2', 'TLSv1.3']);

export const certificateFilesSchema = z
  .object({
    /** PEM: the certificate first, then its intermediates. */
    cert: z.string().min(1),
    /** PEM private key, mode 0600 (or stricter). */
    key: z.string().min(1),
    /** For an encrypted key. */
    passphrase: z.string().min(1).optional(),
    /** Served to clients without SNI or with an unknown name (default: the first listed). */
    default: z.boolean().optional(),
  })
  .strict();

/** Client certificates (mTLS): docs/tls.md, "Client certificates (mTLS)". */
export const clientAuthSchema = z
  .object({
    /** PEM file(s) of the CAs (roots or intermediates) a client certificate must chain to. */
    ca: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(100)]),
    /** `require`: no valid certificate, no handshake. `request`: asked for; requests go on without one, marked unverified. */
    mode: z.enum(['require', 'request']).default('require'),
  })
  .strict();

export const tlsConfigSchema = z
  .object({
    certificates: z.array(certificateFilesSchema).max(1000).optional(),
    issuer: z.literal('internal').optional(),
    /** Names of the internal issuer's certificate. */
    names: z.array(z.string().min(1).max(253)).max(100).optional(),
    minVersion: tlsVersion.default('TLSv1.2'),
    maxVersion: tlsVersion.optional(),
    /** OpenSSL cipher list for TLS 1.2 (default: Node's, see docs/tls.md). */
    ciphers: z.string().min(1).optional(),
    alpn: z.array(z.string().min(1).max(255)).min(1).max(16).optional(),
    sessionTimeout: duration().default(DEFAULT_SESSION_TIMEOUT_MS),
    sessionTickets: z.boolean().default(true),
    ticketKeyRotation: duration().default(DEFAULT_TICKET_KEY_ROTATION_MS),
    reload: z
      .object({
        watch: z.boolean().default(true),
        debounce: duration().default(DEFAULT_RELOAD_DEBOUNCE_MS),
      })
      .strict()
      .default({ watch: true, debounce: DEFAULT_RELOAD_DEBOUNCE_MS }),
    clientAuth: clientAuthSchema.optional(),
  })
  .strict()
  .superRefine((tls, ctx) => {
    if (!tls.certificates?.length && !tls.issuer) {
      ctx.addIssue({ code: 'custom', path: ['certificates'], message: 'give certificates (cert and key files) or an issuer (internal)' });
    }
    if (tls.names && !tls.issuer) {
      ctx.addIssue({ code: 'custom', path: ['names'], message: 'names are for an issuer; a certificate from files serves the names it has' });
    }
    const defaults = (tls.certificates ?? []).flatMap((c, i) => (c.default ? [i] : []));
    for (const i of defaults.slice(1)) {
      ctx.addIssue({ code: 'custom', path: ['certificates', i, 'default'], message: `only one certificate can be the default (certificates[${defaults[0]}] is)` });
    }
    if (tls.maxVersion && tls.maxVersion < tls.minVersion) {
      ctx.addIssue({ code: 'custom', path: ['maxVersion'], message: `must not be below minVersion (${tls.minVersion})` });
    }
    if (tls.ticketKeyRotation < 1000) {
      ctx.addIssue({ code: 'custom', path: ['ticketKeyRotation'], message: 'expected at least 1s' });
    }
  });

export type TlsConfig = z.output<typeof tlsConfigSchema>;
export type TlsConfigInput = z.input<typeof tlsConfigSchema>;

export interface CreateStoreOptions {
  /** Relative cert/key paths are resolved against this (the config file's folder). */
  baseDir?: string;
  /** ALPN when the config gives none (the listener's protocols, e.g. ['h2', 'http/1.1']). */
  alpn?: string[];
  /** The local CA's data folder (default: see defaultDataDir). */
  dataDir?: string;
  /** An already open CA, shared by the listeners of one daemon. */
  ca?: InternalCA;
  onEvent?: (event: TlsEvent) => void;
  now?: () => number;
}

/**
 * A CertificateStore from a listener's parsed `tls:` block. Errors are TlsConfigError; map
 * `err.entry` and `err.field` to `tls.certificates[entry].field` for the config path.
 */
export async function createCertificateStore(config: TlsConfig, options: CreateStoreOptions = {}): Promise<CertificateStore> {
  const base = options.baseDir ?? process.cwd();
  const at = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  const ca = config.issuer === 'internal' ? (options.ca ?? (await InternalCA.open({ dataDir: options.dataDir, now: options.now }))) : undefined;
  return CertificateStore.create({
    certificates: config.certificates?.map((c) => ({ ...c, cert: at(c.cert), key: at(c.key) })),
    internal: ca ? { ca, names: config.names ?? [] } : undefined,
    minVersion: config.minVersion,
    maxVersion: config.maxVersion,
    ciphers: config.ciphers,
    alpn: config.alpn ?? options.alpn,
    sessionTimeoutMs: config.sessionTimeout,
    sessionTickets: config.sessionTickets,
    ticketKeyRotationMs: config.ticketKeyRotation,
    watch: config.reload.watch,
    debounceMs: config.reload.debounce,
    onEvent: options.onEvent,
    now: options.now,
    clientAuth: config.clientAuth
      ? { ca: (Array.isArray(config.clientAuth.ca) ? config.clientAuth.ca : [config.clientAuth.ca]).map(at), mode: config.clientAuth.mode }
      : undefined,
  });
}

/** `tls.certificates[1].key` (relative to the listener) for an error from createCertificateStore. */
export function tlsErrorPath(err: { entry?: number; field?: string }): string {
  if (err.field === 'dataDir') return 'tls.issuer';
  if (err.field === 'ca') return 'tls.clientAuth.ca';
  if (err.entry === undefined) return 'tls';
  return `tls.certificates[${err.entry}]${err.field ? `.${err.field}` : ''}`;
}

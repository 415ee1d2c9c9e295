import tls, { type ConnectionOptions, type SecureContext } from 'node:tls';
import { isIP } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { isTlsConfigError, loadKeyPair, readPemFile } from '../tls/index.ts';
import type { TargetAddress } from './target.ts';

// TLS to upstreams: a group's `tls:` block and the one client context every connection of the
// group to an https:// or tls:// target is made with (the proxy's pools, its WebSocket
// connections, tcp-proxy, the active health checks), so that all of them trust, name and
// present the same things.
//
//   upstreams:
//     api:
//       targets: [https://10.0.0.5:8443, https://10.0.0.6:8443]
//       tls:
//         ca: ./certs/internal-ca.pem        # or a list; trusted besides Node's bundled roots
//         servername: api.internal           # SNI and the name the certificate must carry
//         cert: ./certs/gateway.pem          # a client certificate, for upstreams that ask
//         key: ./certs/gateway.key           #   (0600, like a listener's keys)
//         minVersion: TLSv1.2
//         # insecure: true                   # no verification at all (warned about at start)
//
// The block only configures TLS; what turns it on is the target's scheme: https:// (HTTP groups)
// or tls://host:port (L4 groups: tcp-proxy and tcp health checks then speak TLS to the target).

const tlsVersion = z.enum(['TLSv1.2', 'TLSv1.3']);

export const upstreamTlsSchema = z
  .strictObject({
    /** PEM file(s) of CAs trusted in addition to Node's bundled roots. */
    ca: z.union([z.string().min(1), z.array(z.string().min(1)).min(1).max(100)]).optional(),
    /** SNI sent, and the name the upstream's certificate is verified against (default: the target's host name; none for an IP). */
    servername: z.string().min(1).max(253).optional(),
    /** Skip verification of the upstream's certificate (logged as a warning at start). */
    insecure: z.boolean().default(false),
    /** A client certificate (PEM, leaf first) for upstreams that require one... */
    cert: z.string().min(1).optional(),
    /** ...and its private key (mode 0600 or stricter). */
    key: z.string().min(1).optional(),
    /** For an encrypted key. */
    passphrase: z.string().min(1).optional(),
    minVersion: tlsVersion.default('TLSv1.2'),
  })
  .superRefine((t, ctx) => {
    if (t.cert !== undefined && t.key === undefined) ctx.addIssue({ code: 'custom', path: ['key'], message: 'a client cert needs its key' });
    if (t.key !== undefined && t.cert === undefined) ctx.addIssue({ code: 'custom', path: ['cert'], message: 'a client key needs its cert' });
    if (t.passphrase !== undefined && t.key === undefined) ctx.addIssue({ code: 'custom', path: ['passphrase'], message: 'passphrase is for an encrypted client key' });
    if (t.insecure && t.ca !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['insecure'], message: 'insecure skips verification, so ca would do nothing; give one or the other' });
    }
    if (t.servername !== undefined && isIP(t.servername)) {
      ctx.addIssue({ code: 'custom', path: ['servername'], message: 'expected a host name (SNI cannot carry an IP address; an IP target is verified against its IP without one)' });
    }
  });

export type UpstreamTlsConfig = z.output<typeof upstreamTlsSchema>;

/** A file of a group's `tls:` block could not be used; `field` is `tls.ca`, `tls.cert`, `tls.key`... */
export class UpstreamTlsError extends Error {
  readonly code = 'SWITCHYARD_UPSTREAM_TLS_CONFIG';
  constructor(
    /** Path inside the group: `tls.ca`, `tls.ca[1]`, `tls.key`, `tls.passphrase`. */
    readonly field: string,
    message: string,
    options?: { cause?: unknown },
  ) {
    super(message, options);
    this.name = 'UpstreamTlsError';
  }
}

/** The client side of TLS to a group's targets, built once per group. */
export class UpstreamTls {
  private constructor(
    /** Undefined without a `tls:` block: Node's defaults (bundled roots, no client certificate). */
    readonly secureContext: SecureContext | undefined,
    readonly config: UpstreamTlsConfig | undefined,
  ) {}

  /** Reads and checks the block's files (relative paths against `baseDir`). Throws UpstreamTlsError. */
  static async load(config: UpstreamTlsConfig | undefined, baseDir = process.cwd()): Promise<UpstreamTls> {
    if (!config) return UpstreamTls.none();
    const at = (p: string) => (isAbsolute(p) ? p : resolve(baseDir, p));
    const cas = config.ca === undefined ? [] : Array.isArray(config.ca) ? config.ca : [config.ca];
    const extra: string[] = [];
    for (const [i, file] of cas.entries()) {
      const field = Array.isArray(config.ca) ? `tls.ca[${i}]` : 'tls.ca';
      let pem: string;
      try {
        pem = await readPemFile(at(file), 'cert', false);
      } catch (err) {
        throw new UpstreamTlsError(field, isTlsConfigError(err) ? err.message : String(err), { cause: err });
      }
      const blocks = pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
      if (blocks.length === 0) throw new UpstreamTlsError(field, `${at(file)}: no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)`);
      extra.push(...blocks);
    }
    let pair: { certPem: string; keyPem: string; passphrase?: string } | undefined;
    if (config.cert !== undefined && config.key !== undefined) {
      try {
        pair = await loadKeyPair({ cert: at(config.cert), key: at(config.key), passphrase: config.passphrase });
      } catch (err) {
        const field = isTlsConfigError(err) && err.field ? `tls.${err.field}` : 'tls.cert';
        throw new UpstreamTlsError(field, err instanceof Error ? err.message : String(err), { cause: err });
      }
    }
    let secureContext: SecureContext;
    try {
      secureContext = tls.createSecureContext({
        // Giving `ca` replaces Node's roots: keep them, and add the block's.
        ca: extra.length > 0 ? [...tls.rootCertificates, ...extra] : undefined,
        cert: pair?.certPem,
        key: pair?.keyPem,
        passphrase: pair?.passphrase,
        minVersion: config.minVersion,
      });
    } catch (err) {
      throw new UpstreamTlsError(extra.length > 0 ? 'tls.ca' : 'tls', `cannot be used: ${(err as Error).message}`, { cause: err });
    }
    return new UpstreamTls(secureContext, config);
  }

  /** Node's defaults: for a group without a `tls:` block. */
  static none(): UpstreamTls {
    return new UpstreamTls(undefined, undefined);
  }

  get insecure(): boolean {
    return this.config?.insecure === true;
  }

  /** SNI (and the verified name) for a target: `servername`, else its host name; undefined for an IP. */
  servername(t: Pick<TargetAddress, 'host'>): string | undefined {
    return this.config?.servername ?? (isIP(t.host) ? undefined : t.host);
  }

  /** Options for tls.connect (or https.request, or undici's connector) to a target. */
  options(t: Pick<TargetAddress, 'host'>): ConnectionOptions {
    const servername = this.servername(t);
    const o: ConnectionOptions = { rejectUnauthorized: !this.insecure };
    if (this.secureContext) o.secureContext = this.secureContext;
    // Node verifies the certificate against servername when there is one, else against the host.
    if (servername !== undefined) o.servername = servername;
    return o;
  }
}

// OpenSSL's certificate verification results, as Node reports them in `err.code`.
const VERIFY_CODES = new Set([
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_CRL',
  'UNABLE_TO_DECRYPT_CERT_SIGNATURE',
  'UNABLE_TO_DECRYPT_CRL_SIGNATURE',
  'UNABLE_TO_DECODE_ISSUER_PUBLIC_KEY',
  'CERT_SIGNATURE_FAILURE',
  'CRL_SIGNATURE_FAILURE',
  'CERT_NOT_YET_VALID',
  'CERT_HAS_EXPIRED',
  'CRL_NOT_YET_VALID',
  'CRL_HAS_EXPIRED',
  'ERROR_IN_CERT_NOT_BEFORE_FIELD',
  'ERROR_IN_CERT_NOT_AFTER_FIELD',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'CERT_CHAIN_TOO_LONG',
  'CERT_REVOKED',
  'INVALID_CA',
  'PATH_LENGTH_EXCEEDED',
  'INVALID_PURPOSE',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'HOSTNAME_MISMATCH',
]);

/** True for a TLS failure (verification, a handshake alert, a protocol error) rather than a socket one. */
export function isTlsError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== 'string') return false;
  return VERIFY_CODES.has(code) || code.startsWith('ERR_TLS_') || code.startsWith('ERR_SSL_') || code === 'EPROTO';
}

/** A TLS failure in a few words for logs and health check reasons: `TLS: CERT_HAS_EXPIRED (certificate has expired)`. */
export function describeTlsError(err: unknown): string {
  const e = err as { code?: unknown; message?: string; reason?: string };
  const detail = e.reason ?? e.message ?? String(err);
  return typeof e.code === 'string' ? `TLS: ${e.code} (${detail})` : `TLS: ${detail}`;
}

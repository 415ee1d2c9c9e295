import { z } from 'zod';
import { tlsConfigSchema, type TlsConfig } from '../tls/config.ts';
import { acmeConfigSchema, type AcmeConfig } from '../tls/acme/config.ts';
import { explainIssue, humanError } from './errors.ts';

// A listener's `tls:` block: certificates from files or the local CA (src/tls/config.ts), or
// certificates ordered over ACME (`issuer: acme`, src/tls/acme/config.ts). The issuer picks the
// schema, so each kind's errors name their own fields instead of a union's "Invalid input".

const tlsVersion = z.enum(['TLSv1.2', 'TLSv1.3']);

/** `issuer: acme` plus the handshake settings every TLS listener has. */
export const acmeListenerTlsSchema = acmeConfigSchema.extend({
  minVersion: tlsVersion.default('TLSv1.2'),
  maxVersion: tlsVersion.optional(),
  /** OpenSSL cipher list for TLS 1.2 (default: Node's). */
  ciphers: z.string().min(1).optional(),
});

export type AcmeListenerTls = z.output<typeof acmeListenerTlsSchema>;
export type ListenerTlsConfig = TlsConfig | AcmeListenerTls;

export function isAcmeTls(config: ListenerTlsConfig): config is AcmeListenerTls & AcmeConfig {
  return config.issuer === 'acme';
}

export const listenerTlsSchema = () =>
  z.unknown().transform((value, ctx): ListenerTlsConfig => {
    const acme = typeof value === 'object' && value !== null && (value as { issuer?: unknown }).issuer === 'acme';
    const parsed = (acme ? acmeListenerTlsSchema : tlsConfigSchema).safeParse(value, { error: humanError });
    if (!parsed.success) {
      for (const issue of parsed.error.issues.flatMap(explainIssue)) ctx.addIssue({ code: 'custom', path: issue.path, message: issue.message });
      return z.NEVER;
    }
    return parsed.data;
  });

import { z } from 'zod';
import { duration } from '../../config/units.ts';

// `tls: { issuer: acme, ... }` on a listener: certificates ordered over ACME (RFC 8555).

/** Directory URLs that may be named instead of written out. */
export const ACME_DIRECTORIES = {
  letsencrypt: 'https://acme-v02.api.letsencrypt.org/directory',
  'letsencrypt-staging': 'https://acme-staging-v02.api.letsencrypt.org/directory',
} as const;

export const CHALLENGE_TYPES = ['tls-alpn-01', 'http-01'] as const;
export type ChallengeType = (typeof CHALLENGE_TYPES)[number];

/** A DNS name a certificate can be ordered for by HTTP-01 or TLS-ALPN-01 (no wildcard, no IP). */
const DNS_NAME = /^(?=.{1,253}$)(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)*[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?$/;

const directory = z
  .string()
  .transform((v, ctx) => {
    const named = (ACME_DIRECTORIES as Record<string, string>)[v];
    const url = named ?? v;
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      ctx.addIssue({ code: 'custom', message: `expected an https:// directory URL or one of: ${Object.keys(ACME_DIRECTORIES).join(', ')}; got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    if (parsed.protocol !== 'https:') {
      ctx.addIssue({ code: 'custom', message: `an ACME directory is served over https (RFC 8555 section 6.1), got ${JSON.stringify(v)}` });
      return z.NEVER;
    }
    return parsed.toString();
  });

export const acmeConfigSchema = z
  .strictObject({
    issuer: z.literal('acme'),
    /** Contact for the ACME account (expiry notices from the CA). */
    email: z.email().optional(),
    /** The CA's directory URL, or `letsencrypt` / `letsencrypt-staging`. */
    directory: directory.default(ACME_DIRECTORIES.letsencrypt),
    /**
     * A PEM file of CA certificates to trust for the directory's own HTTPS, besides the system's
     * (a test CA such as pebble's). Only for requests to the directory's origin.
     */
    directoryCa: z.string().min(1).optional(),
    /** Agreeing to the CA's terms of service is needed to open an account. */
    termsOfServiceAgreed: z.boolean().default(true),
    /** External account binding (RFC 8555 section 7.3.4), for CAs that require one. */
    externalAccountBinding: z.strictObject({ kid: z.string().min(1), hmacKey: z.string().min(1) }).optional(),
    /** Names to order certificates for; when absent the listener's own names are used. */
    names: z
      .array(z.string().toLowerCase().regex(DNS_NAME, 'expected a DNS name (no wildcard, no IP address: HTTP-01 and TLS-ALPN-01 cannot prove those)'))
      .min(1)
      .max(100)
      .optional(),
    /** Challenge types to answer, most preferred first. */
    challenges: z.array(z.enum(CHALLENGE_TYPES)).min(1).default(['tls-alpn-01', 'http-01']),
    /** Share of a certificate's lifetime after which it is renewed. */
    renewAt: z.number().gt(0).lt(1).default(2 / 3),
    /** Backoff after a failed order: doubling from min up to max, with jitter. */
    retry: z
      .strictObject({
        min: duration().pipe(z.number().min(1000, 'retry.min must be at least 1s')).default(60_000),
        max: duration().default(6 * 3_600_000),
      })
      .refine((r) => r.max >= r.min, 'retry.max must not be below retry.min')
      .default({ min: 60_000, max: 6 * 3_600_000 }),
    /** How long one daemon's claim to order a certificate holds (several daemons on one storage). */
    lockTtl: duration().pipe(z.number().min(10_000, 'lockTtl must be at least 10s')).default(10 * 60_000),
  });

export type AcmeConfig = z.output<typeof acmeConfigSchema>;
export type AcmeConfigInput = z.input<typeof acmeConfigSchema>;

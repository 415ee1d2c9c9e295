import { z } from 'zod';
import { parseHostPort } from './address.ts';
import { duration, size } from './units.ts';
import { tlsConfigSchema } from '../tls/config.ts';
import type { HandlerConfigOutput } from './schema.ts';

// The `protocol: quic` listener (docs/quic.md): a stream handler on every bidirectional stream
// of every QUIC connection, e.g.
//
//   - name: echo-quic
//     protocol: quic
//     address: 127.0.0.1:7443
//     tls: { issuer: internal }
//     alpn: [echo]
//     limits: { maxConnections: 1000, maxStreams: { bidi: 100 }, idleTimeout: 30s }
//     handler: { type: echo }

/** Limits of a quic listener; each bounds memory or time. */
export const quicLimitsSchema = z.strictObject({
  /** Connections at once; more are refused (CONNECTION_REFUSED) during their handshake. */
  maxConnections: z.number().int().positive().max(1_000_000).default(10_000),
  /** Streams a client may have open at once on one connection, per kind. */
  maxStreams: z
    .strictObject({
      /** Bidirectional streams (each goes to the handler). */
      bidi: z.number().int().min(1).max(10_000).default(100),
      /** Unidirectional streams from the client (each goes to the handler, which can only read it); 0 refuses them. */
      uni: z.number().int().min(0).max(10_000).default(0),
    })
    .default({ bidi: 100, uni: 0 }),
  /** A connection with no packet either way for this long is closed (QUIC's idle timeout). */
  idleTimeout: duration().default(30_000),
  /** A connection whose handshake has not completed after this long is dropped. */
  handshakeTimeout: duration().default(10_000),
  /** Receive window of one stream at the start; quiche grows it (up to 16 MiB) for a fast reader. */
  maxStreamData: size().default(1024 * 1024),
  /** Receive window of one connection at the start (all its streams); grows up to 24 MiB. */
  maxConnectionData: size().default(10 * 1024 * 1024),
  /**
   * Largest UDP payload sent. 1350 bytes crosses any path without fragmenting; on loopback or a
   * network known to carry jumbo datagrams, up to 65507 moves bulk data with far fewer packets.
   */
  maxUdpPayload: z.number().int().min(1200).max(65_507).default(1350),
});

export type QuicLimitsConfig = z.output<typeof quicLimitsSchema>;

const ALPN_TOKEN = /^[\x21-\x7e]{1,255}$/;

/** The quic listener's schema, given the handler schema of the registered modules (schema.ts). */
export const quicListenerSchema = <H extends z.ZodType<HandlerConfigOutput, unknown>>(handler: H) =>
  z
    .strictObject({
      name: z.string().min(1),
      protocol: z.literal('quic'),
      /** UDP `host:port`; port 0 picks a free port (the banner and address() tell which). */
      address: z.string().refine((v) => parseHostPort(v) !== undefined, {
        message: 'expected "host:port" (e.g. "127.0.0.1:7443" or "[::1]:7443"; port 0 picks a free port)',
      }),
      /**
       * The certificate (required: QUIC is always TLS 1.3): files or the local CA (`issuer:
       * internal`), as on tls listeners (docs/tls.md). One certificate is served to every client
       * (no SNI selection); ALPN is the listener's `alpn`, client certificates are not asked for.
       */
      tls: tlsConfigSchema,
      /** Application protocols offered (ALPN), in preference order; a client offering none of them is refused. Default: the handler's type (`echo`). */
      alpn: z.array(z.string().regex(ALPN_TOKEN, 'an ALPN protocol id is 1 to 255 printable ASCII characters')).min(1).max(16).optional(),
      limits: quicLimitsSchema.default(quicLimitsSchema.parse({})),
      /**
       * Stateless retry: a new client first gets a token tied to its address and must come back
       * with it (one more round trip) before the server keeps any state, so spoofed Initial
       * floods cost the server nothing. Off by default.
       */
      retry: z.boolean().default(false),
      /**
       * Accept 0-RTT data from clients resuming an earlier session. Early data can be replayed by
       * an attacker: only for handlers whose requests are safe to repeat. Off by default.
       */
      earlyData: z.boolean().default(false),
      /** Let a client move to a new address or port mid-connection (connection migration). */
      migration: z.boolean().default(true),
      handler,
    })
    .superRefine((l, ctx) => {
      if (l.tls.alpn) ctx.addIssue({ code: 'custom', path: ['tls', 'alpn'], message: 'a quic listener offers the protocols in its own `alpn` field; set them there' });
      if (l.tls.clientAuth) ctx.addIssue({ code: 'custom', path: ['tls', 'clientAuth'], message: 'client certificates are not available on quic listeners' });
      if ((l.tls.certificates?.length ?? 0) > 1) {
        ctx.addIssue({ code: 'custom', path: ['tls', 'certificates'], message: 'a quic listener serves one certificate (no SNI selection over QUIC here): give one' });
      }
      if (l.tls.minVersion === 'TLSv1.2' && l.tls.maxVersion === 'TLSv1.2') {
        ctx.addIssue({ code: 'custom', path: ['tls', 'maxVersion'], message: 'QUIC is TLS 1.3 only' });
      }
    });

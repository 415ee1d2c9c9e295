import { constants, randomBytes } from 'node:crypto';
import tls from 'node:tls';

// The protocol settings every Switchyard TLS server shares, whatever its certificates.
//
// Ciphers: Node's default list (tls.DEFAULT_CIPHERS), which is OpenSSL's TLS 1.3 suites followed
// by ECDHE with AES-GCM and ChaCha20-Poly1305 for TLS 1.2, with no CBC-SHA1, RC4, 3DES or export
// suites, and it follows Node's security releases; a list of our own would only age. The server's
// order wins (honorCipherOrder), so a client preferring a weaker suite still gets the strong one.

export type TlsVersion = 'TLSv1.2' | 'TLSv1.3';

export const DEFAULT_MIN_VERSION: TlsVersion = 'TLSv1.2';
/** How long a session (ID or ticket) may be resumed: Node's and OpenSSL's 300 s. */
export const DEFAULT_SESSION_TIMEOUT_MS = 300_000;
/** New session-ticket key this often; a short-lived key limits what a stolen key decrypts. */
export const DEFAULT_TICKET_KEY_ROTATION_MS = 3_600_000;

export interface TlsSecurityOptions {
  /** Lowest protocol accepted (default TLSv1.2). */
  minVersion?: TlsVersion;
  /** Highest protocol offered (default: the highest Node supports, TLSv1.3). */
  maxVersion?: TlsVersion;
  /** OpenSSL cipher list for TLS <= 1.2 (default: Node's tls.DEFAULT_CIPHERS, see above). */
  ciphers?: string;
  /** ALPN protocols in preference order, e.g. ['h2', 'http/1.1']; the listener knows what it speaks. */
  alpn?: string[];
  /** How long a session may be resumed (default 300 s). */
  sessionTimeoutMs?: number;
  /** Session tickets (RFC 5077 / TLS 1.3 PSK) on or off (default on). */
  sessionTickets?: boolean;
  /** How often the ticket key is replaced (default 1 h). */
  ticketKeyRotationMs?: number;
}

/** Options every SecureContext of a store gets (default and SNI ones alike). */
export function contextSecurityOptions(options: TlsSecurityOptions): tls.SecureContextOptions {
  if (options.minVersion && options.maxVersion && options.minVersion > options.maxVersion) {
    throw new RangeError(`TLS minVersion ${options.minVersion} is above maxVersion ${options.maxVersion}`);
  }
  return {
    minVersion: options.minVersion ?? DEFAULT_MIN_VERSION,
    maxVersion: options.maxVersion,
    ciphers: options.ciphers ?? tls.DEFAULT_CIPHERS,
    honorCipherOrder: true,
    // Whole seconds for OpenSSL; a timeout under a second would be 0, "no resumption at all".
    sessionTimeout: Math.max(1, Math.round((options.sessionTimeoutMs ?? DEFAULT_SESSION_TIMEOUT_MS) / 1000)),
    secureOptions: options.sessionTickets === false ? constants.SSL_OP_NO_TICKET : undefined,
  };
}

/** 48 random bytes: 16 key name, 16 HMAC secret, 16 AES key, as tls.Server#setTicketKeys wants. */
export function newTicketKeys(): Buffer {
  return randomBytes(48);
}

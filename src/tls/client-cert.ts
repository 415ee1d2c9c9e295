import { X509Certificate } from 'node:crypto';
import type { Socket } from 'node:net';
import type { TLSSocket } from 'node:tls';
import { TlsConfigError } from './errors.ts';
import { readPemFile } from './pem.ts';

// Client certificates (mTLS): the CA files a listener checks them against (`tls.clientAuth`), and
// what a request knows of the certificate its connection presented. The identity is read once
// per connection (a TLS 1.3 connection cannot renegotiate, and we never ask a 1.2 one to), so
// routing on it and passing it upstream cost a WeakMap lookup per request.

export type ClientAuthMode = 'require' | 'request';

export interface ClientAuthOptions {
  /** PEM files with the CAs (roots or intermediates) client certificates must chain to. */
  ca: string[];
  /**
   * `require`: the handshake fails without a certificate that verifies against `ca`.
   * `request`: one is asked for; a connection without one, or with one that does not verify,
   * goes on, and its requests see `verified: false`.
   */
  mode: ClientAuthMode;
}

/** The client certificate of a connection, as routes, middleware and the proxy see it. */
export interface ClientCertificate {
  /** Verified against the listener's `clientAuth.ca` (chain, dates, purpose). */
  readonly verified: boolean;
  /** Why it did not verify (OpenSSL's code, e.g. `UNABLE_TO_GET_ISSUER_CERT_LOCALLY`); undefined when verified. */
  readonly error: string | undefined;
  /** The subject in RFC 2253 form, most specific first: `CN=alice,O=Example\, Inc,C=US`. */
  readonly subject: string;
  /** The issuer, in the same form. */
  readonly issuer: string;
  /** URI subjectAltNames (SPIFFE IDs and the like), in certificate order. */
  readonly uris: readonly string[];
  /** DNS subjectAltNames, in certificate order. */
  readonly dns: readonly string[];
  /** SHA-256 of the certificate (DER), lower-case hex without colons (Envoy's XFCC `Hash`). */
  readonly fingerprint256: string;
  /** Serial number, upper-case hex as Node prints it. */
  readonly serialNumber: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
}

const CERT_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/**
 * Reads and checks the `clientAuth.ca` files: each must hold at least one PEM certificate that
 * parses. Returns the certificates as PEM blocks (Node's `ca` option). Throws TlsConfigError
 * with `field: 'ca'`.
 */
export async function loadClientCa(files: string[]): Promise<string[]> {
  const blocks: string[] = [];
  for (const file of files) {
    const pem = await readPemFile(file, 'ca', false);
    const found = pem.match(CERT_BLOCK) ?? [];
    if (found.length === 0) {
      throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', 'no PEM certificate in it (expected -----BEGIN CERTIFICATE-----)', file, 'ca');
    }
    for (const [i, block] of found.entries()) {
      try {
        new X509Certificate(block);
      } catch (err) {
        throw new TlsConfigError('SWITCHYARD_TLS_NOT_PEM', `certificate ${i + 1} in it does not parse (${(err as Error).message})`, file, 'ca', { cause: err });
      }
      blocks.push(block);
    }
  }
  return blocks;
}

/** Node's multi-line subject (DER order, values already RFC 2253-escaped) as one RFC 2253 string. */
function rfc2253(name: string): string {
  return name.split('\n').filter((l) => l !== '').reverse().join(',');
}

/** Node's subjectAltName text: `DNS:a, URI:"x, y"` (values with specials are JSON-quoted). */
export function parseSubjectAltName(text: string | undefined): { uris: string[]; dns: string[] } {
  const uris: string[] = [];
  const dns: string[] = [];
  if (!text) return { uris, dns };
  let i = 0;
  while (i < text.length) {
    const colon = text.indexOf(':', i);
    if (colon === -1) break;
    const type = text.slice(i, colon);
    i = colon + 1;
    let value: string;
    if (text[i] === '"') {
      let j = i + 1;
      while (j < text.length && text[j] !== '"') j += text[j] === '\\' ? 2 : 1;
      try {
        value = JSON.parse(text.slice(i, j + 1)) as string;
      } catch {
        value = text.slice(i + 1, j);
      }
      i = j + 1;
    } else {
      const end = text.indexOf(', ', i);
      value = end === -1 ? text.slice(i) : text.slice(i, end);
      i = end === -1 ? text.length : end;
    }
    if (text.startsWith(', ', i)) i += 2;
    if (type === 'URI') uris.push(value);
    else if (type === 'DNS') dns.push(value);
  }
  return { uris, dns };
}

/** What a certificate says, checked or not (`verified` and `error` given by the caller). */
export function describeClientCertificate(cert: X509Certificate, verified: boolean, error?: string): ClientCertificate {
  const san = parseSubjectAltName(cert.subjectAltName);
  return {
    verified,
    error: verified ? undefined : (error ?? 'not verified'),
    subject: rfc2253(cert.subject),
    issuer: rfc2253(cert.issuer),
    uris: san.uris,
    dns: san.dns,
    fingerprint256: cert.fingerprint256.replaceAll(':', '').toLowerCase(),
    serialNumber: cert.serialNumber,
    notBefore: new Date(cert.validFrom),
    notAfter: new Date(cert.validTo),
  };
}

const cache = new WeakMap<object, ClientCertificate | null>();

/**
 * The client certificate of the connection `socket` (a request's `req.socket`): undefined on a
 * plain connection, a TLS one without client certificate, or a listener that asks for none.
 * `verified` is false for a certificate that did not verify (clientAuth mode `request`).
 */
export function clientCertificate(socket: Socket | TLSSocket): ClientCertificate | undefined {
  const known = cache.get(socket);
  if (known !== undefined) return known ?? undefined;
  const tlsSocket = socket as TLSSocket;
  let found: ClientCertificate | null = null;
  if (tlsSocket.encrypted && typeof tlsSocket.getPeerX509Certificate === 'function') {
    const cert = tlsSocket.getPeerX509Certificate();
    if (cert) {
      const err = tlsSocket.authorizationError as (Error & { code?: string }) | string | null | undefined;
      const error = err === null || err === undefined ? undefined : typeof err === 'string' ? err : (err.code ?? err.message);
      found = describeClientCertificate(cert, tlsSocket.authorized === true, error);
    }
  }
  cache.set(socket, found);
  return found ?? undefined;
}

/** A fingerprint as users write it (`AB:CD:...` as openssl/Node print it, or plain hex) in the form of `fingerprint256`. */
export function normalizeFingerprint(value: string): string {
  return value.replaceAll(':', '').toLowerCase();
}

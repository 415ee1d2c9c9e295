import type { TlsSource } from '../tls/source.ts';
import type { QuicCertificate } from '../quic/endpoint.ts';

// The certificate an http listener's QUIC endpoint presents: the one its TLS server presents to
// clients without SNI (the store's default pair: files or the local CA). Read for each new
// connection, so renewals and reloads of the files reach HTTP/3 as they reach TCP.

function pem(value: unknown): string | undefined {
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  if (Array.isArray(value) && value.length > 0) return pem(value[0]);
  return undefined;
}

/** The listener's default certificate and key as PEM; throws when its TLS source has none to give. */
export function quicCertificate(source: TlsSource): QuicCertificate {
  const o = source.serverOptions();
  const cert = pem(o.cert);
  const key = pem(o.key);
  if (cert === undefined || key === undefined) throw new Error('http3: the listener has no default certificate to present over QUIC');
  return typeof o.passphrase === 'string' ? { cert, key, passphrase: o.passphrase } : { cert, key };
}

import type { TlsSource } from '../tls/source.ts';
import { QuicError } from './errors.ts';
import type { QuicCertificate } from './endpoint.ts';

// A listener's certificates (src/tls: files or the local CA) as the QUIC endpoint takes them:
// read again for each new connection, so a reload or a renewed internal leaf serves the next
// handshake. quiche serves one certificate per endpoint: the default one (what TLS clients
// without SNI get); SNI selection among several is not available over QUIC here.

type PemInput = string | Buffer | (string | Buffer | { pem: string | Buffer })[] | undefined;

function pemOf(value: PemInput): string | undefined {
  if (value === undefined) return undefined;
  if (typeof value === 'string') return value;
  if (Buffer.isBuffer(value)) return value.toString('utf8');
  const first = value[0];
  if (first === undefined) return undefined;
  if (typeof first === 'string' || Buffer.isBuffer(first)) return pemOf(first);
  return pemOf(first.pem);
}

/** The certificate supplier for listenQuic() from a listener's TlsSource (ListenerTls.source). */
export function certificateFromTls(source: TlsSource): () => QuicCertificate {
  return () => {
    const o = source.serverOptions();
    const cert = pemOf(o.cert as PemInput);
    const key = pemOf(o.key as PemInput);
    if (!cert || !key) throw new QuicError('QUIC_CONFIG_INVALID', 'the TLS settings give no certificate and key in PEM form');
    return { cert, key, passphrase: typeof o.passphrase === 'string' ? o.passphrase : undefined };
  };
}

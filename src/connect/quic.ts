import { connectQuic } from '../quic/client.ts';
import { isQuicError } from '../quic/errors.ts';
import type { QuicStream } from '../quic/stream.ts';
import { ConnectError } from './errors.ts';
import { DEFAULT_CONNECT_TIMEOUT, type StreamConnectOptions } from './stream.ts';

// A byte stream over QUIC (`switchyard connect quic://host:port`): one connection, one
// bidirectional stream on it; the connection is closed when the stream is. Verified like tls://
// (the system's CAs or --ca, the host name or --servername), --insecure skips it.

export interface QuicStreamConnectOptions extends StreamConnectOptions {
  insecure?: boolean;
  /** PEM CA certificate(s) trusted instead of the system's. */
  ca?: Buffer;
  /** The name the certificate is checked against, and SNI (default: the host). */
  servername?: string;
  /** ALPN protocols offered; default `echo` (what a quic listener with the echo handler offers). */
  alpn?: string[];
}

export const DEFAULT_QUIC_ALPN = ['echo'];

export async function connectQuicStream(target: { host: string; port: number }, options: QuicStreamConnectOptions = {}): Promise<QuicStream> {
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const href = `quic://${host}:${target.port}`;
  const alpn = options.alpn && options.alpn.length > 0 ? options.alpn : DEFAULT_QUIC_ALPN;
  let conn;
  try {
    conn = await connectQuic({
      host: target.host,
      port: target.port,
      alpn,
      ca: options.ca?.toString('utf8'),
      insecure: options.insecure,
      serverName: options.servername,
      limits: { handshakeTimeoutMs: options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT },
    });
  } catch (err) {
    throw new ConnectError(href, describeQuicError(err, alpn), { cause: err });
  }
  const stream = conn.openBidi();
  stream.once('close', () => void conn.close(0, ''));
  return stream;
}

function describeQuicError(err: unknown, alpn: string[]): string {
  if (!isQuicError(err)) return (err as Error).message;
  switch (err.code) {
    case 'QUIC_HANDSHAKE_TIMEOUT':
      return 'no QUIC answer (nothing listening on that UDP port, or packets dropped)';
    case 'QUIC_ALPN_MISMATCH':
      return `the server speaks none of ${alpn.join(', ')} (give its protocol with --alpn)`;
    case 'QUIC_CERTIFICATE_UNTRUSTED':
      return `TLS: ${err.message} (trust its CA with --ca, or skip the check with --insecure)`;
    default:
      return err.message;
  }
}

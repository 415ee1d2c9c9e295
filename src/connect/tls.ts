import { connect, type TLSSocket } from 'node:tls';
import { isIP } from 'node:net';
import { ConnectError, describeNetError } from './errors.ts';
import { DEFAULT_CONNECT_TIMEOUT, type StreamConnectOptions } from './stream.ts';

// A raw byte stream over TLS (`switchyard connect tls://host:port`): tcp with a handshake first.
// Verified against Node's CAs and the host name (or --servername), --ca trusts a PEM file's CAs
// instead, --insecure skips verification; the connection counts as made once the handshake is.

export interface TlsConnectOptions extends StreamConnectOptions {
  /** Skip verification of the server's certificate. */
  insecure?: boolean;
  /** PEM CA certificate(s) trusted instead of Node's. */
  ca?: Buffer;
  /** SNI and the name the certificate is verified against (default: the host, when not an IP). */
  servername?: string;
  /** ALPN protocols offered. */
  alpn?: string[];
}

export function connectTlsStream(target: { host: string; port: number }, options: TlsConnectOptions = {}): Promise<TLSSocket> {
  const { connectTimeout = DEFAULT_CONNECT_TIMEOUT } = options;
  const host = target.host.includes(':') ? `[${target.host}]` : target.host;
  const href = `tls://${host}:${target.port}`;
  const servername = options.servername ?? (isIP(target.host) ? undefined : target.host);
  return new Promise((resolve, reject) => {
    const socket = connect({
      host: target.host,
      port: target.port,
      servername,
      ca: options.ca,
      rejectUnauthorized: options.insecure !== true,
      ALPNProtocols: options.alpn,
    });
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new ConnectError(href, describeNetError({ code: 'ETIMEDOUT' }, connectTimeout)));
    }, connectTimeout);
    const onError = (err: Error) => {
      clearTimeout(timer);
      socket.destroy();
      reject(new ConnectError(href, describeNetError(err, connectTimeout), { cause: err }));
    };
    socket.once('error', onError);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      socket.off('error', onError);
      socket.setNoDelay(true);
      resolve(socket);
    });
  });
}

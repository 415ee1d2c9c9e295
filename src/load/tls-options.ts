import { isIP } from 'node:net';
import type { ConnectionOptions } from 'node:tls';
import type { LoadOptions } from './options.ts';

/** The TLS client options of every https:// and wss:// connection (SNI only for names). */
export function tlsConnectOptions(o: LoadOptions, alpn: readonly string[]): ConnectionOptions {
  return {
    host: o.target.host,
    port: o.target.port,
    servername: isIP(o.target.host) ? undefined : o.target.host,
    rejectUnauthorized: !o.tls.insecure,
    ca: o.tls.ca,
    ALPNProtocols: [...alpn],
  };
}

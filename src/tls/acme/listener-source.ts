import type { SecureContext, Server, TlsOptions } from 'node:tls';
import { contextSecurityOptions, type TlsVersion } from '../security.ts';
import type { TlsSource } from '../source.ts';
import type { CertificateManager } from './manager.ts';

// A TLS listener whose certificates are ordered over ACME: each handshake gets the certificate
// the manager holds for its SNI name (renewals reach new handshakes at once, since the context
// is looked up every time). A name without a certificate yet, or a client without SNI, gets no
// certificate and its handshake fails; that is how Caddy behaves until the first order is in.

export interface AcmeSourceOptions {
  readonly manager: CertificateManager;
  readonly alpn?: string[];
  readonly minVersion: TlsVersion;
  readonly maxVersion?: TlsVersion;
  readonly ciphers?: string;
}

export class AcmeTlsSource implements TlsSource {
  constructor(private readonly options: AcmeSourceOptions) {}

  serverOptions(): TlsOptions {
    const { manager } = this.options;
    return {
      ...contextSecurityOptions({ minVersion: this.options.minVersion, maxVersion: this.options.maxVersion, ciphers: this.options.ciphers }),
      ALPNProtocols: this.options.alpn,
      SNICallback: (servername: string, cb: (err: Error | null, ctx?: SecureContext) => void) => cb(null, manager.contextFor(servername)),
    };
  }

  attach(_server: Server): void {
    // Nothing to push: every handshake asks the manager.
  }

  close(): void {
    void this.options.manager.close();
  }
}

import type { Server, TlsOptions } from 'node:tls';

/**
 * Where a TLS listener's certificates come from, as the listener sees it: options for its server
 * (the default certificate, SNICallback, ALPN, versions), a way to reach the server later
 * (reloads, renewals, ticket keys), and an end. CertificateStore (files, the local CA) and the
 * ACME source are the two kinds.
 */
export interface TlsSource {
  serverOptions(): TlsOptions;
  attach(server: Server): void;
  close(): void;
}

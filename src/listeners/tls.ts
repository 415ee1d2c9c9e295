import type { Socket } from 'node:net';
import type { Server as TlsServer, TLSSocket } from 'node:tls';
import type { Logger } from 'pino';
import type { TlsSource } from '../tls/source.ts';
import type { Metrics } from '../observe/metrics.ts';

// What every TLS listener (https, tls over tcp or unix) does the same way around its server: the
// certificate store reaches it (reloads, renewals, ticket rotation), and a failed handshake is
// one debug line with the client's address and the reason, and one count; it never takes more
// than its own connection. A client speaking plain HTTP to the port is one of those: its
// handshake fails at once and the connection is closed, it does not hang.

/** The TLS side of a listener: its certificates, given by the yard (which owns config errors). */
export interface ListenerTls {
  /** Files and the local CA (CertificateStore), or ACME. */
  readonly source: TlsSource;
  /** The local CA's root, when the certificates come from it (for the banner's curl line). */
  readonly rootCertFile?: string;
  /** ACME with TLS-ALPN-01: looks at a raw connection's ClientHello and answers a validation. */
  readonly alpnChallenges?: (socket: Socket) => Promise<'answered' | 'pass' | 'closed'>;
}

/** Reasons are error codes (a small set), so the metric's label values stay bounded. */
function reasonOf(err: Error & { code?: string }): string {
  const code = err.code ?? '';
  return /^[A-Z0-9_]{1,64}$/.test(code) ? code : 'other';
}

/** Attaches the store and the handshake-failure accounting to a TLS server of listener `name`. */
export function watchHandshakes(server: TlsServer, tls: ListenerTls, name: string, metrics: Metrics, log: Logger): void {
  tls.source.attach(server);
  if (tls.alpnChallenges) answerAlpnChallenges(server, tls.alpnChallenges);
  server.on('tlsClientError', (err: Error & { code?: string }, socket: TLSSocket | Socket) => {
    const reason = reasonOf(err);
    metrics.tlsHandshakeFailures.labels(name, reason).inc();
    log.debug({ listener: name, remote: socket.remoteAddress, reason, err: err.message }, 'tls handshake failed');
    socket.destroy();
  });
}

/**
 * Puts a look at each ClientHello in front of a TLS server: an ACME TLS-ALPN-01 validation
 * (ALPN acme-tls/1 for a name with an order under way) is answered with the challenge
 * certificate; every other connection goes on to the server untouched, its bytes put back.
 * Only listeners whose certificates come from ACME with tls-alpn-01 pay for the look.
 */
export function answerAlpnChallenges(server: TlsServer, peek: (socket: Socket) => Promise<'answered' | 'pass' | 'closed'>): void {
  const handshakes = server.listeners('connection') as ((socket: Socket) => void)[];
  server.removeAllListeners('connection');
  server.on('connection', (socket: Socket) => {
    socket.on('error', () => socket.destroy());
    void peek(socket).then((outcome) => {
      if (outcome === 'pass') for (const h of handshakes) h.call(server, socket);
    });
  });
}

import { createPrivateKey } from 'node:crypto';
import { QuicError } from './errors.ts';
import { quiche, type QuicheConfig } from './native.ts';

// The transport's limits and quiche's Config built from them, one place for both sides.

/** Limits of one QUIC endpoint; every one bounds memory or time. */
export interface QuicLimits {
  /** Connections at once (server); more are refused with CONNECTION_REFUSED. */
  maxConnections: number;
  /** Bidirectional streams the peer may have open at once per connection. */
  maxStreamsBidi: number;
  /** Unidirectional streams the peer may have open at once per connection (HTTP/3 needs 3). */
  maxStreamsUni: number;
  /** Close a connection after this long without a packet (ms); also bounds a silent peer. */
  idleTimeoutMs: number;
  /** Close a connection whose handshake has not completed after this long (ms). */
  handshakeTimeoutMs: number;
  /** Receive window per stream at the start (bytes); quiche grows it up to maxStreamWindow. */
  maxStreamData: number;
  /** Receive window per connection at the start (bytes); grows up to maxConnectionWindow. */
  maxData: number;
  /** Largest receive window of one stream (bytes): what one stream may hold unread. */
  maxStreamWindow: number;
  /** Largest receive window of one connection (bytes). */
  maxConnectionWindow: number;
  /** Largest UDP payload sent (bytes). 1350 fits any path; up to 65527 on loopback. */
  maxUdpPayload: number;
  /** Duplex buffering per stream (bytes) on our side, before write() says wait. */
  streamHighWaterMark: number;
}

export const DEFAULT_LIMITS: QuicLimits = {
  maxConnections: 10_000,
  maxStreamsBidi: 100,
  maxStreamsUni: 100,
  idleTimeoutMs: 30_000,
  handshakeTimeoutMs: 10_000,
  maxStreamData: 1024 * 1024,
  maxData: 10 * 1024 * 1024,
  maxStreamWindow: 16 * 1024 * 1024,
  maxConnectionWindow: 24 * 1024 * 1024,
  maxUdpPayload: 1350,
  streamHighWaterMark: 256 * 1024,
};

export function limitsWith(overrides: Partial<QuicLimits> | undefined): QuicLimits {
  return { ...DEFAULT_LIMITS, ...overrides };
}

/** The most a UDP datagram may carry over IPv4 (and what quiche receives at most). */
export const MAX_UDP_PAYLOAD = 65507;

export interface QuicheConfigInput {
  alpn: readonly string[];
  limits: QuicLimits;
  /** Server: the certificate chain (PEM, leaf first) and its key (PEM; an encrypted key needs `passphrase`). */
  cert?: string;
  key?: string;
  passphrase?: string;
  /** Client: check the server's certificate (chain to `ca`, or the system's roots). */
  verifyPeer: boolean;
  /** PEM CA certificates to trust (client). */
  ca?: string;
  /** Accept 0-RTT early data (server) / allow sending it with a resumed session (client). */
  earlyData: boolean;
  /** Clients may move to a new address (server) / we may move (client). */
  migration: boolean;
}

const ENCODE = new TextEncoder();

export function buildQuicheConfig(input: QuicheConfigInput): QuicheConfig {
  if (input.alpn.length === 0) throw new QuicError('QUIC_CONFIG_INVALID', 'at least one application protocol (ALPN) is needed');
  let key: Uint8Array[] | undefined;
  let cert: Uint8Array[] | undefined;
  if (input.cert && input.key) {
    // quiche cannot open an encrypted key: hand it the key in the clear (it stays in memory only).
    const keyPem = /ENCRYPTED/.test(input.key)
      ? createPrivateKey({ key: input.key, passphrase: input.passphrase }).export({ format: 'pem', type: 'pkcs8' }).toString()
      : input.key;
    key = [ENCODE.encode(keyPem)];
    cert = [ENCODE.encode(input.cert)];
  }
  let config: QuicheConfig;
  try {
    config = quiche.Config.withBoringSslCtx(input.verifyPeer, false, input.ca ? ENCODE.encode(input.ca) : undefined, key, cert, undefined);
  } catch (err) {
    throw new QuicError('QUIC_CONFIG_INVALID', `the TLS settings were refused: ${(err as Error).message}`, { cause: err });
  }
  const l = input.limits;
  config.setApplicationProtos([...input.alpn]);
  config.setMaxIdleTimeout(l.idleTimeoutMs);
  config.setMaxRecvUdpPayloadSize(MAX_UDP_PAYLOAD);
  config.setMaxSendUdpPayloadSize(l.maxUdpPayload);
  config.setInitialMaxData(l.maxData);
  config.setInitialMaxStreamDataBidiLocal(l.maxStreamData);
  config.setInitialMaxStreamDataBidiRemote(l.maxStreamData);
  config.setInitialMaxStreamDataUni(l.maxStreamData);
  config.setInitialMaxStreamsBidi(l.maxStreamsBidi);
  config.setInitialMaxStreamsUni(l.maxStreamsUni);
  config.setMaxStreamWindow(l.maxStreamWindow);
  config.setMaxConnectionWindow(l.maxConnectionWindow);
  config.setDisableActiveMigration(!input.migration);
  config.setActiveConnectionIdLimit(4);
  config.grease(true);
  if (input.earlyData) config.enableEarlyData();
  return config;
}

// QUIC transport (quiche through @matrixai/quic's native binding, driven here): a server
// endpoint, a client, connections and streams as Node Duplexes. docs/quic.md.

export { listenQuic, QuicServer, type QuicServerOptions, type QuicCertificate, type EndpointObserver } from './endpoint.ts';
export { connectQuic, type QuicConnectOptions, type QuicClientConnection } from './client.ts';
export { QuicConnection, type QuicConnectionEvents } from './connection.ts';
export { QuicStream, type StreamKind } from './stream.ts';
export { QuicError, QuicStreamError, isQuicError, type QuicErrorCode, type QuicCloseInfo } from './errors.ts';
export { DEFAULT_LIMITS, type QuicLimits } from './config.ts';
export { certificateFromTls } from './certificate.ts';
export { quicMetricsObserver } from './metrics.ts';

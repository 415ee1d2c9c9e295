// Small clients for every protocol the yard speaks, as `switchyard connect` uses them. Each one
// either connects or fails with a ConnectError whose message is one line for people.

export { parseConnectUrl, socketPath, CONNECT_SCHEMES, type ConnectUrl, type HostScheme, type PathScheme, type WebScheme, type GrpcScheme } from './url.ts';
export { ConnectError, ConnectionLostError, ConnectUsageError, describeNetError, formatDuration } from './errors.ts';
export { DEFAULT_CONNECT_TIMEOUT, type StreamConnectOptions } from './stream.ts';
export { connectTcp } from './tcp.ts';
export { connectTlsStream, type TlsConnectOptions } from './tls.ts';
export type { QuicStreamConnectOptions } from './quic.ts';
import type { QuicStreamConnectOptions } from './quic.ts';
import type { QuicStream } from '../quic/stream.ts';
import { loadQuic } from '../quic/load.ts';

/** connect/quic.ts's connectQuicStream, loading QUIC (quiche's native binding) on first use. */
export async function connectQuicStream(target: { host: string; port: number }, options?: QuicStreamConnectOptions): Promise<QuicStream> {
  const { connectQuicStream: connect } = await loadQuic(() => import('./quic.ts'));
  return connect(target, options);
}
export { connectUnix } from './unix.ts';
export { openUdp, type UdpClient, type UdpClientOptions } from './udp.ts';
export { connectFrames, DEFAULT_CLIENT_MAX_FRAME, type FrameClient, type FrameClientOptions } from './frame.ts';
export { connectWs, type WsConnectOptions } from './ws.ts';
export { httpRequest, formatResponseHead, type HttpRequestOptions, type HttpResponse } from './http.ts';
export { callGrpc, loadGrpcMethod, parseJsonLine, parseJsonMessages, builtinProtoDir, type GrpcCallOptions, type GrpcCallResult, type GrpcMethod } from './grpc.ts';

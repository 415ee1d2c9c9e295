// The WebSocket endpoint handlers build on: limits and lifecycle here, protocol in `ws`.

export { WsEndpoint, type WsEndpointContext } from './endpoint.ts';
export { websocketOptionsSchema, type WebSocketOptions } from './options.ts';
export type { WsPeer } from './peer.ts';

import type { HandlerModule } from '../types.ts';
import { proxySchema, type ProxyConfig } from './config.ts';
import { ProxyHandler } from './handler.ts';

// The `proxy` handler: HTTP/1.1 reverse proxy to an upstream group, WebSocket included.
// Phases and measured choices: handler.ts (order of phases), http.ts (the exchange through
// undici), retry.ts (when a retry is safe), errors.ts (one error type), websocket.ts.

export { proxySchema, type ProxyConfig } from './config.ts';
export { ProxyError, type ProxyErrorCode, type ProxyErrorSource } from './errors.ts';

export const proxyHandler: HandlerModule<ProxyConfig> = {
  type: 'proxy',
  summary: 'reverse proxy to an upstream group (balanced, health-checked, retried, circuit-broken; WebSocket too)',
  schema: proxySchema,
  http: (config, ctx) => {
    const group = ctx.upstream(config.upstream);
    if (group.kind !== 'http') throw new Error(`proxy: upstream "${config.upstream}" has targets without http:// or https://; use tcp-proxy for L4 groups`);
    return new ProxyHandler(group, config);
  },
};

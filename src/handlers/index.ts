import { registerHandler, handlerModule } from './registry.ts';
import { echoHandler } from './echo.ts';
import { respondHandler } from './respond.ts';
import { redirectHandler } from './redirect.ts';
import { metricsHandler } from './metrics.ts';
import { welcomeHandler } from './welcome.ts';
import { staticHandler } from './static/index.ts';
import { fileTcpHandler } from './file-tcp.ts';
import { upstreamsHandler } from './upstreams.ts';
import { adminHandler } from './admin/index.ts';
import { proxyHandler } from './proxy/index.ts';
import { tcpProxyHandler } from './tcp-proxy.ts';
import { sniProxyHandler } from './sni-proxy.ts';
import { udpProxyHandler } from './udp-proxy.ts';
import { frameEchoHandler } from './frame-echo.ts';
import { wsEchoHandler } from './ws-echo.ts';
import { chatHandler } from './chat/index.ts';
import { grpcHandler } from './grpc/index.ts';
import { respHandler } from './resp/index.ts';
import { objectsHandler } from './objects/index.ts';

export { registerHandler, handlerModule, handlerModules } from './registry.ts';
export type * from './types.ts';
export { readBody, BodyTooLargeError, BodyAbortedError } from './http/body.ts';
export { replyError, replyJson, replyText } from './http/reply.ts';
export { echoHandler, respondHandler, redirectHandler, metricsHandler, welcomeHandler, staticHandler, fileTcpHandler, upstreamsHandler, proxyHandler, tcpProxyHandler, sniProxyHandler, udpProxyHandler, wsEchoHandler, frameEchoHandler, chatHandler, grpcHandler, adminHandler, objectsHandler, respHandler };

const BUILTIN = [echoHandler, respondHandler, redirectHandler, metricsHandler, welcomeHandler, staticHandler, fileTcpHandler, upstreamsHandler, proxyHandler, tcpProxyHandler, sniProxyHandler, udpProxyHandler, wsEchoHandler, frameEchoHandler, chatHandler, grpcHandler, adminHandler, objectsHandler, respHandler];

/** Registers the handler modules that ship with Switchyard (once; later calls do nothing). */
export function registerBuiltinHandlers(): void {
  for (const mod of BUILTIN) if (!handlerModule(mod.type)) registerHandler(mod as never);
}

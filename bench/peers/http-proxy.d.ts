// The part of `http-proxy` (1.18, no bundled types) that bench/peers/http-proxy-server.ts uses.
declare module 'http-proxy' {
  import type { Agent, IncomingMessage, ServerResponse } from 'node:http';
  import type { Socket } from 'node:net';

  interface ServerOptions {
    target?: string;
    agent?: Agent;
    xfwd?: boolean;
    changeOrigin?: boolean;
  }

  interface ProxyServer {
    web(req: IncomingMessage, res: ServerResponse, options?: ServerOptions): void;
    on(event: 'error', listener: (err: Error, req: IncomingMessage, res: ServerResponse | Socket) => void): this;
  }

  const httpProxy: { createProxyServer(options?: ServerOptions): ProxyServer };
  export default httpProxy;
}

import type { IncomingMessage, ServerResponse } from 'node:http';
import { Server } from 'node:net';
import type { HttpListener } from '../listeners/http/server.ts';

// An http listener's request path, for requests that arrive on a server of someone else's
// (routes mounted into node:http, express or fastify: src/yard/mount.ts). The listener takes
// every request through the 'request' event of its node:http server, so a request handed to
// that event takes exactly the phases one from its own socket does: pipeline, checks, route,
// 404/405/413, middleware, handler, metrics. The server is the listener's own field (it has no
// public door for this); it is looked up once, and its absence is a clear error, not a silent
// no-op, should the listener ever be built differently.

export function httpRequestSink(listener: HttpListener): (req: IncomingMessage, res: ServerResponse) => void {
  const server = (listener as unknown as { server?: unknown }).server;
  if (!(server instanceof Server)) throw new Error(`listener "${listener.name}": its node:http server cannot be reached to hand it requests`);
  return (req, res) => {
    server.emit('request', req, res);
  };
}

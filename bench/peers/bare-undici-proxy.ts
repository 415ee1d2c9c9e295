// The floor: the least a Node.js HTTP proxy can do. A plain node:http server that forwards each
// request through one undici Pool (keep-alive connections to the upstream) and streams the
// answer back; hop-by-hop headers are dropped both ways, nothing else (no balancing, health,
// retries, breaker, metrics or logs).
// Usage: node --import tsx bench/peers/bare-undici-proxy.ts <port> <upstream-url>
import { createServer, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http';
import { pipeline } from 'node:stream';
import { Pool } from 'undici';

const [portText, upstream] = process.argv.slice(2);
const port = Number(portText);
if (!upstream || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: bare-undici-proxy.ts <port> <upstream-url>\n');
  process.exit(2);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function endToEnd(headers: IncomingHttpHeaders | Record<string, string | string[] | undefined>): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = {};
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined && !HOP_BY_HOP.has(name)) out[name] = v;
  }
  return out;
}

const pool = new Pool(upstream, { connections: 128, pipelining: 1 });

const server = createServer((req, res) => {
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  pool
    .request({
      path: req.url ?? '/',
      method: method as 'GET',
      headers: endToEnd(req.headers) as Record<string, string>,
      body: hasBody ? req : null,
    })
    .then(
      ({ statusCode, headers, body }) => {
        res.writeHead(statusCode, endToEnd(headers));
        pipeline(body, res, () => {});
      },
      () => {
        if (!res.headersSent) res.writeHead(502, { 'content-type': 'text/plain' });
        res.end('bad gateway\n');
      },
    );
});
server.listen(port, '127.0.0.1', () => process.stdout.write(`bare undici proxy on http://127.0.0.1:${port}/ -> ${upstream}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  void pool.destroy();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

// The `http-proxy` peer: http-proxy 1.x on a plain node:http server, forwarding over a keep-alive
// http.Agent (without one, http-proxy opens a new upstream connection per request).
// Usage: node --import tsx bench/peers/http-proxy-server.ts <port> <upstream-url>
import { Agent, createServer, type ServerResponse } from 'node:http';
import httpProxy from 'http-proxy';

const [portText, upstream] = process.argv.slice(2);
const port = Number(portText);
if (!upstream || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: http-proxy-server.ts <port> <upstream-url>\n');
  process.exit(2);
}

// As many idle upstream sockets kept as the benchmark has client connections (and more).
const agent = new Agent({ keepAlive: true, maxSockets: 256, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ target: upstream, agent });
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res) {
    const r = res as ServerResponse;
    if (!r.headersSent) r.writeHead(502, { 'content-type': 'text/plain' });
    r.end('bad gateway\n');
  } else {
    res.destroy();
  }
});

const server = createServer((req, res) => proxy.web(req, res));
server.listen(port, '127.0.0.1', () => process.stdout.write(`http-proxy on http://127.0.0.1:${port}/ -> ${upstream}\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  agent.destroy();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

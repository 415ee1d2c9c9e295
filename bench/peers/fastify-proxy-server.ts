// The `@fastify/http-proxy` peer: the plugin on fastify with its defaults (it forwards through
// @fastify/reply-from, which keeps an undici Pool of keep-alive connections to the upstream).
// Usage: node --import tsx bench/peers/fastify-proxy-server.ts <port> <upstream-url>
import proxy from '@fastify/http-proxy';
import Fastify from 'fastify';

const [portText, upstream] = process.argv.slice(2);
const port = Number(portText);
if (!upstream || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: fastify-proxy-server.ts <port> <upstream-url>\n');
  process.exit(2);
}

// logger off: like the other proxies here, no access log.
const app = Fastify({ logger: false });
await app.register(proxy, { upstream });
await app.listen({ port, host: '127.0.0.1' });
process.stdout.write(`@fastify/http-proxy on http://127.0.0.1:${port}/ -> ${upstream}\n`);
const stop = () => {
  app.close().finally(() => process.exit(0));
  setTimeout(() => process.exit(0), 2_000).unref();
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

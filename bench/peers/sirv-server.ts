// The sirv peer: sirv's request handler on a plain node:http server (keep-alive on, Node's
// defaults otherwise). Usage: node --import tsx bench/peers/sirv-server.ts <root> <port>
import { createServer } from 'node:http';
import sirv from 'sirv';

const [root, portText] = process.argv.slice(2);
const port = Number(portText);
if (!root || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: sirv-server.ts <root> <port>\n');
  process.exit(2);
}

// dev: false is sirv's production mode (the file list is read once at start, as `sirv start` does).
const serve = sirv(root, { dev: false, etag: true });
const server = createServer((req, res) =>
  serve(req, res, () => {
    res.statusCode = 404;
    res.end('not found');
  }),
);
server.listen(port, '127.0.0.1', () => process.stdout.write(`sirv on http://127.0.0.1:${port}/ (root ${root})\n`));
const stop = () => {
  server.close();
  server.closeAllConnections();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

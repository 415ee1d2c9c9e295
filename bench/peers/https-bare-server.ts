// The floor of the tls benchmark: a bare node:https server, HTTP/1.1 over TLS, nothing else: no
// routing table, no logs, no limits beyond node's defaults, no conditional requests or ranges.
// Its TLS settings are the ones Switchyard's listener uses by default (src/tls/security.ts):
// TLS 1.2 minimum, Node's cipher list in the server's order, 300 s session timeout, and session
// tickets off as the benchmark's Switchyard config has them (SSL_OP_NO_TICKET); one certificate,
// no SNI callback; ALPN http/1.1 (Switchyard also offers h2, which neither wrk nor s_time asks
// for); TCP_NODELAY on each connection.
//   /<file>     the one file given, read once at start and sent from a cached Buffer: the least
//               node:https can do per response; the file is not watched for changes
//   anything else: 404
// Usage: node --import tsx bench/peers/https-bare-server.ts <port> <cert.pem> <key.pem> <file>
import { constants } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createServer } from 'node:https';
import { basename } from 'node:path';
import tls from 'node:tls';

const [portText, certPath, keyPath, filePath] = process.argv.slice(2);
const port = Number(portText);
if (!certPath || !keyPath || !filePath || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: https-bare-server.ts <port> <cert.pem> <key.pem> <file>\n');
  process.exit(2);
}

const file = readFileSync(filePath);
const filePathname = `/${basename(filePath)}`;
const fileHead = ['Content-Type', 'application/octet-stream', 'Content-Length', String(file.length)];
const notFound = Buffer.from('not found\n');
const notFoundHead = ['Content-Type', 'text/plain', 'Content-Length', String(notFound.length)];

const server = createServer(
  {
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    // As src/tls/security.ts contextSecurityOptions gives every Switchyard listener by default,
    // with `sessionTickets: false` as in the benchmark's config.
    minVersion: 'TLSv1.2',
    ciphers: tls.DEFAULT_CIPHERS,
    honorCipherOrder: true,
    sessionTimeout: 300,
    secureOptions: constants.SSL_OP_NO_TICKET,
    ALPNProtocols: ['http/1.1'],
    noDelay: true,
  },
  (req: IncomingMessage, res: ServerResponse) => {
    const url = req.url ?? '/';
    const q = url.indexOf('?');
    const path = q === -1 ? url : url.slice(0, q);
    if (path === filePathname && (req.method === 'GET' || req.method === 'HEAD')) {
      res.writeHead(200, fileHead);
      res.end(req.method === 'HEAD' ? undefined : file);
    } else {
      res.writeHead(404, notFoundHead);
      res.end(notFound);
    }
  },
);
// A failed handshake or a client that goes away mid-response must not end the process.
server.on('tlsClientError', (_err, socket) => socket.destroy());
server.on('clientError', (_err, socket) => socket.destroy());

server.listen(port, '127.0.0.1', () => process.stdout.write(`bare node:https on https://127.0.0.1:${port}${filePathname}\n`));
const stop = () => {
  server.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

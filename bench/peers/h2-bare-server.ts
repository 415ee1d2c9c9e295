// The floor of the h2 benchmark: a bare node:http2 secure server on the core API (the 'stream'
// event, no compat request/response objects), HTTP/2 only (ALPN h2), nothing else: no routing
// table, no logs, no limits beyond node's defaults, no conditional requests or ranges.
//   /small      the fixed body given on the command line (text/plain)
//   /<file>     the one file given, read once at start and sent from a cached Buffer: the
//               least node:http2 can do per response (respondWithFD would add a read of the
//               file for each one); the file is not watched for changes
//   anything else: 404
// Usage: node --import tsx bench/peers/h2-bare-server.ts <port> <cert.pem> <key.pem> <file> <small-body>
import { readFileSync } from 'node:fs';
import { constants, createSecureServer, type ServerHttp2Stream } from 'node:http2';
import { basename } from 'node:path';

const [portText, certPath, keyPath, filePath, small] = process.argv.slice(2);
const port = Number(portText);
if (!certPath || !keyPath || !filePath || small === undefined || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: h2-bare-server.ts <port> <cert.pem> <key.pem> <file> <small-body>\n');
  process.exit(2);
}

const { HTTP2_HEADER_STATUS, HTTP2_HEADER_CONTENT_TYPE, HTTP2_HEADER_CONTENT_LENGTH, HTTP2_HEADER_PATH } = constants;
const smallBody = Buffer.from(small);
const file = readFileSync(filePath);
const filePathname = `/${basename(filePath)}`;
const smallHead = { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'text/plain', [HTTP2_HEADER_CONTENT_LENGTH]: smallBody.length };
const fileHead = { [HTTP2_HEADER_STATUS]: 200, [HTTP2_HEADER_CONTENT_TYPE]: 'application/octet-stream', [HTTP2_HEADER_CONTENT_LENGTH]: file.length };
const notFound = Buffer.from('not found\n');
const notFoundHead = { [HTTP2_HEADER_STATUS]: 404, [HTTP2_HEADER_CONTENT_TYPE]: 'text/plain', [HTTP2_HEADER_CONTENT_LENGTH]: notFound.length };

const server = createSecureServer({
  cert: readFileSync(certPath),
  key: readFileSync(keyPath),
  allowHTTP1: false,
  // As Switchyard's listener advertises by default.
  settings: { maxConcurrentStreams: 128 },
});

server.on('stream', (stream: ServerHttp2Stream, headers) => {
  const path = headers[HTTP2_HEADER_PATH];
  const q = typeof path === 'string' ? path.indexOf('?') : -1;
  const p = q === -1 ? path : (path as string).slice(0, q);
  if (p === '/small') {
    stream.respond(smallHead);
    stream.end(smallBody);
  } else if (p === filePathname) {
    stream.respond(fileHead);
    stream.end(file);
  } else {
    stream.respond(notFoundHead);
    stream.end(notFound);
  }
});
// A stream or session error (a client that resets mid-response) must not end the process.
server.on('sessionError', () => {});
server.on('streamError', () => {});

server.listen(port, '127.0.0.1', () => process.stdout.write(`bare node:http2 on https://127.0.0.1:${port}/ (${filePathname}, /small)\n`));
const stop = () => {
  server.close();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

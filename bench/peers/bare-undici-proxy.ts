// The floor: about the least a Node.js HTTP proxy can do per request. A plain node:http server
// that hands each request to one undici Pool (keep-alive connections to the upstream) with a raw
// dispatch handler that writes the answer straight into the ServerResponse: no promise, no
// body stream, no pipeline (undici's `request()` + `pipeline(body, res)` costs about twice as
// much CPU per request here). Hop-by-hop headers are dropped both ways, backpressure and client
// aborts are honoured; nothing else (no balancing, health, retries, breaker, metrics or logs).
// Usage: node --import tsx bench/peers/bare-undici-proxy.ts <port> <upstream-url>
import { createServer, type IncomingHttpHeaders, type ServerResponse } from 'node:http';
import { Pool, type Dispatcher } from 'undici';

const [portText, upstream] = process.argv.slice(2);
const port = Number(portText);
if (!upstream || !Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: bare-undici-proxy.ts <port> <upstream-url>\n');
  process.exit(2);
}

const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'proxy-authenticate', 'proxy-authorization', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

function requestHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in headers) {
    const v = headers[name];
    if (v !== undefined && !HOP_BY_HOP.has(name)) out[name] = v;
  }
  return out;
}

const pool = new Pool(upstream, { connections: 128, pipelining: 1 });

/** undici's raw handler: response head, chunks and end go straight to the client's response. */
class Forward implements Dispatcher.DispatchHandler {
  #abort: ((err?: Error) => void) | undefined;
  #resume: (() => void) | undefined;
  #done = false;

  constructor(private readonly res: ServerResponse) {
    // The client went away before the answer was complete: stop the upstream exchange too.
    res.once('close', () => {
      if (!this.#done) this.#abort?.(new Error('client closed'));
    });
  }

  onConnect(abort: (err?: Error) => void): void {
    this.#abort = abort;
  }

  onHeaders(statusCode: number, rawHeaders: Buffer[], resume: () => void): boolean {
    this.#resume = resume;
    const flat: string[] = [];
    for (let i = 0; i + 1 < rawHeaders.length; i += 2) {
      const name = rawHeaders[i].toString('latin1');
      if (!HOP_BY_HOP.has(name.toLowerCase())) flat.push(name, rawHeaders[i + 1].toString('latin1'));
    }
    this.res.writeHead(statusCode, flat);
    return true;
  }

  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    if (this.#resume) this.res.once('drain', this.#resume); // undici pauses until resume()
    return false;
  }

  onComplete(): void {
    this.#done = true;
    this.res.end();
  }

  onError(): void {
    this.#done = true;
    if (this.res.headersSent) {
      this.res.destroy(); // a cut-short answer must not look complete
    } else {
      this.res.writeHead(502, { 'content-type': 'text/plain' });
      this.res.end('bad gateway\n');
    }
  }
}

const server = createServer((req, res) => {
  const method = req.method ?? 'GET';
  const hasBody = method !== 'GET' && method !== 'HEAD';
  pool.dispatch(
    { origin: upstream, path: req.url ?? '/', method: method as Dispatcher.HttpMethod, headers: requestHeaders(req.headers), body: hasBody ? req : null },
    new Forward(res),
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

import { connect, type ClientHttp2Session, type IncomingHttpHeaders, type OutgoingHttpHeaders } from 'node:http2';

// One bounded HTTP/2 exchange for the content checks of bench/h2.ts and bench/grpc.ts: over TLS
// (https://, ALPN h2, the certificate checked against the benchmark's own) or h2c (http://,
// prior knowledge). Each check opens its own session and closes it.

export interface H2Exchange {
  readonly status: number;
  readonly headers: IncomingHttpHeaders;
  readonly body: Buffer;
  /** Trailing headers (gRPC's grpc-status lives here), empty when none came. */
  readonly trailers: IncomingHttpHeaders;
}

export interface H2RequestOptions {
  readonly path: string;
  readonly method?: string;
  readonly headers?: OutgoingHttpHeaders;
  readonly body?: Buffer;
  readonly timeoutMs?: number;
  readonly maxBytes?: number;
}

/**
 * Opens an HTTP/2 session to `origin` (for https://, `ca` is the only trusted root), runs `fn`
 * with it and closes it; the whole thing is bounded by `timeoutMs`. Returns what `fn` returns and
 * the protocol ALPN picked ("h2"; "h2c" for prior knowledge).
 */
export async function withH2Session<T>(origin: string, ca: string | undefined, timeoutMs: number, fn: (s: ClientHttp2Session) => Promise<T>): Promise<{ result: T; alpn: string }> {
  const session = connect(origin, ca ? { ca } : {});
  let timer: NodeJS.Timeout | undefined;
  try {
    const ready = new Promise<void>((resolve, reject) => {
      session.once('connect', () => resolve());
      session.once('error', reject);
    });
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new Error(`HTTP/2 exchange with ${origin} timed out after ${timeoutMs} ms`)), timeoutMs);
    });
    await Promise.race([ready, timeout]);
    session.on('error', () => {}); // later errors reach the request that suffers them
    const alpn = typeof session.alpnProtocol === 'string' ? session.alpnProtocol : '?';
    const result = await Promise.race([fn(session), timeout]);
    return { result, alpn };
  } finally {
    clearTimeout(timer);
    session.close();
    session.destroy();
  }
}

/** One request on an open session; the body is read up to `maxBytes`. */
export function h2Request(session: ClientHttp2Session, o: H2RequestOptions): Promise<H2Exchange> {
  const maxBytes = o.maxBytes ?? 1 << 20;
  return new Promise((resolve, reject) => {
    const req = session.request({ ':method': o.method ?? 'GET', ':path': o.path, ...o.headers }, { endStream: o.body === undefined });
    let status = 0;
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders = {};
    const chunks: Buffer[] = [];
    let n = 0;
    req.once('response', (h) => {
      headers = h;
      status = Number(h[':status'] ?? 0);
    });
    req.once('trailers', (t) => {
      trailers = t;
    });
    req.on('data', (b: Buffer) => {
      n += b.length;
      if (n > maxBytes) {
        req.destroy(new Error(`response to ${o.path} exceeds ${maxBytes} bytes`));
        return;
      }
      chunks.push(b);
    });
    req.once('end', () => resolve({ status, headers, body: Buffer.concat(chunks), trailers }));
    req.once('error', reject);
    if (o.body !== undefined) req.end(o.body);
  });
}

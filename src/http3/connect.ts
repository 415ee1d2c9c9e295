import { STATUS_CODES } from 'node:http';
import { Http3Client, Http3RequestError } from './client.ts';
import { ConnectError } from '../connect/errors.ts';
import { isQuicError } from '../quic/errors.ts';

// `switchyard connect https://host:port/path --http3`: one request over HTTP/3 (QUIC on UDP, the
// same port as HTTPS), printed as `curl -i` prints it, with HTTP/3 on the status line. The
// response is read whole before it is printed (at most 64 MiB).

export interface Http3ConnectOptions {
  method: string;
  headers: Record<string, string | string[]>;
  body?: string | Uint8Array | AsyncIterable<Uint8Array>;
  insecure?: boolean;
  /** PEM CA certificate(s) to trust. */
  ca?: Buffer;
  /** Give up after this long without a response (ms). */
  timeout: number;
}

/** Sends the request, prints the response to stdout; resolves to the exit code. Fails with ConnectError when no response comes. */
export async function http3Connect(url: URL, options: Http3ConnectOptions): Promise<number> {
  const host = url.hostname.replace(/^\[|\]$/g, '');
  const port = url.port === '' ? 443 : Number(url.port);
  let client: Http3Client;
  try {
    client = await Http3Client.connect({ host, port, ca: options.ca?.toString('utf8'), insecure: options.insecure, timeout: options.timeout });
  } catch (err) {
    throw new ConnectError(url.href, `no HTTP/3 connection: ${isQuicError(err) ? err.message : (err as Error).message}`, { cause: err });
  }
  try {
    const headers: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(options.headers)) headers[name.toLowerCase()] = value;
    // Connection-specific fields mean nothing in HTTP/3 and make the request malformed (RFC 9114 §4.2).
    for (const name of ['connection', 'keep-alive', 'transfer-encoding', 'upgrade', 'proxy-connection', 'host']) delete headers[name];
    let res;
    try {
      res = await client.request({ method: options.method, path: `${url.pathname}${url.search}`, authority: url.host, headers, body: options.body });
    } catch (err) {
      throw new ConnectError(url.href, err instanceof Http3RequestError ? err.message : (err as Error).message, { cause: err });
    }
    let head = `HTTP/3 ${res.status}${STATUS_CODES[res.status] ? ` ${STATUS_CODES[res.status]}` : ''}\r\n`;
    for (const [name, value] of Object.entries(res.headers)) for (const v of Array.isArray(value) ? value : [value]) head += `${name}: ${v}\r\n`;
    process.stdout.write(`${head}\r\n`);
    process.stdout.write(res.body);
    return 0;
  } finally {
    await client.close().catch(() => {});
  }
}

import { STATUS_CODES } from 'node:http';
import type { Readable } from 'node:stream';
import { Agent, request } from 'undici';
import { ConnectError, describeNetError } from './errors.ts';
import { DEFAULT_CONNECT_TIMEOUT } from './stream.ts';

// One HTTP(S) request through undici, its response body left as a stream for the caller to pipe
// (nothing is buffered here). Any status is a response, not an error; only failing to get one
// (refused, TLS, timeout) rejects.

export interface HttpRequestOptions {
  method?: string;
  headers?: Record<string, string | string[]>;
  /** A string or buffer, or a stream (a file) sent as it is read. */
  body?: string | Buffer | Readable;
  /** https: skip certificate verification. */
  insecure?: boolean;
  /** https: trust these CA certificates (PEM) instead of the system's. */
  ca?: string | Buffer;
  /** Time allowed for TCP connect and TLS. Default 10 s. */
  connectTimeout?: number;
}

export interface HttpResponse {
  statusCode: number;
  statusText: string;
  /** Header names in lower case as undici gives them; repeated headers as arrays. */
  headers: Record<string, string | string[] | undefined>;
  /** The body as it arrives. Read or destroy it: the connection is closed when it ends. */
  body: Readable;
}

export async function httpRequest(url: string | URL, options: HttpRequestOptions = {}): Promise<HttpResponse> {
  const href = String(url);
  const connectTimeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
  // One agent per request: its TLS settings are this request's, and closing it when the body is
  // done lets the process exit without waiting on a keep-alive socket.
  const agent = new Agent({ connect: { rejectUnauthorized: !options.insecure, ca: options.ca, timeout: connectTimeout } });
  try {
    const res = await request(url, { method: (options.method ?? 'GET') as 'GET', headers: options.headers, body: options.body, dispatcher: agent });
    const close = () => void agent.close().catch(() => {});
    res.body.once('close', close);
    return {
      statusCode: res.statusCode,
      statusText: res.statusText || STATUS_CODES[res.statusCode] || '',
      headers: res.headers,
      body: res.body,
    };
  } catch (err) {
    void agent.destroy().catch(() => {});
    throw new ConnectError(href, describeNetError(err, connectTimeout), { cause: err });
  }
}

/** The status line and headers as `curl -i` prints them, ending with the blank line. */
export function formatResponseHead(res: Pick<HttpResponse, 'statusCode' | 'statusText' | 'headers'>): string {
  let out = `HTTP/1.1 ${res.statusCode}${res.statusText ? ` ${res.statusText}` : ''}\r\n`;
  for (const [name, value] of Object.entries(res.headers)) {
    if (value === undefined) continue;
    for (const v of Array.isArray(value) ? value : [value]) out += `${name}: ${v}\r\n`;
  }
  return `${out}\r\n`;
}

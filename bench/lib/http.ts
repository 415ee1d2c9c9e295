import { request } from 'node:http';

export interface Fetched {
  readonly status: number;
  readonly headers: Readonly<Record<string, string | string[] | undefined>>;
  readonly body: Buffer;
}

/** One GET on a fresh connection with a time limit and a body size limit. */
export function httpGet(url: string, timeoutMs = 10_000, maxBytes = 64 << 20): Promise<Fetched> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      res.on('data', (b: Buffer) => {
        n += b.length;
        if (n > maxBytes) {
          req.destroy(new Error(`response from ${url} exceeds ${maxBytes} bytes`));
          return;
        }
        chunks.push(b);
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks) }));
      res.once('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

import { execFile } from 'node:child_process';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { serve, type Yard } from '../../src/index.ts';

// What the authentication tests share: a yard from a listener's routes, and curl as the client.

export interface CurlAnswer {
  status: number;
  /** Lower-case names; a repeated header's values joined with ", ". */
  headers: Record<string, string>;
  body: string;
}

/** Runs curl -i with `args` (URL included) and splits what it printed. Bounded by --max-time. */
export function curl(args: string[]): Promise<CurlAnswer> {
  return new Promise((resolve, reject) => {
    execFile('curl', ['-sS', '-i', '--max-time', '15', ...args], { timeout: 20_000, maxBuffer: 8 * 1024 * 1024, encoding: 'utf8' }, (err, stdout, stderr) => {
      if (err) return reject(new Error(`curl ${args.join(' ')}: ${stderr || err.message}`));
      const split = stdout.indexOf('\r\n\r\n');
      const head = split === -1 ? stdout : stdout.slice(0, split);
      const body = split === -1 ? '' : stdout.slice(split + 4);
      const [statusLine, ...lines] = head.split('\r\n');
      const headers: Record<string, string> = {};
      for (const line of lines) {
        const colon = line.indexOf(':');
        if (colon <= 0) continue;
        const name = line.slice(0, colon).trim().toLowerCase();
        const value = line.slice(colon + 1).trim();
        headers[name] = headers[name] === undefined ? value : `${headers[name]}, ${value}`;
      }
      resolve({ status: Number(/^HTTP\/[\d.]+ (\d{3})/.exec(statusLine)?.[1] ?? 0), headers, body });
    });
  });
}

/** The request headers an `echo` route saw (its JSON body). */
export function echoed(answer: CurlAnswer): Record<string, string | string[]> {
  return (JSON.parse(answer.body) as { headers: Record<string, string | string[]> }).headers;
}

/** Starts a yard with one http listener `w` on 127.0.0.1:0 holding `routes` (and `listener`'s fields); returns its base URL. */
export async function startYard(yards: Yard[], routes: unknown[], extra: Record<string, unknown> = {}, listener: Record<string, unknown> = {}): Promise<string> {
  const y = await serve(
    {
      listeners: [{ name: 'w', protocol: 'http', address: '127.0.0.1:0', routes, ...listener }],
      logging: { level: 'silent', accessLog: false },
      ...extra,
    },
    { logLevel: 'silent' },
  );
  yards.push(y);
  return `http://127.0.0.1:${y.address('w').port}`;
}

/** A plain node:http server on 127.0.0.1:0 (a key-set server, an auth service, an upstream); closed by `close`. */
export async function localServer(handler: (req: IncomingMessage, res: ServerResponse) => void): Promise<{ server: Server; port: number; url: string; close: () => Promise<void> }> {
  const server = createServer(handler);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return {
    server,
    port,
    url: `http://127.0.0.1:${port}`,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';
import { connect } from 'node:net';

// An upstream that records exactly the bytes it receives, on every connection, so a test can
// show that nothing was smuggled to it: plain requests get `200 ok <method> <url>`; upgrade
// requests are refused with 400 unless `acceptUpgrades` (then 101 and everything after is
// recorded as it comes).

export interface Recorder {
  readonly url: string;
  readonly port: number;
  /** Every byte received, all connections, in arrival order. */
  bytes(): string;
  /** Request lines and Host of the requests node:http parsed (upgrades included). */
  readonly requests: { method: string; url: string; host: string | undefined; headers: IncomingMessage['headers'] }[];
  acceptUpgrades: boolean;
  /** Bytes of the new protocol that arrived before this upstream answered 101. */
  bytesBeforeSwitch: number;
  close(): void;
}

export async function recorder(): Promise<Recorder> {
  const chunks: Buffer[] = [];
  const sockets = new Set<Socket>();
  const server: Server = createServer((req, res) => {
    rec.requests.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host, headers: req.headers });
    req.resume();
    req.on('end', () => res.end(`ok ${req.method} ${req.url}\n`));
  });
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
    // A 'data' listener of our own: node:http then reads in JS, and we see every byte.
    s.on('data', (d: Buffer) => chunks.push(d));
  });
  server.on('upgrade', (req: IncomingMessage, socket: Socket, head: Buffer) => {
    rec.requests.push({ method: req.method ?? '', url: req.url ?? '', host: req.headers.host, headers: req.headers });
    socket.on('error', () => undefined);
    if (!rec.acceptUpgrades) {
      socket.end('HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 8\r\nconnection: close\r\n\r\nrefused\n');
      return;
    }
    // The 101 goes out a little later, so that bytes sent before it was agreed show up here.
    let switched = false;
    rec.bytesBeforeSwitch += head.length;
    socket.on('data', (d: Buffer) => {
      if (!switched) rec.bytesBeforeSwitch += d.length;
      socket.write(d);
    });
    setTimeout(() => {
      switched = true;
      socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${req.headers.upgrade}\r\nconnection: Upgrade\r\n\r\n`);
      if (head.length > 0) socket.write(head);
    }, 50);
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const port = (server.address() as { port: number }).port;
  const rec: Recorder = {
    url: `http://127.0.0.1:${port}`,
    port,
    bytes: () => Buffer.concat(chunks).toString('latin1'),
    requests: [],
    acceptUpgrades: false,
    bytesBeforeSwitch: 0,
    close() {
      for (const s of sockets) s.destroy();
      server.close();
    },
  };
  return rec;
}

/**
 * Sends `data` on a fresh connection and returns all that came back before the server closed it
 * (or `timeoutMs`). `end` half-closes after sending: node:http, like nginx, takes that as the
 * client leaving, so only requests answered at once see their answer; the default keeps the
 * connection open, and the last request should say `Connection: close`.
 */
export function exchange(port: number, data: string | Buffer, options: { timeoutMs?: number; end?: boolean } = {}): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ port, host: '127.0.0.1' });
    const got: Buffer[] = [];
    const finish = () => {
      clearTimeout(timer);
      socket.destroy();
      resolve(Buffer.concat(got).toString('latin1'));
    };
    const timer = setTimeout(finish, options.timeoutMs ?? 3000);
    socket.on('connect', () => {
      socket.write(data);
      if (options.end ?? false) socket.end();
    });
    socket.on('data', (d: Buffer) => got.push(d));
    socket.on('error', finish);
    socket.on('close', finish);
  });
}

/** The status codes of every response in `raw`, in order. */
export function statuses(raw: string): number[] {
  return [...raw.matchAll(/HTTP\/1\.[01] (\d{3})/g)].map((m) => Number(m[1]));
}

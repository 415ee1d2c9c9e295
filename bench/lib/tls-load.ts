import { chmodSync } from 'node:fs';
import { request } from 'node:https';
import { join } from 'node:path';
import { clockTicksPerSecond, parsePidStat } from './cpu.ts';
import { runCaptured } from './proc.ts';

// TLS helpers for bench/tls.ts and bench/h2.ts: the benchmark certificate, the handshake load
// (`openssl s_time -new` processes pinned to the client core), what a server negotiates
// (`openssl s_client`, the same OpenSSL and defaults as s_time and wrk), and one bounded HTTPS
// GET for the content check.

export interface HandshakeRun {
  /** Full handshakes completed, all clients together. */
  readonly connections: number;
  /** Sum over clients of (connections / own wall seconds): handshakes per second. */
  readonly rate: number;
  /** CPU seconds the s_time processes used (user+system), from their wrapper's cutime+cstime. */
  readonly clientCpuSeconds: number;
  /** Clients that exited non-zero or printed no count (a failed handshake ends s_time). */
  readonly problems: string[];
}

// Each s_time runs under a small sh that prints its own /proc/self/stat once s_time has been
// reaped: its cutime+cstime fields are then exactly that s_time's CPU time (as for wrk).
const WRAPPER =
  'taskset -c "$CLIENT_CORE" openssl s_time "$@"; s=$?; echo "client-cpu $(cat /proc/$$/stat)" >&2; exit $s';

/**
 * `clients` concurrent `openssl s_time -connect 127.0.0.1:<port> -new -time <sec>` on `core`:
 * each opens a connection, does a full handshake (no session offered, so no resumption), sends
 * close_notify and closes, in a loop. Bounded by -time plus a hard kill.
 */
export async function runHandshakes(port: number, clients: number, seconds: number, core: string): Promise<HandshakeRun> {
  const args = ['-connect', `127.0.0.1:${port}`, '-new', '-time', String(seconds)];
  const runs = await Promise.all(
    Array.from({ length: clients }, async () => {
      const t0 = performance.now();
      const r = await runCaptured('sh', ['-c', WRAPPER, 'sh', ...args], (seconds + 20) * 1000, undefined, {
        ...process.env,
        CLIENT_CORE: core,
      });
      return { r, wall: (performance.now() - t0) / 1000 };
    }),
  );
  let connections = 0;
  let rate = 0;
  let ticks = 0;
  const problems = new Set<string>();
  for (const { r, wall } of runs) {
    const cpuLine = /^client-cpu (.*)$/m.exec(r.stderr);
    const st = cpuLine ? parsePidStat(cpuLine[1], true) : undefined;
    if (st) ticks += st.ticks;
    const m = /^(\d+) connections in \d+ real seconds/m.exec(r.stdout);
    if (r.timedOut) problems.add('an s_time client did not finish in time (killed)');
    else if (r.code !== 0 || !m) {
      const why = `${r.stdout}\n${r.stderr.replace(/^client-cpu .*$/m, '')}`.trim().split('\n').filter(Boolean).slice(-2).join(' / ');
      problems.add(`an s_time client failed (exit ${r.code ?? r.signal}): ${why.slice(0, 300)}`);
    }
    if (m) {
      const n = Number(m[1]);
      connections += n;
      if (wall > 0) rate += n / wall;
    }
  }
  return { connections, rate, clientCpuSeconds: ticks / clockTicksPerSecond(), problems: [...problems] };
}

export interface Negotiated {
  readonly protocol: string;
  readonly cipher: string;
  /** The key exchange group ("X25519, 253 bits"). */
  readonly group: string;
  /** NewSessionTicket messages the server sent on one connection (work it does per handshake). */
  readonly tickets: number;
}

/** One `openssl s_client` connection with a GET: what the server negotiates with OpenSSL's defaults. */
export async function probeTls(port: number, path: string): Promise<Negotiated | string> {
  // The request makes s_client read until the server closes, so tickets sent after the handshake
  // are seen too. -ign_eof: stdin's end does not end the connection early.
  const script =
    'printf "GET %s HTTP/1.1\\r\\nHost: localhost\\r\\nConnection: close\\r\\n\\r\\n" "$1" | ' +
    'timeout 10 openssl s_client -connect "127.0.0.1:$2" -msg -ign_eof 2>&1';
  const r = await runCaptured('sh', ['-c', script, 'sh', path, String(port)], 15_000);
  const out = r.stdout;
  const protocol = /^\s*Protocol\s*:\s*(\S+)/m.exec(out)?.[1] ?? /New, (TLSv[\d.]+), Cipher is/.exec(out)?.[1];
  const cipher = /^\s*Cipher\s*:\s*(\S+)/m.exec(out)?.[1] ?? /, Cipher is (\S+)/.exec(out)?.[1];
  if (!protocol || !cipher) return `openssl s_client did not report a session: ${out.trim().split('\n').slice(-3).join(' / ').slice(0, 300)}`;
  const group = /^Server Temp Key: (.*)$/m.exec(out)?.[1]?.trim() ?? '?';
  const tickets = (out.match(/^<<< .*NewSessionTicket/gm) ?? []).length;
  return { protocol, cipher, group, tickets };
}

export interface HttpsFetched {
  readonly status: number;
  readonly body: Buffer;
  readonly protocol: string | null;
  readonly cipher: string;
}

/** One HTTPS GET on a fresh connection, the certificate checked against `ca`; bounded in time and size. */
export function httpsGet(url: string, ca: string, timeoutMs = 10_000, maxBytes = 1 << 20): Promise<HttpsFetched> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'GET', agent: false, ca }, (res) => {
      const chunks: Buffer[] = [];
      let n = 0;
      const sock = res.socket as import('node:tls').TLSSocket;
      const protocol = sock.getProtocol();
      const cipher = sock.getCipher().standardName;
      res.on('data', (b: Buffer) => {
        n += b.length;
        if (n > maxBytes) {
          req.destroy(new Error(`response from ${url} exceeds ${maxBytes} bytes`));
          return;
        }
        chunks.push(b);
      });
      res.once('end', () => resolve({ status: res.statusCode ?? 0, body: Buffer.concat(chunks), protocol, cipher }));
      res.once('error', reject);
    });
    req.setTimeout(timeoutMs, () => req.destroy(new Error(`GET ${url} timed out after ${timeoutMs} ms`)));
    req.once('error', reject);
    req.end();
  });
}

/** A fresh self-signed EC P-256 certificate for localhost and 127.0.0.1, key mode 0600. */
export async function makeCertificate(dir: string): Promise<{ cert: string; key: string } | string> {
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  const r = await runCaptured(
    'openssl',
    [
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
    ],
    30_000,
  );
  if (r.code !== 0) return `openssl req failed: ${(r.stderr || r.stdout).trim().slice(-500)}`;
  chmodSync(key, 0o600);
  return { cert, key };
}

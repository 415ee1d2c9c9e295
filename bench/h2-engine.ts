// The downstream HTTP/2 engine (src/listeners/http/h2-engine/) against a bare node:http2 server,
// nothing else in either: one TLS certificate, ALPN h2, a fixed response from memory (13 bytes
// or 4 KiB) with the same head (:status, content-type, content-length, date). h2load -c16 -m16
// with a bounded request count on core 1, the server on core 0, interleaved runs; req/s and the
// server's CPU per request (utime + stime from /proc/PID/stat).
//
// Usage: node --import tsx bench/h2-engine.ts [runs=3] [requests=100000]
//        node --import tsx bench/h2-engine.ts serve <node|engine> <port> <cert> <key>
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createSecureServer, type ServerHttp2Stream } from 'node:http2';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { DEFAULT_SESSION_OPTIONS, H2ServerSession } from '../src/listeners/http/h2-engine/session.ts';

const SMALL = Buffer.from('hello world!\n');
const LARGE = Buffer.alloc(4096, 'x');

function body(path: unknown): Buffer {
  return path === '/4k' ? LARGE : SMALL;
}

let dateText = new Date().toUTCString();
setInterval(() => (dateText = new Date().toUTCString()), 1000).unref();

function serve(kind: string, port: number, certPath: string, keyPath: string): void {
  const cert = readFileSync(certPath);
  const key = readFileSync(keyPath);
  if (kind === 'node') {
    const server = createSecureServer({ cert, key, allowHTTP1: false, settings: { maxConcurrentStreams: 128 } });
    server.on('stream', (stream: ServerHttp2Stream, headers) => {
      const b = body(headers[':path']);
      stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': b.length });
      stream.end(b);
    });
    server.on('sessionError', () => {});
    server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
    return;
  }
  const options = { ...DEFAULT_SESSION_OPTIONS, maxConcurrentStreams: 128 };
  const server = createTlsServer({ cert, key, ALPNProtocols: ['h2'] }, (socket) => {
    socket.on('error', () => {});
    new H2ServerSession(socket, options, {
      onStream(stream, fields) {
        let path = '';
        for (let i = 0; i < fields.length; i += 2) if (fields[i] === ':path') path = fields[i + 1];
        const b = body(path);
        stream.respond({ ':status': 200, 'content-type': 'text/plain', 'content-length': b.length, date: dateText });
        stream.end(b);
      },
    });
  });
  server.listen(port, '127.0.0.1', () => process.stdout.write('ready\n'));
}

function cpuTicks(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // utime and stime are fields 14 and 15 (1-based), 12 and 13 after the command.
  return Number(fields[11]) + Number(fields[12]);
}

function startServer(kind: string, port: number, cert: string, key: string): Promise<ChildProcess> {
  const child = spawn('taskset', ['-c', '0', process.execPath, '--import', 'tsx', new URL(import.meta.url).pathname, 'serve', kind, String(port), cert, key], { stdio: ['ignore', 'pipe', 'inherit'] });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${kind} did not start`)), 20_000);
    child.stdout!.on('data', (d: Buffer) => {
      if (d.toString().includes('ready')) {
        clearTimeout(timer);
        resolve(child);
      }
    });
    child.once('exit', (code) => reject(new Error(`${kind} exited ${code}`)));
  });
}

function h2load(port: number, path: string, n: number): { reqs: number; ok: number; raw: string } {
  // The wait for the lock is not h2load's time: only h2load itself is bounded (2 minutes).
  const r = spawnSync('flock', ['-w', '1500', '/tmp/switchyard-bench.lock', 'timeout', '120', 'taskset', '-c', '1', 'h2load', '-c16', '-m16', `-n${n}`, '-t1', `https://127.0.0.1:${port}${path}`], { encoding: 'utf8', timeout: 1700_000 });
  const out = r.stdout ?? '';
  const m = /finished in [\d.]+\w+, ([\d.]+) req\/s/.exec(out);
  const ok = /(\d+) succeeded/.exec(out);
  return { reqs: m ? Number(m[1]) : 0, ok: ok ? Number(ok[1]) : 0, raw: out };
}

async function main(): Promise<void> {
  const runs = Number(process.argv[2] ?? 3);
  const n = Number(process.argv[3] ?? 100_000);
  const dir = mkdtempSync(join(tmpdir(), 'h2-engine-'));
  const cert = join(dir, 'cert.pem');
  const key = join(dir, 'key.pem');
  spawnSync('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '2', '-subj', '/CN=localhost'], { stdio: 'ignore' });
  const tick = 100; // USER_HZ
  const rows: string[] = [];
  for (let run = 1; run <= runs; run++) {
    for (const path of ['/small', '/4k']) {
      for (const kind of ['node', 'engine']) {
        const port = 20_000 + Math.floor(Math.random() * 20_000);
        const child = await startServer(kind, port, cert, key);
        try {
          h2load(port, path, 5000);
          // Waiting for the lock costs the idle server no CPU.
          const before = cpuTicks(child.pid!);
          const r = h2load(port, path, n);
          const after = cpuTicks(child.pid!);
          const usPerReq = (((after - before) / tick) * 1e6) / Math.max(1, r.ok);
          const line = `run ${run} ${path.padEnd(6)} ${kind.padEnd(6)} ${r.reqs.toFixed(0).padStart(7)} req/s  ${usPerReq.toFixed(1).padStart(6)} µs CPU/req  (${r.ok}/${n} ok)`;
          rows.push(line);
          process.stdout.write(`${line}\n`);
          if (r.ok !== n) process.stdout.write(r.raw.slice(-1500));
        } finally {
          child.kill('SIGTERM');
        }
      }
    }
  }
  rmSync(dir, { recursive: true, force: true });
}

if (process.argv[2] === 'serve') {
  serve(process.argv[3], Number(process.argv[4]), process.argv[5], process.argv[6]);
  // An exit of our own, so that --cpu-prof writes its profile.
  process.once('SIGINT', () => process.exit(0));
  process.once('SIGTERM', () => process.exit(0));
}
else await main();

import { connect, type Socket } from 'node:net';
import { execFile } from 'node:child_process';

/** Sends raw bytes, collects everything until the server closes (or `timeoutMs`), returns it. */
export function rawExchange(port: number, data: string | Buffer, options: { timeoutMs?: number; host?: string; end?: boolean } = {}): Promise<Buffer> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: options.host ?? '127.0.0.1' });
    const chunks: Buffer[] = [];
    const timer = setTimeout(() => {
      socket.destroy();
      resolve(Buffer.concat(chunks));
    }, options.timeoutMs ?? 3000);
    socket.on('connect', () => {
      socket.write(data);
      if (options.end) socket.end();
    });
    socket.on('data', (d) => chunks.push(d));
    socket.on('error', (err) => {
      clearTimeout(timer);
      if (chunks.length > 0) resolve(Buffer.concat(chunks));
      else reject(err);
    });
    socket.on('close', () => {
      clearTimeout(timer);
      resolve(Buffer.concat(chunks));
    });
  });
}

/** The status code of the first HTTP response in `raw`. */
export function statusOf(raw: Buffer | string): number {
  const m = /^HTTP\/(?:1\.[01]|2) (\d{3})/.exec(raw.toString('latin1'));
  return m ? Number(m[1]) : 0;
}

/** Runs a command (curl, nc) and returns its stdout; rejects on a non-zero exit. */
export function run(cmd: string, args: string[], options: { input?: string; timeoutMs?: number } = {}): Promise<{ stdout: string; stderr: string; code: number }> {
  return new Promise((resolve) => {
    const child = execFile(cmd, args, { timeout: options.timeoutMs ?? 10000, maxBuffer: 64 * 1024 * 1024, encoding: 'latin1' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as NodeJS.ErrnoException & { code?: unknown }).code === 'number' ? ((err as unknown as { code: number }).code) : 1) : 0;
      resolve({ stdout, stderr, code });
    });
    if (options.input !== undefined) child.stdin?.end(options.input);
  });
}

export function connected(port: number, host = '127.0.0.1'): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ port, host });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

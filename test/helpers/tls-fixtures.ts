import { execFile } from 'node:child_process';
import { chmod, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import tls from 'node:tls';
import { promisify } from 'node:util';
import type { CertificateStore } from '../../src/tls/index.ts';

// Certificates made with openssl at test time (a test CA and leaves it signs), a TLS echo server
// on a CertificateStore, and handshakes from real clients that report what they were served.

const execFileP = promisify(execFile);

export async function openssl(args: string[], options: { cwd?: string; input?: string } = {}): Promise<{ stdout: string; stderr: string }> {
  const child = execFileP('openssl', args, { cwd: options.cwd, timeout: 20_000, maxBuffer: 4 * 1024 * 1024 });
  if (options.input !== undefined) child.child.stdin?.end(options.input);
  return child;
}

export interface Files {
  cert: string;
  key: string;
}

/** A self-signed test CA (EC P-256). */
export async function makeTestCa(dir: string, name = 'ca'): Promise<Files> {
  const files = { cert: join(dir, `${name}.crt`), key: join(dir, `${name}.key`) };
  await openssl(['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', files.cert, '-days', '3', '-subj', `/CN=Switchyard test CA ${name}`]);
  await chmod(files.key, 0o600);
  return files;
}

/** A leaf for `names` signed by `ca` (EC P-256, 2 days), its key file 0600 (encrypted with `passphrase` when given). */
export async function makeLeaf(dir: string, ca: Files, base: string, names: string[], options: { passphrase?: string; cn?: string } = {}): Promise<Files> {
  const files = { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
  const csr = join(dir, `${base}.csr`);
  const ext = join(dir, `${base}.ext`);
  const plainKey = options.passphrase ? join(dir, `${base}.plain.key`) : files.key;
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', plainKey, '-out', csr, '-subj', `/CN=${options.cn ?? names[0] ?? base}`]);
  const san = names.map((n) => (/^[\d.]+$|:/.test(n) ? `IP:${n}` : `DNS:${n}`)).join(',');
  await writeFile(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=serverAuth\n${san ? `subjectAltName=${san}\n` : ''}`);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', ext, '-out', files.cert]);
  if (options.passphrase) {
    await openssl(['pkey', '-in', plainKey, '-aes256', '-passout', `pass:${options.passphrase}`, '-out', files.key]);
  }
  await chmod(files.key, 0o600);
  return files;
}

export interface EchoServer {
  server: tls.Server;
  port: number;
  clientErrors: Error[];
  /** Closes the store and the server, ending every connection (a failed test leaves some open). */
  stop(): Promise<void>;
}

/** A TLS echo server on the store (serverOptions + attach), on 127.0.0.1 with a free port. */
export async function startTlsEcho(store: CertificateStore): Promise<EchoServer> {
  const sockets = new Set<tls.TLSSocket>();
  const server = tls.createServer(store.serverOptions(), (socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
    socket.on('error', () => {});
    socket.pipe(socket);
  });
  const clientErrors: Error[] = [];
  server.on('tlsClientError', (err) => clientErrors.push(err));
  store.attach(server);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    server,
    port: (server.address() as { port: number }).port,
    clientErrors,
    async stop() {
      store.close();
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

export interface Handshake {
  socket: tls.TLSSocket;
  cert: tls.PeerCertificate;
  protocol: string | null;
  alpn: string | false | null;
  reused: boolean;
  authorized: boolean;
  authorizationError?: Error;
  /** Session tickets received so far (TLS 1.3 sends them after the handshake). */
  sessions: Buffer[];
}

/**
 * Connects to 127.0.0.1:port sending `servername` as SNI (none when undefined: Node sends none
 * for an IP), and resolves once the handshake is done. The socket is left open; end it.
 */
export function handshake(
  port: number,
  servername: string | undefined,
  options: Omit<tls.ConnectionOptions, 'port' | 'host' | 'servername'> = {},
): Promise<Handshake> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ port, host: '127.0.0.1', servername, rejectUnauthorized: false, ...options });
    const sessions: Buffer[] = [];
    socket.on('session', (s: Buffer) => sessions.push(s));
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`handshake with ${servername ?? '(no SNI)'} did not finish within 10 s`));
    }, 10_000);
    socket.once('secureConnect', () => {
      clearTimeout(timer);
      resolve({
        socket,
        cert: socket.getPeerCertificate(),
        protocol: socket.getProtocol(),
        alpn: socket.alpnProtocol,
        reused: socket.isSessionReused(),
        authorized: socket.authorized,
        authorizationError: socket.authorizationError,
        sessions,
      });
    });
    socket.once('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

/** The serial (hex, upper case as Node prints it) served for `servername`; the socket is closed. */
export async function servedSerial(port: number, servername: string | undefined, options: Omit<tls.ConnectionOptions, 'port' | 'host' | 'servername'> = {}): Promise<string> {
  const h = await handshake(port, servername, options);
  h.socket.destroy();
  return h.cert.serialNumber;
}

/** Writes, then reads back, a line through an open TLS echo connection. */
export function echo(socket: tls.TLSSocket, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = '';
    const timer = setTimeout(() => reject(new Error(`no echo of ${line} within 10 s (got ${JSON.stringify(got)})`)), 10_000);
    const onData = (d: Buffer) => {
      got += d.toString();
      if (got.includes('\n')) {
        clearTimeout(timer);
        socket.off('data', onData);
        resolve(got.trim());
      }
    };
    socket.on('data', onData);
    socket.write(`${line}\n`);
  });
}

/** Resolves with the first value `check` returns that is not undefined, by polling an event list; bounded. */
export function waitFor<T>(what: string, check: () => T | undefined, timeoutMs = 15_000): Promise<T> {
  return new Promise((resolve, reject) => {
    const started = Date.now();
    const tick = () => {
      const v = check();
      if (v !== undefined) return resolve(v);
      if (Date.now() - started > timeoutMs) return reject(new Error(`timed out waiting for ${what}`));
      setTimeout(tick, 20);
    };
    tick();
  });
}

/**
 * A client certificate signed by `ca` (EC P-256, 2 days, extendedKeyUsage clientAuth) with the
 * subject `subj` (openssl's `/O=.../CN=...` form) and URI/DNS subjectAltNames; key file 0600.
 */
export async function makeClientCert(dir: string, ca: Files, base: string, options: { subj: string; uris?: string[]; dns?: string[] }): Promise<Files> {
  const files = { cert: join(dir, `${base}.crt`), key: join(dir, `${base}.key`) };
  const csr = join(dir, `${base}.csr`);
  const ext = join(dir, `${base}.ext`);
  await openssl(['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', files.key, '-out', csr, '-subj', options.subj]);
  const san = [...(options.uris ?? []).map((u) => `URI:${u}`), ...(options.dns ?? []).map((d) => `DNS:${d}`)].join(',');
  await writeFile(ext, `basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\nextendedKeyUsage=clientAuth\n${san ? `subjectAltName=${san}\n` : ''}`);
  await openssl(['x509', '-req', '-in', csr, '-CA', ca.cert, '-CAkey', ca.key, '-set_serial', `0x${randomBytes(8).toString('hex')}`, '-days', '2', '-extfile', ext, '-out', files.cert]);
  await chmod(files.key, 0o600);
  return files;
}

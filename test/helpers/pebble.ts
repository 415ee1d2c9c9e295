import { execFile, spawn, spawnSync } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { request } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { freePort } from './redis.ts';

// A real pebble (the ACME test server) per test file, on free ports of 127.0.0.1. Debian's
// package ships no certificate for pebble's own HTTPS, so one is made here with openssl; it is
// its own CA (`ca`), to give the client as the directory's trust.

const PEBBLE = process.env.PEBBLE ?? 'pebble';
const execFileP = promisify(execFile);

export interface PebbleOptions {
  /** Where pebble validates HTTP-01 and TLS-ALPN-01 (on the address the name resolves to). */
  httpPort: number;
  tlsPort: number;
  /** DNS server pebble's validation asks (host:port). */
  dnsServer?: string;
  /** The ACME port, to bring "the same" pebble back after stop(). */
  port?: number;
  /** A certificate made by an earlier start, so that clients keep trusting it. */
  tls?: { cert: Buffer; key: Buffer };
}

export interface Pebble {
  directory: string;
  port: number;
  managementPort: number;
  /** PEM of the CA of pebble's HTTPS (the directory's), for the client to trust. */
  ca: Buffer;
  tls: { cert: Buffer; key: Buffer };
  /** PEM of the root that signs the certificates pebble issues (new on every start). */
  root(): Promise<string>;
  /** SIGTERM (SIGKILL 5 s later); resolves once gone. Safe to call twice. */
  stop(): Promise<void>;
}

export function pebbleAvailable(): boolean {
  // pebble has no --version; -h prints usage and exits 0 or 2 depending on the version.
  const r = spawnSync(PEBBLE, ['-h'], { stdio: 'ignore' });
  return r.error === undefined;
}

/** As redisSkip: false when pebble runs here; a reason to skip elsewhere; throws under CI. */
export function pebbleSkip(): false | string {
  if (pebbleAvailable()) return false;
  const reason = `${PEBBLE} is not installed (scripts/install-system-deps.sh installs it)`;
  if (process.env.CI) throw new Error(`CI must run the ACME tests: ${reason}`);
  return reason;
}

/** A self-signed certificate for 127.0.0.1 and localhost (openssl). */
export async function selfSigned(dir: string): Promise<{ cert: Buffer; key: Buffer }> {
  const keyPath = join(dir, 'api-key.pem');
  const certPath = join(dir, 'api-cert.pem');
  await execFileP('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath, '-out', certPath, '-days', '2', '-subj', '/CN=pebble test api', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost']);
  return { cert: await readFile(certPath), key: await readFile(keyPath) };
}

function get(url: string, ca: Buffer, timeoutMs = 2000): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { ca, timeout: timeoutMs }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
      res.on('error', reject);
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

export async function startPebble(options: PebbleOptions, timeoutMs = 15_000): Promise<Pebble> {
  const dir = await mkdtemp(join(tmpdir(), 'switchyard-pebble-'));
  const tls = options.tls ?? (await selfSigned(dir));
  await writeFile(join(dir, 'cert.pem'), tls.cert);
  await writeFile(join(dir, 'key.pem'), tls.key);
  const deadline = Date.now() + timeoutMs;
  for (let attempt = 0; ; attempt++) {
    const port = options.port ?? (await freePort());
    const managementPort = await freePort();
    const config = {
      pebble: {
        listenAddress: `127.0.0.1:${port}`,
        managementListenAddress: `127.0.0.1:${managementPort}`,
        certificate: join(dir, 'cert.pem'),
        privateKey: join(dir, 'key.pem'),
        httpPort: options.httpPort,
        tlsPort: options.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
      },
    };
    const configPath = join(dir, 'pebble-config.json');
    await writeFile(configPath, JSON.stringify(config));
    const args = ['-config', configPath, '-strict'];
    if (options.dnsServer) args.push('-dnsserver', options.dnsServer);
    const child = spawn(PEBBLE, args, {
      // No artificial sleeps before validation; every order needs its challenges answered.
      env: { ...process.env, PEBBLE_VA_NOSLEEP: '1', PEBBLE_AUTHZREUSE: '0' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    let gone = false;
    const exited = new Promise<void>((resolve) => child.once('exit', () => ((gone = true), resolve())));
    let failure: Error | undefined;
    child.once('error', (e) => (failure = e));
    const directory = `https://127.0.0.1:${port}/dir`;
    while (!gone && !failure && Date.now() < deadline) {
      const ok = await get(directory, tls.cert).then(
        (r) => r.status === 200 && r.body.includes('newOrder'),
        () => false,
      );
      if (ok) {
        const stop = async () => {
          if (!gone) child.kill('SIGTERM');
          const late = setTimeout(() => {
            if (!gone) child.kill('SIGKILL');
          }, 5000);
          await exited;
          clearTimeout(late);
          await rm(dir, { recursive: true, force: true });
        };
        return {
          directory,
          port,
          managementPort,
          ca: tls.cert,
          tls,
          root: async () => (await get(`https://127.0.0.1:${managementPort}/roots/0`, tls.cert)).body,
          stop,
        };
      }
      await new Promise((r) => setTimeout(r, 100));
    }
    if (failure) throw new Error(`cannot run ${PEBBLE}: ${failure.message}`);
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`pebble on port ${port} did not answer in time\n${output}`);
    }
    if (options.port !== undefined || attempt >= 4 || Date.now() >= deadline) {
      throw new Error(`pebble on port ${port} exited at startup\n${output}`);
    }
  }
}

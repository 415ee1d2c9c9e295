import { spawn, spawnSync } from 'node:child_process';
import { connect, createServer } from 'node:net';

// A real redis-server per test file, on a free port of 127.0.0.1, with nothing on disk.

export interface RedisServer {
  /** redis://127.0.0.1:<port>, with the password when there is one */
  url: string;
  port: number;
  /** SIGTERM (SIGKILL 5 s later if need be); resolves once the process is gone. Safe to call twice. */
  stop(): Promise<void>;
  /** SIGKILL at once: Redis disappears mid-conversation. */
  kill(): void;
}

const REDIS_SERVER = process.env.REDIS_SERVER ?? 'redis-server';

/** Whether redis-server can be run here. */
export function redisAvailable(): boolean {
  const r = spawnSync(REDIS_SERVER, ['--version'], { stdio: 'ignore' });
  return r.error === undefined && r.status === 0;
}

/**
 * The `skip` option for tests that need Redis: false when redis-server runs here; a reason to
 * skip on a developer machine without it. In CI (env CI set) it throws instead, so that CI fails
 * rather than silently skipping what it must run.
 */
export function redisSkip(): false | string {
  if (redisAvailable()) return false;
  const reason = `${REDIS_SERVER} is not installed (scripts/install-system-deps.sh installs it)`;
  if (process.env.CI) throw new Error(`CI must run the Redis tests: ${reason}`);
  return reason;
}

/** A port nobody listens on at the moment (bound, then released). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number };
      s.close(() => resolve(port));
    });
  });
}

/**
 * The pid of the redis-server answering on `port`, or undefined. Asked rather than a plain PING so
 * that a Redis someone else runs on the port is never taken for ours.
 */
function answeringPid(port: number, password?: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const s = connect({ port, host: '127.0.0.1' });
    let got = '';
    const done = (pid: number | undefined) => {
      s.destroy();
      resolve(pid);
    };
    s.setTimeout(1000, () => done(undefined));
    s.on('connect', () => s.write(password === undefined ? 'INFO server\r\n' : `AUTH ${password}\r\nINFO server\r\n`));
    s.on('data', (d) => {
      got += d.toString('latin1');
      const m = /process_id:(\d+)\r\n/.exec(got);
      if (m) done(Number(m[1]));
      else if (/^-|\r\n-/.test(got)) done(undefined);
    });
    s.on('error', () => done(undefined));
    s.on('close', () => done(undefined));
  });
}

/**
 * Starts redis-server on `options.port` (a fresh free port by default; pass a former server's
 * port to bring "the same" Redis back after kill()), resolving once it answers. `password` turns
 * on requirepass (and goes into `url`).
 */
export async function startRedis(options: { port?: number; password?: string; timeoutMs?: number } = {}): Promise<RedisServer> {
  const deadline = Date.now() + (options.timeoutMs ?? 10_000);
  for (let attempt = 0; ; attempt++) {
    // Between freePort() and redis binding it another process may take the port: try another.
    const port = options.port ?? (await freePort());
    const child = spawn(
      REDIS_SERVER,
      ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no', '--daemonize', 'no', '--protected-mode', 'yes', '--loglevel', 'warning', ...(options.password === undefined ? [] : ['--requirepass', options.password])],
      { stdio: ['ignore', 'pipe', 'pipe'] },
    );
    let output = '';
    child.stdout.on('data', (d) => (output += d));
    child.stderr.on('data', (d) => (output += d));
    const exited = new Promise<void>((resolve) => {
      if (child.exitCode !== null || child.signalCode !== null) resolve();
      else child.once('exit', () => resolve());
    });
    let gone = false;
    void exited.then(() => (gone = true));
    const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
    let failure: Error | undefined;
    void spawnError.then((e) => (failure = e));

    while (!gone && !failure && Date.now() < deadline) {
      if ((await answeringPid(port, options.password)) === child.pid) {
        const stop = async () => {
          if (!gone) child.kill('SIGTERM');
          // A Redis that ignores SIGTERM must not hold up the test run's after().
          const late = setTimeout(() => {
            if (!gone) child.kill('SIGKILL');
          }, 5000);
          await exited;
          clearTimeout(late);
        };
        return {
          url: options.password === undefined ? `redis://127.0.0.1:${port}` : `redis://:${encodeURIComponent(options.password)}@127.0.0.1:${port}`,
          port,
          stop,
          kill: () => {
            if (!gone) child.kill('SIGKILL');
          },
        };
      }
      await new Promise((r) => setTimeout(r, 50));
    }
    if (failure) throw new Error(`cannot run ${REDIS_SERVER}: ${failure.message}`);
    if (!gone) {
      child.kill('SIGKILL');
      await exited;
      throw new Error(`redis-server on port ${port} did not answer in time\n${output}`);
    }
    if (options.port !== undefined || attempt >= 4 || Date.now() >= deadline) {
      throw new Error(`redis-server on port ${port} exited at startup\n${output}`);
    }
  }
}

import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { closeSync, openSync, readFileSync, statSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { setTimeout as sleep } from 'node:timers/promises';

// Child process bookkeeping for the benchmarks: every child is registered, servers get their own
// process group (so a server's own children die with it), and all of them are killed when the
// harness exits, fails or is interrupted.

interface Tracked {
  readonly child: ChildProcess;
  /** Kill the whole process group (the child was spawned detached, as a group leader). */
  readonly group: boolean;
}

const live = new Set<Tracked>();
let handlersInstalled = false;

function killTracked(t: Tracked, signal: NodeJS.Signals): void {
  const pid = t.child.pid;
  if (pid === undefined) return;
  try {
    if (t.group) process.kill(-pid, signal);
    else process.kill(pid, signal);
  } catch {
    // already gone
  }
}

/** Kills every registered child at once (SIGKILL); safe to call from an 'exit' handler. */
export function killAllChildren(): void {
  for (const t of live) killTracked(t, 'SIGKILL');
  live.clear();
}

/** Makes sure children never outlive the harness: on exit, SIGINT, SIGTERM, SIGHUP. */
export function installCleanupHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  process.on('exit', killAllChildren);
  const onSignal = (signal: NodeJS.Signals, code: number) => {
    process.stderr.write(`\n${signal}: stopping ${live.size} child process(es) and exiting\n`);
    killAllChildren();
    process.exit(code);
  };
  process.once('SIGINT', () => onSignal('SIGINT', 130));
  process.once('SIGTERM', () => onSignal('SIGTERM', 143));
  process.once('SIGHUP', () => onSignal('SIGHUP', 129));
}

function track(child: ChildProcess, group: boolean): Tracked {
  const t: Tracked = { child, group };
  live.add(t);
  child.once('exit', () => {
    // The group may still hold grandchildren; the leader's exit does not end them.
    if (group) killTracked(t, 'SIGKILL');
    live.delete(t);
  });
  return t;
}

/** True if `cmd` is an executable on PATH (or an existing path). */
export function commandExists(cmd: string): boolean {
  if (cmd.includes('/')) {
    try {
      return statSync(cmd).isFile();
    } catch {
      return false;
    }
  }
  const r = spawnSync('sh', ['-c', 'command -v "$1"', 'sh', cmd], { encoding: 'utf8', timeout: 5_000 });
  return r.status === 0 && r.stdout.trim().length > 0;
}

/** Pins the calling process (all its threads) to `cores`, e.g. "1". Returns false if taskset failed. */
export function pinSelf(cores: string): boolean {
  const r = spawnSync('taskset', ['-a', '-p', '-c', cores, String(process.pid)], { encoding: 'utf8', timeout: 5_000 });
  return r.status === 0;
}

/** Whether something accepts TCP connections on 127.0.0.1:port right now. */
export function portAccepts(port: number, timeoutMs = 500): Promise<boolean> {
  return new Promise((resolve) => {
    const s = connect({ host: '127.0.0.1', port });
    const done = (ok: boolean) => {
      s.destroy();
      resolve(ok);
    };
    s.setTimeout(timeoutMs, () => done(false));
    s.once('connect', () => done(true));
    s.once('error', () => done(false));
  });
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ host: '127.0.0.1', port, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/**
 * A free TCP port on 127.0.0.1 above the kernel's ephemeral range (61000-65000 by default), so
 * that no client socket (wrk opens many) takes it between our check and the server's bind.
 */
export async function pickPort(exclude: ReadonlySet<number> = new Set(), low = 61_000, high = 65_000): Promise<number> {
  const span = high - low;
  const start = Math.floor(Math.random() * span);
  for (let i = 0; i < 200; i++) {
    const port = low + ((start + i * 7919) % span);
    if (exclude.has(port)) continue;
    if (await canBind(port)) return port;
  }
  throw new Error(`no free port found in ${low}-${high} after 200 tries`);
}

export interface ServerSpec {
  readonly name: string;
  readonly command: string;
  readonly args: readonly string[];
  readonly cwd: string;
  readonly env?: NodeJS.ProcessEnv;
  /** Where the server's stdout and stderr go (the harness does not read them while measuring). */
  readonly logFile: string;
  readonly port: number;
  /** How long the port may take to accept. */
  readonly startTimeoutMs: number;
}

export interface ExitInfo {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
}

export class RunningServer {
  #exit: ExitInfo | undefined;
  readonly #exited: Promise<ExitInfo>;

  constructor(
    readonly spec: ServerSpec,
    readonly child: ChildProcess,
    private readonly tracked: Tracked,
  ) {
    this.#exited = new Promise((resolve) => {
      child.once('exit', (code, signal) => {
        this.#exit = { code, signal };
        resolve(this.#exit);
      });
    });
  }

  get pid(): number {
    return this.child.pid ?? -1;
  }

  /** Undefined while the server runs; how it ended otherwise. */
  get exitInfo(): ExitInfo | undefined {
    return this.#exit;
  }

  /** The last `bytes` of the server's log file. */
  logTail(bytes = 3_000): string {
    try {
      const text = readFileSync(this.spec.logFile, 'utf8');
      return text.length > bytes ? `…${text.slice(-bytes)}` : text;
    } catch {
      return '';
    }
  }

  /** SIGTERM to the group, SIGKILL after `graceMs`; resolves once the process is gone. */
  async stop(graceMs = 5_000): Promise<void> {
    if (this.#exit) return;
    killTracked(this.tracked, 'SIGTERM');
    const timedOut = Symbol('timeout');
    const first = await Promise.race([this.#exited, sleep(graceMs, timedOut)]);
    if (first === timedOut) {
      killTracked(this.tracked, 'SIGKILL');
      await Promise.race([this.#exited, sleep(2_000)]);
    }
    killTracked(this.tracked, 'SIGKILL'); // stragglers in the group
  }
}

export function describeExit(e: ExitInfo): string {
  return e.signal ? `killed by ${e.signal}` : `exited with code ${e.code}`;
}

/**
 * Starts a server and waits until its port accepts. Throws (after killing it) if it exits first
 * or does not accept within the spec's timeout; the error message carries its log's tail.
 */
export async function startServer(spec: ServerSpec): Promise<RunningServer> {
  const fd = openSync(spec.logFile, 'w');
  let child: ChildProcess;
  try {
    child = spawn(spec.command, [...spec.args], {
      cwd: spec.cwd,
      env: spec.env ?? process.env,
      stdio: ['ignore', fd, fd],
      detached: true, // own process group: stop() and cleanup kill everything it started
    });
  } finally {
    closeSync(fd);
  }
  const tracked = track(child, true);
  const server = new RunningServer(spec, child, tracked);
  const spawnError = new Promise<Error>((resolve) => child.once('error', resolve));
  let failure: string | undefined;
  const deadline = Date.now() + spec.startTimeoutMs;
  // Bounded: one attempt per ~50 ms until the deadline.
  for (let i = 0; Date.now() < deadline && i < 100_000; i++) {
    const err = await Promise.race([spawnError, sleep(i === 0 ? 0 : 50, undefined)]);
    if (err) {
      failure = `could not spawn ${spec.command}: ${err.message}`;
      break;
    }
    if (server.exitInfo) {
      failure = `${describeExit(server.exitInfo)} before accepting on port ${spec.port}`;
      break;
    }
    if (await portAccepts(spec.port)) return server;
  }
  failure ??= `did not accept on 127.0.0.1:${spec.port} within ${spec.startTimeoutMs / 1000}s`;
  await server.stop(2_000);
  const tail = server.logTail().trim();
  throw new Error(`${spec.name} ${failure}${tail ? `\n--- ${spec.logFile} (tail) ---\n${tail}` : ''}`);
}

export interface CapturedRun {
  readonly code: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
  readonly timedOut: boolean;
}

/** Runs a short-lived command to completion with a hard time limit, capturing its output. */
export function runCaptured(
  command: string,
  args: readonly string[],
  timeoutMs: number,
  cwd?: string,
  env?: NodeJS.ProcessEnv,
): Promise<CapturedRun> {
  return new Promise((resolve, reject) => {
    // Own process group, so that a timeout or cleanup also ends what it started (sh -> wrk).
    const child = spawn(command, [...args], { cwd, env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
    const tracked = track(child, true);
    const out: Buffer[] = [];
    const err: Buffer[] = [];
    let outBytes = 0;
    const cap = 4 << 20;
    child.stdout?.on('data', (b: Buffer) => {
      if ((outBytes += b.length) <= cap) out.push(b);
    });
    child.stderr?.on('data', (b: Buffer) => {
      if ((outBytes += b.length) <= cap) err.push(b);
    });
    let timedOut = false;
    const timer = setTimeout(() => {
      timedOut = true;
      killTracked(tracked, 'SIGKILL');
    }, timeoutMs);
    child.once('error', (e) => {
      clearTimeout(timer);
      reject(e);
    });
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({
        code,
        signal,
        stdout: Buffer.concat(out).toString('utf8'),
        stderr: Buffer.concat(err).toString('utf8'),
        timedOut,
      });
    });
  });
}

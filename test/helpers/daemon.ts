import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

// Runs the real CLI in a child process, the way a user does, and reads the listener addresses
// off its banner.

export const repoRoot = fileURLToPath(new URL('../../', import.meta.url));
export const cliPath = fileURLToPath(new URL('../../src/cli/main.ts', import.meta.url));
/** tsx by absolute URL, so a daemon started in another working folder still finds it. */
const tsx = import.meta.resolve('tsx');

export interface Daemon {
  child: ChildProcess;
  /** listener name -> url from the banner (`http://127.0.0.1:1234/`, `tcp://127.0.0.1:5678`, ...) */
  urls: Map<string, string>;
  port(name: string): number;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export interface RunResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** Runs the CLI to completion (bounded by `timeoutMs`); `input` is piped to its stdin (else stdin is empty); `nodeArgs` go to node before the CLI. */
export function runCli(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number; input?: string | Buffer; nodeArgs?: string[] } = {}): Promise<RunResult> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--import', tsx, ...(options.nodeArgs ?? []), cliPath, ...args], {
      cwd: options.cwd ?? repoRoot,
      env: { ...process.env, ...options.env },
      stdio: ['pipe', 'pipe', 'pipe'],
    });
    child.stdin.on('error', () => {}); // a CLI that exits before reading all of it
    child.stdin.end(options.input);
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (d) => (stdout += d));
    child.stderr.on('data', (d) => (stderr += d));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`switchyard ${args.join(' ')} did not exit within ${options.timeoutMs ?? 20000} ms\n${stdout}\n${stderr}`));
    }, options.timeoutMs ?? 20000);
    child.on('exit', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

/** Starts `switchyard serve ...args` and resolves once the banner lists every listener. */
export function startDaemon(args: string[], options: { cwd?: string; env?: NodeJS.ProcessEnv; timeoutMs?: number } = {}): Promise<Daemon> {
  const child = spawn(process.execPath, ['--import', tsx, cliPath, 'serve', ...args], {
    cwd: options.cwd ?? repoRoot,
    env: { ...process.env, ...options.env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`daemon did not start within ${options.timeoutMs ?? 20000} ms\nstdout: ${out}\nstderr: ${err}`));
    }, options.timeoutMs ?? 20000);
    child.stderr.on('data', (d) => (err += d));
    child.stdout.on('data', (d) => {
      out += d;
      if (!/Stop with Ctrl-C/.test(out)) return;
      clearTimeout(timer);
      const urls = new Map<string, string>();
      for (const m of out.matchAll(/^ {2}(\S+)\s+(http|tcp|udp|unix)\s+(\S+)/gm)) urls.set(m[1], m[3]);
      resolve({
        child,
        urls,
        port(name) {
          const url = urls.get(name);
          const m = url && /:(\d+)\/?$/.exec(url);
          if (!m) throw new Error(`no port for listener ${name} in banner:\n${out}`);
          return Number(m[1]);
        },
        stdout: () => out,
        stderr: () => err,
        exited,
      });
    });
    child.on('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`daemon exited with ${code} before it was ready\nstdout: ${out}\nstderr: ${err}`));
    });
  });
}

/** Sends SIGKILL if the daemon is still running (for `after` hooks). */
export async function killDaemon(d: Daemon | undefined): Promise<void> {
  if (!d || d.child.exitCode !== null || d.child.signalCode !== null) return;
  d.child.kill('SIGKILL');
  await d.exited;
}

import { readPidFile, processAlive } from '../yard/pid-file.ts';

// `switchyard upgrade --pid-file PATH`: asks the daemon named in its pid file for a zero-downtime
// upgrade (SIGUSR2: src/yard/upgrade.ts) and waits for the outcome: the pid file names a new live
// daemon and the old one has exited (exit 0), or the old one is still there, alone, after the
// wait (exit 1: the new one failed; the daemon's log says why). Exit 2 when there is no daemon
// to ask.

const WAIT_MS = 90_000;

export interface UpgradeOptions {
  pidFile: string;
  /** How long to wait for the hand-over (ms). */
  wait?: number;
}

function fail(message: string, exitCode: number): never {
  throw Object.assign(new Error(message), { exitCode });
}

export async function upgradeCommand(options: UpgradeOptions, print: (line: string) => void = (l) => process.stdout.write(`${l}\n`)): Promise<void> {
  const old = readPidFile(options.pidFile);
  if (old === undefined || !processAlive(old)) fail(`${options.pidFile}: no running daemon is named there`, 2);
  process.kill(old, 'SIGUSR2');
  const deadline = Date.now() + (options.wait ?? WAIT_MS);
  while (Date.now() < deadline) {
    await new Promise((r) => setTimeout(r, 100));
    const now = readPidFile(options.pidFile);
    if (now !== undefined && now !== old && processAlive(now) && !processAlive(old)) {
      print(`upgraded: daemon ${now} took over from ${old}`);
      return;
    }
  }
  const now = readPidFile(options.pidFile);
  if (now !== undefined && now !== old && processAlive(now)) fail(`daemon ${now} took over, but ${old} is still draining (its grace period is longer than the wait)`, 1);
  fail(`daemon ${old} is still the one serving: the upgrade failed (its log says why)`, 1);
}

import { readFileSync } from 'node:fs';
import { processAlive } from '../../src/yard/pid-file.ts';
import type { Daemon } from './daemon.ts';

// For tests of the zero-downtime upgrade with real processes (src/yard/upgrade.ts): the daemon
// that takes over is started by the old one, not by the test, so the pid file is how the test
// knows it and ends it.

/** The pid a daemon's pid file names. */
export function pidIn(pidFile: string): number {
  return Number(readFileSync(pidFile, 'utf8').trim());
}

/** For `after` hooks: kills the daemon the pid file names (the one that took over) and the test's own child. */
export function killUpgraded(pidFile: string, daemon: Daemon | undefined): void {
  try {
    const pid = pidIn(pidFile);
    if (processAlive(pid)) process.kill(pid, 'SIGKILL');
  } catch {
    // no pid file
  }
  if (daemon && daemon.child.exitCode === null) daemon.child.kill('SIGKILL');
}

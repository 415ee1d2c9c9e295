import { accessSync, constants, readFileSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { dirname, resolve } from 'node:path';

// `switchyard serve --pid-file PATH`: checked before anything binds (a live daemon named there
// refuses the start), written once every listener is up (a temporary file renamed over it, so a
// reader never sees half a number), removed when the process exits if it still holds our pid.

export class PidFileError extends Error {
  readonly code = 'SWITCHYARD_PID_FILE';
  override readonly name = 'PidFileError';
}

/** The pid written in `path`, or undefined when there is no file or no number in it. */
export function readPidFile(path: string): number | undefined {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw new PidFileError(`--pid-file ${path}: cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
  }
  const m = /^\s*(\d+)\s*$/.exec(text);
  return m ? Number(m[1]) : undefined;
}

/** Whether a process with this pid exists (EPERM: it does, as another user). */
export function processAlive(pid: number): boolean {
  if (!Number.isSafeInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM';
  }
}

export class PidFile {
  readonly path: string;
  private written = false;
  /** The daemon an upgrade replaces: its pid in the file is not a refusal. */
  private replacing: number | undefined;
  private readonly onExit = () => this.remove();

  constructor(path: string) {
    this.path = resolve(path);
  }

  /**
   * Before start: refuses when the file names a live process other than this one; a stale file
   * (no such process, or garbage) is left to be overwritten. Also checks the folder is writable,
   * so that the daemon does not bind its ports only to fail afterwards.
   */
  check(replacing?: number): { stale?: number } {
    if (replacing !== undefined) this.replacing = replacing;
    const pid = readPidFile(this.path);
    // An upgrade's new daemon takes the file over from the one it replaces.
    if (pid !== undefined && pid !== process.pid && pid !== this.replacing && processAlive(pid)) {
      throw new PidFileError(
        `--pid-file ${this.path}: process ${pid} is running (another switchyard?); stop it first, or remove the file if that process is not a switchyard`,
      );
    }
    try {
      accessSync(dirname(this.path), constants.W_OK);
    } catch (err) {
      throw new PidFileError(`--pid-file ${this.path}: its folder is not writable (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    return { stale: pid !== undefined && pid !== process.pid && pid !== this.replacing ? pid : undefined };
  }

  /** Writes this process's pid (temp file + rename) and arranges its removal at exit. */
  write(): { stale?: number } {
    const checked = this.check();
    const tmp = `${this.path}.${process.pid}.tmp`;
    try {
      writeFileSync(tmp, `${process.pid}\n`, { mode: 0o644 });
      renameSync(tmp, this.path);
    } catch (err) {
      try {
        unlinkSync(tmp);
      } catch {
        // never made
      }
      throw new PidFileError(`--pid-file ${this.path}: cannot write it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    this.written = true;
    process.once('exit', this.onExit);
    return checked;
  }

  /** Removes the file if it still names this process. Synchronous: it runs in process.on('exit'). */
  remove(): void {
    if (!this.written) return;
    this.written = false;
    process.off('exit', this.onExit);
    try {
      if (readPidFile(this.path) === process.pid) unlinkSync(this.path);
    } catch {
      // gone already, or unreadable: nothing of ours to remove
    }
  }
}

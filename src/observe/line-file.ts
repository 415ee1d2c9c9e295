import { closeSync, constants, createWriteStream, fchmodSync, openSync, type WriteStream } from 'node:fs';

// Files of text lines written off the request path (access logs in common/combined/json format):
// appended through a write stream, so a slow disk never blocks the event loop, with a bounded
// backlog: when more than `maxBuffer` bytes wait to be written, new lines are dropped and
// counted instead of piling up in memory. One writer per path for the whole process, whichever
// routes and reloads use it; SIGUSR1 reopens them all (after logrotate moved them away).

/** A line file that cannot be opened; `switchyard serve` reports it as one line. */
export class LineFileError extends Error {
  readonly code = 'SWITCHYARD_ACCESS_LOG_FILE';
}

/** Default most bytes waiting to be written before lines are dropped. */
export const DEFAULT_MAX_BUFFER = 1024 * 1024;

export class LineFile {
  private stream: WriteStream;
  /** Lines dropped in the current streak (reported when writing works again). */
  private droppedNow = 0;
  /** Lines dropped since the file was opened: backlog full, or the file failing. */
  dropped = 0;
  private failing = false;

  constructor(
    readonly path: string,
    /** Most bytes waiting to be written; past it, lines are dropped. */
    public maxBuffer: number,
    private readonly warn: (line: string) => void,
  ) {
    this.stream = this.open();
  }

  /** Appends one line (with its newline), or drops it when the backlog is full or the file fails. */
  write(line: string): void {
    const s = this.stream;
    if (this.failing || s.destroyed || s.writableLength >= this.maxBuffer) {
      if (this.droppedNow === 0 && !this.failing) this.warn(`switchyard: access log ${this.path}: the disk is slower than the requests; dropping lines until it catches up`);
      this.droppedNow++;
      this.dropped++;
      return;
    }
    if (this.droppedNow > 0) {
      this.warn(`switchyard: access log ${this.path}: writing again; ${this.droppedNow} line${this.droppedNow === 1 ? '' : 's'} dropped`);
      this.droppedNow = 0;
    }
    s.write(line);
  }

  /** Opens the file again by its name; what was waiting for the old one is still written there. Throws when it cannot. */
  reopen(): void {
    const next = this.open();
    const old = this.stream;
    this.stream = next;
    this.failing = false;
    old.end();
  }

  /** Writes what is waiting and closes the file. */
  close(): Promise<void> {
    return new Promise((resolve) => {
      if (this.stream.destroyed) return resolve();
      this.stream.end(() => resolve());
      this.stream.once('error', () => resolve());
    });
  }

  private open(): WriteStream {
    let fd: number;
    try {
      fd = openAppend(this.path);
    } catch (err) {
      throw new LineFileError(`access log file ${this.path}: cannot open it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
    }
    const stream = createWriteStream(this.path, { fd, flags: 'a' });
    stream.on('error', (err) => {
      if (stream !== this.stream) return;
      if (!this.failing) this.warn(`switchyard: access log ${this.path}: cannot write to it: ${err.message} (lines are dropped until SIGUSR1 reopens it)`);
      this.failing = true;
    });
    return stream;
  }
}

/** Opens `path` for appending; a new file gets mode 0640 whatever the umask. */
function openAppend(path: string): number {
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o640);
    try {
      fchmodSync(fd, 0o640);
    } catch (err) {
      closeSync(fd);
      throw err;
    }
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return openSync(path, constants.O_WRONLY | constants.O_APPEND);
}

const files = new Map<string, LineFile>();

/**
 * The process's writer for `path` (absolute), opened on first use. A later caller's `maxBuffer`
 * replaces the earlier one (a reload that changed it). Throws LineFileError when it cannot be opened.
 */
export function lineFile(path: string, maxBuffer: number = DEFAULT_MAX_BUFFER, warn: (line: string) => void = (l) => process.stderr.write(l + '\n')): LineFile {
  let f = files.get(path);
  if (f) {
    f.maxBuffer = maxBuffer;
    return f;
  }
  f = new LineFile(path, maxBuffer, warn);
  files.set(path, f);
  return f;
}

/** Reopens every line file (SIGUSR1). Throws the first failure after trying them all. */
export function reopenLineFiles(): void {
  let first: unknown;
  for (const f of files.values()) {
    try {
      f.reopen();
    } catch (err) {
      first ??= err;
    }
  }
  if (first !== undefined) throw first;
}

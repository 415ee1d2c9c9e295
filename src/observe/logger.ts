import { closeSync, constants, fchmodSync, openSync, writeSync } from 'node:fs';
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';
import { reopenLineFiles } from './line-file.ts';
import { prettyLine, resolveLogFormat, useColor, type LogFormat, type LogFormatChoice } from './log-format.ts';

export type { Logger };

/**
 * The yard's logger: JSON lines (pino) on stdout, the access log included. `destination` lets
 * tests and embedding programs send them elsewhere.
 */
export function createLogger(level: LevelWithSilent, destination: NodeJS.WritableStream | number = 1): Logger {
  const dest = typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

// `switchyard serve --log-format auto|pretty|json --log-file PATH`: the same pino records, either
// as JSON lines or one readable line each (log-format.ts), on stdout (the default) or appended to
// a file that is reopened on request (SIGUSR1, after logrotate moved it away).

export { prettyLine, resolveLogFormat, type LogFormat, type LogFormatChoice } from './log-format.ts';

export interface LogOutputOptions {
  /**
   * auto (default): pretty when stdout is a terminal and there is no `file`, else JSON;
   * json: pino's JSON lines; pretty: `TIME LEVEL message key=value ...`.
   */
  format?: LogFormatChoice;
  /** Append to this file instead of writing to stdout; created with mode 0640. */
  file?: string;
  /** Where a failing log file is reported (once per failure streak). Default: stderr. */
  warn?: (line: string) => void;
  /** Whether stdout is a terminal (for `auto` and colors). Default: process.stdout.isTTY. */
  tty?: boolean;
  /** Read for NO_COLOR and FORCE_COLOR. Default: process.env. */
  env?: NodeJS.ProcessEnv;
}

export interface LogOutput {
  readonly logger: Logger;
  /** The format in use (`auto` resolved). */
  readonly format: LogFormat;
  /** The log file, when logs go to one. */
  readonly file?: string;
  /**
   * Opens the log file and the access log files (access-log.ts `file:`) again by their names,
   * after a rotation. Throws when one cannot be opened (the others are reopened all the same).
   */
  reopen(): void;
}

/**
 * An append-only log file written synchronously (as pino's stdout destination is), so that lines
 * are on disk before a process.exit. A write that fails (disk full, file system gone) drops the
 * line and is reported once until writes succeed again: logging never throws into a request.
 */
class LogFile implements DestinationStream {
  private fd: number;
  private failing = false;

  constructor(
    readonly path: string,
    private readonly warn: (line: string) => void,
  ) {
    this.fd = openLogFile(path);
  }

  write(text: string): void {
    const buf = Buffer.from(text);
    try {
      for (let off = 0; off < buf.length; ) off += writeSync(this.fd, buf, off, buf.length - off);
      this.failing = false;
    } catch (err) {
      if (!this.failing) this.warn(`switchyard: cannot write to the log file ${this.path}: ${(err as Error).message} (lines are dropped until it works again)`);
      this.failing = true;
    }
  }

  reopen(): void {
    const fd = openLogFile(this.path);
    const old = this.fd;
    this.fd = fd;
    this.failing = false;
    try {
      closeSync(old);
    } catch {
      // already gone
    }
  }
}

/** Opens `path` for appending (libuv adds O_CLOEXEC); a new file gets mode 0640 whatever the umask. */
function openLogFile(path: string): number {
  try {
    const fd = openSync(path, constants.O_WRONLY | constants.O_APPEND | constants.O_CREAT | constants.O_EXCL, 0o640);
    fchmodSync(fd, 0o640);
    return fd;
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
  }
  return openSync(path, constants.O_WRONLY | constants.O_APPEND);
}

/**
 * The daemon's logger as `switchyard serve` sets it up. JSON on stdout is exactly `createLogger`;
 * a log file that cannot be opened throws (the caller reports it before anything starts).
 */
export function openLogOutput(level: LevelWithSilent, options: LogOutputOptions = {}): LogOutput {
  const where = { file: options.file, tty: options.tty ?? process.stdout.isTTY === true };
  const format = resolveLogFormat(options.format ?? 'auto', where);
  const warn = options.warn ?? ((line: string) => process.stderr.write(line + '\n'));
  const file = options.file ? new LogFile(options.file, warn) : undefined;
  if (format === 'json' && !file) return { logger: createLogger(level), format, reopen: reopenLineFiles };
  const sink: DestinationStream = file ?? pino.destination({ dest: 1, sync: true });
  // On a terminal the time of day is enough; a file keeps the full date.
  const pretty = { color: useColor(where, options.env), clock: file ? ('iso' as const) : ('time' as const) };
  const dest: DestinationStream = format === 'pretty' ? { write: (s: string) => sink.write(prettyLine(s, pretty)) } : sink;
  return {
    logger: pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest),
    format,
    file: options.file,
    reopen: () => {
      try {
        file?.reopen();
      } finally {
        reopenLineFiles();
      }
    },
  };
}

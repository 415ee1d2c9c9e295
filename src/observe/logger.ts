import { closeSync, constants, fchmodSync, openSync, writeSync } from 'node:fs';
import { pino, type Logger, type LevelWithSilent, type DestinationStream } from 'pino';

export type { Logger };

/**
 * The yard's logger: JSON lines (pino) on stdout, the access log included. `destination` lets
 * tests and embedding programs send them elsewhere.
 */
export function createLogger(level: LevelWithSilent, destination: NodeJS.WritableStream | number = 1): Logger {
  const dest = typeof destination === 'number' ? pino.destination({ dest: destination, sync: true }) : destination;
  return pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest);
}

// `switchyard serve --log-format pretty|json --log-file PATH`: the same pino records, either as
// JSON lines (the default) or one readable line each, on stdout (the default) or appended to a
// file that is reopened on request (SIGUSR1, after logrotate moved it away).

export type LogFormat = 'json' | 'pretty';

export interface LogOutputOptions {
  /** json (default): pino's JSON lines; pretty: `TIME LEVEL message key=value ...`. */
  format?: LogFormat;
  /** Append to this file instead of writing to stdout; created with mode 0640. */
  file?: string;
  /** Where a failing log file is reported (once per failure streak). Default: stderr. */
  warn?: (line: string) => void;
}

export interface LogOutput {
  readonly logger: Logger;
  readonly format: LogFormat;
  /** The log file, when logs go to one. */
  readonly file?: string;
  /** Opens the log file again by its name (after a rotation); a no-op on stdout. Throws when it cannot. */
  reopen(): void;
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
/** Fields every record has that a pretty line shows in its own place or leaves out. */
const OWN_PLACE = new Set(['time', 'level', 'msg', 'pid', 'hostname']);

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"\\]+$/.test(v) ? v : JSON.stringify(v);
  if (v && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') {
    // pino's serialized error: its type and message (the stack stays in the JSON format)
    const e = v as { type?: unknown; message: string };
    return JSON.stringify(typeof e.type === 'string' ? `${e.type}: ${e.message}` : e.message);
  }
  return JSON.stringify(v) ?? String(v);
}

/**
 * One pino JSON record as one readable line: `2024-05-01T10:00:00.000Z INFO  request listener=web
 * status=200 ...`. Strings with spaces or quotes are JSON-quoted, so a line never breaks.
 */
export function prettyLine(json: string): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  const level = typeof rec.level === 'number' ? (LEVEL_NAMES[rec.level] ?? String(rec.level)) : String(rec.level ?? '');
  const parts = [String(rec.time ?? new Date().toISOString()), level.padEnd(5)];
  if (rec.msg !== undefined) parts.push(String(rec.msg).replace(/\r?\n/g, '\\n'));
  for (const [k, v] of Object.entries(rec)) {
    if (OWN_PLACE.has(k) || v === undefined) continue;
    parts.push(`${k}=${prettyValue(v)}`);
  }
  return parts.join(' ') + '\n';
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
  const format = options.format ?? 'json';
  const warn = options.warn ?? ((line: string) => process.stderr.write(line + '\n'));
  const file = options.file ? new LogFile(options.file, warn) : undefined;
  if (format === 'json' && !file) return { logger: createLogger(level), format, reopen: () => {} };
  const sink: DestinationStream = file ?? pino.destination({ dest: 1, sync: true });
  const dest: DestinationStream = format === 'pretty' ? { write: (s: string) => sink.write(prettyLine(s)) } : sink;
  return {
    logger: pino({ level, base: { pid: process.pid }, timestamp: pino.stdTimeFunctions.isoTime }, dest),
    format,
    file: options.file,
    reopen: () => file?.reopen(),
  };
}

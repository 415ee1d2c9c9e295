// How the daemon's log records look: pino's JSON lines for supervisors and log shippers, or one
// readable line per record for a person at a terminal. `auto` picks: pretty when the logs go to
// a terminal, JSON when they go anywhere else (a pipe, journald, a file).
//
//   12:03:04 INFO  upstream target back upstream=api target=127.0.0.1:9001 downForMs=5012
//   12:03:05 INFO  GET /users/7 200 1.2ms 512B listener=web route=api
//
// A pretty line never breaks: strings with spaces or quotes are JSON-quoted, newlines escaped.

export type LogFormat = 'json' | 'pretty';
/** What `--log-format` accepts: a format, or `auto` to pick one by where the logs go. */
export type LogFormatChoice = LogFormat | 'auto';

/**
 * `auto` as `switchyard serve` resolves it: pretty when the logs go to a terminal (stdout is a
 * TTY and there is no --log-file), JSON otherwise.
 */
export function resolveLogFormat(choice: LogFormatChoice, where: { file?: string; tty: boolean }): LogFormat {
  if (choice !== 'auto') return choice;
  return where.tty && !where.file ? 'pretty' : 'json';
}

/**
 * Whether pretty lines get colors: only on a terminal, never with NO_COLOR set (no-color.org);
 * FORCE_COLOR (not `0`) asks for them anywhere.
 */
export function useColor(where: { file?: string; tty: boolean }, env: NodeJS.ProcessEnv = process.env): boolean {
  if (env.NO_COLOR) return false;
  if (env.FORCE_COLOR !== undefined && env.FORCE_COLOR !== '' && env.FORCE_COLOR !== '0') return true;
  return where.tty && !where.file;
}

export interface PrettyOptions {
  /** ANSI colors (levels, status codes; field names dimmed). Default false. */
  color?: boolean;
  /**
   * `iso` (default): the record's full ISO time, for files that outlive a day; `time`: the local
   * time of day only (`12:03:04`), for a terminal.
   */
  clock?: 'iso' | 'time';
}

const LEVEL_NAMES: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const LEVEL_COLORS: Record<number, string> = { 10: '90', 20: '36', 30: '32', 40: '33', 50: '31', 60: '1;35' };
/** Fields every record has that a pretty line shows in its own place or leaves out. */
const OWN_PLACE = new Set(['time', 'level', 'msg', 'pid', 'hostname']);
/** An access log record's fields that its compact form shows in its own place or leaves to the JSON format. */
const REQUEST_OWN_PLACE = new Set([...OWN_PLACE, 'method', 'url', 'status', 'durationMs', 'bytes', 'remote', 'userAgent', 'requestId', 'protocol', 'referer', 'user']);

function paint(color: boolean, code: string, text: string): string {
  return color ? `\x1b[${code}m${text}\x1b[0m` : text;
}

function prettyValue(v: unknown): string {
  if (typeof v === 'string') return /^[^\s"\\\x00-\x1f\x7f]+$/.test(v) ? v : JSON.stringify(v);
  if (v && typeof v === 'object' && typeof (v as { message?: unknown }).message === 'string') {
    // pino's serialized error: its type and message (the stack stays in the JSON format)
    const e = v as { type?: unknown; message: string };
    return JSON.stringify(typeof e.type === 'string' ? `${e.type}: ${e.message}` : e.message);
  }
  return JSON.stringify(v) ?? String(v);
}

function twoDigits(n: number): string {
  return n < 10 ? `0${n}` : String(n);
}

function clockText(time: unknown, clock: 'iso' | 'time'): string {
  const date = typeof time === 'string' || typeof time === 'number' ? new Date(time) : new Date();
  if (Number.isNaN(date.getTime())) return String(time);
  if (clock === 'iso') return typeof time === 'string' ? time : date.toISOString();
  return `${twoDigits(date.getHours())}:${twoDigits(date.getMinutes())}:${twoDigits(date.getSeconds())}`;
}

/** `0.42ms`, `12.3ms`, `1.25s`. */
export function formatDuration(ms: number): string {
  if (ms < 1) return `${ms.toFixed(2)}ms`;
  if (ms < 1000) return `${ms.toFixed(1)}ms`;
  return `${(ms / 1000).toFixed(2)}s`;
}

/** `512B`, `1.5KiB`, `3.0MiB`, `1.2GiB`. */
export function formatBytes(n: number): string {
  if (n < 1024) return `${n}B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)}KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / (1024 * 1024)).toFixed(1)}MiB`;
  return `${(n / (1024 * 1024 * 1024)).toFixed(1)}GiB`;
}

function statusColor(status: number): string {
  if (status >= 500) return '31';
  if (status >= 400) return '33';
  if (status >= 300) return '36';
  return '32';
}

/** The access log's JSON record (access-log.ts) as `GET /path 200 1.2ms 512B`. */
function requestText(rec: Record<string, unknown>, color: boolean): string | undefined {
  if (rec.msg !== 'request' || typeof rec.method !== 'string' || typeof rec.url !== 'string' || typeof rec.status !== 'number') return undefined;
  const parts = [rec.method, prettyValue(rec.url), paint(color, statusColor(rec.status), String(rec.status))];
  if (typeof rec.durationMs === 'number') parts.push(formatDuration(rec.durationMs));
  if (typeof rec.bytes === 'number') parts.push(formatBytes(rec.bytes));
  return parts.join(' ');
}

/**
 * One pino JSON record as one readable line: `TIME LEVEL message key=value ...`; an access log
 * record as `TIME INFO  GET /path 200 1.2ms 512B listener=web`. A line that is not JSON is
 * passed through as it is.
 */
export function prettyLine(json: string, options: PrettyOptions = {}): string {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.endsWith('\n') ? json : json + '\n';
  }
  if (!rec || typeof rec !== 'object') return json.endsWith('\n') ? json : json + '\n';
  const color = options.color ?? false;
  const levelNumber = typeof rec.level === 'number' ? rec.level : undefined;
  const level = levelNumber !== undefined ? (LEVEL_NAMES[levelNumber] ?? String(levelNumber)) : String(rec.level ?? '');
  const parts = [paint(color, '2', clockText(rec.time, options.clock ?? 'iso')), paint(color, (levelNumber !== undefined && LEVEL_COLORS[levelNumber]) || '0', level.padEnd(5))];
  const request = requestText(rec, color);
  if (request !== undefined) parts.push(request);
  else if (rec.msg !== undefined) parts.push(String(rec.msg).replace(/\r?\n/g, '\\n'));
  const skip = request !== undefined ? REQUEST_OWN_PLACE : OWN_PLACE;
  for (const [k, v] of Object.entries(rec)) {
    if (skip.has(k) || v === undefined) continue;
    parts.push(`${paint(color, '2', `${k}=`)}${prettyValue(v)}`);
  }
  return parts.join(' ') + '\n';
}

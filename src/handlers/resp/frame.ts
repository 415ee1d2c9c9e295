// RESP on the wire: the command parser (RESP2 multibulk `*N\r\n$len\r\n...` and inline
// telnet-style lines) and the reply encoder (RESP2, or RESP3 after HELLO 3).
//
// The parser works over the socket's Buffers and hands out arguments as views into them: no
// string is built per command. A length header is checked against its limit before anything
// of that size exists, so `$999999999999` costs nothing but the refusal. Bytes of an
// unfinished bulk are kept as a list of chunks and joined once the whole bulk is there, so a
// large value arriving in many reads is copied once, not once per read.

/** Limits the parser enforces; see the handler's config (config.ts) for what each means. */
export interface ParserLimits {
  readonly maxBulkSize: number;
  readonly maxArgs: number;
  readonly maxInlineSize: number;
}

/** Bad input: the message is what the client gets after `-ERR ` (Redis words), then the connection closes. */
export class ProtocolError extends Error {}

const EMPTY = Buffer.alloc(0);
const CR = 13;
const LF = 10;

export class RespParser {
  private buf: Buffer = EMPTY;
  private pos = 0;
  /** Chunks received while waiting for `need` bytes (a bulk not complete yet). */
  private waiting: Buffer[] = [];
  private waitingLen = 0;
  private need = 0;
  /** The multibulk being read: arguments still to come, those read so far, the announced length of the next. */
  private argsLeft = 0;
  private args: Buffer[] = [];
  private bulkLen = -1;

  constructor(private readonly limits: ParserLimits) {}

  /** Bytes received and not yet part of a whole command. */
  get buffered(): number {
    return this.buf.length - this.pos + this.waitingLen;
  }

  /** Adds received bytes without parsing them (the connection is paused; see `parse`). */
  append(chunk: Buffer): void {
    if (this.need > 0) {
      this.waiting.push(chunk);
      this.waitingLen += chunk.length;
      if (this.buf.length - this.pos + this.waitingLen < this.need) return;
      this.buf = Buffer.concat([this.buf.subarray(this.pos), ...this.waiting]);
      this.waiting = [];
      this.waitingLen = 0;
      this.need = 0;
    } else if (this.pos < this.buf.length) {
      this.buf = Buffer.concat([this.buf.subarray(this.pos), chunk]);
    } else {
      this.buf = chunk;
    }
    this.pos = 0;
  }

  /**
   * Calls `onCommand` for each complete command buffered, in order. `onCommand` returns false
   * to stop (QUIT, or replies piling up): the rest stays for the next call. Throws
   * ProtocolError on bad input.
   */
  parse(onCommand: (args: Buffer[]) => boolean): void {
    if (this.need > 0) return;
    for (;;) {
      const args = this.next();
      if (args === undefined) break;
      if (args.length === 0) continue; // an empty inline line, ignored as Redis does
      if (!onCommand(args)) break;
    }
    if (this.pos >= this.buf.length && this.need === 0) {
      this.buf = EMPTY;
      this.pos = 0;
    }
  }

  /** One complete command, or undefined when more bytes are needed. */
  private next(): Buffer[] | undefined {
    const buf = this.buf;
    if (this.argsLeft === 0) {
      if (this.pos >= buf.length) return undefined;
      if (buf[this.pos] !== 0x2a /* * */) return this.inline();
      const end = this.lineEnd(this.pos);
      if (end < 0) return undefined;
      const n = parseLength(buf, this.pos + 1, end);
      if (n === undefined || n > this.limits.maxArgs) throw new ProtocolError('Protocol error: invalid multibulk length');
      this.pos = end + 2;
      if (n <= 0) return [];
      this.argsLeft = n;
      this.args = [];
    }
    while (this.argsLeft > 0) {
      if (this.bulkLen < 0) {
        if (this.pos >= buf.length) return undefined;
        if (buf[this.pos] !== 0x24 /* $ */) {
          throw new ProtocolError(`Protocol error: expected '$', got '${String.fromCharCode(buf[this.pos])}'`);
        }
        const end = this.lineEnd(this.pos);
        if (end < 0) return undefined;
        const len = parseLength(buf, this.pos + 1, end);
        if (len === undefined || len < 0 || len > this.limits.maxBulkSize) throw new ProtocolError('Protocol error: invalid bulk length');
        this.bulkLen = len;
        this.pos = end + 2;
      }
      if (buf.length - this.pos < this.bulkLen + 2) {
        this.need = this.bulkLen + 2;
        return undefined;
      }
      const endOfBulk = this.pos + this.bulkLen;
      if (buf[endOfBulk] !== CR || buf[endOfBulk + 1] !== LF) throw new ProtocolError('Protocol error: bulk string not terminated by CRLF');
      this.args.push(buf.subarray(this.pos, endOfBulk));
      this.pos = endOfBulk + 2;
      this.bulkLen = -1;
      this.argsLeft--;
    }
    const args = this.args;
    this.args = [];
    return args;
  }

  /** The index of the CR of the line starting at `from`, -1 if it has not all arrived. */
  private lineEnd(from: number): number {
    const i = this.buf.indexOf(LF, from);
    if (i < 0) {
      if (this.buf.length - from > this.limits.maxInlineSize) throw new ProtocolError('Protocol error: too big mbulk count string');
      return -1;
    }
    if (i - from > this.limits.maxInlineSize) throw new ProtocolError('Protocol error: too big mbulk count string');
    if (i === from || this.buf[i - 1] !== CR) throw new ProtocolError('Protocol error: invalid multibulk length');
    return i - 1;
  }

  /** A telnet-style line: arguments separated by spaces, "double" and 'single' quotes as redis-cli writes them. */
  private inline(): Buffer[] | undefined {
    const buf = this.buf;
    const lf = buf.indexOf(LF, this.pos);
    if (lf < 0) {
      if (buf.length - this.pos > this.limits.maxInlineSize) throw new ProtocolError('Protocol error: too big inline request');
      return undefined;
    }
    if (lf - this.pos > this.limits.maxInlineSize) throw new ProtocolError('Protocol error: too big inline request');
    const end = lf > this.pos && buf[lf - 1] === CR ? lf - 1 : lf;
    const line = buf.subarray(this.pos, end);
    this.pos = lf + 1;
    const args = splitInline(line);
    if (args.length > this.limits.maxArgs) throw new ProtocolError('Protocol error: invalid multibulk length');
    return args;
  }
}

/** `\r\n`-free decimal integer in buf[from, to); undefined when not one (or beyond 2^53). */
function parseLength(buf: Buffer, from: number, to: number): number | undefined {
  if (from >= to || to - from > 17) return undefined;
  let neg = false;
  let i = from;
  if (buf[i] === 0x2d) {
    neg = true;
    i++;
    if (i >= to) return undefined;
  }
  let n = 0;
  for (; i < to; i++) {
    const d = buf[i] - 48;
    if (d < 0 || d > 9) return undefined;
    n = n * 10 + d;
  }
  return neg ? -n : n;
}

/** Splits an inline line as Redis's sdssplitargs does (quotes, \x escapes in double quotes). */
export function splitInline(line: Buffer): Buffer[] {
  const s = line.toString('latin1');
  const out: Buffer[] = [];
  let i = 0;
  while (i < s.length) {
    while (i < s.length && (s[i] === ' ' || s[i] === '\t')) i++;
    if (i >= s.length) break;
    let cur = '';
    if (s[i] === '"') {
      i++;
      for (;;) {
        if (i >= s.length) throw new ProtocolError('Protocol error: unbalanced quotes in request');
        const c = s[i];
        if (c === '\\' && i + 1 < s.length) {
          const e = s[i + 1];
          if (e === 'x' && /^[0-9a-fA-F]{2}$/.test(s.slice(i + 2, i + 4))) {
            cur += String.fromCharCode(parseInt(s.slice(i + 2, i + 4), 16));
            i += 4;
            continue;
          }
          cur += e === 'n' ? '\n' : e === 'r' ? '\r' : e === 't' ? '\t' : e === 'b' ? '\b' : e === 'a' ? '\x07' : e;
          i += 2;
          continue;
        }
        if (c === '"') {
          i++;
          break;
        }
        cur += c;
        i++;
      }
    } else if (s[i] === "'") {
      i++;
      for (;;) {
        if (i >= s.length) throw new ProtocolError('Protocol error: unbalanced quotes in request');
        if (s[i] === '\\' && s[i + 1] === "'") {
          cur += "'";
          i += 2;
          continue;
        }
        if (s[i] === "'") {
          i++;
          break;
        }
        cur += s[i++];
      }
    } else {
      while (i < s.length && s[i] !== ' ' && s[i] !== '\t') cur += s[i++];
    }
    out.push(Buffer.from(cur, 'latin1'));
  }
  return out;
}

// ---- replies ----

const INITIAL_SIZE = 16 * 1024;
const OK_REPLY = Buffer.from('+OK\r\n');
/** A writer's buffer grown past this (one big reply) is dropped after its flush rather than kept. */
const KEEP_SIZE = 1024 * 1024;

/**
 * The replies of one connection, encoded into one reusable buffer until the batch they answer is
 * done; `take()` copies them out (small copies come from Node's buffer pool) for one socket
 * write, and the buffer is reused for the next batch.
 */
export class ReplyWriter {
  /** RESP3 after HELLO 3: nulls, maps, sets and pushes get their own types. */
  resp3 = false;
  private buf = Buffer.allocUnsafe(INITIAL_SIZE);
  private off = 0;

  get length(): number {
    return this.off;
  }

  /** The encoded bytes so far, emptied for the next batch. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.off);
    this.buf.copy(out, 0, 0, this.off);
    this.off = 0;
    if (this.buf.length > KEEP_SIZE) this.buf = Buffer.allocUnsafe(INITIAL_SIZE);
    return out;
  }

  private ensure(n: number): void {
    if (this.off + n <= this.buf.length) return;
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.off + n));
    this.buf.copy(next, 0, 0, this.off);
    this.buf = next;
  }

  private ascii(s: string): void {
    this.ensure(s.length);
    this.off += this.buf.write(s, this.off, 'latin1');
  }

  private header(prefix: string, n: number): void {
    this.ensure(24);
    this.lengthHeader(prefix.charCodeAt(0), n);
  }

  simple(s: string): void {
    this.ensure(Buffer.byteLength(s) + 3);
    this.buf[this.off++] = 0x2b;
    this.off += this.buf.write(s, this.off);
    this.buf[this.off++] = CR;
    this.buf[this.off++] = LF;
  }

  ok(): void {
    this.ensure(5);
    this.off += OK_REPLY.copy(this.buf, this.off);
  }

  /** An error reply; `message` starts with its code (`ERR`, `WRONGTYPE`, ...). */
  error(message: string): void {
    this.ascii(`-${message.replace(/[\r\n]/g, ' ')}\r\n`);
  }

  int(n: number | bigint): void {
    this.ascii(`:${n}\r\n`);
  }

  bulk(value: Buffer | string): void {
    if (typeof value === 'string') {
      const len = Buffer.byteLength(value);
      this.ensure(len + 24);
      this.lengthHeader(0x24, len);
      this.off += this.buf.write(value, this.off);
    } else {
      this.ensure(value.length + 24);
      this.lengthHeader(0x24, value.length);
      this.off += value.copy(this.buf, this.off);
    }
    this.buf[this.off++] = CR;
    this.buf[this.off++] = LF;
  }

  /** `$<n>\r\n` (or another prefix) written digit by digit: no string per reply. */
  private lengthHeader(prefix: number, n: number): void {
    const buf = this.buf;
    buf[this.off++] = prefix;
    if (n < 10) buf[this.off++] = 48 + n;
    else {
      let digits = 0;
      for (let x = n; x > 0; x = Math.floor(x / 10)) digits++;
      let i = this.off + digits;
      this.off = i;
      for (let x = n; x > 0; x = Math.floor(x / 10)) buf[--i] = 48 + (x % 10);
    }
    buf[this.off++] = CR;
    buf[this.off++] = LF;
  }

  /** A bulk of a key kept as a latin1 string (keys are binary-safe that way). */
  key(k: string): void {
    this.ensure(k.length + 24);
    this.off += this.buf.write(`$${k.length}\r\n`, this.off, 'latin1');
    this.off += this.buf.write(k, this.off, 'latin1');
    this.buf[this.off++] = CR;
    this.buf[this.off++] = LF;
  }

  nil(): void {
    this.ascii(this.resp3 ? '_\r\n' : '$-1\r\n');
  }

  nilArray(): void {
    this.ascii(this.resp3 ? '_\r\n' : '*-1\r\n');
  }

  array(n: number): void {
    this.header('*', n);
  }

  /** A map of n pairs (RESP3 `%`), a flat array of 2n in RESP2. */
  map(n: number): void {
    if (this.resp3) this.header('%', n);
    else this.header('*', n * 2);
  }

  set(n: number): void {
    this.header(this.resp3 ? '~' : '*', n);
  }

  /** Out-of-band data (pub/sub messages): RESP3 `>`, an array in RESP2. */
  push(n: number): void {
    this.header(this.resp3 ? '>' : '*', n);
  }
}

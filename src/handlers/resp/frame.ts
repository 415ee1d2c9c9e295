// RESP on the wire: the command parser (RESP2 multibulk `*N\r\n$len\r\n...` and inline
// telnet-style lines) and the reply encoder (RESP2, or RESP3 after HELLO 3).
//
// The parser works over the socket's Buffers and hands out each command as offsets into them
// (CommandArgs, reused for every command): nothing is allocated per argument. A length header
// is checked against its limit before anything of that size exists, so `$999999999999` costs
// nothing but the refusal. A command cut by the end of a read is kept in a buffer of our own
// that grows geometrically (or straight to the size of the bulk being read, once its length is
// known), so bytes arriving in many reads are copied about once, never once per read.

import { CommandArgs } from './args.ts';

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
/** Smallest buffer of our own a cut command is kept in. */
const MIN_KEEP = 16 * 1024;

export class RespParser {
  /** Bytes received and not parsed yet, from `pos` on (before it: what the current command's args point at). */
  private buf: Buffer = EMPTY;
  /** Our own storage behind `buf` when it has room to append in place. */
  private spare: Buffer | undefined;
  private pos = 0;
  /** Where the command being read started (its arguments are offsets from the buffer's start). */
  private cmdStart = 0;
  /** Bytes needed from `pos` before parsing can go on (a bulk not all here yet); 0 when unknown. */
  private need = 0;
  /** The multibulk being read: arguments still to come, the announced length of the next. */
  private argsLeft = 0;
  private bulkLen = -1;
  private readonly args = new CommandArgs();

  constructor(private readonly limits: ParserLimits) {}

  /** Bytes received and not yet part of a whole command. */
  get buffered(): number {
    return this.buf.length - this.pos;
  }

  /** Adds received bytes without parsing them (the connection may be paused; see `parse`). */
  append(chunk: Buffer): void {
    const from = this.argsLeft > 0 ? this.cmdStart : this.pos;
    const keep = this.buf.length - from;
    if (keep === 0) {
      this.buf = chunk;
      this.spare = undefined;
      this.pos = 0;
      this.cmdStart = 0;
      return;
    }
    const total = keep + chunk.length;
    const spare = this.spare;
    if (spare !== undefined && from === 0 && total <= spare.length) {
      spare.set(chunk, keep);
      this.buf = spare.subarray(0, total);
      if (this.argsLeft > 0) this.args.shift(this.buf, 0);
      return;
    }
    const wanted = this.need > 0 ? this.pos - from + this.need : 0;
    const next = Buffer.allocUnsafe(Math.max(wanted, total * 2, MIN_KEEP));
    next.set(this.buf.subarray(from), 0);
    next.set(chunk, keep);
    this.spare = next;
    this.buf = next.subarray(0, total);
    this.pos -= from;
    this.cmdStart -= from;
    if (this.argsLeft > 0) this.args.shift(this.buf, from);
  }

  /**
   * Calls `onCommand` for each complete command buffered, in order; its arguments are valid only
   * during the call. `onCommand` returns false to stop (QUIT, or replies piling up): the rest
   * stays for the next call. Throws ProtocolError on bad input.
   */
  parse(onCommand: (args: CommandArgs) => boolean): void {
    if (this.buf.length - this.pos < this.need) return;
    this.need = 0;
    const args = this.args;
    while (this.next()) {
      if (args.length === 0) continue; // an empty inline line, ignored as Redis does
      if (!onCommand(args)) break;
    }
    if (this.pos >= this.buf.length && this.argsLeft === 0) {
      this.buf = EMPTY;
      this.spare = undefined;
      this.pos = 0;
      this.cmdStart = 0;
    }
  }

  /** Reads one complete command into `args`; false when more bytes are needed. */
  private next(): boolean {
    const buf = this.buf;
    const args = this.args;
    if (this.argsLeft === 0) {
      if (this.pos >= buf.length) return false;
      this.cmdStart = this.pos;
      if (buf[this.pos] !== 0x2a /* * */) return this.inline();
      const end = this.lineEnd(this.pos);
      if (end < 0) return false;
      const n = parseLength(buf, this.pos + 1, end);
      if (n === undefined || n > this.limits.maxArgs) throw new ProtocolError('Protocol error: invalid multibulk length');
      this.pos = end + 2;
      args.reset(buf);
      if (n <= 0) return true;
      this.argsLeft = n;
    }
    while (this.argsLeft > 0) {
      if (this.bulkLen < 0) {
        if (this.pos >= buf.length) return false;
        if (buf[this.pos] !== 0x24 /* $ */) {
          throw new ProtocolError(`Protocol error: expected '$', got '${String.fromCharCode(buf[this.pos])}'`);
        }
        const end = this.lineEnd(this.pos);
        if (end < 0) return false;
        const len = parseLength(buf, this.pos + 1, end);
        if (len === undefined || len < 0 || len > this.limits.maxBulkSize) throw new ProtocolError('Protocol error: invalid bulk length');
        this.bulkLen = len;
        this.pos = end + 2;
      }
      if (buf.length - this.pos < this.bulkLen + 2) {
        this.need = this.bulkLen + 2;
        return false;
      }
      const endOfBulk = this.pos + this.bulkLen;
      if (buf[endOfBulk] !== CR || buf[endOfBulk + 1] !== LF) throw new ProtocolError('Protocol error: bulk string not terminated by CRLF');
      args.push(this.pos, endOfBulk);
      this.pos = endOfBulk + 2;
      this.bulkLen = -1;
      this.argsLeft--;
    }
    return true;
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
  private inline(): boolean {
    const buf = this.buf;
    const lf = buf.indexOf(LF, this.pos);
    if (lf < 0) {
      if (buf.length - this.pos > this.limits.maxInlineSize) throw new ProtocolError('Protocol error: too big inline request');
      return false;
    }
    if (lf - this.pos > this.limits.maxInlineSize) throw new ProtocolError('Protocol error: too big inline request');
    const end = lf > this.pos && buf[lf - 1] === CR ? lf - 1 : lf;
    const line = buf.subarray(this.pos, end);
    this.pos = lf + 1;
    const parts = splitInline(line);
    if (parts.length > this.limits.maxArgs) throw new ProtocolError('Protocol error: invalid multibulk length');
    // The unquoted arguments in a buffer of their own, so that they read like a multibulk's.
    const joined = Buffer.concat(parts);
    this.args.reset(joined);
    let at = 0;
    for (const p of parts) {
      this.args.push(at, at + p.length);
      at += p.length;
    }
    return true;
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
// Constant replies, encoded once.
const OK_REPLY = Buffer.from('+OK\r\n');
const NULL_BULK_REPLY = Buffer.from('$-1\r\n');
const NULL3_REPLY = Buffer.from('_\r\n');
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
    const buf = this.buf;
    let off = this.off;
    for (let i = 0; i < OK_REPLY.length; i++) buf[off++] = OK_REPLY[i];
    this.off = off;
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
      const n = value.length;
      this.ensure(n + 24);
      this.lengthHeader(0x24, n);
      // TypedArray#set, not Buffer#copy: copy's argument handling costs more than a 100-byte copy.
      this.buf.set(value, this.off);
      this.off += n;
    }
    this.buf[this.off++] = CR;
    this.buf[this.off++] = LF;
  }

  /** A bulk of bytes src[start, end) (an argument still in the read buffer, say). */
  bulkRange(src: Buffer, start: number, end: number): void {
    const n = end - start;
    this.ensure(n + 24);
    this.lengthHeader(0x24, n);
    const buf = this.buf;
    let off = this.off;
    if (n <= 32) for (let i = start; i < end; i++) buf[off++] = src[i];
    else {
      buf.set(src.subarray(start, end), off);
      off += n;
    }
    buf[off++] = CR;
    buf[off++] = LF;
    this.off = off;
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
    const reply = this.resp3 ? NULL3_REPLY : NULL_BULK_REPLY;
    this.ensure(reply.length);
    const buf = this.buf;
    let off = this.off;
    for (let i = 0; i < reply.length; i++) buf[off++] = reply[i];
    this.off = off;
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

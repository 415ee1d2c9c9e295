import { LIMITS } from './options.ts';

// A minimal HTTP/1.1 response parser for the load generator: it finds where each response
// ends (status line, Content-Length, chunked, or until close) and its status, and looks at
// nothing else. It runs over the bytes as they arrive, without copying them, except for a
// response head split across reads, which is gathered into a small bounded buffer.

const enum State {
  Head,
  Body,
  ChunkSize,
  ChunkExtension,
  ChunkData,
  ChunkDataEnd,
  Trailer,
  UntilClose,
}

const CR = 13;
const LF = 10;
const HEAD_END = Buffer.from('\r\n\r\n');
const CONTENT_LENGTH = Buffer.from('content-length');
const TRANSFER_ENCODING = Buffer.from('transfer-encoding');
const CONNECTION = Buffer.from('connection');
const CHUNKED = Buffer.from('chunked');
const CLOSE = Buffer.from('close');
const KEEP_ALIVE = Buffer.from('keep-alive');
/** Longest chunk-size line (hex digits) we accept: 2^52 fits in a double exactly. */
const MAX_CHUNK_DIGITS = 13;
const MAX_TRAILER_BYTES = 16 * 1024;

export interface ResponseSink {
  /** A whole response arrived. `keepAlive` false: the server closes after it. */
  response(status: number, keepAlive: boolean): void;
}

/** Thrown (and caught by the engine) for bytes that are not an HTTP/1.x response. */
export class ResponseParseError extends Error {}

/** True when buf[at, at+lower.length) equals `lower` ignoring ASCII case. */
function equalsLower(buf: Buffer, at: number, end: number, lower: Buffer): boolean {
  if (end - at < lower.length) return false;
  for (let i = 0; i < lower.length; i++) {
    if ((buf[at + i] | 0x20) !== lower[i]) return false;
  }
  return true;
}

/** True when `lower` occurs in buf[from, to) ignoring ASCII case. */
function containsLower(buf: Buffer, from: number, to: number, lower: Buffer): boolean {
  const last = to - lower.length;
  for (let i = from; i <= last; i++) {
    if ((buf[i] | 0x20) === lower[0] && equalsLower(buf, i, to, lower)) return true;
  }
  return false;
}

export class Http1ResponseParser {
  private state = State.Head;
  /** Body bytes (or chunk bytes) still to come. */
  private remaining = 0;
  private status = 0;
  private keepAlive = true;
  private chunkDigits = 0;
  private trailerLine = 0;
  private trailerBytes = 0;
  /** A head split across reads, gathered here (bounded by LIMITS.maxHeadBytes). */
  private partial: Buffer | undefined;
  private partialLength = 0;
  /** Set by halt(): the rest of the current read is ignored. */
  private halted = false;
  /**
   * The last complete head and what it said. A server under load sends the same head again and
   * again (until its Date changes), and equal bytes parse the same: one native compare then
   * replaces the scan.
   */
  private lastHead: Buffer | undefined;
  private lastHeadLength = 0;
  private lastLength = -1;
  private lastChunked = false;
  private lastStatus = 0;
  private lastKeepAlive = true;

  constructor(
    private readonly sink: ResponseSink,
    /** The requests are HEAD: responses carry no body whatever their headers say. */
    private readonly headRequests: boolean,
  ) {}

  /** Back to the start of a response (a new connection). */
  reset(): void {
    this.state = State.Head;
    this.partialLength = 0;
    this.remaining = 0;
    this.halted = false;
  }

  /** Stops parsing the current read (the connection is being closed from inside a response callback). */
  halt(): void {
    this.halted = true;
  }

  /** Parses buf[0, end); throws ResponseParseError on malformed input. */
  execute(buf: Buffer, end: number): void {
    let pos = 0;
    while (pos < end && !this.halted) {
      switch (this.state) {
        case State.Head:
          pos = this.head(buf, pos, end);
          break;
        case State.Body: {
          const take = Math.min(this.remaining, end - pos);
          pos += take;
          this.remaining -= take;
          if (this.remaining === 0) this.complete();
          break;
        }
        case State.ChunkSize:
        case State.ChunkExtension:
          pos = this.chunkSize(buf, pos, end);
          break;
        case State.ChunkData: {
          const take = Math.min(this.remaining, end - pos);
          pos += take;
          this.remaining -= take;
          if (this.remaining === 0) {
            this.state = State.ChunkDataEnd;
            this.remaining = 2;
          }
          break;
        }
        case State.ChunkDataEnd: {
          // The CRLF after chunk data.
          const b = buf[pos++];
          if (this.remaining === 2 && b === LF) this.remaining = 0;
          else if (b !== (this.remaining === 2 ? CR : LF)) throw new ResponseParseError('missing CRLF after chunk data');
          else this.remaining--;
          if (this.remaining === 0) this.state = State.ChunkSize;
          break;
        }
        case State.Trailer:
          pos = this.trailer(buf, pos, end);
          break;
        case State.UntilClose:
          return;
      }
    }
  }

  /** The connection ended: true when that ended a response that runs until close. */
  finish(): boolean {
    if (this.state !== State.UntilClose) return false;
    this.state = State.Head;
    this.sink.response(this.status, false);
    return true;
  }

  /** Bytes of a response have arrived and it is not complete yet. */
  get midResponse(): boolean {
    return this.state !== State.Head || this.partialLength > 0;
  }

  private head(buf: Buffer, pos: number, end: number): number {
    if (this.partialLength === 0) {
      const same = this.lastHeadLength;
      if (same > 0 && end - pos >= same && this.lastHead !== undefined && buf.compare(this.lastHead, 0, same, pos, pos + same) === 0) {
        this.startBody(this.lastStatus, this.lastKeepAlive, this.lastLength, this.lastChunked);
        return pos + same;
      }
      const at = buf.indexOf(HEAD_END, pos);
      if (at !== -1 && at + 4 <= end) {
        this.parseHead(buf, pos, at);
        return at + 4;
      }
    }
    // The head continues in a later read: gather it.
    const searchFrom = Math.max(0, this.partialLength - 3);
    const room = LIMITS.maxHeadBytes - this.partialLength;
    const take = Math.min(end - pos, room);
    if (!this.partial || this.partial.length < this.partialLength + take) {
      const grown = Buffer.allocUnsafe(Math.min(LIMITS.maxHeadBytes, Math.max(4096, (this.partialLength + take) * 2)));
      if (this.partial) this.partial.copy(grown, 0, 0, this.partialLength);
      this.partial = grown;
    }
    buf.copy(this.partial, this.partialLength, pos, pos + take);
    const before = this.partialLength;
    this.partialLength += take;
    const at = this.partial.subarray(0, this.partialLength).indexOf(HEAD_END, searchFrom);
    if (at === -1) {
      if (this.partialLength >= LIMITS.maxHeadBytes) throw new ResponseParseError(`response head larger than ${LIMITS.maxHeadBytes} bytes`);
      return pos + take;
    }
    this.partialLength = 0;
    this.parseHead(this.partial, 0, at);
    return pos + (at + 4 - before);
  }

  /** Reads the status line and headers in buf[start, headEnd) (headEnd = the blank line's CR). */
  private parseHead(buf: Buffer, start: number, headEnd: number): void {
    // "HTTP/1.x SSS"
    if (headEnd - start < 12 || buf[start] !== 0x48 || buf[start + 4] !== 0x2f || buf[start + 8] !== 0x20) {
      throw new ResponseParseError(`not an HTTP/1.x status line: ${JSON.stringify(buf.toString('latin1', start, Math.min(headEnd, start + 40)))}`);
    }
    const d0 = buf[start + 9] - 48;
    const d1 = buf[start + 10] - 48;
    const d2 = buf[start + 11] - 48;
    if (d0 < 1 || d0 > 5 || d1 < 0 || d1 > 9 || d2 < 0 || d2 > 9) throw new ResponseParseError('bad status code');
    const status = d0 * 100 + d1 * 10 + d2;
    let keepAlive = buf[start + 7] === 0x31; // HTTP/1.1 keeps alive unless told otherwise
    let length = -1;
    let chunked = false;
    // Header lines are short: a loop here is cheaper than a native indexOf call per line.
    let line = start + 12;
    while (line < headEnd && buf[line] !== LF) line++;
    line++;
    while (line < headEnd) {
      let lineEnd = line;
      while (lineEnd < headEnd && buf[lineEnd] !== CR) lineEnd++;
      const first = buf[line] | 0x20;
      if (first === 0x63 /* c */) {
        if (equalsLower(buf, line, lineEnd, CONTENT_LENGTH) && buf[line + 14] === 0x3a) {
          length = 0;
          let digits = 0;
          for (let i = line + 15; i < lineEnd; i++) {
            const c = buf[i];
            if (c === 0x20 || c === 0x09) continue;
            if (c < 48 || c > 57 || ++digits > 15) throw new ResponseParseError('bad Content-Length');
            length = length * 10 + (c - 48);
          }
          if (digits === 0) throw new ResponseParseError('empty Content-Length');
        } else if (equalsLower(buf, line, lineEnd, CONNECTION) && buf[line + 10] === 0x3a) {
          if (containsLower(buf, line + 11, lineEnd, CLOSE)) keepAlive = false;
          else if (containsLower(buf, line + 11, lineEnd, KEEP_ALIVE)) keepAlive = true;
        }
      } else if (first === 0x74 /* t */) {
        if (equalsLower(buf, line, lineEnd, TRANSFER_ENCODING) && buf[line + 17] === 0x3a) {
          chunked = containsLower(buf, line + 18, lineEnd, CHUNKED);
        }
      }
      line = lineEnd + 2;
    }
    if (status < 200 && status !== 101) return; // 1xx interim: the real response follows
    this.remember(buf, start, headEnd + 4, length, chunked, status, keepAlive);
    this.startBody(status, keepAlive, length, chunked);
  }

  private remember(buf: Buffer, start: number, end: number, length: number, chunked: boolean, status: number, keepAlive: boolean): void {
    const size = end - start;
    if (size > 1024) {
      this.lastHeadLength = 0;
      return;
    }
    if (this.lastHead === undefined || this.lastHead.length < size) this.lastHead = Buffer.allocUnsafe(Math.max(256, size));
    buf.copy(this.lastHead, 0, start, end);
    this.lastHeadLength = size;
    this.lastLength = length;
    this.lastChunked = chunked;
    this.lastStatus = status;
    this.lastKeepAlive = keepAlive;
  }

  /** After a head: where its body ends (or that it has none). */
  private startBody(status: number, keepAlive: boolean, length: number, chunked: boolean): void {
    this.status = status;
    this.keepAlive = keepAlive;
    if (this.headRequests || status === 204 || status === 304 || status === 101) {
      this.complete();
    } else if (chunked) {
      this.state = State.ChunkSize;
      this.remaining = 0;
      this.chunkDigits = 0;
    } else if (length >= 0) {
      if (length === 0) this.complete();
      else {
        this.state = State.Body;
        this.remaining = length;
      }
    } else {
      this.keepAlive = false;
      this.state = State.UntilClose;
    }
  }

  private chunkSize(buf: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = buf[pos++];
      if (c === LF) {
        if (this.chunkDigits === 0) throw new ResponseParseError('chunk size line without a size');
        this.chunkDigits = 0;
        if (this.remaining === 0) {
          this.state = State.Trailer;
          this.trailerLine = 0;
          this.trailerBytes = 0;
        } else {
          this.state = State.ChunkData;
        }
        return pos;
      }
      if (this.state === State.ChunkExtension || c === CR) continue;
      if (c === 0x3b /* ; */ || c === 0x20 || c === 0x09) {
        this.state = State.ChunkExtension;
        continue;
      }
      const lower = c | 0x20;
      const v = c >= 48 && c <= 57 ? c - 48 : lower >= 97 && lower <= 102 ? lower - 87 : -1;
      if (v < 0 || ++this.chunkDigits > MAX_CHUNK_DIGITS) throw new ResponseParseError('bad chunk size');
      this.remaining = this.remaining * 16 + v;
    }
    return pos;
  }

  private trailer(buf: Buffer, pos: number, end: number): number {
    while (pos < end) {
      const c = buf[pos++];
      if (++this.trailerBytes > MAX_TRAILER_BYTES) throw new ResponseParseError('trailer too large');
      if (c === LF) {
        if (this.trailerLine === 0) {
          this.complete();
          return pos;
        }
        this.trailerLine = 0;
      } else if (c !== CR) {
        this.trailerLine++;
      }
    }
    return pos;
  }

  private complete(): void {
    this.state = State.Head;
    this.sink.response(this.status, this.keepAlive);
  }
}

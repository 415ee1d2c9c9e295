import { connect, type Socket } from 'node:net';

// A small raw HTTP/2 client for the limit tests: it writes whatever frames a test asks for (the
// ones a well-behaved client library would never send) and reads the server's frames back as
// they come. HPACK here is the least of it: requests are encoded as "literal without indexing,
// new name" without Huffman (RFC 7541 §6.2.2), which needs no table; responses are decoded with
// the static table only, the client having set SETTINGS_HEADER_TABLE_SIZE to 0 so that the
// server keeps no dynamic table. Huffman-coded values are not decoded (`huffman: true`); the
// server never Huffman-codes a :status (three digits are no shorter coded).

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

export const FrameType = {
  DATA: 0x0,
  HEADERS: 0x1,
  PRIORITY: 0x2,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PUSH_PROMISE: 0x5,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const Flag = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4, PADDED: 0x8, PRIORITY: 0x20 } as const;

export const ErrorCode = {
  NO_ERROR: 0x0,
  PROTOCOL_ERROR: 0x1,
  INTERNAL_ERROR: 0x2,
  FLOW_CONTROL_ERROR: 0x3,
  SETTINGS_TIMEOUT: 0x4,
  STREAM_CLOSED: 0x5,
  FRAME_SIZE_ERROR: 0x6,
  REFUSED_STREAM: 0x7,
  CANCEL: 0x8,
  COMPRESSION_ERROR: 0x9,
  CONNECT_ERROR: 0xa,
  ENHANCE_YOUR_CALM: 0xb,
  INADEQUATE_SECURITY: 0xc,
  HTTP_1_1_REQUIRED: 0xd,
} as const;

export const Setting = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
  MAX_FRAME_SIZE: 0x5,
  MAX_HEADER_LIST_SIZE: 0x6,
} as const;

export interface Frame {
  type: number;
  flags: number;
  streamId: number;
  payload: Buffer;
}

// ---- writing frames --------------------------------------------------------------------------

export function frame(type: number, flags: number, streamId: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

export function settingsFrame(entries: [number, number][] = []): Buffer {
  const payload = Buffer.alloc(entries.length * 6);
  entries.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, i * 6);
    payload.writeUInt32BE(value, i * 6 + 2);
  });
  return frame(FrameType.SETTINGS, 0, 0, payload);
}

export const settingsAck = (): Buffer => frame(FrameType.SETTINGS, Flag.ACK, 0);

export function headersFrame(streamId: number, block: Buffer, options: { endStream?: boolean; endHeaders?: boolean } = {}): Buffer {
  const flags = (options.endStream ?? true ? Flag.END_STREAM : 0) | (options.endHeaders ?? true ? Flag.END_HEADERS : 0);
  return frame(FrameType.HEADERS, flags, streamId, block);
}

export const continuationFrame = (streamId: number, block: Buffer, endHeaders = false): Buffer =>
  frame(FrameType.CONTINUATION, endHeaders ? Flag.END_HEADERS : 0, streamId, block);

export const dataFrame = (streamId: number, data: Buffer, endStream = false): Buffer => frame(FrameType.DATA, endStream ? Flag.END_STREAM : 0, streamId, data);

export function rstStreamFrame(streamId: number, code: number = ErrorCode.CANCEL): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(code);
  return frame(FrameType.RST_STREAM, 0, streamId, p);
}

export const pingFrame = (data: Buffer = Buffer.alloc(8), ack = false): Buffer => frame(FrameType.PING, ack ? Flag.ACK : 0, 0, data);

export function windowUpdateFrame(streamId: number, increment: number): Buffer {
  const p = Buffer.alloc(4);
  p.writeUInt32BE(increment & 0x7fffffff);
  return frame(FrameType.WINDOW_UPDATE, 0, streamId, p);
}

export function goawayFrame(lastStreamId: number, code: number = ErrorCode.NO_ERROR): Buffer {
  const p = Buffer.alloc(8);
  p.writeUInt32BE(lastStreamId & 0x7fffffff, 0);
  p.writeUInt32BE(code, 4);
  return frame(FrameType.GOAWAY, 0, 0, p);
}

// ---- HPACK -----------------------------------------------------------------------------------

/** An HPACK integer with an N-bit prefix; `first` holds the bits above the prefix (RFC 7541 §5.1). */
function hpackInt(n: number, prefixBits: number, first = 0): Buffer {
  const max = (1 << prefixBits) - 1;
  if (n < max) return Buffer.of(first | n);
  const out = [first | max];
  let rest = n - max;
  while (rest >= 128) {
    out.push((rest & 0x7f) | 0x80);
    rest = Math.floor(rest / 128);
  }
  out.push(rest);
  return Buffer.from(out);
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(bytes.length, 7), bytes]);
}

/** A header block: every field a literal without indexing with a new name, no Huffman. */
export function encodeHeaders(fields: [string, string][]): Buffer {
  return Buffer.concat(fields.flatMap(([name, value]) => [Buffer.of(0), hpackString(name), hpackString(value)]));
}

/** The header block of a request. */
export function requestBlock(authority: string, path = '/', method = 'GET', extra: [string, string][] = []): Buffer {
  return encodeHeaders([[':method', method], [':scheme', 'http'], [':authority', authority], [':path', path], ...extra]);
}

const STATIC: [string, string][] = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

export interface DecodedField {
  name: string;
  /** undefined when the value was Huffman-coded (not decoded here). */
  value: string | undefined;
}

/**
 * Decodes a response header block with the static table only (the client asked for a dynamic
 * table of size 0). Throws on a reference to the dynamic table.
 */
export function decodeHeaders(block: Buffer): DecodedField[] {
  const out: DecodedField[] = [];
  let i = 0;
  const int = (prefixBits: number): number => {
    const max = (1 << prefixBits) - 1;
    let n = block[i++] & max;
    if (n < max) return n;
    let shift = 0;
    let b: number;
    do {
      b = block[i++];
      n += (b & 0x7f) * 2 ** shift;
      shift += 7;
    } while (b & 0x80);
    return n;
  };
  const str = (): string | undefined => {
    const huffman = (block[i] & 0x80) !== 0;
    const len = int(7);
    const s = block.subarray(i, i + len);
    i += len;
    return huffman ? undefined : s.toString('latin1');
  };
  const entry = (index: number): [string, string] => {
    const e = STATIC[index - 1];
    if (!e) throw new Error(`HPACK index ${index} is not in the static table`);
    return e;
  };
  while (i < block.length) {
    const b = block[i];
    if (b & 0x80) {
      const [name, value] = entry(int(7));
      out.push({ name, value });
    } else if ((b & 0xe0) === 0x20) {
      int(5); // dynamic table size update
    } else {
      const prefix = (b & 0xc0) === 0x40 ? 6 : 4;
      const index = int(prefix);
      const name = index === 0 ? (str() ?? '?') : entry(index)[0];
      out.push({ name, value: str() });
    }
  }
  return out;
}

// ---- reading ---------------------------------------------------------------------------------

export function parseGoaway(f: Frame): { lastStreamId: number; errorCode: number; debug: string } {
  return { lastStreamId: f.payload.readUInt32BE(0) & 0x7fffffff, errorCode: f.payload.readUInt32BE(4), debug: f.payload.subarray(8).toString('latin1') };
}

export function parseSettings(f: Frame): Map<number, number> {
  const m = new Map<number, number>();
  for (let i = 0; i + 6 <= f.payload.length; i += 6) m.set(f.payload.readUInt16BE(i), f.payload.readUInt32BE(i + 2));
  return m;
}

export const rstCode = (f: Frame): number => f.payload.readUInt32BE(0);

/** The :status of a HEADERS frame (END_HEADERS set), or undefined. */
export function statusOf(f: Frame): number | undefined {
  const v = decodeHeaders(f.payload).find((h) => h.name === ':status')?.value;
  return v === undefined ? undefined : Number(v);
}

export interface H2ClientOptions {
  host?: string;
  /** Sent in the client's first SETTINGS frame, after HEADER_TABLE_SIZE 0. */
  settings?: [number, number][];
  /** Answer the server's SETTINGS with an ACK (default true). */
  ackSettings?: boolean;
}

/** One raw HTTP/2 connection: frames in, frames out, nothing checked on our side. */
export class H2Client {
  readonly frames: Frame[] = [];
  /** Bytes of DATA payload received, by stream. */
  readonly dataBytes = new Map<number, number>();
  closed = false;
  readonly whenClosed: Promise<void>;
  private buf: Buffer = Buffer.alloc(0);
  private waiters: (() => void)[] = [];

  private constructor(readonly socket: Socket, private readonly options: H2ClientOptions) {
    socket.on('data', (d: Buffer) => this.onData(d));
    socket.on('error', () => {});
    this.whenClosed = new Promise((resolve) =>
      socket.once('close', () => {
        this.closed = true;
        this.wake();
        resolve();
      }),
    );
  }

  /** Connects, sends the preface and SETTINGS (HEADER_TABLE_SIZE 0 and `settings`). */
  static connect(port: number, options: H2ClientOptions = {}): Promise<H2Client> {
    return new Promise((resolve, reject) => {
      const socket = connect({ port, host: options.host ?? '127.0.0.1' });
      socket.once('error', reject);
      socket.once('connect', () => {
        socket.off('error', reject);
        const c = new H2Client(socket, options);
        c.write(Buffer.concat([PREFACE, settingsFrame([[Setting.HEADER_TABLE_SIZE, 0], ...(options.settings ?? [])])]));
        resolve(c);
      });
    });
  }

  /** Writes and waits while the socket's buffer is full; false once the socket is gone. */
  async send(data: Buffer): Promise<boolean> {
    if (this.socket.destroyed || !this.socket.writable) return false;
    if (this.socket.write(data)) return true;
    return new Promise((resolve) => {
      const done = (ok: boolean) => {
        this.socket.off('drain', onDrain);
        this.socket.off('close', onClose);
        resolve(ok);
      };
      const onDrain = () => done(true);
      const onClose = () => done(false);
      this.socket.once('drain', onDrain);
      this.socket.once('close', onClose);
    });
  }

  write(data: Buffer): void {
    if (!this.socket.destroyed) this.socket.write(data);
  }

  /** GET `path` on stream `streamId` (one HEADERS frame, END_STREAM unless a body follows). */
  request(streamId: number, path = '/', options: { method?: string; extra?: [string, string][]; endStream?: boolean } = {}): void {
    this.write(headersFrame(streamId, requestBlock('127.0.0.1', path, options.method, options.extra), { endStream: options.endStream ?? true }));
  }

  /** The first frame received (so far or later) matching `pred`; undefined if the connection closes or `timeoutMs` passes first. */
  async waitFor(pred: (f: Frame) => boolean, timeoutMs = 5000): Promise<Frame | undefined> {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      const found = this.frames.find(pred);
      if (found) return found;
      if (this.closed || Date.now() >= deadline) return undefined;
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, deadline - Date.now());
        this.waiters.push(() => {
          clearTimeout(timer);
          resolve();
        });
      });
    }
  }

  /** The response HEADERS frame of a stream. */
  response(streamId: number, timeoutMs?: number): Promise<Frame | undefined> {
    return this.waitFor((f) => f.type === FrameType.HEADERS && f.streamId === streamId, timeoutMs);
  }

  /** Waits for the stream's end: a frame with END_STREAM or a RST_STREAM on it. */
  streamEnd(streamId: number, timeoutMs?: number): Promise<Frame | undefined> {
    return this.waitFor((f) => f.streamId === streamId && (f.type === FrameType.RST_STREAM || ((f.type === FrameType.DATA || f.type === FrameType.HEADERS) && (f.flags & Flag.END_STREAM) !== 0)), timeoutMs);
  }

  goaway(): Frame | undefined {
    return this.frames.find((f) => f.type === FrameType.GOAWAY);
  }

  /** Resolves once the server has closed the connection, or after `timeoutMs` (then false). */
  async closedWithin(timeoutMs: number): Promise<boolean> {
    let timer: NodeJS.Timeout | undefined;
    const closed = await Promise.race([this.whenClosed.then(() => true), new Promise<boolean>((resolve) => (timer = setTimeout(() => resolve(false), timeoutMs)))]);
    clearTimeout(timer);
    return closed;
  }

  destroy(): void {
    this.socket.destroy();
  }

  private onData(d: Buffer): void {
    this.buf = this.buf.length === 0 ? d : Buffer.concat([this.buf, d]);
    let any = false;
    while (this.buf.length >= 9) {
      const len = this.buf.readUIntBE(0, 3);
      if (this.buf.length < 9 + len) break;
      const f: Frame = { type: this.buf[3], flags: this.buf[4], streamId: this.buf.readUInt32BE(5) & 0x7fffffff, payload: this.buf.subarray(9, 9 + len) };
      this.buf = this.buf.subarray(9 + len);
      this.frames.push(f);
      any = true;
      if (f.type === FrameType.DATA) this.dataBytes.set(f.streamId, (this.dataBytes.get(f.streamId) ?? 0) + len);
      if (f.type === FrameType.SETTINGS && !(f.flags & Flag.ACK) && (this.options.ackSettings ?? true)) this.write(settingsAck());
    }
    if (any) this.wake();
  }

  private wake(): void {
    const w = this.waiters;
    this.waiters = [];
    for (const f of w) f();
  }
}

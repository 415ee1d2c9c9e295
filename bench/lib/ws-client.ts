import { createHash, randomBytes, randomFillSync } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';

// A minimal RFC 6455 client for the load generator of `npm run bench -- ws`. The `ws` client
// costs about as much CPU per message as a `ws` server, so with one core for each side it, not
// the server, would set the pace. This one does only what the benchmark needs: the upgrade
// handshake, masked text frames out (all frames queued in one tick go out in one write),
// unmasked frames in (fragments reassembled, pings answered, close handshake), and nothing
// else: no extensions, no subprotocols, no UTF-8 validation.

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/**
 * Every connection reads into this one buffer (net's `onread`): no Buffer per read and no stream
 * machinery, which is most of a small message's cost on the receiving side. Safe to share
 * because a read is handled to the end before the next one starts; whatever must outlive it (a
 * partial frame, a fragment) is copied.
 */
const READ_BUFFER = Buffer.allocUnsafe(256 << 10);
const MAX_FRAME = 16 << 20;
const MAX_HEAD = 16 << 10;

/** Mask keys come from a pool refilled in bulk: one crypto call per 1,024 frames. */
const maskPool = Buffer.alloc(4096);
let maskOffset = maskPool.length;

function maskKey(): number {
  if (maskOffset === maskPool.length) {
    randomFillSync(maskPool);
    maskOffset = 0;
  }
  const k = maskPool.readUInt32BE(maskOffset);
  maskOffset += 4;
  return k;
}

/** A masked frame with FIN set. */
export function encodeFrame(opcode: number, data: Buffer): Buffer {
  const len = data.length;
  const head = len < 126 ? 2 : len < 65_536 ? 4 : 10;
  const out = Buffer.allocUnsafe(head + 4 + len);
  out[0] = 0x80 | opcode;
  if (len < 126) out[1] = 0x80 | len;
  else if (len < 65_536) {
    out[1] = 0x80 | 126;
    out.writeUInt16BE(len, 2);
  } else {
    out[1] = 0x80 | 127;
    out.writeUInt32BE(Math.floor(len / 2 ** 32), 2);
    out.writeUInt32BE(len >>> 0, 6);
  }
  const key = maskKey();
  out.writeUInt32BE(key, head);
  const m0 = key >>> 24;
  const m1 = (key >>> 16) & 0xff;
  const m2 = (key >>> 8) & 0xff;
  const m3 = key & 0xff;
  const p = head + 4;
  let i = 0;
  for (; i + 3 < len; i += 4) {
    out[p + i] = data[i] ^ m0;
    out[p + i + 1] = data[i + 1] ^ m1;
    out[p + i + 2] = data[i + 2] ^ m2;
    out[p + i + 3] = data[i + 3] ^ m3;
  }
  for (; i < len; i++) out[p + i] = data[i] ^ (i % 4 === 0 ? m0 : i % 4 === 1 ? m1 : i % 4 === 2 ? m2 : m3);
  return out;
}

export class LeanWebSocket {
  #closeListeners: ((code: number) => void)[] = [];
  #closed = false;
  #closeCode = 1006;
  #pending: Buffer | undefined;
  #fragments: Buffer[] = [];
  #out: Buffer[] = [];
  #flushScheduled = false;
  readonly #flush = () => {
    this.#flushScheduled = false;
    const out = this.#out;
    if (out.length === 0) return;
    this.#out = [];
    if (!this.socket.destroyed) this.socket.write(out.length === 1 ? out[0] : Buffer.concat(out));
  };

  private constructor(
    readonly socket: Socket,
    /**
     * A text or binary message (fragments joined). Its buffer is a view into the shared read
     * buffer: valid until the callback returns.
     */
    private readonly onMessage: (data: Buffer) => void,
  ) {
    socket.on('close', () => this.#finish());
    socket.on('error', () => {}); // the close that follows reports it
  }

  get closed(): boolean {
    return this.#closed;
  }

  /** Opens a connection and completes the upgrade handshake; rejects on refusal or timeout. */
  static connect(port: number, path: string, timeoutMs: number, onMessage: (data: Buffer) => void): Promise<LeanWebSocket> {
    return new Promise((resolve, reject) => {
      const key = randomBytes(16).toString('base64');
      const accept = createHash('sha1').update(key + GUID).digest('base64');
      let route: (chunk: Buffer) => void = () => {};
      const socket = netConnect({
        host: '127.0.0.1',
        port,
        noDelay: true,
        onread: {
          buffer: READ_BUFFER,
          callback: (n: number, buf: Uint8Array) => {
            route(Buffer.from(buf.buffer, buf.byteOffset, n));
            return true; // keep reading
          },
        },
      });
      let head = Buffer.alloc(0);
      const fail = (why: string) => {
        clearTimeout(timer);
        socket.destroy();
        reject(new Error(why));
      };
      const timer = setTimeout(() => fail(`no WebSocket upgrade from 127.0.0.1:${port}${path} within ${timeoutMs} ms`), timeoutMs);
      const onError = (e: Error) => fail(`connect to 127.0.0.1:${port}${path}: ${e.message}`);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) {
          if (head.length > MAX_HEAD) fail('upgrade response headers too long');
          return;
        }
        const lines = head.subarray(0, end).toString('latin1').split('\r\n');
        if (!/^HTTP\/1\.1 101 /.test(lines[0])) return fail(`upgrade refused: ${lines[0]}`);
        const got = lines.find((l) => l.toLowerCase().startsWith('sec-websocket-accept:'))?.slice(21).trim();
        if (got !== accept) return fail('upgrade response has a wrong Sec-WebSocket-Accept');
        clearTimeout(timer);
        socket.off('error', onError);
        socket.off('close', onClose);
        const ws = new LeanWebSocket(socket, onMessage);
        route = (c) => ws.#onData(c);
        // Frames may come in the same read as the 101 (socket.io's OPEN packet does).
        const rest = head.subarray(end + 4);
        if (rest.length > 0) ws.#onData(rest);
        resolve(ws);
      };
      const onClose = () => fail(`127.0.0.1:${port} closed the connection during the upgrade`);
      route = onData;
      socket.once('error', onError);
      socket.once('close', onClose);
      socket.write(
        `GET ${path} HTTP/1.1\r\nHost: 127.0.0.1:${port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n` +
          `Sec-WebSocket-Key: ${key}\r\nSec-WebSocket-Version: 13\r\n\r\n`,
      );
    });
  }

  /** Queues a text message; everything queued in this tick leaves in one write. */
  send(text: string | Buffer): void {
    this.#queue(encodeFrame(0x1, typeof text === 'string' ? Buffer.from(text) : text));
  }

  /** Starts the closing handshake (the server's close frame or the socket's end finishes it). */
  close(code = 1000): void {
    if (this.#closed || this.socket.destroyed) return;
    const body = Buffer.alloc(2);
    body.writeUInt16BE(code);
    this.#queue(encodeFrame(0x8, body));
  }

  terminate(): void {
    this.socket.destroy();
  }

  /** Called once, when the TCP connection is gone, with the close code the server sent (1006 if none). */
  onClose(fn: (code: number) => void): void {
    if (this.#closed) queueMicrotask(() => fn(this.#closeCode));
    else this.#closeListeners.push(fn);
  }

  #queue(frame: Buffer): void {
    this.#out.push(frame);
    if (!this.#flushScheduled) {
      this.#flushScheduled = true;
      process.nextTick(this.#flush);
    }
  }

  #finish(): void {
    if (this.#closed) return;
    this.#closed = true;
    for (const fn of this.#closeListeners) fn(this.#closeCode);
    this.#closeListeners = [];
  }

  #onData(chunk: Buffer): void {
    let buf = this.#pending ? Buffer.concat([this.#pending, chunk]) : chunk;
    this.#pending = undefined;
    let at = 0;
    // Bounded by the chunk: every pass consumes one whole frame or stops.
    while (buf.length - at >= 2) {
      const b0 = buf[at];
      const b1 = buf[at + 1];
      if (b1 & 0x80) return this.#protocolError('masked frame from the server');
      let len = b1 & 0x7f;
      let p = at + 2;
      if (len === 126) {
        if (buf.length - at < 4) break;
        len = buf.readUInt16BE(p);
        p += 2;
      } else if (len === 127) {
        if (buf.length - at < 10) break;
        len = buf.readUInt32BE(p) * 2 ** 32 + buf.readUInt32BE(p + 4);
        p += 8;
      }
      if (len > MAX_FRAME) return this.#protocolError(`frame of ${len} bytes`);
      if (buf.length - p < len) break;
      const data = buf.subarray(p, p + len);
      at = p + len;
      const opcode = b0 & 0x0f;
      const fin = (b0 & 0x80) !== 0;
      if (opcode === 0x1 || opcode === 0x2 || opcode === 0x0) {
        if (!fin) {
          this.#fragments.push(Buffer.from(data));
          continue;
        }
        if (this.#fragments.length > 0) {
          const whole = Buffer.concat([...this.#fragments, data]);
          this.#fragments = [];
          this.onMessage(whole);
        } else this.onMessage(data);
      } else if (opcode === 0x9) this.#queue(encodeFrame(0xa, Buffer.from(data)));
      else if (opcode === 0x8) {
        this.#closeCode = len >= 2 ? data.readUInt16BE(0) : 1005;
        this.#queue(encodeFrame(0x8, Buffer.from(data.subarray(0, 2))));
        process.nextTick(() => this.socket.end());
        return;
      }
      // 0xA (pong) and reserved opcodes: nothing to do.
    }
    if (at < buf.length) this.#pending = Buffer.from(buf.subarray(at));
  }

  #protocolError(why: string): void {
    this.#closeCode = 1002;
    process.emitWarning(`bench ws client: ${why}; connection dropped`);
    this.socket.destroy();
  }
}

import type { IncomingMessage } from 'node:http';
import type { Socket } from 'node:net';

// HTTP/2 over plain text (h2c), the two ways in (RFC 9113 §3.3, RFC 7540 §3.2):
//   - prior knowledge: the client's first bytes are the HTTP/2 connection preface. The listener
//     looks at a connection's first bytes (sniffPreface) before giving it to either server;
//   - `Upgrade: h2c` on an HTTP/1.1 request: we answer 101 and the request becomes stream 1 of
//     the new connection, half closed, its response sent there. node:http2 cannot open a
//     server-side stream 1 itself, so the request is given to it as the HEADERS frame the
//     client would have sent (upgradeToH2c), placed right after the client's SETTINGS.

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

const FRAME_HEADER = 9;
const TYPE_HEADERS = 0x1;
const TYPE_SETTINGS = 0x4;
const FLAG_END_STREAM = 0x1;
const FLAG_END_HEADERS = 0x4;
/** SETTINGS_MAX_FRAME_SIZE's initial value: the largest HEADERS frame the server takes before its SETTINGS are known. */
const MAX_FRAME = 16_384;

/**
 * Waits for a connection's first bytes: `h2` when they are the HTTP/2 preface, `h1` as soon as
 * they cannot be. What was read is put back into the socket, so whichever server takes it
 * reads from the first byte. A connection that sends nothing for `timeoutMs` is closed.
 */
export function sniffPreface(socket: Socket, timeoutMs: number, done: (kind: 'h1' | 'h2') => void): void {
  let seen: Buffer = Buffer.alloc(0);
  const finish = (kind: 'h1' | 'h2' | undefined) => {
    socket.off('data', onData);
    socket.off('close', onClose);
    socket.setTimeout(0);
    if (kind === undefined) return;
    socket.pause();
    if (seen.length > 0) socket.unshift(seen);
    done(kind);
  };
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    const n = Math.min(seen.length, PREFACE.length);
    if (seen.compare(PREFACE, 0, n, 0, n) !== 0) return finish('h1');
    if (seen.length >= PREFACE.length) finish('h2');
  };
  const onClose = () => finish(undefined);
  socket.on('data', onData);
  socket.once('close', onClose);
  socket.on('error', () => socket.destroy());
  socket.setTimeout(timeoutMs, () => socket.destroy());
}

/**
 * Whether `req` asks to upgrade to h2c in the way RFC 7540 §3.2 requires: exactly one
 * HTTP2-Settings (base64url, whole SETTINGS entries), named in Connection, and no body (its
 * bytes would have to become DATA frames of stream 1; such a request is served as HTTP/1.1).
 */
export function wantsH2c(req: IncomingMessage): boolean {
  const settings = req.headers['http2-settings'];
  if (typeof settings !== 'string' || !/^[A-Za-z0-9_-]*$/.test(settings)) return false;
  if (Buffer.from(settings, 'base64url').length % 6 !== 0) return false;
  const connection = (req.headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim());
  if (!connection.includes('http2-settings')) return false;
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] === undefined && (length === undefined || length === '0');
}

/** Header fields that mean something only to the HTTP/1.1 hop (RFC 9113 §8.2.2), dropped from stream 1. */
const HOP = new Set(['connection', 'upgrade', 'http2-settings', 'host', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te']);

/**
 * The HEADERS frame (stream 1, END_STREAM) carrying `req` as an HTTP/2 request, or undefined if
 * its header block would not fit one frame. HPACK "literal without indexing, new name", no
 * Huffman: a valid encoding that needs no table (RFC 7541 §6.2.2).
 */
export function stream1Headers(req: IncomingMessage): Buffer | undefined {
  const parts: Buffer[] = [];
  const field = (name: string, value: string) => parts.push(Buffer.of(0), hpackString(name), hpackString(value));
  field(':method', req.method ?? 'GET');
  field(':scheme', 'http');
  if (req.headers.host) field(':authority', req.headers.host);
  field(':path', req.url ?? '/');
  const raw = req.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (HOP.has(name) && !(name === 'te' && raw[i + 1].trim().toLowerCase() === 'trailers')) continue;
    field(name, raw[i + 1]);
  }
  const block = Buffer.concat(parts);
  if (block.length > MAX_FRAME) return undefined;
  const head = Buffer.alloc(FRAME_HEADER);
  head.writeUIntBE(block.length, 0, 3);
  head[3] = TYPE_HEADERS;
  head[4] = FLAG_END_STREAM | FLAG_END_HEADERS;
  head.writeUInt32BE(1, 5);
  return Buffer.concat([head, block]);
}

function hpackString(s: string): Buffer {
  const bytes = Buffer.from(s, 'latin1');
  return Buffer.concat([hpackInt(bytes.length), bytes]);
}

/** An HPACK integer with a 7-bit prefix and the Huffman bit clear (RFC 7541 §5.1). */
function hpackInt(n: number): Buffer {
  if (n < 127) return Buffer.of(n);
  const out = [127];
  let rest = n - 127;
  while (rest >= 128) {
    out.push((rest & 0x7f) | 0x80);
    rest >>>= 7;
  }
  out.push(rest);
  return Buffer.from(out);
}

/**
 * Switches an upgraded connection to HTTP/2: answers 101, reads the client's preface and first
 * SETTINGS frame (after `head`, what followed the request), puts them back followed by
 * `headers` (stream1Headers) and the rest, and gives the socket to `accept`. A client that does
 * not follow with a preface and SETTINGS within `timeoutMs` is disconnected.
 */
export function upgradeToH2c(socket: Socket, head: Buffer, headers: Buffer, timeoutMs: number, accept: (socket: Socket) => void): void {
  socket.write('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n');
  let seen: Buffer = head;
  const fail = () => socket.destroy();
  const step = (): boolean => {
    if (seen.length < PREFACE.length + FRAME_HEADER) return false;
    if (seen.compare(PREFACE, 0, PREFACE.length, 0, PREFACE.length) !== 0 || seen[PREFACE.length + 3] !== TYPE_SETTINGS) {
      fail();
      return true;
    }
    const end = PREFACE.length + FRAME_HEADER + seen.readUIntBE(PREFACE.length, 3);
    if (end - PREFACE.length > MAX_FRAME + FRAME_HEADER) {
      fail();
      return true;
    }
    if (seen.length < end) return false;
    socket.off('data', onData);
    socket.setTimeout(0);
    socket.pause();
    socket.unshift(Buffer.concat([seen.subarray(0, end), headers, seen.subarray(end)]));
    accept(socket);
    return true;
  };
  const onData = (chunk: Buffer) => {
    seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk]);
    step();
  };
  if (step()) return;
  socket.setTimeout(timeoutMs, fail);
  socket.on('data', onData);
  socket.resume();
}

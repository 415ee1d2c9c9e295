import { STATUS_CODES } from 'node:http';
import WebSocket from 'ws';
import { ConnectError, describeNetError } from './errors.ts';
import { DEFAULT_CONNECT_TIMEOUT } from './stream.ts';

// A WebSocket client (the `ws` package) that either opens or fails with one clear line: a refused
// handshake names the HTTP status the server answered with, TLS problems say which.

export interface WsConnectOptions {
  /** Extra handshake headers. */
  headers?: Record<string, string>;
  /** The Origin header. */
  origin?: string;
  /** wss: skip certificate verification. */
  insecure?: boolean;
  /** wss: trust these CA certificates (PEM) instead of the system's. */
  ca?: string | Buffer;
  /** Time allowed for TCP connect, TLS and the HTTP upgrade together. Default 10 s. */
  connectTimeout?: number;
  /** Largest message accepted from the server. Default 100 MiB (the `ws` default). */
  maxPayload?: number;
  /**
   * Each message from the server. Given here, it is in place before the first message, which
   * may arrive in the same packet as the handshake's answer, is delivered.
   */
  onMessage?(data: Buffer, isBinary: boolean): void;
}

/** An open WebSocket (from the `ws` package). */
export function connectWs(url: string | URL, options: WsConnectOptions = {}): Promise<WebSocket> {
  const href = String(url);
  const connectTimeout = options.connectTimeout ?? DEFAULT_CONNECT_TIMEOUT;
  return new Promise((resolve, reject) => {
    let settled = false;
    const fail = (reason: string, cause?: unknown) => {
      if (settled) return;
      settled = true;
      ws.terminate();
      reject(new ConnectError(href, reason, { cause }));
    };
    const ws = new WebSocket(url, {
      headers: options.headers,
      origin: options.origin,
      rejectUnauthorized: !options.insecure,
      ca: options.ca,
      handshakeTimeout: connectTimeout,
      maxPayload: options.maxPayload,
    });
    ws.once('unexpected-response', (_req, res) => {
      const status = res.statusCode ?? 0;
      res.resume();
      fail(`WebSocket handshake refused: HTTP ${status} ${res.statusMessage || STATUS_CODES[status] || ''}`.trimEnd());
    });
    ws.once('error', (err: Error & { code?: string }) => {
      if (/handshake has timed out/i.test(err.message)) return fail(describeNetError({ code: 'ETIMEDOUT' }, connectTimeout), err);
      // ws reports a server that answered 101 wrongly (bad accept key, no upgrade) with a plain Error.
      fail(err.code ? describeNetError(err, connectTimeout) : `WebSocket handshake failed: ${err.message}`, err);
    });
    const onMessage = options.onMessage;
    if (onMessage) ws.on('message', (data: Buffer, isBinary: boolean) => onMessage(data, isBinary));
    ws.once('open', () => {
      if (settled) return;
      settled = true;
      ws.removeAllListeners('error');
      // From here an error is always followed by 'close' with the code that says why; a caller
      // that listens for 'close' hears about it even if it attaches its handlers a tick late.
      ws.on('error', () => {});
      resolve(ws);
    });
  });
}

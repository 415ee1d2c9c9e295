import { STATUS_CODES } from 'node:http';
import type { Socket } from 'node:net';

// The one HTTP answer written straight to a socket: for a request node:http could not parse,
// where there is no request and so no response object to answer through. Every other refusal,
// upgrades included, goes through a ServerResponse (handlers/http/reply.ts).

/** Writes `STATUS reason` as a complete HTTP/1.1 response and closes the socket after it. */
export function refuseRaw(socket: Socket, status: number, reason = (STATUS_CODES[status] ?? 'error').toLowerCase()): void {
  if (socket.destroyed || !socket.writable) {
    socket.destroy();
    return;
  }
  const body = `${status} ${reason}\n`;
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\ncontent-type: text/plain; charset=utf-8\r\ncontent-length: ${Buffer.byteLength(body)}\r\n\r\n${body}`,
  );
  // A client that does not read its error reply must not hold the socket open.
  socket.setTimeout(5000, () => socket.destroy());
}

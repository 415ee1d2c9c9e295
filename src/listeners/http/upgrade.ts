import { ServerResponse, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';

// node:http hands every request that carries `Connection: upgrade` to the 'upgrade' event with
// the raw socket, whatever it asks for. These are the two ways out of that event:
//   - the route takes the protocol: the request goes through the ordinary phases with a
//     response bound to the raw socket (responseOnSocket), so a refusal is an ordinary reply;
//   - it does not (h2c on a static route, anything on a route without upgrades): the request is
//     served as the plain request it also is (RFC 9110 §7.8 lets a server ignore Upgrade). The
//     socket is handed back to the HTTP server with the head rebuilt without Upgrade, followed
//     by every byte the client sent after it, so a body or a pipelined request behind it is
//     parsed, framed and routed like any other: nothing passes unparsed.

/** A response written to the raw socket of an upgrade request; the socket ends after it. */
export function responseOnSocket(req: IncomingMessage, socket: Socket): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket);
  res.once('finish', () => {
    socket.end();
    // A client that does not read its answer must not hold the socket.
    socket.setTimeout(5000, () => socket.destroy());
  });
  return res;
}

/**
 * The first protocol of the Upgrade header (`websocket`, `h2c`, `foo/2`: compared by name,
 * lower case) that `accepted` holds, or undefined.
 */
export function chooseProtocol(upgrade: string | undefined, accepted: readonly string[] | undefined): string | undefined {
  if (!upgrade || !accepted || accepted.length === 0) return undefined;
  for (const part of upgrade.split(',')) {
    const token = part.trim().toLowerCase();
    const slash = token.indexOf('/');
    const name = slash === -1 ? token : token.slice(0, slash);
    if (accepted.includes(name)) return name;
  }
  return undefined;
}

/** The request head as the client sent it, less Upgrade, the upgrade token of Connection, and what Connection named for the upgrade (HTTP2-Settings). */
function plainHead(req: IncomingMessage): string {
  const raw = req.rawHeaders;
  let head = `${req.method} ${req.url} HTTP/${req.httpVersionMajor}.${req.httpVersionMinor}\r\n`;
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i].toLowerCase();
    if (name === 'upgrade' || name === 'http2-settings') continue;
    if (name === 'connection') {
      const kept = raw[i + 1]
        .split(',')
        .map((t) => t.trim())
        .filter((t) => t !== '' && t.toLowerCase() !== 'upgrade' && t.toLowerCase() !== 'http2-settings');
      if (kept.length > 0) head += `${raw[i]}: ${kept.join(', ')}\r\n`;
      continue;
    }
    // llhttp has refused CR, LF and NUL in names and values: the head rebuilds as it was parsed.
    head += `${raw[i]}: ${raw[i + 1]}\r\n`;
  }
  return `${head}\r\n`;
}

/**
 * Serves an upgrade request as a plain one: `socket` goes back to `server` as if it had just
 * connected (`connectionEvent`: where node:http sets up its reader, 'secureConnection' on TLS), with the rebuilt head and `rest` (what followed the head) in front of its next read.
 * `reparsed` remembers such sockets so the listener does not count them as new connections.
 */
export function reparseAsPlain(
  server: Server,
  connectionEvent: 'connection' | 'secureConnection',
  req: IncomingMessage,
  socket: Socket,
  rest: Buffer,
  reparsed: WeakSet<Socket>,
): void {
  const head = Buffer.from(plainHead(req), 'latin1');
  socket.unshift(rest.length > 0 ? Buffer.concat([head, rest]) : head);
  reparsed.add(socket);
  server.emit(connectionEvent, socket);
}

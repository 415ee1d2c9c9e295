// Bare `ws` floor for `npm run bench -- ws`: the least a Node.js WebSocket server does for each
// scenario, with nothing of Switchyard's on top (no limits, no backpressure policy, no envelope).
//   /echo  every message goes back to its sender as it came (text stays text)
//   /room  every message from any client goes, as raw bytes, to every client connected on /room
//          (the sender included, as Switchyard's chat confirms a message by echoing it)
// Usage: node --import tsx bench/peers/ws-server.ts <port>
import { createServer } from 'node:http';
import { WebSocketServer, type WebSocket } from 'ws';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: ws-server.ts <port>\n');
  process.exit(2);
}

// permessage-deflate off on every server in the benchmark: compression would dominate 64-byte messages.
const options = { noServer: true, perMessageDeflate: false, maxPayload: 1 << 20 } as const;
const echo = new WebSocketServer({ ...options, clientTracking: false });
const room = new WebSocketServer({ ...options, clientTracking: true });

echo.on('connection', (ws: WebSocket) => {
  ws.on('message', (data: Buffer, isBinary: boolean) => ws.send(data, { binary: isBinary }));
});

room.on('connection', (ws: WebSocket) => {
  ws.on('message', (data: Buffer, isBinary: boolean) => {
    for (const c of room.clients) c.send(data, { binary: isBinary });
  });
});

const server = createServer((_req, res) => res.writeHead(404).end());
server.on('upgrade', (req, socket, head) => {
  const wss = req.url === '/echo' ? echo : req.url === '/room' ? room : undefined;
  if (!wss) {
    socket.destroy();
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req));
});
server.listen(port, '127.0.0.1');

// socket.io 4 for `npm run bench -- ws`, websocket transport only (no long-polling upgrade dance):
//   event "echo": emitted straight back to the sender with the same payload (emit back, no ack)
//   event "join" (with ack): the socket joins that room
//   event "say":  io.to(room).emit("m", payload) to every socket in the sender's room, the sender
//                 included (it joined the room too), as Switchyard's chat echoes to the sender
// Usage: node --import tsx bench/peers/socketio-server.ts <port>
import { createServer } from 'node:http';
import { Server } from 'socket.io';

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: socketio-server.ts <port>\n');
  process.exit(2);
}

const http = createServer((_req, res) => res.writeHead(404).end());
const io = new Server(http, {
  transports: ['websocket'],
  perMessageDeflate: false,
  httpCompression: false,
  serveClient: false,
  maxHttpBufferSize: 1 << 20,
});

io.on('connection', (socket) => {
  let room: string | undefined;
  socket.on('echo', (payload: unknown) => {
    socket.emit('echo', payload);
  });
  socket.on('join', (name: unknown, ack: unknown) => {
    if (typeof name !== 'string') return;
    room = name;
    void socket.join(name);
    if (typeof ack === 'function') ack();
  });
  socket.on('say', (payload: unknown) => {
    if (room !== undefined) io.to(room).emit('m', payload);
  });
});
http.listen(port, '127.0.0.1');

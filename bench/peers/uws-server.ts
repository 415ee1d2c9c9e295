// uWebSockets.js (the `uws-pack` build on npm) for `npm run bench -- ws`:
//   /echo  every message goes back to its sender as it came
//   /room  every client subscribes to one topic; each message is published to it with
//          app.publish (the sender is subscribed too, so it gets its own copy like everywhere else)
// Compression is off (uWS default). maxBackpressure is raised so that a receiver behind by a few messages is never skipped: uWS
// drops a publish for a subscriber over that limit, and the benchmark counts lost messages.
// Usage: node --import tsx bench/peers/uws-server.ts <port>
const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: uws-server.ts <port>\n');
  process.exit(2);
}

// Loaded dynamically: the native addon may not load on this platform; say so and exit 3.
let uws: typeof import('uws-pack');
try {
  uws = await import('uws-pack');
} catch (e) {
  process.stderr.write(`uws-pack does not load: ${(e as Error).message}\n`);
  process.exit(3);
}

const TOPIC = 'room';
const app = uws.App();
app.ws('/echo', {
  maxPayloadLength: 1 << 20,
  message: (ws, message, isBinary) => {
    ws.send(message, isBinary);
  },
});
app.ws('/room', {
  maxPayloadLength: 1 << 20,
  maxBackpressure: 64 << 20,
  closeOnBackpressureLimit: false,
  open: (ws) => {
    ws.subscribe(TOPIC);
  },
  message: (_ws, message, isBinary) => {
    app.publish(TOPIC, message, isBinary);
  },
});
app.any('/*', (res) => {
  res.writeStatus('404 Not Found').end();
});
app.listen('127.0.0.1', port, (listenSocket) => {
  if (!listenSocket) {
    process.stderr.write(`uws: could not listen on 127.0.0.1:${port}\n`);
    process.exit(1);
  }
});

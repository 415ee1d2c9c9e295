// The gRPC backend of the grpc benchmark: a @grpc/grpc-js server with one unary method,
// /bench.Echo/Unary, whose messages are raw bytes (identity serializers, no protobuf): it answers
// every request message with the same bytes. Plaintext HTTP/2 (h2c, prior knowledge), as grpc-js
// serves insecure credentials; grpc-js's defaults otherwise.
// Usage: node --import tsx bench/peers/grpc-echo-server.ts <port>
import { Server, ServerCredentials, type ServiceDefinition, type sendUnaryData, type ServerUnaryCall } from '@grpc/grpc-js';

const [portText] = process.argv.slice(2);
const port = Number(portText);
if (!Number.isInteger(port) || port <= 0 || port > 65_535) {
  process.stderr.write('usage: grpc-echo-server.ts <port>\n');
  process.exit(2);
}

const identity = (b: Buffer): Buffer => b;

const ECHO_SERVICE: ServiceDefinition = {
  Unary: {
    path: '/bench.Echo/Unary',
    requestStream: false,
    responseStream: false,
    requestSerialize: identity,
    requestDeserialize: identity,
    responseSerialize: identity,
    responseDeserialize: identity,
  },
};

const server = new Server();
server.addService(ECHO_SERVICE, {
  Unary: (call: ServerUnaryCall<Buffer, Buffer>, callback: sendUnaryData<Buffer>) => callback(null, call.request),
});
server.bindAsync(`127.0.0.1:${port}`, ServerCredentials.createInsecure(), (err, bound) => {
  if (err) {
    process.stderr.write(`grpc-echo-server: cannot bind 127.0.0.1:${port}: ${err.message}\n`);
    process.exit(1);
  }
  process.stdout.write(`grpc-js echo on 127.0.0.1:${bound} (/bench.Echo/Unary)\n`);
});
const stop = () => {
  server.forceShutdown();
  process.exit(0);
};
process.once('SIGTERM', stop);
process.once('SIGINT', stop);

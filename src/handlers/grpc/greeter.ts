import { GrpcError, GrpcStatus } from '../../protocol/grpc/index.ts';
import type { ServiceImpl } from './service.ts';

// helloworld.Greeter (proto/helloworld.proto): the seeds' SayHello, and one method for each
// other kind of call.

export interface GreeterOptions {
  /** SayHelloStream: replies when the request's count is 0. */
  readonly defaultReplies: number;
  /** SayHelloStream: the largest count taken. */
  readonly maxReplies: number;
  /** SayHelloToMany: the longest reply (the handler's maxSendMessageSize). */
  readonly maxReplySize: number;
}

const nameOf = (m: Record<string, unknown>): string => (typeof m.name === 'string' && m.name !== '' ? m.name : 'world');

/** "a", "a and b", "a, b and c". */
function listOf(names: string[]): string {
  return names.length < 2 ? (names[0] ?? 'nobody') : `${names.slice(0, -1).join(', ')} and ${names[names.length - 1]}`;
}

export function greeterService(options: GreeterOptions): ServiceImpl {
  return {
    name: 'helloworld.Greeter',
    methods: {
      async SayHello(call) {
        return { message: `Hello, ${nameOf(call.request)}!` };
      },

      async SayHelloStream(call) {
        const name = nameOf(call.request);
        const asked = Number(call.request.count ?? 0);
        const count = asked === 0 ? options.defaultReplies : asked;
        if (count > options.maxReplies) throw new GrpcError(GrpcStatus.INVALID_ARGUMENT, `count ${count} is more than this server sends (${options.maxReplies})`);
        for (let i = 1; i <= count; i++) {
          // send() waits while the client is not reading: at most a buffer's worth is ahead of it.
          await call.send({ message: `Hello, ${name}! (${i} of ${count})` });
        }
      },

      async SayHelloToMany(call) {
        const names: string[] = [];
        let bytes = 0;
        for await (const request of call.requests()) {
          const name = nameOf(request);
          bytes += Buffer.byteLength(name) + 2;
          // The reply names everyone: it must stay a message this server may send.
          if (bytes + 16 > options.maxReplySize) throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `too many names for one reply (more than ${options.maxReplySize} bytes)`);
          names.push(name);
        }
        return { message: `Hello, ${listOf(names)}!` };
      },

      async SayHelloChat(call) {
        for await (const request of call.requests()) await call.send({ message: `Hello, ${nameOf(request)}!` });
      },
    },
  };
}

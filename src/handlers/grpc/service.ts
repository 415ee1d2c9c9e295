import type { IncomingHttpHeaders } from 'node:http';

// What a service implementation sees of a call, whichever kind it is and whichever protocol
// (gRPC or gRPC-Web) carried it. Messages are plain objects (protobufjs toObject with defaults,
// enums as their names, 64-bit integers as strings) both ways.

export type Message = Record<string, unknown>;

export interface ServerCall {
  /** The request (unary and server-streaming methods: read, and checked to be the only one, before the method runs). */
  readonly request: Message;
  /**
   * The requests as they come (client- and bidi-streaming methods). The next one is read from
   * the client only when asked for: a slow method slows its client (HTTP/2 flow control).
   */
  requests(): AsyncIterable<Message>;
  /**
   * Sends a reply. Resolves once the transport can take more (the response was under its
   * high-water mark, or 'drain' came): await it between replies and a slow reader holds the
   * method back instead of growing a buffer. Rejects with the call's end (a GrpcError) once the
   * call is over: cancelled by the client, past its deadline, or the server closing.
   */
  send(reply: Message): Promise<void>;
  /** Aborted when the call ends for any reason (its `reason` is a GrpcError). */
  readonly signal: AbortSignal;
  /** The request headers (the call's metadata). */
  readonly metadata: IncomingHttpHeaders;
}

/**
 * A method: for unary and client-streaming methods, the returned message is the reply; streaming
 * ones send theirs with call.send and return nothing. Throw a GrpcError to end with a status;
 * anything else thrown ends the call with UNKNOWN (and is logged).
 */
export type MethodImpl = (call: ServerCall) => Promise<Message | void>;

/** A service implementation: its full name and its methods by name. */
export interface ServiceImpl {
  /** `helloworld.Greeter` */
  readonly name: string;
  readonly methods: Readonly<Record<string, MethodImpl>>;
}

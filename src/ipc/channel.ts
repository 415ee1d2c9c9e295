import { IpcError } from './errors.ts';

// One interface over every transport (seed 003 §10): bytes in, bytes out, with limits and
// backpressure. A message is a Uint8Array of 1 byte up to maxMessageSize; `send` resolves when
// the transport has taken it (and waits while the peer is slow); receiving is async iteration,
// which ends when the peer closes cleanly and throws IpcError when it goes away mid-message or
// breaks the protocol.

/** 1 MiB: large enough for real messages, small enough to bound memory. */
export const DEFAULT_MAX_MESSAGE_SIZE = 1024 * 1024;

export interface ChannelOptions {
  /** Largest message accepted either way, in bytes. */
  maxMessageSize?: number;
}

/** Who is on the other end of a unix socket (SO_PEERCRED). */
export interface PeerCredentials {
  readonly pid: number;
  readonly uid: number;
  readonly gid: number;
}

export interface Channel extends AsyncIterable<Uint8Array> {
  /** `unix`, `tcp`, `pipe`, `fifo`, `worker`, `shm`, ... */
  readonly transport: string;
  readonly maxMessageSize: number;
  /** The peer's credentials, on unix sockets. */
  readonly peer?: PeerCredentials;
  /**
   * Sends one message; waits while the peer is slow. Rejects with IpcError. Like Node's
   * socket.write, large messages are not copied: do not modify the buffer after passing it here.
   */
  send(message: Uint8Array): Promise<void>;
  /** Receives the next message; undefined when the peer closed cleanly. */
  receive(): Promise<Uint8Array | undefined>;
  /** Closes this side; pending receives end, later sends reject with SWITCHYARD_IPC_CLOSED. */
  close(): Promise<void>;
}

/** Async iteration over anything with a Channel's receive(): ends at the clean end, throws on failure. */
export async function* receiveAll(source: { receive(): Promise<Uint8Array | undefined> }): AsyncGenerator<Uint8Array> {
  for (;;) {
    const m = await source.receive();
    if (m === undefined) return;
    yield m;
  }
}

/** Throws the IpcError a send of `message` deserves, if any. */
export function checkOutgoing(message: Uint8Array, maxMessageSize: number): void {
  if (!(message instanceof Uint8Array)) throw new TypeError('a message is a Uint8Array');
  if (message.byteLength === 0) throw new IpcError('SWITCHYARD_IPC_EMPTY_MESSAGE', 'empty messages are not allowed');
  if (message.byteLength > maxMessageSize) {
    throw new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `message of ${message.byteLength} bytes is over the limit of ${maxMessageSize}`);
  }
}

/** A channel of JSON values over a byte channel (the optional structured layer). */
export interface JsonChannel<T> extends AsyncIterable<T> {
  send(value: T): Promise<void>;
  receive(): Promise<T | undefined>;
  close(): Promise<void>;
}

export function jsonChannel<T = unknown>(channel: Channel): JsonChannel<T> {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder('utf-8', { fatal: true });
  const decode = (m: Uint8Array): T => {
    try {
      return JSON.parse(decoder.decode(m)) as T;
    } catch (err) {
      throw new IpcError('SWITCHYARD_IPC_PROTOCOL', 'a message is not valid UTF-8 JSON', { cause: err });
    }
  };
  return {
    send: (value) => channel.send(encoder.encode(JSON.stringify(value))),
    receive: async () => {
      const m = await channel.receive();
      return m === undefined ? undefined : decode(m);
    },
    close: () => channel.close(),
    async *[Symbol.asyncIterator]() {
      for await (const m of channel) yield decode(m);
    },
  };
}

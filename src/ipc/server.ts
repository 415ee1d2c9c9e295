import type { Channel } from './channel.ts';

// What every listening transport (unix, TCP, ...) hands back: a stream of accepted channels.
// Kept deliberately small so each transport can implement it in a few lines.

export interface ChannelServer extends AsyncIterable<Channel> {
  /** Where peers connect: `host:port` for TCP, the socket path (or `@name`) for unix. */
  readonly address: string;
  /**
   * Accepted channels, in arrival order. Channels accepted while nobody iterates are queued.
   * The iteration ends when the server is closed. Only one consumer at a time.
   */
  accept(): AsyncIterable<Channel>;
  /** Stops accepting; channels already accepted stay open (close them yourself). */
  close(): Promise<void>;
}

/**
 * A helper for implementations: queues accepted channels and serves them to one async iterator.
 * `push` adds a channel, `end` finishes the iteration (with an error, if given).
 */
export class AcceptQueue implements AsyncIterable<Channel> {
  private readonly queue: Channel[] = [];
  private waiter: { resolve: (r: IteratorResult<Channel>) => void; reject: (e: Error) => void } | undefined;
  private done = false;
  private error: Error | undefined;

  push(channel: Channel): void {
    if (this.done) {
      void channel.close();
      return;
    }
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      w.resolve({ value: channel, done: false });
    } else this.queue.push(channel);
  }

  end(error?: Error): void {
    if (this.done) return;
    this.done = true;
    this.error = error;
    if (this.waiter) {
      const w = this.waiter;
      this.waiter = undefined;
      if (error) w.reject(error);
      else w.resolve({ value: undefined, done: true });
    }
  }

  [Symbol.asyncIterator](): AsyncIterator<Channel> {
    return {
      next: () => {
        const c = this.queue.shift();
        if (c) return Promise.resolve({ value: c, done: false });
        if (this.done) return this.error ? Promise.reject(this.error) : Promise.resolve({ value: undefined, done: true });
        if (this.waiter) return Promise.reject(new Error('accept() has another consumer waiting'));
        return new Promise((resolve, reject) => (this.waiter = { resolve, reject }));
      },
      return: () => Promise.resolve({ value: undefined, done: true }),
    };
  }
}

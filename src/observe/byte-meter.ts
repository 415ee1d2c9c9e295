import type { Socket } from 'node:net';
import type { CounterCell, HotCounter } from './hot-metrics.ts';

// Counts a socket's bytes into the listener's counters in steps (after each response and at
// close) rather than once at close, so a long keep-alive connection shows up while it lives.

interface Seen {
  read: number;
  written: number;
}

export class ByteMeter {
  private readonly seen = new WeakMap<Socket, Seen>();
  private readonly sent: CounterCell;
  private readonly received: CounterCell;

  constructor(listener: string, sent: HotCounter, received: HotCounter) {
    this.sent = sent.labels(listener);
    this.received = received.labels(listener);
  }

  track(socket: Socket): void {
    this.seen.set(socket, { read: 0, written: 0 });
  }

  flush(socket: Socket): void {
    const s = this.seen.get(socket);
    if (!s) return;
    const read = socket.bytesRead;
    const written = socket.bytesWritten;
    if (read > s.read) this.received.inc(read - s.read);
    if (written > s.written) this.sent.inc(written - s.written);
    s.read = read;
    s.written = written;
  }

  /** Bytes written outside the socket's own accounting (sendfile). */
  addSent(bytes: number): void {
    if (bytes > 0) this.sent.inc(bytes);
  }
}

import type { MessagePort } from 'node:worker_threads';
import { DEFAULT_MAX_MESSAGE_SIZE, checkOutgoing, type Channel, type ChannelOptions } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { Inbox } from '../inbox.ts';

// A Channel over a worker_threads MessagePort (one end of a MessageChannel; hand the other end
// to the worker in its transferList and call workerChannel() there too).
//
// Wire messages: { t: 'm', b: Uint8Array } data, { t: 'a', n } credit returned, { t: 'bye' }.
// Backpressure is a credit window: at most `window` messages are in flight; the receiver returns
// credit as its reader takes messages out, so a slow reader makes send() wait. The port's 'close'
// event (the other end closed, or its thread was terminated) without a 'bye' first is
// SWITCHYARD_IPC_PEER_GONE. A message's buffer is transferred (not copied) when the message is
// the whole of a plain ArrayBuffer and `transfer` is on; the sender's view is then detached.

export interface WorkerChannelOptions extends ChannelOptions {
  /** Messages in flight before send() waits; default 64. Both sides should agree. */
  window?: number;
  /** Move whole-buffer messages instead of copying them (the sender loses them); default true. */
  transfer?: boolean;
}

type Wire = { t: 'm'; b: Uint8Array } | { t: 'a'; n: number } | { t: 'bye' };

export class WorkerChannel implements Channel {
  readonly transport = 'worker';
  readonly maxMessageSize: number;
  private readonly window: number;
  private readonly transfer: boolean;
  private readonly inbox = new Inbox(() => this.consumed());
  private creditWaiters: { resolve: () => void; reject: (e: Error) => void }[] = [];
  private inFlight = 0;
  private unacked = 0;
  private closed = false;
  private portClosed = false;

  constructor(
    private readonly port: MessagePort,
    options: WorkerChannelOptions = {},
  ) {
    this.maxMessageSize = options.maxMessageSize ?? DEFAULT_MAX_MESSAGE_SIZE;
    this.window = Math.max(1, options.window ?? 64);
    this.transfer = options.transfer ?? true;
    port.on('message', (w: Wire) => this.onWire(w));
    port.on('close', () => this.onPortClose());
    port.on('messageerror', (err) => this.fail(new IpcError('SWITCHYARD_IPC_PROTOCOL', `worker message could not be deserialized: ${err.message}`, { cause: err })));
  }

  async send(message: Uint8Array): Promise<void> {
    if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'channel is closed');
    checkOutgoing(message, this.maxMessageSize);
    while (this.inFlight >= this.window) {
      if (this.inbox.error || this.portClosed) throw this.inbox.error ?? this.gone();
      await new Promise<void>((resolve, reject) => this.creditWaiters.push({ resolve, reject }));
      if (this.closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', 'channel is closed');
    }
    if (this.portClosed || this.inbox.error) throw this.inbox.error ?? this.gone();
    this.inFlight++;
    const buf = message.buffer;
    const whole = buf instanceof ArrayBuffer && message.byteOffset === 0 && message.byteLength === buf.byteLength;
    if (this.transfer && whole) {
      try {
        this.port.postMessage({ t: 'm', b: message } satisfies Wire, [buf]);
        return;
      } catch {
        // Not transferable (e.g. Node's Buffer pool is marked untransferable): copy instead.
      }
    }
    this.port.postMessage({ t: 'm', b: message } satisfies Wire);
  }

  receive(): Promise<Uint8Array | undefined> {
    return this.inbox.receive();
  }

  [Symbol.asyncIterator](): AsyncIterator<Uint8Array> {
    return this.inbox[Symbol.asyncIterator]();
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    this.inbox.close();
    this.rejectCredit(new IpcError('SWITCHYARD_IPC_CLOSED', 'channel is closed'));
    if (!this.portClosed) {
      this.port.postMessage({ t: 'bye' } satisfies Wire);
      this.port.close();
    }
  }

  private gone(): IpcError {
    return new IpcError('SWITCHYARD_IPC_PEER_GONE', 'worker peer gone (its port closed without a goodbye)');
  }

  private onWire(w: Wire): void {
    if (w.t === 'a') {
      this.inFlight = Math.max(0, this.inFlight - w.n);
      const ws = this.creditWaiters;
      this.creditWaiters = [];
      for (const c of ws) c.resolve();
      return;
    }
    if (w.t === 'bye') {
      this.inbox.end();
      this.rejectCredit(new IpcError('SWITCHYARD_IPC_PEER_GONE', 'worker peer closed the channel'));
      return;
    }
    if (w.t !== 'm' || !(w.b instanceof Uint8Array)) {
      this.fail(new IpcError('SWITCHYARD_IPC_PROTOCOL', 'worker peer sent something that is not a channel message'));
      return;
    }
    if (this.inbox.isEnded) return;
    const m = w.b;
    if (m.byteLength === 0) {
      this.fail(new IpcError('SWITCHYARD_IPC_PROTOCOL', 'worker peer sent an empty message'));
      return;
    }
    if (m.byteLength > this.maxMessageSize) {
      this.fail(new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `peer sent a message of ${m.byteLength} bytes, over the limit of ${this.maxMessageSize}`));
      return;
    }
    this.inbox.deliver(m);
  }

  /** A message left the queue for the reader: return credit, in batches unless the queue ran dry. */
  private consumed(): void {
    this.unacked++;
    if (this.portClosed || this.closed) return;
    if (this.unacked >= Math.max(1, this.window >> 2) || this.inbox.length === 0) {
      this.port.postMessage({ t: 'a', n: this.unacked } satisfies Wire);
      this.unacked = 0;
    }
  }

  private onPortClose(): void {
    this.portClosed = true;
    if (this.closed) return; // our own close()
    if (!this.inbox.isEnded) this.fail(this.gone());
    else this.rejectCredit(this.inbox.error ?? this.gone());
  }

  private fail(err: IpcError): void {
    if (!this.inbox.fail(err)) return;
    this.rejectCredit(err);
    if (err.code !== 'SWITCHYARD_IPC_PEER_GONE' && !this.portClosed) this.port.close();
  }

  private rejectCredit(err: Error): void {
    const ws = this.creditWaiters;
    this.creditWaiters = [];
    for (const w of ws) w.reject(err);
  }
}

export function workerChannel(port: MessagePort, options: WorkerChannelOptions = {}): Channel {
  return new WorkerChannel(port, options);
}

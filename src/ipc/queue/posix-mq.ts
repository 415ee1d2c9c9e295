import { IpcError } from '../errors.ts';
import { mqNative, mqUnavailableReason, O_CLOEXEC, O_CREAT, O_EXCL, O_NONBLOCK, O_RDONLY, O_RDWR, O_WRONLY, type MqNative, type MqPollHandle } from '../../sys/mq.ts';
import { waitFor, type Token, type WaitOptions } from './core.ts';

// POSIX message queues between processes (seed §7.1): kernel-kept, priority-ordered (higher first,
// FIFO within one priority), survive the processes until mq_unlink. Opened O_NONBLOCK; a send on a
// full queue or a receive on an empty one waits for the fd to become writable/readable through
// libuv (koffi.node.poll), so the event loop never blocks. One poll handle per open queue serves
// every waiter (libuv allows one watcher per fd); waiters are served in arrival order.

export interface MessageQueueOptions {
  /** Create the queue if it does not exist (O_CREAT). `'exclusive'` fails if it exists (O_EXCL). */
  create?: boolean | 'exclusive';
  /** Capacity in messages when creating; <= /proc/sys/fs/mqueue/msg_max (10 here). Default 10. */
  maxMessages?: number;
  /** Largest message in bytes when creating; <= /proc/sys/fs/mqueue/msgsize_max (8192 here). Default 8192. */
  messageSize?: number;
  /** Permission bits when creating; default 0o600 (owner only). */
  mode?: number;
  /** Default 'readwrite'. */
  access?: 'read' | 'write' | 'readwrite';
}

export interface MqMessage {
  data: Uint8Array;
  priority: number;
}

export interface MessageQueue {
  /** The queue's name, with its leading slash. */
  readonly name: string;
  /** The mqd_t (an fd). */
  readonly fd: number;
  readonly maxMessages: number;
  readonly messageSize: number;
  /** Messages in the queue now (mq_getattr). */
  currentMessages(): number;
  /** Sends; waits (without blocking the loop) while the queue is full. Priority 0..32767 (higher is received first). */
  send(data: Uint8Array, priority?: number, opts?: WaitOptions): Promise<void>;
  /** Sends if there is room now; false if full. */
  trySend(data: Uint8Array, priority?: number): boolean;
  /** Receives the oldest message of the highest priority; waits while empty. */
  receive(opts?: WaitOptions): Promise<MqMessage>;
  /** Receives if a message is waiting now. */
  tryReceive(): MqMessage | null;
  /** Closes this descriptor; waiting operations reject with SWITCHYARD_IPC_CLOSED. The queue itself stays until unlink(). */
  close(): void;
  /** Removes the name (mq_unlink); the queue is freed when the last descriptor closes. Idempotent. */
  unlink(): void;
}

const LIMITS = '/proc/sys/fs/mqueue/msg_max, msgsize_max and queues_max (and RLIMIT_MSGQUEUE)';
const MQ_PRIO_MAX = 32768;

function native(): MqNative {
  const n = mqNative();
  if (!n) throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', `POSIX message queues are unavailable: ${mqUnavailableReason()}`);
  return n;
}

function normalizeName(name: string): string {
  const n = name.startsWith('/') ? name : `/${name}`;
  if (n.length < 2 || n.length > 255 || n.indexOf('/', 1) !== -1) {
    throw new IpcError('SWITCHYARD_IPC_PROTOCOL', `invalid message queue name ${JSON.stringify(name)}: one '/' then 1-254 characters without '/'`);
  }
  return n;
}

function errnoError(n: MqNative, what: string, errno: number): IpcError {
  const E = n.E;
  if (errno === E.EACCES) return new IpcError('SWITCHYARD_IPC_PERMISSION', `${what}: permission denied (EACCES)`);
  if (errno === E.EBADF) return new IpcError('SWITCHYARD_IPC_CLOSED', `${what}: bad descriptor (EBADF)`);
  return new IpcError('SWITCHYARD_IPC_UNSUPPORTED', `${what} failed (errno ${errno})`);
}

/** Opens (and with `create`, creates) a POSIX message queue. */
export function openMessageQueue(name: string, opts: MessageQueueOptions = {}): MessageQueue {
  const n = native();
  const qname = normalizeName(name);
  const maxMessages = opts.maxMessages ?? 10;
  const messageSize = opts.messageSize ?? 8192;
  const mode = opts.mode ?? 0o600;
  const access = opts.access ?? 'readwrite';
  let oflag = (access === 'read' ? O_RDONLY : access === 'write' ? O_WRONLY : O_RDWR) | O_NONBLOCK | O_CLOEXEC;
  if (opts.create) oflag |= O_CREAT | (opts.create === 'exclusive' ? O_EXCL : 0);
  if (opts.create && (!Number.isInteger(maxMessages) || maxMessages < 1 || !Number.isInteger(messageSize) || messageSize < 1)) {
    throw new RangeError(`openMessageQueue: maxMessages and messageSize must be positive integers`);
  }
  const fd = n.open(qname, oflag, mode, opts.create ? { maxMessages, messageSize } : null);
  if (fd < 0) {
    const errno = n.errno();
    const E = n.E;
    const what = `mq_open(${qname})`;
    if (errno === E.EINVAL && opts.create) {
      throw new IpcError(
        'SWITCHYARD_IPC_UNSUPPORTED',
        `${what}: maxMessages ${maxMessages} / messageSize ${messageSize} exceed the system limit (EINVAL); see ${LIMITS}`,
      );
    }
    if (errno === E.EMFILE || errno === E.ENFILE || errno === E.ENOSPC || errno === E.ENOMEM) {
      throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', `${what}: too many queues or too much queue memory (errno ${errno}); see ${LIMITS}`);
    }
    if (errno === E.ENOENT) throw new IpcError('SWITCHYARD_IPC_PEER_GONE', `${what}: no such queue (ENOENT); pass create: true to create it`);
    if (errno === E.EEXIST) throw new IpcError('SWITCHYARD_IPC_PERMISSION', `${what}: already exists (EEXIST) and create was 'exclusive'`);
    throw errnoError(n, what, errno);
  }
  const attr = n.getattr(fd);
  return new PosixMessageQueue(n, qname, fd, attr?.maxMessages ?? maxMessages, attr?.messageSize ?? messageSize);
}

interface MqWaiter {
  token: Token;
  /** Tries the operation once; true when done (resolved or rejected), false on EAGAIN. */
  attempt(): boolean;
  fail(err: IpcError): void;
}

class PosixMessageQueue implements MessageQueue {
  #closed = false;
  #unlinked = false;
  #senders = new Set<MqWaiter>();
  #receivers = new Set<MqWaiter>();
  #poll: MqPollHandle | null = null;
  #buf: Uint8Array;
  #prio: [number] = [0];

  constructor(
    private readonly n: MqNative,
    readonly name: string,
    readonly fd: number,
    readonly maxMessages: number,
    readonly messageSize: number,
  ) {
    this.#buf = new Uint8Array(messageSize);
  }

  currentMessages(): number {
    this.#checkOpen('mq_getattr');
    return this.n.getattr(this.fd)?.currentMessages ?? 0;
  }

  #checkOpen(what: string): void {
    if (this.#closed) throw new IpcError('SWITCHYARD_IPC_CLOSED', `${what} on closed message queue ${this.name}`);
  }

  /** 'ok', 'again' or throws. */
  #sendOnce(data: Uint8Array, priority: number): boolean {
    for (;;) {
      if (this.n.send(this.fd, data, priority) === 0) return true;
      const errno = this.n.errno();
      if (errno === this.n.E.EINTR) continue;
      if (errno === this.n.E.EAGAIN) return false;
      if (errno === this.n.E.EMSGSIZE) {
        throw new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `mq_send(${this.name}): ${data.byteLength} bytes > messageSize ${this.messageSize}`);
      }
      throw errnoError(this.n, `mq_send(${this.name})`, errno);
    }
  }

  #receiveOnce(): MqMessage | null {
    for (;;) {
      const k = this.n.receive(this.fd, this.#buf, this.#prio);
      if (k >= 0) return { data: this.#buf.slice(0, k), priority: this.#prio[0] };
      const errno = this.n.errno();
      if (errno === this.n.E.EINTR) continue;
      if (errno === this.n.E.EAGAIN) return null;
      throw errnoError(this.n, `mq_receive(${this.name})`, errno);
    }
  }

  #validate(data: Uint8Array, priority: number): void {
    this.#checkOpen('send');
    if (!Number.isInteger(priority) || priority < 0 || priority >= MQ_PRIO_MAX) {
      throw new RangeError(`message queue priority must be an integer 0..${MQ_PRIO_MAX - 1} (got ${priority})`);
    }
    if (data.byteLength > this.messageSize) {
      throw new IpcError('SWITCHYARD_IPC_MESSAGE_TOO_LARGE', `mq_send(${this.name}): ${data.byteLength} bytes > messageSize ${this.messageSize}`);
    }
  }

  trySend(data: Uint8Array, priority = 0): boolean {
    this.#validate(data, priority);
    if (this.#senders.size > 0) return false; // do not overtake waiting senders
    return this.#sendOnce(data, priority);
  }

  send(data: Uint8Array, priority = 0, opts: WaitOptions = {}): Promise<void> {
    try {
      this.#validate(data, priority);
      if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
      if (this.#senders.size === 0 && this.#sendOnce(data, priority)) return Promise.resolve();
    } catch (err) {
      return Promise.reject(err);
    }
    return waitFor<void>(`mq_send(${this.name})`, opts, (token, resolve, reject) => {
      const w: MqWaiter = {
        token,
        attempt: () => {
          try {
            if (!this.#sendOnce(data, priority)) return false;
            resolve();
          } catch (err) {
            reject(err);
          }
          return true;
        },
        fail: reject,
      };
      this.#senders.add(w);
      this.#rearm();
      return () => {
        this.#senders.delete(w);
        this.#rearm();
      };
    });
  }

  tryReceive(): MqMessage | null {
    this.#checkOpen('receive');
    if (this.#receivers.size > 0) return null;
    return this.#receiveOnce();
  }

  receive(opts: WaitOptions = {}): Promise<MqMessage> {
    try {
      this.#checkOpen('receive');
      if (opts.signal?.aborted) return Promise.reject(opts.signal.reason);
      if (this.#receivers.size === 0) {
        const m = this.#receiveOnce();
        if (m) return Promise.resolve(m);
      }
    } catch (err) {
      return Promise.reject(err);
    }
    return waitFor<MqMessage>(`mq_receive(${this.name})`, opts, (token, resolve, reject) => {
      const w: MqWaiter = {
        token,
        attempt: () => {
          try {
            const m = this.#receiveOnce();
            if (!m) return false;
            resolve(m);
          } catch (err) {
            reject(err);
          }
          return true;
        },
        fail: reject,
      };
      this.#receivers.add(w);
      this.#rearm();
      return () => {
        this.#receivers.delete(w);
        this.#rearm();
      };
    });
  }

  /** Serves waiters in order until one gets EAGAIN. */
  #drain(set: Set<MqWaiter>): void {
    for (const w of set) {
      if (w.token.done) {
        set.delete(w);
        continue;
      }
      // Claim before trying: a completed attempt has already resolved/rejected the promise.
      w.token.done = true;
      if (w.attempt()) set.delete(w);
      else {
        w.token.done = false;
        return;
      }
    }
  }

  #rearm(): void {
    if (this.#closed) return;
    const readable = this.#receivers.size > 0;
    const writable = this.#senders.size > 0;
    if (!readable && !writable) {
      this.#poll?.stop();
      return;
    }
    const opts = { readable, writable };
    const cb = (status: number, ev: { readable: boolean; writable: boolean }): void => {
      if (this.#closed) return;
      if (status < 0 || ev.readable) this.#drain(this.#receivers);
      if (status < 0 || ev.writable) this.#drain(this.#senders);
      this.#rearm();
    };
    if (this.#poll) this.#poll.start(opts, cb);
    else this.#poll = this.n.poll(this.fd, opts, cb);
  }

  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    if (this.#poll) {
      this.#poll.stop();
      this.#poll.close();
      this.#poll = null;
    }
    for (const set of [this.#senders, this.#receivers]) {
      for (const w of set) {
        if (w.token.done) continue;
        w.token.done = true;
        w.fail(new IpcError('SWITCHYARD_IPC_CLOSED', `message queue ${this.name} was closed while waiting`));
      }
      set.clear();
    }
    this.n.close(this.fd);
  }

  unlink(): void {
    if (this.#unlinked) return;
    this.#unlinked = true;
    if (this.n.unlink(this.name) !== 0 && this.n.errno() !== this.n.E.ENOENT) {
      throw errnoError(this.n, `mq_unlink(${this.name})`, this.n.errno());
    }
  }
}

/** Removes a queue by name (for cleanup without an open descriptor). Missing is not an error. */
export function unlinkMessageQueue(name: string): void {
  const n = native();
  const q = normalizeName(name);
  if (n.unlink(q) !== 0 && n.errno() !== n.E.ENOENT) throw errnoError(n, `mq_unlink(${q})`, n.errno());
}

import type { Socket } from 'node:net';
import { setImmediate as nextTurn } from 'node:timers/promises';
import { libc, type Libc, type PollHandle } from './libc.ts';
import { plainSocketFd } from './socket-fd.ts';

// sendfile(2) from a file descriptor into a Node socket, without the bytes ever entering JS.
//
// Node's sockets are non-blocking, so sendfile often answers EAGAIN; we then wait for
// writability with koffi.node.poll. libuv allows one watcher per fd number in its loop (a second
// one silently replaces the first's epoll events, so the socket's own reads would stall, or our
// poll would never fire). We therefore dup(2) the socket fd and poll and send on the duplicate:
// Node keeps reading the original (so a client reset or EOF is still noticed and the socket still
// closes), and since we own the duplicate's number it can never be closed and reused by another
// connection while a poll on it is pending.
//
// The caller writes its own framing first (HTTP headers through the response object); we wait
// until Node's write queue has reached the kernel before the first sendfile so that bytes go out
// in order, and the caller must not write to the socket until the returned promise settles.

/** Thrown before any byte was sent when the native path cannot be used; the caller streams instead. */
export class SendfileUnsupportedError extends Error {
  override readonly name = 'SendfileUnsupportedError';
}

/** The transfer stopped part way (client gone, file shrank, socket closed by Node): the socket must be dropped. */
export class SendfileAbortedError extends Error {
  override readonly name = 'SendfileAbortedError';
  constructor(message: string, readonly sent: number, readonly errno?: number) {
    super(message);
  }
}

export interface SendfileOptions {
  /** Called with each count of bytes the kernel accepted (for metrics). */
  onBytes?(bytes: number): void;
  /**
   * Bytes sent back to back before yielding to the event loop. Over loopback the kernel can keep
   * accepting for hundreds of MB; without a yield one fast client would starve every other one.
   */
  burst?: number;
}

/** Largest single sendfile request; the kernel caps one call near 2 GiB anyway. */
const MAX_CALL = 64 * 1024 * 1024;
const DEFAULT_BURST = 8 * 1024 * 1024;
const EMPTY = Buffer.alloc(0);

/** True when sendfile can be tried at all on this machine (koffi loaded, libc bound). */
export function sendfileAvailable(): boolean {
  return libc() !== null;
}

/** Whether this socket could take a sendfile (plain TCP/unix, open, native calls available). */
export function canSendfile(socket: Socket): boolean {
  return libc() !== null && plainSocketFd(socket) !== undefined;
}

/**
 * Sends `length` bytes of `fileFd` starting at `offset` into `socket`. Resolves with the number of
 * bytes sent (always `length`). Rejects with SendfileUnsupportedError when nothing was sent and
 * streaming should be used instead, or with SendfileAbortedError when the transfer broke off.
 */
export async function sendFile(socket: Socket, fileFd: number, offset: number, length: number, options: SendfileOptions = {}): Promise<number> {
  const c = libc();
  const fd = plainSocketFd(socket);
  if (!c || fd === undefined) throw new SendfileUnsupportedError('no plain socket fd or no native sendfile');
  await drained(socket);
  if (length === 0) return 0;
  if (socket.destroyed) throw new SendfileAbortedError('socket closed before sendfile', 0);
  const out = c.dup(fd);
  if (out < 0) throw new SendfileUnsupportedError(`dup failed (errno ${c.errno()})`);
  const transfer = new Transfer(c, socket, out, options);
  try {
    return await transfer.run(fileFd, offset, length);
  } finally {
    transfer.dispose();
  }
}

/** Resolves when everything written to the socket so far has been handed to the kernel. */
function drained(socket: Socket): Promise<void> {
  if (socket.writableLength === 0 && socket.writableCorked === 0) return Promise.resolve();
  return new Promise((resolve, reject) => {
    // Writes complete in order, so an empty write's callback runs once the earlier ones are out.
    socket.write(EMPTY, (err) => (err ? reject(new SendfileAbortedError(`socket write failed: ${err.message}`, 0)) : resolve()));
  });
}

class Transfer {
  private poller: PollHandle | undefined;
  private wake: ((err?: Error) => void) | undefined;
  private lastRefresh = 0;
  private readonly onClose = () => this.wake?.(new SendfileAbortedError('socket closed during sendfile', -1));

  constructor(
    private readonly c: Libc,
    private readonly socket: Socket,
    private readonly out: number,
    private readonly options: SendfileOptions,
  ) {
    socket.once('close', this.onClose);
  }

  async run(fileFd: number, offset: number, length: number): Promise<number> {
    const { c, socket } = this;
    const burst = this.options.burst ?? DEFAULT_BURST;
    const pos: [number] = [offset];
    let sent = 0;
    let sinceYield = 0;
    while (sent < length) {
      if (socket.destroyed || !socket.writable) throw new SendfileAbortedError('socket closed during sendfile', sent);
      const n = c.sendfile(this.out, fileFd, pos, Math.min(length - sent, MAX_CALL));
      if (n > 0) {
        sent += n;
        sinceYield += n;
        this.options.onBytes?.(n);
        this.keepAlive();
        if (sinceYield >= burst && sent < length) {
          sinceYield = 0;
          await nextTurn();
        }
        continue;
      }
      if (n === 0) throw new SendfileAbortedError('file ended before the announced length (truncated while sending?)', sent);
      const errno = c.errno();
      if (errno === c.E.EINTR) continue;
      if (errno === c.E.EAGAIN) {
        sinceYield = 0;
        await this.writable(sent);
        continue;
      }
      if (sent === 0 && errno !== c.E.EPIPE && errno !== c.E.ECONNRESET) {
        // EINVAL/ENOSYS/EOPNOTSUPP: this fd pair cannot do sendfile; nothing went out yet.
        throw new SendfileUnsupportedError(`sendfile refused (errno ${errno})`);
      }
      throw new SendfileAbortedError(`sendfile failed (errno ${errno})`, sent, errno);
    }
    return sent;
  }

  /** Node only refreshes a socket's idle timer on its own writes; ours happen behind its back. */
  private keepAlive(): void {
    const ms = this.socket.timeout;
    if (!ms) return;
    const now = Date.now();
    if (now - this.lastRefresh < 250) return;
    this.lastRefresh = now;
    this.socket.setTimeout(ms);
  }

  private writable(sent: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.wake = (err) => {
        this.wake = undefined;
        this.poller?.stop();
        if (err) reject(err instanceof SendfileAbortedError ? new SendfileAbortedError(err.message, sent) : err);
        else resolve();
      };
      // Not `disconnect` (EPOLLRDHUP): a peer that half-closed (`nc -N`) still reads, and the
      // flag would stay raised and spin. A reset surfaces as EPIPE/ECONNRESET from sendfile.
      const onPoll = (status: number) => {
        if (status < 0) this.wake?.(new SendfileAbortedError(`poll failed (status ${status})`, sent));
        else this.wake?.();
      };
      try {
        if (this.poller) this.poller.start({ writable: true }, onPoll);
        else this.poller = this.c.poll(this.out, { writable: true }, onPoll);
      } catch (err) {
        this.wake = undefined;
        const why = `poll could not start: ${(err as Error).message}`;
        // Nothing sent yet: the caller can still stream the whole body instead.
        reject(sent === 0 ? new SendfileUnsupportedError(why) : new SendfileAbortedError(why, sent));
      }
    });
  }

  dispose(): void {
    this.socket.off('close', this.onClose);
    this.wake = undefined;
    if (this.poller) {
      this.poller.stop();
      this.poller.close();
      this.poller = undefined;
    }
    this.c.close(this.out);
  }
}

import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

// The libc functions Switchyard calls through koffi, bound once on first use. koffi is loaded with
// require() inside a try so that a machine without its prebuilt binary (or without glibc) still
// runs: every caller of this module has a portable fallback and asks `libc()` whether the native
// path exists at all.

type Koffi = typeof KoffiModule;

/** koffi.node.poll's callback really receives (status, events); its bundled typings omit status. */
export interface PollEvents {
  readable: boolean;
  writable: boolean;
  disconnect: boolean;
}
export interface PollHandle {
  start(opts: { readable?: boolean; writable?: boolean; disconnect?: boolean }, cb: (status: number, ev: PollEvents) => void): void;
  stop(): void;
  close(): void;
}

export interface Libc {
  /** ssize_t sendfile(int out_fd, int in_fd, off_t *offset, size_t count); `offset` is updated in place. */
  sendfile(outFd: number, inFd: number, offset: [number], count: number): number;
  dup(fd: number): number;
  close(fd: number): number;
  /** errno of the last call made through koffi on this thread. */
  errno(): number;
  /** Watches an fd in libuv's loop; the fd must not be watched by another libuv handle. */
  poll(fd: number, opts: { writable?: boolean; disconnect?: boolean }, cb: (status: number, ev: PollEvents) => void): PollHandle;
  readonly E: { readonly EAGAIN: number; readonly EINTR: number; readonly EPIPE: number; readonly ECONNRESET: number };
}

let bound: Libc | null | undefined;
let failure: string | undefined;

function bind(): Libc | null {
  if (process.platform !== 'linux') {
    failure = `sendfile through koffi is only wired for Linux (this is ${process.platform})`;
    return null;
  }
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as Koffi;
    const lib = koffi.load('libc.so.6');
    const sendfile = lib.func('long sendfile(int out_fd, int in_fd, _Inout_ int64_t *offset, size_t count)');
    const dup = lib.func('int dup(int fd)');
    const close = lib.func('int close(int fd)');
    const errno = koffi.os.errno;
    const poll = koffi.node.poll as unknown as Libc['poll'];
    return {
      sendfile: (outFd, inFd, offset, count) => sendfile(outFd, inFd, offset, count) as number,
      dup: (fd) => dup(fd) as number,
      close: (fd) => close(fd) as number,
      errno: () => koffi.errno(),
      poll: (fd, opts, cb) => poll(fd, opts, cb),
      E: { EAGAIN: errno.EAGAIN ?? 11, EINTR: errno.EINTR ?? 4, EPIPE: errno.EPIPE ?? 32, ECONNRESET: errno.ECONNRESET ?? 104 },
    };
  } catch (err) {
    failure = `koffi or libc.so.6 is not usable: ${(err as Error).message}`;
    return null;
  }
}

/** The bound libc calls, or null when they are unavailable here (see `libcUnavailableReason`). */
export function libc(): Libc | null {
  if (bound === undefined) bound = bind();
  return bound;
}

/** Why `libc()` returned null, for one log line at startup. */
export function libcUnavailableReason(): string | undefined {
  libc();
  return failure;
}

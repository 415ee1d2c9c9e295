import { readFileSync } from 'node:fs';
import { IpcError } from '../ipc/errors.ts';
import { nativeLibc } from './koffi.ts';

// Real anonymous pipes (pipe2(2)) and their kernel buffer size (fcntl F_GETPIPE_SZ/F_SETPIPE_SZ).
// Node's child_process 'pipe' stdio is a socketpair, so the size calls fail there with EBADF;
// a pipe made here is a real pipe. Linux only; elsewhere every call throws UNSUPPORTED.

export const O_CLOEXEC = 0o2000000;
export const O_NONBLOCK = 0o4000;
const F_SETPIPE_SZ = 1031;
const F_GETPIPE_SZ = 1032;
const EPERM = 1;
const EBUSY = 16;

interface PipeCalls {
  pipe2(fds: number[], flags: number): number;
  fcntl(fd: number, cmd: number, arg: number): number;
  close(fd: number): number;
  errno(): number;
  strerror(errno: number): string;
}

let calls: PipeCalls | null | undefined;

function bind(): PipeCalls {
  if (calls === undefined) {
    const native = nativeLibc();
    if (!native) calls = null;
    else {
      const { koffi, lib } = native;
      const pipe2 = lib.func('int pipe2(_Out_ int *pipefd, int flags)');
      // fcntl is variadic; these commands take one int, so a fixed prototype is right and safe.
      const fcntl = lib.func('int fcntl(int fd, int cmd, int arg)');
      const close = lib.func('int close(int fd)');
      const strerror = lib.func('const char *strerror(int errnum)');
      calls = {
        pipe2: (fds, flags) => pipe2(fds, flags) as number,
        fcntl: (fd, cmd, arg) => fcntl(fd, cmd, arg) as number,
        close: (fd) => close(fd) as number,
        errno: () => koffi.errno(),
        strerror: (e) => strerror(e) as string,
      };
    }
  }
  if (!calls) throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', 'pipe2/fcntl need koffi and glibc on Linux');
  return calls;
}

function fail(what: string, c: PipeCalls): never {
  const e = c.errno();
  throw Object.assign(new Error(`${what} failed: ${c.strerror(e)} (errno ${e})`), { errno: e });
}

/** Makes a pipe; returns [readFd, writeFd]. Flags: O_CLOEXEC, O_NONBLOCK (default none). */
export function pipe2(flags = 0): [number, number] {
  const c = bind();
  // koffi fills an _Out_ array in place, element by element.
  const out: number[] = [-1, -1];
  if (c.pipe2(out, flags) !== 0) fail('pipe2', c);
  return [out[0], out[1]];
}

/** Closes an fd made here (one not handed to a Node stream). */
export function closeFd(fd: number): void {
  const c = bind();
  if (c.close(fd) !== 0) fail('close', c);
}

/** The kernel buffer size of a pipe or FIFO, in bytes (64 KiB by default on Linux). */
export function getPipeSize(fd: number): number {
  const c = bind();
  const r = c.fcntl(fd, F_GETPIPE_SZ, 0);
  if (r < 0) fail(`F_GETPIPE_SZ on fd ${fd}`, c);
  return r;
}

/** The most an unprivileged process may set (/proc/sys/fs/pipe-max-size), or undefined. */
export function pipeMaxSize(): number | undefined {
  try {
    return Number(readFileSync('/proc/sys/fs/pipe-max-size', 'utf8').trim());
  } catch {
    return undefined;
  }
}

/**
 * Sets a pipe's kernel buffer size; the kernel rounds up to a power-of-two number of pages and
 * the size actually set is returned. Above pipe-max-size without CAP_SYS_RESOURCE the kernel says
 * EPERM: that becomes IpcError PERMISSION.
 */
export function setPipeSize(fd: number, bytes: number): number {
  const c = bind();
  if (!Number.isInteger(bytes) || bytes <= 0) throw new RangeError(`pipe size must be a positive integer, got ${bytes}`);
  const r = c.fcntl(fd, F_SETPIPE_SZ, bytes);
  if (r < 0) {
    const e = c.errno();
    if (e === EPERM) {
      const max = pipeMaxSize();
      throw new IpcError(
        'SWITCHYARD_IPC_PERMISSION',
        `pipe size ${bytes} is over /proc/sys/fs/pipe-max-size${max !== undefined ? ` (${max})` : ''}; raising it needs CAP_SYS_RESOURCE or a larger pipe-max-size`,
      );
    }
    if (e === EBUSY) throw new IpcError('SWITCHYARD_IPC_FULL', `pipe size ${bytes} is below the bytes already in the pipe`);
    fail(`F_SETPIPE_SZ ${bytes} on fd ${fd}`, c);
  }
  return r;
}

import { fstatSync } from 'node:fs';
import { nativeLibc, nativeUnavailableReason } from './koffi.ts';

// POSIX shared memory through koffi: shm_open + ftruncate + mmap(MAP_SHARED), seen from JS as an
// ArrayBuffer (koffi.view). NOT a SharedArrayBuffer: Atomics.load/store work on it, Atomics.wait
// throws, so blocking across processes goes through sys/futex.ts on the mapped address.

const O_RDWR = 0o2;
const O_CREAT = 0o100;
const O_EXCL = 0o200;
const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 1;
const MAP_FAILED = 0xffffffffffffffffn;

export class ShmError extends Error {
  constructor(
    message: string,
    readonly errno: number,
    readonly code: string,
  ) {
    super(message);
    this.name = 'ShmError';
  }
}

interface ShmCalls {
  shm_open(name: string, flags: number, mode: number): number;
  shm_unlink(name: string): number;
  ftruncate(fd: number, len: number): number;
  fchmod(fd: number, mode: number): number;
  close(fd: number): number;
  mmap(addr: null, len: number, prot: number, flags: number, fd: number, off: number): unknown;
  munmap(ptr: unknown, len: number): number;
  address(ptr: unknown): bigint;
  view(ptr: unknown, len: number): ArrayBuffer;
  errno(): number;
}

let calls: ShmCalls | null | undefined;

function bind(): ShmCalls {
  if (calls) return calls;
  const n = nativeLibc();
  if (!n) throw new ShmError(`shared memory is not available: ${nativeUnavailableReason()}`, 0, 'UNSUPPORTED');
  const { koffi, lib } = n;
  const f = {
    shm_open: lib.func('int shm_open(const char *name, int oflag, uint32_t mode)'),
    shm_unlink: lib.func('int shm_unlink(const char *name)'),
    ftruncate: lib.func('int ftruncate(int fd, int64_t length)'),
    fchmod: lib.func('int fchmod(int fd, uint32_t mode)'),
    close: lib.func('int close(int fd)'),
    mmap: lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)'),
    munmap: lib.func('int munmap(void *addr, size_t length)'),
  };
  calls = {
    shm_open: (name, flags, mode) => f.shm_open(name, flags, mode) as number,
    shm_unlink: (name) => f.shm_unlink(name) as number,
    ftruncate: (fd, len) => f.ftruncate(fd, len) as number,
    fchmod: (fd, mode) => f.fchmod(fd, mode) as number,
    close: (fd) => f.close(fd) as number,
    mmap: (addr, len, prot, flags, fd, off) => f.mmap(addr, len, prot, flags, fd, off),
    munmap: (ptr, len) => f.munmap(ptr, len) as number,
    address: (ptr) => koffi.address(ptr),
    view: (ptr, len) => koffi.view(ptr, len),
    errno: () => koffi.errno(),
  };
  return calls;
}

const ERRNO_NAMES: Record<number, string> = { 1: 'EPERM', 2: 'ENOENT', 12: 'ENOMEM', 13: 'EACCES', 17: 'EEXIST', 22: 'EINVAL', 24: 'EMFILE', 28: 'ENOSPC' };

function fail(what: string, name: string): never {
  const e = bind().errno();
  const code = ERRNO_NAMES[e] ?? `errno ${e}`;
  throw new ShmError(`${what}(${name}) failed: ${code}`, e, code);
}

/** A mapped shared-memory segment. */
export interface ShmSegment {
  /** The POSIX name, `/something`. */
  readonly name: string;
  readonly size: number;
  /** The mapping as an ArrayBuffer (valid until unmap). */
  readonly buffer: ArrayBuffer;
  /** Address of the first byte, for futex calls. */
  readonly address: bigint;
  /** Unmaps (idempotent). The buffer must not be touched afterwards. */
  unmap(): void;
}

export function shmAvailable(): boolean {
  try {
    bind();
    return true;
  } catch {
    return false;
  }
}

function map(name: string, fd: number, size: number): ShmSegment {
  const c = bind();
  const ptr = c.mmap(null, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
  const addr = ptr === null ? 0n : c.address(ptr);
  if (addr === 0n || addr === MAP_FAILED) {
    c.close(fd);
    fail('mmap', name);
  }
  c.close(fd); // the mapping keeps the object alive
  const buffer = c.view(ptr, size);
  let mapped = true;
  return {
    name,
    size,
    buffer,
    address: addr,
    unmap() {
      if (!mapped) return;
      mapped = false;
      c.munmap(ptr, size);
    },
  };
}

/** Creates a new segment (O_EXCL, mode `mode`, default 0600), sized and mapped; zero-filled. */
export function shmCreate(name: string, size: number, mode = 0o600): ShmSegment {
  const c = bind();
  const fd = c.shm_open(name, O_RDWR | O_CREAT | O_EXCL, mode);
  if (fd < 0) fail('shm_open', name);
  if (c.fchmod(fd, mode) !== 0 || c.ftruncate(fd, size) !== 0) {
    const e = c.errno();
    c.close(fd);
    c.shm_unlink(name);
    throw new ShmError(`sizing ${name} to ${size} bytes failed: errno ${e}`, e, ERRNO_NAMES[e] ?? `errno ${e}`);
  }
  return map(name, fd, size);
}

/**
 * Opens and maps an existing segment of `size` bytes. A segment still smaller than that is refused
 * (code `ESHORT`): its creator has made the name but not sized it yet (shmCreate's shm_open and
 * ftruncate are two calls), and touching a mapped page beyond the object's end kills the process
 * with SIGBUS. Callers that wait for a peer's segment retry on it as on ENOENT.
 */
export function shmOpen(name: string, size: number): ShmSegment {
  const c = bind();
  const fd = c.shm_open(name, O_RDWR, 0);
  if (fd < 0) fail('shm_open', name);
  let have: number;
  try {
    have = fstatSync(fd).size;
  } catch (err) {
    c.close(fd);
    throw err;
  }
  if (have < size) {
    c.close(fd);
    throw new ShmError(`${name} is ${have} bytes, fewer than the ${size} to map (not sized by its creator yet)`, 0, 'ESHORT');
  }
  return map(name, fd, size);
}

/** Removes the name (existing mappings stay valid). Returns false if it did not exist. */
export function shmUnlink(name: string): boolean {
  return bind().shm_unlink(name) === 0;
}

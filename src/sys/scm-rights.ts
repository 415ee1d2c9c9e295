import { nativeLibc } from './koffi.ts';
import type { PollEvents, PollHandle } from './libc.ts';

// sendmsg/recvmsg with SCM_RIGHTS through koffi: one file descriptor and one byte per message.
// The structures are laid out by hand in memory allocated by koffi (x86_64/aarch64 Linux, LP64):
//
//   struct msghdr  (56 bytes)  @0:  msg_name 0 (void*), msg_namelen 8 (u32), msg_iov 16 (iovec*),
//                                   msg_iovlen 24 (size_t), msg_control 32 (void*),
//                                   msg_controllen 40 (size_t), msg_flags 48 (int)
//   struct iovec   (16 bytes)  @64: iov_base 0 (void*), iov_len 8 (size_t)
//   data byte                  @80
//   struct cmsghdr + int fd    @88: cmsg_len 0 (size_t) = CMSG_LEN(4) = 20, cmsg_level 8 (int) =
//                                   SOL_SOCKET, cmsg_type 12 (int) = SCM_RIGHTS, fd at 16;
//                                   CMSG_SPACE(4) = 24 bytes reserved
//
// The calls are non-blocking (MSG_DONTWAIT); on EAGAIN the caller waits with koffi.node.poll on a
// dup(2) of the socket fd, which libuv never watches, so the event loop stays free and libuv's own
// watcher on the original fd is not disturbed (see sys/sendfile.ts for why that matters).

const SOL_SOCKET = 1;
const SCM_RIGHTS = 1;
const MSG_DONTWAIT = 0x40;
const MSG_CTRUNC = 0x08;
const MSG_NOSIGNAL = 0x4000;
const MSG_CMSG_CLOEXEC = 0x40000000;
const BLOCK = 128;
const IOV = 64;
const DATA = 80;
const CONTROL = 88;
const CMSG_LEN_1FD = 20;
const CMSG_SPACE_1FD = 24;

interface Native {
  sendmsg(fd: number, msg: unknown, flags: number): number;
  recvmsg(fd: number, msg: unknown, flags: number): number;
  dup(fd: number): number;
  close(fd: number): number;
  errno(): number;
  alloc(): { ptr: unknown; view: DataView; address: bigint };
  free(ptr: unknown): void;
  poll(fd: number, opts: { readable?: boolean; writable?: boolean; disconnect?: boolean }, cb: (status: number, ev: PollEvents) => void): PollHandle;
}

let native: Native | null | undefined;

function bind(): Native | null {
  if (native !== undefined) return native;
  if (process.arch !== 'x64' && process.arch !== 'arm64') return (native = null); // the layout above is LP64
  const n = nativeLibc();
  if (!n) return (native = null);
  const { koffi, lib } = n;
  const sendmsg = lib.func('long sendmsg(int fd, void *msg, int flags)');
  const recvmsg = lib.func('long recvmsg(int fd, void *msg, int flags)');
  const dup = lib.func('int dup(int fd)');
  const close = lib.func('int close(int fd)');
  return (native = {
    sendmsg: (fd, msg, flags) => Number(sendmsg(fd, msg, flags)),
    recvmsg: (fd, msg, flags) => Number(recvmsg(fd, msg, flags)),
    dup: (fd) => dup(fd) as number,
    close: (fd) => close(fd) as number,
    errno: () => koffi.errno(),
    alloc: () => {
      const ptr = koffi.alloc('uint8_t', BLOCK);
      const view = new DataView(koffi.view(ptr, BLOCK));
      for (let i = 0; i < BLOCK; i++) view.setUint8(i, 0);
      return { ptr, view, address: koffi.address(ptr) };
    },
    free: (ptr) => koffi.free(ptr),
    poll: koffi.node.poll as unknown as Native['poll'],
  });
}

export function scmRightsAvailable(): boolean {
  return bind() !== null;
}

const EAGAIN = 11;
const EINTR = 4;

/** Lays out msghdr -> iovec -> 1 data byte, and a control buffer of CMSG_SPACE(4). */
function layout(block: { view: DataView; address: bigint }): void {
  const v = block.view;
  v.setBigUint64(16, block.address + BigInt(IOV), true); // msg_iov
  v.setBigUint64(24, 1n, true); // msg_iovlen
  v.setBigUint64(32, block.address + BigInt(CONTROL), true); // msg_control
  v.setBigUint64(40, BigInt(CMSG_SPACE_1FD), true); // msg_controllen
  v.setBigUint64(IOV, block.address + BigInt(DATA), true); // iov_base
  v.setBigUint64(IOV + 8, 1n, true); // iov_len
}

/** Waits until `fd` (a dup nobody else watches) is readable or writable. */
function waitFor(n: Native, fd: number, what: 'readable' | 'writable'): Promise<void> {
  return new Promise((resolve, reject) => {
    const handle = n.poll(fd, { [what]: true, disconnect: true }, (status) => {
      handle.stop();
      handle.close();
      if (status < 0) reject(new Error(`poll failed (${status})`));
      else resolve(); // a disconnect also makes the next call return, with 0 or an errno
    });
  });
}

export class ScmRightsError extends Error {
  override readonly name = 'ScmRightsError';
  constructor(message: string, readonly errno?: number, readonly peerGone = false) {
    super(message);
  }
}

/** Sends `fd` with the one-byte `tag` over the connected unix socket `socketFd`. */
export async function sendFdRaw(socketFd: number, fd: number, tag: number): Promise<void> {
  const n = bind();
  if (!n) throw new ScmRightsError('SCM_RIGHTS needs koffi and an LP64 Linux');
  const own = n.dup(socketFd);
  if (own < 0) throw new ScmRightsError(`dup failed (errno ${n.errno()})`, n.errno());
  const block = n.alloc();
  try {
    layout(block);
    const v = block.view;
    v.setUint8(DATA, tag);
    v.setBigUint64(CONTROL, BigInt(CMSG_LEN_1FD), true);
    v.setInt32(CONTROL + 8, SOL_SOCKET, true);
    v.setInt32(CONTROL + 12, SCM_RIGHTS, true);
    v.setInt32(CONTROL + 16, fd, true);
    for (let tries = 0; ; tries++) {
      const r = n.sendmsg(own, block.ptr, MSG_DONTWAIT | MSG_NOSIGNAL);
      if (r === 1) return;
      const errno = n.errno();
      if (r < 0 && (errno === EAGAIN || errno === EINTR) && tries < 10_000) {
        await waitFor(n, own, 'writable');
        continue;
      }
      throw new ScmRightsError(r < 0 ? `sendmsg failed (errno ${errno})` : `sendmsg sent ${r} bytes`, errno, errno === 32 || errno === 104);
    }
  } finally {
    n.free(block.ptr);
    n.close(own);
  }
}

/**
 * Receives one fd and its tag from the connected unix socket `socketFd`. Nothing else may read
 * that socket (a Node socket must be paused and have no 'data' listener), or the byte and the
 * descriptor riding on it are lost. The received fd has close-on-exec set.
 */
export async function receiveFdRaw(socketFd: number): Promise<{ tag: number; fd: number }> {
  const n = bind();
  if (!n) throw new ScmRightsError('SCM_RIGHTS needs koffi and an LP64 Linux');
  const own = n.dup(socketFd);
  if (own < 0) throw new ScmRightsError(`dup failed (errno ${n.errno()})`, n.errno());
  const block = n.alloc();
  try {
    for (let tries = 0; ; tries++) {
      layout(block);
      const r = n.recvmsg(own, block.ptr, MSG_DONTWAIT | MSG_CMSG_CLOEXEC);
      if (r === 0) throw new ScmRightsError('the peer closed the socket', undefined, true);
      if (r < 0) {
        const errno = n.errno();
        if ((errno === EAGAIN || errno === EINTR) && tries < 10_000) {
          await waitFor(n, own, 'readable');
          continue;
        }
        throw new ScmRightsError(`recvmsg failed (errno ${errno})`, errno, errno === 104);
      }
      const v = block.view;
      const tag = v.getUint8(DATA);
      const flags = v.getInt32(48, true);
      const controllen = Number(v.getBigUint64(40, true));
      const hasFd =
        controllen >= CMSG_LEN_1FD &&
        Number(v.getBigUint64(CONTROL, true)) >= CMSG_LEN_1FD &&
        v.getInt32(CONTROL + 8, true) === SOL_SOCKET &&
        v.getInt32(CONTROL + 12, true) === SCM_RIGHTS;
      if (!hasFd) throw new ScmRightsError(`a byte (${tag}) arrived without a descriptor${flags & MSG_CTRUNC ? ' (control data truncated)' : ''}`);
      return { tag, fd: v.getInt32(CONTROL + 16, true) };
    }
  } finally {
    n.free(block.ptr);
    n.close(own);
  }
}

/** Closes a raw fd (one received and not adopted). */
export function closeFd(fd: number): void {
  bind()?.close(fd);
}


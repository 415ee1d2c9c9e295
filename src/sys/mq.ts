import { nativeLibc, nativeUnavailableReason } from './koffi.ts';

// POSIX message queues (mq_overview(7)) through koffi. Fixed, non-variadic prototypes: mq_open is
// variadic in C, but calling it through a 4-argument prototype is what glibc expects when
// O_CREAT is given and harmless otherwise (x86-64 and aarch64 pass the same registers).
// An mqd_t is a plain fd on Linux, so libuv can poll it (readable = a message is waiting,
// writable = there is room).

export const O_RDONLY = 0;
export const O_WRONLY = 1;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
export const O_EXCL = 0o200;
export const O_NONBLOCK = 0o4000;
export const O_CLOEXEC = 0o2000000;

/** koffi.node.poll's callback really receives (status, events). */
export interface MqPollEvents {
  readable: boolean;
  writable: boolean;
  disconnect?: boolean;
}
export interface MqPollHandle {
  start(opts: { readable?: boolean; writable?: boolean }, cb: (status: number, ev: MqPollEvents) => void): void;
  stop(): void;
  close(): void;
}

export interface MqAttr {
  flags: number;
  maxMessages: number;
  messageSize: number;
  currentMessages: number;
}

export interface MqNative {
  /** Returns the mqd_t (an fd) or -1 (see errno()). */
  open(name: string, oflag: number, mode: number, attr: { maxMessages: number; messageSize: number } | null): number;
  /** 0 or -1. */
  send(mqd: number, data: Uint8Array, priority: number): number;
  /** Bytes received or -1; `prio[0]` gets the message priority. */
  receive(mqd: number, buf: Uint8Array, prio: [number]): number;
  getattr(mqd: number): MqAttr | null;
  close(mqd: number): number;
  unlink(name: string): number;
  errno(): number;
  poll(fd: number, opts: { readable?: boolean; writable?: boolean }, cb: (status: number, ev: MqPollEvents) => void): MqPollHandle;
  readonly E: Readonly<Record<'EAGAIN' | 'EINTR' | 'EINVAL' | 'EMFILE' | 'ENFILE' | 'ENOSPC' | 'ENOMEM' | 'EEXIST' | 'ENOENT' | 'EACCES' | 'EMSGSIZE' | 'EBADF', number>>;
}

let bound: MqNative | null | undefined;
let failure: string | undefined;

/** The bound mq_* functions, or null (see mqUnavailableReason()). */
export function mqNative(): MqNative | null {
  if (bound !== undefined) return bound;
  const n = nativeLibc();
  if (!n) {
    failure = nativeUnavailableReason();
    return (bound = null);
  }
  try {
    const { koffi, lib } = n;
    const Attr = koffi.struct('switchyard_mq_attr', {
      mq_flags: 'long',
      mq_maxmsg: 'long',
      mq_msgsize: 'long',
      mq_curmsgs: 'long',
      reserved: koffi.array('long', 4),
    });
    const mq_open = lib.func('int mq_open(const char *name, int oflag, uint32_t mode, switchyard_mq_attr *attr)');
    const mq_send = lib.func('int mq_send(int mqdes, const uint8_t *msg, size_t len, uint32_t prio)');
    const mq_receive = lib.func('long mq_receive(int mqdes, _Out_ uint8_t *msg, size_t len, _Out_ uint32_t *prio)');
    const mq_getattr = lib.func('int mq_getattr(int mqdes, _Out_ switchyard_mq_attr *attr)');
    const mq_close = lib.func('int mq_close(int mqdes)');
    const mq_unlink = lib.func('int mq_unlink(const char *name)');
    const e = koffi.os.errno;
    const poll = koffi.node.poll as unknown as MqNative['poll'];
    bound = {
      open: (name, oflag, mode, attr) =>
        mq_open(name, oflag, mode, attr ? { mq_flags: 0, mq_maxmsg: attr.maxMessages, mq_msgsize: attr.messageSize, mq_curmsgs: 0, reserved: [0, 0, 0, 0] } : null) as number,
      send: (mqd, data, prio) => mq_send(mqd, data, data.byteLength, prio) as number,
      receive: (mqd, buf, prio) => Number(mq_receive(mqd, buf, buf.byteLength, prio)),
      getattr: (mqd) => {
        const out: Record<string, unknown> = {};
        if ((mq_getattr(mqd, out) as number) !== 0) return null;
        return { flags: Number(out.mq_flags), maxMessages: Number(out.mq_maxmsg), messageSize: Number(out.mq_msgsize), currentMessages: Number(out.mq_curmsgs) };
      },
      close: (mqd) => mq_close(mqd) as number,
      unlink: (name) => mq_unlink(name) as number,
      errno: () => koffi.errno(),
      poll: (fd, opts, cb) => poll(fd, opts, cb),
      E: {
        EAGAIN: e.EAGAIN ?? 11,
        EINTR: e.EINTR ?? 4,
        EINVAL: e.EINVAL ?? 22,
        EMFILE: e.EMFILE ?? 24,
        ENFILE: e.ENFILE ?? 23,
        ENOSPC: e.ENOSPC ?? 28,
        ENOMEM: e.ENOMEM ?? 12,
        EEXIST: e.EEXIST ?? 17,
        ENOENT: e.ENOENT ?? 2,
        EACCES: e.EACCES ?? 13,
        EMSGSIZE: e.EMSGSIZE ?? 90,
        EBADF: e.EBADF ?? 9,
      },
    };
  } catch (err) {
    failure = `POSIX message queues are not reachable through koffi: ${(err as Error).message}`;
    bound = null;
  }
  return bound;
}

export function mqUnavailableReason(): string | undefined {
  mqNative();
  return failure;
}

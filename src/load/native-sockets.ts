import { performance } from 'node:perf_hooks';
import { nativeLibc } from '../sys/koffi.ts';

// Plain TCP client sockets driven by the load generator itself: socket(2), connect(2),
// recv(2), send(2) and one epoll set, called through koffi. libuv watches only the epoll fd, so a
// batch of ready connections costs one callback into JavaScript, and each request one recv and
// one send: no stream objects, no callback per read, no write request per write. In this VM a
// system call's entry alone costs about half a microsecond, and Node's stream layer about one
// more per request; this is what lets one core keep up with wrk (which spends two epoll_ctl
// calls per request besides its read and write). Linux only; when koffi is not usable the engine
// uses Node's sockets instead (see nativeSocketsUnavailable).

const AF_INET = 2;
const SOCK_STREAM = 1;
const SOCK_NONBLOCK = 0o4000;
const SOCK_CLOEXEC = 0o2000000;
const IPPROTO_TCP = 6;
const TCP_NODELAY = 1;
const SOL_SOCKET = 1;
const SO_ERROR = 4;
const MSG_NOSIGNAL = 0x4000;
const EPOLL_CLOEXEC = 0o2000000;
const EPOLL_CTL_ADD = 1;
const EPOLL_CTL_DEL = 2;
const EPOLL_CTL_MOD = 3;
export const EPOLLIN = 0x1;
export const EPOLLOUT = 0x4;
export const EPOLLERR = 0x8;
export const EPOLLHUP = 0x10;

/** Events taken from the kernel per epoll_wait. */
const MAX_EVENTS = 512;

interface Calls {
  socket(domain: number, type: number, protocol: number): number;
  connect(fd: number, addr: Buffer, len: number): number;
  setsockopt(fd: number, level: number, name: number, value: Buffer, len: number): number;
  getsockopt(fd: number, level: number, name: number, value: Buffer, len: Buffer): number;
  recv(fd: number, buf: Buffer, len: number, flags: number): number;
  send(fd: number, buf: Buffer, len: number, flags: number): number;
  close(fd: number): number;
  shutdown(fd: number, how: number): number;
  epollCreate1(flags: number): number;
  epollCtl(epfd: number, op: number, fd: number, event: Buffer | null): number;
  epollWait(epfd: number, events: Buffer, max: number, timeout: number): number;
  errno(): number;
  errnoName(code: number): string;
  poll(fd: number, cb: () => void): { stop(): void; close(): void };
}

let calls: Calls | null | undefined;
let failure: string | undefined;

function bind(): Calls | null {
  if (process.platform !== 'linux') {
    failure = `native sockets are wired for Linux only (this is ${process.platform})`;
    return null;
  }
  const native = nativeLibc();
  if (native === null) {
    failure = 'koffi or libc is not usable here';
    return null;
  }
  const { koffi, lib } = native;
  try {
    // `void *` parameters take a Buffer's memory as it is: nothing is copied in or out.
    const socket = lib.func('int socket(int, int, int)');
    const connect = lib.func('int connect(int, void *, uint32_t)');
    const setsockopt = lib.func('int setsockopt(int, int, int, void *, uint32_t)');
    const getsockopt = lib.func('int getsockopt(int, int, int, void *, void *)');
    const recv = lib.func('long recv(int, void *, size_t, int)');
    const send = lib.func('long send(int, void *, size_t, int)');
    const close = lib.func('int close(int)');
    const shutdown = lib.func('int shutdown(int, int)');
    const epollCreate1 = lib.func('int epoll_create1(int)');
    const epollCtl = lib.func('int epoll_ctl(int, int, int, void *)');
    const epollWait = lib.func('int epoll_wait(int, void *, int, int)');
    const names = new Map<number, string>();
    for (const [name, code] of Object.entries(koffi.os.errno)) if (!names.has(code)) names.set(code, name);
    const poll = koffi.node.poll as unknown as (fd: number, opts: { readable: boolean }, cb: () => void) => { stop(): void; close(): void };
    return {
      socket: (d, t, p) => socket(d, t, p) as number,
      connect: (fd, a, l) => connect(fd, a, l) as number,
      setsockopt: (fd, lv, n, v, l) => setsockopt(fd, lv, n, v, l) as number,
      getsockopt: (fd, lv, n, v, l) => getsockopt(fd, lv, n, v, l) as number,
      recv: (fd, b, l, f) => recv(fd, b, l, f) as number,
      send: (fd, b, l, f) => send(fd, b, l, f) as number,
      close: (fd) => close(fd) as number,
      shutdown: (fd, how) => shutdown(fd, how) as number,
      epollCreate1: (f) => epollCreate1(f) as number,
      epollCtl: (e, op, fd, ev) => epollCtl(e, op, fd, ev) as number,
      epollWait: (e, evs, m, t) => epollWait(e, evs, m, t) as number,
      errno: () => koffi.errno(),
      errnoName: (code) => names.get(code) ?? `errno ${code}`,
      poll: (fd, cb) => poll(fd, { readable: true }, cb),
    };
  } catch (err) {
    failure = `binding socket calls through koffi failed: ${(err as Error).message}`;
    return null;
  }
}

function native(): Calls | null {
  if (calls === undefined) calls = bind();
  return calls;
}

/** Why native sockets cannot be used here, or undefined when they can. */
export function nativeSocketsUnavailable(): string | undefined {
  return native() === null ? failure : undefined;
}

const SHUT_RDWR = 2;

/**
 * A blocking TCP socket with TCP_NODELAY, for a ring to connect and drive (io_uring waits for a
 * blocking socket itself; it never blocks the caller). Throws with the errno's name.
 */
export function blockingTcpSocket(): number {
  const c = native();
  if (c === null) throw new Error(failure ?? 'native sockets are not available');
  const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) throw new Error(`socket: ${c.errnoName(c.errno())}`);
  const one = Buffer.alloc(4);
  one.writeInt32LE(1, 0);
  c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, one, 4);
  return fd;
}

/**
 * Ends a socket that a ring may still hold requests on: shutdown wakes them (a receive sees the
 * end of the stream) so the kernel lets go of the socket, then the fd is closed.
 */
export function shutdownAndClose(fd: number): void {
  const c = native();
  if (c === null) return;
  c.shutdown(fd, SHUT_RDWR);
  c.close(fd);
}

export const ERRNO = { EAGAIN: 11, EINTR: 4, EINPROGRESS: 115 } as const;

/** What a socket registered with the loop is told. */
export interface NativeSocketHandler {
  /** The fd is ready: `events` is the epoll mask (EPOLLIN, EPOLLOUT, EPOLLERR, EPOLLHUP). */
  ready(events: number): void;
}

/** A plain TCP socket's fd and the calls on it; every method is a single system call. */
export class NativeSocket {
  constructor(
    private readonly loop: NativeSocketLoop,
    readonly fd: number,
  ) {}

  /** Bytes received into buf[0, len): > 0 bytes, 0 end of stream, -errno on failure (-EAGAIN: none now). */
  recv(buf: Buffer, len: number): number {
    const n = this.loop.calls.recv(this.fd, buf, len, 0);
    return n >= 0 ? n : -this.loop.calls.errno();
  }

  /** Bytes of buf[0, len) sent: >= 0, or -errno (-EAGAIN: the send buffer is full). */
  send(buf: Buffer, len: number): number {
    const n = this.loop.calls.send(this.fd, buf, len, MSG_NOSIGNAL);
    return n >= 0 ? n : -this.loop.calls.errno();
  }

  /** The pending error of a socket whose connect finished (SO_ERROR): 0 when it connected. */
  connectError(): number {
    const value = Buffer.alloc(4);
    const len = Buffer.alloc(4);
    len.writeUInt32LE(4, 0);
    if (this.loop.calls.getsockopt(this.fd, SOL_SOCKET, SO_ERROR, value, len) !== 0) return this.loop.calls.errno();
    return value.readInt32LE(0);
  }

  /** Which epoll events wake this socket. */
  watch(events: number): void {
    this.loop.modify(this.fd, events);
  }

  /** Closes the fd (which also takes it out of the epoll set); the handler hears nothing more. */
  close(): void {
    this.loop.forget(this.fd);
    this.loop.calls.close(this.fd);
  }

  errnoName(code: number): string {
    return this.loop.calls.errnoName(code);
  }
}

/**
 * One epoll set for all of a run's native sockets, watched by libuv through its fd: when any
 * socket is ready, one callback drains the ready list and calls each socket's handler.
 */
export class NativeSocketLoop {
  readonly calls: Calls;
  private readonly epfd: number;
  private readonly poller: { stop(): void; close(): void };
  private readonly handlers: (NativeSocketHandler | undefined)[] = [];
  private readonly events = Buffer.alloc(12 * MAX_EVENTS);
  /** The same memory as `events`, as int32: [mask, fd (low half of data), high half of data] per event. */
  private readonly eventWords: Int32Array;
  private readonly ctlEvent = Buffer.alloc(12);
  private readonly intOne = Buffer.alloc(4);
  private closed = false;

  /**
   * @param holdMs How long one callback from libuv may keep waiting in this set's own epoll_wait
   *   for more ready sockets (blocking, so an idle run sleeps) before it returns to libuv's loop.
   *   Each batch then costs one epoll_wait instead of two (libuv's, then this set's), at the price
   *   of Node's timers running up to holdMs late: 0 when timers pace the requests (open model).
   */
  constructor(private readonly holdMs: number) {
    const c = native();
    if (c === null) throw new Error(failure ?? 'native sockets are not available');
    this.calls = c;
    this.epfd = c.epollCreate1(EPOLL_CLOEXEC);
    if (this.epfd < 0) throw new Error(`epoll_create1: ${c.errnoName(c.errno())}`);
    this.eventWords = new Int32Array(this.events.buffer, this.events.byteOffset, 3 * MAX_EVENTS);
    this.intOne.writeInt32LE(1, 0);
    this.poller = c.poll(this.epfd, this.drain);
  }

  /**
   * A non-blocking socket connecting to an IPv4 address: the handler hears EPOLLOUT (or
   * EPOLLERR) when the connect finishes. Throws with the errno's name when it fails at once.
   */
  connect(address: Buffer, handler: NativeSocketHandler): NativeSocket {
    const c = this.calls;
    const fd = c.socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) throw new Error(`socket: ${c.errnoName(c.errno())}`);
    c.setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, this.intOne, 4);
    if (c.connect(fd, address, address.length) !== 0) {
      const e = c.errno();
      if (e !== ERRNO.EINPROGRESS) {
        c.close(fd);
        throw new Error(c.errnoName(e));
      }
    }
    this.handlers[fd] = handler;
    this.ctl(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT);
    return new NativeSocket(this, fd);
  }

  modify(fd: number, events: number): void {
    this.ctl(EPOLL_CTL_MOD, fd, events);
  }

  forget(fd: number): void {
    this.handlers[fd] = undefined;
  }

  /** Stops watching (the sockets themselves are closed by their owners). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller.stop();
    this.poller.close();
    this.calls.close(this.epfd);
  }

  private ctl(op: number, fd: number, events: number): void {
    this.ctlEvent.writeUInt32LE(events, 0);
    this.ctlEvent.writeInt32LE(fd, 4);
    this.ctlEvent.writeInt32LE(0, 8);
    if (this.calls.epollCtl(this.epfd, op, fd, op === EPOLL_CTL_DEL ? null : this.ctlEvent) !== 0) {
      throw new Error(`epoll_ctl: ${this.calls.errnoName(this.calls.errno())}`);
    }
  }

  private readonly drain = (): void => {
    const words = this.eventWords;
    const until = performance.now() + this.holdMs;
    let timeout = 0;
    while (!this.closed) {
      const n = this.calls.epollWait(this.epfd, this.events, MAX_EVENTS, timeout);
      if (n <= 0) return; // nothing more within the hold: back to libuv, which calls again when there is
      for (let i = 0; i < n; i++) {
        const handler = this.handlers[words[i * 3 + 1]];
        if (handler !== undefined) handler.ready(words[i * 3]);
      }
      const left = until - performance.now();
      if (left <= 0) return;
      timeout = Math.ceil(left);
    }
  };
}

/** sockaddr_in for an IPv4 address and port. */
export function ipv4SocketAddress(ip: string, port: number): Buffer {
  const parts = ip.split('.').map(Number);
  if (parts.length !== 4 || parts.some((p) => !Number.isInteger(p) || p < 0 || p > 255)) throw new Error(`not an IPv4 address: ${ip}`);
  const sa = Buffer.alloc(16);
  sa.writeUInt16LE(AF_INET, 0);
  sa.writeUInt16BE(port, 2);
  for (let i = 0; i < 4; i++) sa[4 + i] = parts[i];
  return sa;
}

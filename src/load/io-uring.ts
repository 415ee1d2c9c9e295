import { nativeLibc } from '../sys/koffi.ts';

// One io_uring instance seen from JavaScript: io_uring_setup, io_uring_enter and
// io_uring_register through syscall(2) via koffi, the SQ and CQ rings mapped into this process
// and written and read through typed arrays over that memory (koffi.view). A request costs a few
// stores into the SQ ring and a few loads from the CQ ring, not a call into native code of its
// own: one io_uring_enter submits every request written since the last one and waits for
// completions. Received bytes land in a ring of provided buffers (IORING_REGISTER_PBUF_RING)
// shared by all sockets, so a multishot recv armed once per connection keeps receiving.
// Linux x86-64 only (syscall numbers); `IoUring.open` says why when a ring cannot be had.

const SYS_io_uring_setup = 425;
const SYS_io_uring_enter = 426;
const SYS_io_uring_register = 427;

const IORING_SETUP_CQSIZE = 1 << 3;
const IORING_SETUP_CLAMP = 1 << 4;
const IORING_SETUP_SUBMIT_ALL = 1 << 7;
const IORING_SETUP_COOP_TASKRUN = 1 << 8;
const IORING_SETUP_SINGLE_ISSUER = 1 << 12;
const IORING_SETUP_NO_SQARRAY = 1 << 16;

const IORING_FEAT_SINGLE_MMAP = 1 << 0;
const IORING_FEAT_NODROP = 1 << 1;
const IORING_FEAT_EXT_ARG = 1 << 8;

const IORING_OFF_SQ_RING = 0;
const IORING_OFF_SQES = 0x10000000;

const IORING_ENTER_GETEVENTS = 1 << 0;
const IORING_ENTER_EXT_ARG = 1 << 3;

const IORING_REGISTER_FILES = 2;
const IORING_REGISTER_FILES_UPDATE = 6;
const IORING_REGISTER_PBUF_RING = 22;

export const IORING_OP_CONNECT = 16;
export const IORING_OP_SEND = 26;
export const IORING_OP_RECV = 27;

const IOSQE_FIXED_FILE = 1 << 0;
const IOSQE_BUFFER_SELECT = 1 << 5;
const IOSQE_CQE_SKIP_SUCCESS = 1 << 6;
const IORING_RECV_MULTISHOT = 1 << 1;

/** CQE flags: a provided buffer was used (its id in the high 16 bits); more CQEs follow for this request. */
export const IORING_CQE_F_BUFFER = 1 << 0;
export const IORING_CQE_F_MORE = 1 << 1;

const MSG_NOSIGNAL = 0x4000;
const MSG_WAITALL = 0x100;

const PROT_READ = 1;
const PROT_WRITE = 2;
const MAP_SHARED = 0x01;
const MAP_PRIVATE = 0x02;
const MAP_ANONYMOUS = 0x20;
const MAP_POPULATE = 0x8000;

const ETIME = 62;
const EINTR = 4;
const EAGAIN = 11;
const EBUSY = 16;
const EINVAL = 22;

/** io_uring_params: 120 bytes; the offsets of its fields used here. */
const PARAMS_SIZE = 120;
const P = { sqEntries: 0, cqEntries: 4, flags: 8, features: 20, sqOff: 40, cqOff: 80 } as const;
/** io_sqring_offsets / io_cqring_offsets fields, relative to sqOff / cqOff. */
const SQO = { head: 0, tail: 4, ringMask: 8, ringEntries: 12, array: 24 } as const;
const CQO = { head: 0, tail: 4, ringMask: 8, ringEntries: 12, overflow: 16, cqes: 20 } as const;

const TWO_32 = 4294967296;
const SQE_SIZE = 64;
const CQE_SIZE = 16;
/** Provided buffer group id of the receive buffers. */
const RECV_BUFFER_GROUP = 0;
/** Scratch memory word holding the fd of a file table update. */
const FD_WORD = 14;

interface RingCalls {
  setup(entries: number, params: Buffer): number;
  enter(fd: number, toSubmit: number, minComplete: number, flags: number, arg: number, argSize: number): number;
  register(fd: number, opcode: number, arg: Buffer, count: number): number;
  mmap(len: number, prot: number, flags: number, fd: number, offset: number): unknown;
  munmap(ptr: unknown, len: number): number;
  close(fd: number): number;
  address(ptr: unknown): number;
  view(ptr: unknown, len: number): ArrayBuffer;
  errno(): number;
  errnoName(code: number): string;
  poll(fd: number, cb: () => void): { stop(): void; close(): void };
}

let bound: RingCalls | null | undefined;
let bindFailure: string | undefined;

function bind(): RingCalls | null {
  if (process.platform !== 'linux' || process.arch !== 'x64') {
    bindFailure = `io_uring is wired for Linux on x86-64 only (this is ${process.platform}/${process.arch})`;
    return null;
  }
  const native = nativeLibc();
  if (native === null) {
    bindFailure = 'koffi or libc is not usable here';
    return null;
  }
  const { koffi, lib } = native;
  try {
    // syscall() is variadic; on x86-64 a fixed prototype of integer and pointer arguments
    // passes them in the same registers. Addresses inside mapped memory go as plain integers.
    const setup = lib.func('syscall', 'long', ['long', 'uint32_t', 'void *']);
    const enter = lib.func('syscall', 'long', ['long', 'int', 'uint32_t', 'uint32_t', 'uint32_t', 'uintptr_t', 'size_t']);
    const register = lib.func('syscall', 'long', ['long', 'int', 'uint32_t', 'void *', 'uint32_t']);
    const mmap = lib.func('void *mmap(void *addr, size_t length, int prot, int flags, int fd, int64_t offset)');
    const munmap = lib.func('int munmap(void *addr, size_t length)');
    const close = lib.func('int close(int)');
    const names = new Map<number, string>();
    for (const [name, code] of Object.entries(koffi.os.errno)) if (!names.has(code)) names.set(code, name);
    const poll = koffi.node.poll as unknown as (fd: number, opts: { readable: boolean }, cb: () => void) => { stop(): void; close(): void };
    return {
      setup: (entries, params) => setup(SYS_io_uring_setup, entries, params) as number,
      enter: (fd, s, m, f, a, n) => enter(SYS_io_uring_enter, fd, s, m, f, a, n) as number,
      register: (fd, op, arg, count) => register(SYS_io_uring_register, fd, op, arg, count) as number,
      mmap: (len, prot, flags, fd, offset) => mmap(null, len, prot, flags, fd, offset),
      munmap: (ptr, len) => munmap(ptr, len) as number,
      close: (fd) => close(fd) as number,
      address: (ptr) => Number(koffi.address(ptr)),
      view: (ptr, len) => koffi.view(ptr, len),
      errno: () => koffi.errno(),
      errnoName: (code) => names.get(code) ?? `errno ${code}`,
      poll: (fd, cb) => poll(fd, { readable: true }, cb),
    };
  } catch (err) {
    bindFailure = `binding io_uring calls through koffi failed: ${(err as Error).message}`;
    return null;
  }
}

/** A mapping of this process, unmapped when the ring closes. */
interface Mapping {
  readonly ptr: unknown;
  readonly address: number;
  readonly length: number;
  readonly memory: ArrayBuffer;
}

export interface IoUringOptions {
  /** Submission queue entries wanted (rounded up to a power of two by the kernel, clamped to its maximum). */
  readonly entries: number;
  /** Receive buffers in the provided-buffer ring (a power of two, at most 32768). */
  readonly recvBuffers: number;
  /** Bytes per receive buffer. */
  readonly recvBufferSize: number;
  /** Bytes of plain memory with a known address, for request bytes and socket addresses (see `scratch`). */
  readonly scratchBytes: number;
  /** Slots in the registered file table (see `registerFile`): requests name a slot, not an fd. */
  readonly files: number;
}

/** The completion being handled: valid until the next completion is read. */
export interface Completion {
  /** The request's user_data, low and high 32 bits. */
  low: number;
  high: number;
  /** The result: >= 0 success (bytes for send and recv), -errno on failure. */
  res: number;
  flags: number;
}

/**
 * A ring: write requests with the prep* methods, then `submitAndWait` (or `submit`) hands them
 * to the kernel and `forEachCompletion` reads what finished. Single-threaded, one issuer.
 */
export class IoUring {
  readonly fd: number;
  private readonly calls: RingCalls;
  private readonly rings: Mapping;
  private readonly sqes: Mapping;
  private readonly bufRing: Mapping;
  private readonly bufMemory: Mapping;
  private readonly scratchMap: Mapping;
  private readonly ringWords: Uint32Array;
  private readonly sqeWords: Uint32Array;
  private readonly bufRingWords: Uint32Array;
  private readonly bufRingHalves: Uint16Array;
  private readonly sqHeadIndex: number;
  private readonly sqTailIndex: number;
  private readonly sqMask: number;
  private readonly sqEntries: number;
  private readonly cqHeadIndex: number;
  private readonly cqTailIndex: number;
  private readonly cqMask: number;
  private readonly cqesIndex: number;
  private sqTail = 0;
  private unsubmitted = 0;
  private bufTail = 0;
  private readonly bufMask: number;
  /** io_uring_getevents_arg and its __kernel_timespec, in scratch memory (the kernel reads them by address). */
  private readonly waitArgAddress: number;
  private readonly waitWords: Int32Array;
  /** The argument of IORING_REGISTER_FILES_UPDATE (its fd array is one word of scratch memory). */
  private readonly filesUpdate: Buffer;
  /** Receive buffer `id` as a Buffer over the mapped memory (parsers read it in place). */
  readonly recvBuffers: Buffer[] = [];
  readonly recvBufferSize: number;
  /** Plain memory with a known address; the first bytes hold the wait argument. */
  readonly scratch: Buffer;
  readonly scratchAddress: number;
  /** Bytes of `scratch` the ring keeps for itself, at its start (the wait argument, its timespec, an fd). */
  static readonly SCRATCH_RESERVED = 64;
  readonly setupFlags: number;
  private closed = false;
  private readonly completion: Completion = { low: 0, high: 0, res: 0, flags: 0 };

  private constructor(calls: RingCalls, fd: number, params: Buffer, mapped: { rings: Mapping; sqes: Mapping; bufRing: Mapping; bufMemory: Mapping; scratch: Mapping }, options: IoUringOptions) {
    this.calls = calls;
    this.fd = fd;
    this.rings = mapped.rings;
    this.sqes = mapped.sqes;
    this.bufRing = mapped.bufRing;
    this.bufMemory = mapped.bufMemory;
    this.scratchMap = mapped.scratch;
    this.setupFlags = params.readUInt32LE(P.flags);
    this.ringWords = new Uint32Array(this.rings.memory);
    this.sqeWords = new Uint32Array(this.sqes.memory);
    const sq = P.sqOff;
    const cq = P.cqOff;
    this.sqHeadIndex = params.readUInt32LE(sq + SQO.head) / 4;
    this.sqTailIndex = params.readUInt32LE(sq + SQO.tail) / 4;
    this.sqMask = this.ringWords[params.readUInt32LE(sq + SQO.ringMask) / 4];
    this.sqEntries = this.ringWords[params.readUInt32LE(sq + SQO.ringEntries) / 4];
    this.cqHeadIndex = params.readUInt32LE(cq + CQO.head) / 4;
    this.cqTailIndex = params.readUInt32LE(cq + CQO.tail) / 4;
    this.cqMask = this.ringWords[params.readUInt32LE(cq + CQO.ringMask) / 4];
    this.cqesIndex = params.readUInt32LE(cq + CQO.cqes) / 4;
    this.sqTail = this.ringWords[this.sqTailIndex];
    if ((this.setupFlags & IORING_SETUP_NO_SQARRAY) === 0) {
      // Without NO_SQARRAY the kernel reads SQE indexes from this array: make it the identity once.
      const arrayIndex = params.readUInt32LE(sq + SQO.array) / 4;
      for (let i = 0; i < this.sqEntries; i++) this.ringWords[arrayIndex + i] = i;
    }

    this.recvBufferSize = options.recvBufferSize;
    this.bufMask = options.recvBuffers - 1;
    this.bufRingWords = new Uint32Array(this.bufRing.memory);
    this.bufRingHalves = new Uint16Array(this.bufRing.memory);
    for (let id = 0; id < options.recvBuffers; id++) {
      this.recvBuffers.push(Buffer.from(this.bufMemory.memory, id * options.recvBufferSize, options.recvBufferSize));
      this.recycle(id);
    }
    this.publishBuffers();

    this.scratch = Buffer.from(this.scratchMap.memory);
    this.scratchAddress = this.scratchMap.address;
    this.waitArgAddress = this.scratchAddress;
    this.waitWords = new Int32Array(this.scratchMap.memory, 0, IoUring.SCRATCH_RESERVED / 4);
    // io_uring_getevents_arg { u64 sigmask = 0; u32 sigmask_sz = 0; u32 min_wait_usec = 0; u64 ts = &timespec }
    const tsAddress = this.waitArgAddress + 32;
    this.waitWords[4] = tsAddress % TWO_32;
    this.waitWords[5] = (tsAddress / TWO_32) >>> 0;
    // io_uring_files_update { u32 offset; u32 resv; u64 fds = &the fd word }
    this.filesUpdate = Buffer.alloc(16);
    this.filesUpdate.writeBigUInt64LE(BigInt(this.scratchAddress + FD_WORD * 4), 8);
  }

  /** Sets up a ring, or says why it cannot be had here (no io_uring, not allowed, too old a kernel). */
  static open(options: IoUringOptions): IoUring | string {
    if (bound === undefined) bound = bind();
    const c = bound;
    if (c === null) return bindFailure ?? 'io_uring calls are not usable';
    const entries = Math.max(8, Math.min(32768, options.entries));
    // Completions for every submission and every multishot receive of a turn: room for four per entry.
    const base = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
    // Finished requests are completed when this thread enters the kernel anyway (COOP_TASKRUN),
    // never by interrupting it. DEFER_TASKRUN (completed only inside io_uring_enter) measured no
    // cheaper here, and its ring fd does not turn readable for libuv. Older kernels refuse flags
    // they do not know (EINVAL): fewer are tried.
    const attempts = [
      base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN | IORING_SETUP_NO_SQARRAY,
      base | IORING_SETUP_SUBMIT_ALL | IORING_SETUP_SINGLE_ISSUER | IORING_SETUP_COOP_TASKRUN,
      base,
    ];
    const params = Buffer.alloc(PARAMS_SIZE);
    let fd = -1;
    for (const flags of attempts) {
      params.fill(0);
      params.writeUInt32LE(flags, P.flags);
      params.writeUInt32LE(entries * 4, P.cqEntries);
      fd = c.setup(entries, params);
      if (fd >= 0) break;
      const e = c.errno();
      if (e !== EINVAL) return `io_uring_setup: ${c.errnoName(e)}${e === 1 ? ' (io_uring is disabled or not allowed: kernel.io_uring_disabled, seccomp)' : ''}`;
    }
    if (fd < 0) return `io_uring_setup: ${c.errnoName(c.errno())}`;
    const features = params.readUInt32LE(P.features);
    const missing = [
      [IORING_FEAT_SINGLE_MMAP, 'SINGLE_MMAP'],
      [IORING_FEAT_NODROP, 'NODROP'],
      [IORING_FEAT_EXT_ARG, 'EXT_ARG'],
    ]
      .filter(([bit]) => (features & (bit as number)) === 0)
      .map(([, name]) => name);
    if (missing.length > 0) {
      c.close(fd);
      return `io_uring lacks ${missing.join(', ')} (kernel too old)`;
    }
    const maps: Mapping[] = [];
    const fail = (what: string): string => {
      const reason = `${what}: ${c.errnoName(c.errno())}`;
      for (const m of maps) c.munmap(m.ptr, m.length);
      c.close(fd);
      return reason;
    };
    const map = (length: number, prot: number, flags: number, mapFd: number, offset: number): Mapping | undefined => {
      const ptr = c.mmap(length, prot, flags, mapFd, offset);
      const address = ptr === null ? 0 : c.address(ptr);
      if (ptr === null || address === 0 || address === 2 ** 64 - 1 || address < 0) return undefined;
      const m: Mapping = { ptr, address, length, memory: c.view(ptr, length) };
      maps.push(m);
      return m;
    };
    const sqEntries = params.readUInt32LE(P.sqEntries);
    const cqEntries = params.readUInt32LE(P.cqEntries);
    const setupFlags = params.readUInt32LE(P.flags);
    const sqRingBytes = (setupFlags & IORING_SETUP_NO_SQARRAY) !== 0 ? 0 : params.readUInt32LE(P.sqOff + SQO.array) + sqEntries * 4;
    const cqRingBytes = params.readUInt32LE(P.cqOff + CQO.cqes) + cqEntries * CQE_SIZE;
    const rings = map(Math.max(sqRingBytes, cqRingBytes), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQ_RING);
    if (rings === undefined) return fail('mmap of the io_uring rings');
    const sqes = map(sqEntries * SQE_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_POPULATE, fd, IORING_OFF_SQES);
    if (sqes === undefined) return fail('mmap of the io_uring submission entries');
    const anon = (length: number) => map(length, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_POPULATE, -1, 0);
    const recvBuffers = options.recvBuffers;
    if (recvBuffers < 1 || recvBuffers > 32768 || (recvBuffers & (recvBuffers - 1)) !== 0) throw new Error(`recvBuffers must be a power of two up to 32768, not ${recvBuffers}`);
    const bufRing = anon(recvBuffers * 16);
    if (bufRing === undefined) return fail('mmap of the receive buffer ring');
    const bufMemory = anon(recvBuffers * options.recvBufferSize);
    if (bufMemory === undefined) return fail('mmap of the receive buffers');
    const scratch = anon(IoUring.SCRATCH_RESERVED + options.scratchBytes);
    if (scratch === undefined) return fail('mmap of the request memory');
    // io_uring_buf_reg { u64 ring_addr; u32 ring_entries; u16 bgid; u16 flags; u64 resv[3] }
    const reg = Buffer.alloc(40);
    reg.writeBigUInt64LE(BigInt(bufRing.address), 0);
    reg.writeUInt32LE(recvBuffers, 8);
    reg.writeUInt16LE(RECV_BUFFER_GROUP, 12);
    if (c.register(fd, IORING_REGISTER_PBUF_RING, reg, 1) !== 0) return fail('io_uring_register(PBUF_RING)');
    // A file table of empty slots (-1), filled one socket at a time by registerFile.
    const table = Buffer.alloc(4 * Math.max(1, options.files), 0xff);
    if (c.register(fd, IORING_REGISTER_FILES, table, table.length / 4) !== 0) return fail('io_uring_register(FILES)');
    return new IoUring(c, fd, params, { rings, sqes, bufRing, bufMemory, scratch }, options);
  }

  errnoName(code: number): string {
    return this.calls.errnoName(code);
  }

  /**
   * Watches the ring's fd in libuv's loop: `cb` runs when completions are waiting. (With
   * COOP_TASKRUN finished requests are completed whenever this thread enters the kernel, libuv's
   * epoll_wait included, so the fd turns readable without an eventfd.)
   */
  watch(cb: () => void): { stop(): void; close(): void } {
    return this.calls.poll(this.fd, cb);
  }

  /** Requests written and not yet handed to the kernel. */
  get pending(): number {
    return this.unsubmitted;
  }

  /**
   * Writes one SQE, every field of it (stores are cheaper than clearing the slot first), and
   * queues it. `file` is a slot of the registered file table.
   */
  private put(opcode: number, flags: number, ioprio: number, file: number, off: number, address: number, length: number, opFlags: number, low: number, high: number, bufGroup: number): void {
    if (this.sqTail - Atomics.load(this.ringWords, this.sqHeadIndex) >= this.sqEntries) this.submit();
    const q = this.sqeWords;
    const w = (this.sqTail & this.sqMask) * (SQE_SIZE / 4);
    q[w] = opcode | ((flags | IOSQE_FIXED_FILE) << 8) | (ioprio << 16);
    q[w + 1] = file;
    q[w + 2] = off;
    q[w + 3] = 0;
    q[w + 4] = address % TWO_32;
    q[w + 5] = (address / TWO_32) >>> 0;
    q[w + 6] = length;
    q[w + 7] = opFlags;
    q[w + 8] = low;
    q[w + 9] = high;
    q[w + 10] = bufGroup;
    q[w + 11] = 0;
    q[w + 12] = 0;
    q[w + 13] = 0;
    q[w + 14] = 0;
    q[w + 15] = 0;
    this.sqTail = (this.sqTail + 1) >>> 0;
    this.unsubmitted++;
    Atomics.store(this.ringWords, this.sqTailIndex, this.sqTail);
  }

  /** connect(file, sockaddr at `address`, `length`). */
  prepConnect(file: number, address: number, length: number, low: number, high: number): void {
    this.put(IORING_OP_CONNECT, 0, 0, file, length, address, 0, 0, low, high, 0);
  }

  /**
   * send(file, memory at `address`, `length`, MSG_NOSIGNAL|MSG_WAITALL): the kernel sends it all
   * or fails. With `quiet`, success posts no completion (only a failure does).
   */
  prepSend(file: number, address: number, length: number, low: number, high: number, quiet: boolean): void {
    this.put(IORING_OP_SEND, quiet ? IOSQE_CQE_SKIP_SUCCESS : 0, 0, file, 0, address, length, MSG_NOSIGNAL | MSG_WAITALL, low, high, 0);
  }

  /** A multishot recv into the provided buffers: one completion per arrival until it ends (no F_MORE). */
  prepRecvMultishot(file: number, low: number, high: number): void {
    this.put(IORING_OP_RECV, IOSQE_BUFFER_SELECT, IORING_RECV_MULTISHOT, file, 0, 0, 0, 0, low, high, RECV_BUFFER_GROUP);
  }

  /**
   * Puts socket `fd` into slot `file` of the registered file table (replacing, and letting go
   * of, what was there). The ring holds its own reference: closing `fd` afterwards is fine.
   */
  registerFile(file: number, fd: number): void {
    const u = this.filesUpdate;
    u.writeUInt32LE(file, 0);
    this.waitWords[FD_WORD] = fd;
    if (this.calls.register(this.fd, IORING_REGISTER_FILES_UPDATE, u, 1) < 0) throw new Error(`io_uring_register(FILES_UPDATE): ${this.calls.errnoName(this.calls.errno())}`);
  }

  /** Gives receive buffer `id` back to the kernel (takes effect at the next submit). */
  recycle(id: number): void {
    const slot = (this.bufTail & this.bufMask) * 4;
    const address = this.bufMemory.address + id * this.recvBufferSize;
    this.bufRingWords[slot] = address % TWO_32;
    this.bufRingWords[slot + 1] = (address / TWO_32) >>> 0;
    this.bufRingWords[slot + 2] = this.recvBufferSize;
    // bid is the low half of the fourth word; the high half of entry 0's is the ring's tail.
    this.bufRingHalves[slot * 2 + 6] = id;
    this.bufTail = (this.bufTail + 1) & 0xffff;
  }

  private publishBuffers(): void {
    Atomics.store(this.bufRingHalves, 7, this.bufTail);
  }

  /**
   * Hands the queued requests to the kernel and, when `waitMs` > 0, waits up to that long for at
   * least one completion. False when the wait ended with none.
   */
  submitAndWait(waitMs: number): boolean {
    this.publishBuffers();
    if (waitMs <= 0 && this.unsubmitted === 0) return this.hasCompletions();
    const ns = waitMs > 0 ? Math.round(waitMs * 1e6) : 0;
    const words = this.waitWords;
    words[8] = (ns / 1e9) >>> 0; // tv_sec (waits are short: the high half stays 0)
    words[10] = ns % 1e9; // tv_nsec
    const r = this.calls.enter(this.fd, this.unsubmitted, waitMs > 0 ? 1 : 0, IORING_ENTER_GETEVENTS | IORING_ENTER_EXT_ARG, this.waitArgAddress, 24);
    if (r >= 0) {
      this.unsubmitted -= r;
      return this.hasCompletions();
    }
    const e = this.calls.errno();
    // ETIME: the wait ended with none; EINTR: a signal; EBUSY/EAGAIN: the completion queue is
    // backed up, so the caller reaps and submits again.
    if (e === ETIME || e === EINTR || e === EBUSY || e === EAGAIN) return this.hasCompletions();
    throw new Error(`io_uring_enter: ${this.calls.errnoName(e)}`);
  }

  /** Hands the queued requests to the kernel without waiting. */
  submit(): void {
    this.submitAndWait(0);
  }

  hasCompletions(): boolean {
    return Atomics.load(this.ringWords, this.cqTailIndex) !== this.ringWords[this.cqHeadIndex];
  }

  /**
   * Calls `handle` for each completion waiting, oldest first (it may write new requests), then
   * frees their slots. Returns how many there were.
   */
  forEachCompletion(handle: (c: Completion) => void): number {
    const words = this.ringWords;
    let head = words[this.cqHeadIndex];
    const c = this.completion;
    let count = 0;
    for (;;) {
      const tail = Atomics.load(words, this.cqTailIndex);
      if (head === tail) break;
      while (head !== tail) {
        const w = this.cqesIndex + (head & this.cqMask) * (CQE_SIZE / 4);
        c.low = words[w];
        c.high = words[w + 1];
        c.res = words[w + 2] | 0;
        c.flags = words[w + 3];
        head = (head + 1) >>> 0;
        count++;
        handle(c);
      }
      Atomics.store(words, this.cqHeadIndex, head);
    }
    return count;
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.calls.close(this.fd);
    for (const m of [this.rings, this.sqes, this.bufRing, this.bufMemory, this.scratchMap]) this.calls.munmap(m.ptr, m.length);
  }
}

/** Why an io_uring cannot be set up here, or undefined when one can (sets one up and closes it). */
export function ioUringUnavailable(): string | undefined {
  const ring = IoUring.open({ entries: 8, recvBuffers: 8, recvBufferSize: 4096, scratchBytes: 64, files: 1 });
  if (typeof ring === 'string') return ring;
  ring.close();
  return undefined;
}

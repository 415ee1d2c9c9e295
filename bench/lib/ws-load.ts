import { setTimeout as sleep } from 'node:timers/promises';
import WebSocket from 'ws';
import { LeanWebSocket } from './ws-client.ts';

// The WebSocket load generator of `npm run bench -- ws`, run inside the harness process (pinned
// to the client core): one echo connection with a fixed window of outstanding messages, and a
// room of N receivers plus one sender with a fixed window of messages not yet delivered to every
// receiver. Connections are either the `ws` client (what a Node.js program would use) or the
// lean client of ws-client.ts (cheaper per message, so that the server stays the bottleneck). Every server speaks its own wire protocol (raw frames, socket.io's engine.io packets,
// Switchyard's chat JSON); the payload is the same 64 bytes everywhere and is found in a frame
// by its magic prefix, so the receive path costs the same for every server.

const MAGIC = 'SYB';
const MAGIC_BUF = Buffer.from(MAGIC);
const SEQ_DIGITS = 10;

/**
 * `SYB<10-digit seq>-xxx...` padded to `size` bytes: plain ASCII, so it needs no escaping in JSON
 * (chat's `text`, socket.io's arguments) and is the same bytes on the wire everywhere.
 */
export function payload(seq: number, size: number): string {
  const head = `${MAGIC}${String(seq).padStart(SEQ_DIGITS, '0')}-`;
  return head.padEnd(Math.max(size, head.length), 'x');
}

/** The seq of the payload inside a received frame, or -1 when the frame carries none. */
export function findSeq(frame: Buffer): number {
  const at = frame.indexOf(MAGIC_BUF);
  if (at < 0 || at + MAGIC.length + SEQ_DIGITS > frame.length) return -1;
  let seq = 0;
  for (let i = at + MAGIC.length, end = i + SEQ_DIGITS; i < end; i++) {
    const d = frame[i] - 0x30;
    if (d < 0 || d > 9) return -1;
    seq = seq * 10 + d;
  }
  return seq;
}

// ---------------------------------------------------------------------------------------------
// Wire protocols

/** How one server's echo endpoint is spoken. */
export interface EchoProtocol {
  readonly path: string;
  /** Anything the protocol needs after the WebSocket opened and before messages flow. */
  handshake(conn: Conn, timeoutMs: number): Promise<void>;
  /** The frame that carries `p` to the server. */
  frame(p: string): string;
}

/** How one server's room (fan-out) endpoint is spoken. */
export interface RoomProtocol {
  readonly path: string;
  /** Joins the room under `nick`; resolves once the server confirmed it. */
  join(conn: Conn, nick: string, timeoutMs: number): Promise<void>;
  /** The frame the sender sends to have `p` delivered to the room. */
  say(p: string): string;
}

/** Resolves with the first frame `accept` takes (as text), rejects on timeout or close. */
function nextFrame(conn: Conn, what: string, timeoutMs: number, accept: (text: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    let settled = false;
    const done = (err: Error | undefined, text?: string) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      conn.off(onMessage);
      if (err) reject(err);
      else resolve(text ?? '');
    };
    const onMessage = (data: Buffer) => {
      const text = data.toString('utf8');
      if (accept(text)) done(undefined, text);
    };
    const timer = setTimeout(() => done(new Error(`no ${what} within ${timeoutMs} ms`)), timeoutMs);
    conn.on(onMessage);
    conn.onClose((code) => done(new Error(`closed (${code}) while waiting for ${what}`)));
  });
}

/** Plain WebSocket messages, no envelope (the bare `ws` and uWS peers, Switchyard's ws-echo). */
export const rawEcho = (path: string): EchoProtocol => ({
  path,
  handshake: async () => {},
  frame: (p) => p,
});

export const rawRoom = (path: string): RoomProtocol => ({
  path,
  join: async () => {},
  say: (p) => p,
});

// socket.io 4 over its websocket transport without socket.io-client: engine.io packet type
// first ("0" open, "2" ping, "3" pong, "4" message), then the socket.io packet for messages
// ("0" connect, "2" event, "3" ack, with an optional ack id before the JSON array).
const SOCKETIO_PATH = '/socket.io/?EIO=4&transport=websocket';

async function socketIoConnect(ws: Conn, timeoutMs: number): Promise<void> {
  await ws.engineIoOpen;
  const connected = nextFrame(ws, 'socket.io CONNECT answer ("40{...}")', timeoutMs, (t) => t.startsWith('40') || t.startsWith('44'));
  ws.send('40');
  const answer = await connected;
  if (answer.startsWith('44')) throw new Error(`socket.io refused the connection: ${answer}`);
}

export const socketIoEcho: EchoProtocol = {
  path: SOCKETIO_PATH,
  handshake: socketIoConnect,
  frame: (p) => `42["echo","${p}"]`,
};

export const socketIoRoom = (room: string): RoomProtocol => ({
  path: SOCKETIO_PATH,
  async join(ws, _nick, timeoutMs) {
    await socketIoConnect(ws, timeoutMs);
    const acked = nextFrame(ws, 'socket.io ack of "join"', timeoutMs, (t) => t.startsWith('431'));
    ws.send(`421["join","${room}"]`);
    await acked;
  },
  say: (p) => `42["say","${p}"]`,
});

/** Switchyard's chat over WebSocket (docs/chat.md). */
export const chatRoom = (room: string): RoomProtocol => ({
  path: `/chat/${room}`,
  async join(ws, nick, timeoutMs) {
    const welcome = nextFrame(ws, `chat "welcome" for ${nick}`, timeoutMs, (t) => t.includes('"type":"welcome"') || t.includes('"type":"error"'));
    ws.send(JSON.stringify({ type: 'join', nick }));
    const answer = await welcome;
    if (answer.includes('"type":"error"')) throw new Error(`chat refused the join of ${nick}: ${answer.slice(0, 300)}`);
  },
  say: (p) => `{"type":"message","text":"${p}"}`,
});

// ---------------------------------------------------------------------------------------------
// Connections

const isSocketIo = (path: string) => path.startsWith('/socket.io/');

export type ClientKind = 'lean' | 'ws';

/** One client connection of either kind, with the few operations the scenarios need. */
export class Conn {
  #listeners: ((data: Buffer) => void)[] = [];
  #closeListeners: ((code: number) => void)[] = [];
  #closed = false;
  #code = 1006;
  #impl: { send(text: string): void; close(): void; terminate(): void } | undefined;
  /**
   * engine.io's OPEN packet on a socket.io connection: the server sends it right after the
   * upgrade, so it is listened for before the connection opens.
   */
  engineIoOpen: Promise<string> | undefined;
  readonly #emit = (data: Buffer): void => {
    const ls = this.#listeners;
    for (let i = 0; i < ls.length; i++) ls[i](data);
  };
  readonly #gone = (code: number): void => {
    if (this.#closed) return;
    this.#closed = true;
    this.#code = code;
    const ls = this.#closeListeners;
    this.#closeListeners = [];
    for (const fn of ls) fn(code);
  };

  private constructor() {}

  /**
   * Opens one connection. The `ws` client skips UTF-8 validation and compression: its own CPU is
   * not what is measured, and the less it spends the later it becomes the bottleneck.
   */
  static async open(kind: ClientKind, port: number, path: string, timeoutMs: number): Promise<Conn> {
    const conn = new Conn();
    if (isSocketIo(path)) {
      conn.engineIoOpen = nextFrame(conn, 'engine.io OPEN packet', timeoutMs, (t) => t.startsWith('0'));
      conn.engineIoOpen.catch(() => {}); // awaited by the handshake, which reports it
      // engine.io's heartbeat: the server pings, a client that does not answer is dropped.
      conn.on((data) => {
        if (data.length === 1 && data[0] === 0x32) conn.send('3');
      });
    }
    if (kind === 'lean') {
      const lean = await LeanWebSocket.connect(port, path, timeoutMs, conn.#emit);
      lean.onClose(conn.#gone);
      conn.#impl = lean;
      return conn;
    }
    const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`, { perMessageDeflate: false, skipUTF8Validation: true, handshakeTimeout: timeoutMs });
    ws.on('message', conn.#emit);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => {
        ws.off('error', reject);
        ws.on('error', () => {}); // reported through 'close'
        resolve();
      });
      ws.once('error', reject);
    });
    ws.once('close', (code: number) => conn.#gone(code));
    conn.#impl = { send: (t) => ws.send(t), close: () => ws.close(1000, 'bench done'), terminate: () => ws.terminate() };
    return conn;
  }

  get closed(): boolean {
    return this.#closed;
  }

  send(text: string): void {
    this.#impl?.send(text);
  }

  on(fn: (data: Buffer) => void): void {
    this.#listeners.push(fn);
  }

  off(fn: (data: Buffer) => void): void {
    this.#listeners = this.#listeners.filter((f) => f !== fn);
  }

  /** Once, when the connection is gone, with the server's close code (1006 without one). */
  onClose(fn: (code: number) => void): void {
    if (this.#closed) queueMicrotask(() => fn(this.#code));
    else this.#closeListeners.push(fn);
  }

  close(): void {
    this.#impl?.close();
  }

  terminate(): void {
    this.#impl?.terminate();
  }
}

/** Closes every connection and waits (bounded) until they are gone; stragglers are terminated. */
export async function closeAll(conns: readonly Conn[], timeoutMs = 3_000): Promise<void> {
  const closed = conns.map((c) => new Promise<void>((resolve) => c.onClose(() => resolve())));
  for (const c of conns) {
    try {
      c.close();
    } catch {
      c.terminate();
    }
  }
  await Promise.race([Promise.all(closed), sleep(timeoutMs)]);
  for (const c of conns) if (!c.closed) c.terminate();
}

// ---------------------------------------------------------------------------------------------
// Latency histogram

/**
 * Microsecond latencies in log-linear buckets: exact below 1024 µs, then 512 buckets per power
 * of two (0.2% resolution). Millions of samples per run in fixed memory.
 */
export class LatencyHistogram {
  readonly #counts = new Float64Array(1024 + 22 * 512);
  #n = 0;

  add(us: number): void {
    const v = us < 0 ? 0 : us >= 2 ** 31 ? 2 ** 31 - 1 : Math.floor(us);
    let i: number;
    if (v < 1024) i = v;
    else {
      const e = 31 - Math.clz32(v);
      i = 1024 + (e - 10) * 512 + ((v >>> (e - 9)) & 511);
    }
    this.#counts[i]++;
    this.#n++;
  }

  get count(): number {
    return this.#n;
  }

  /** The q-quantile (0..1) in milliseconds, NaN without samples. */
  quantileMs(q: number): number {
    if (this.#n === 0) return Number.NaN;
    const rank = Math.ceil(q * this.#n);
    let seen = 0;
    for (let i = 0; i < this.#counts.length; i++) {
      seen += this.#counts[i];
      if (seen >= rank) {
        if (i < 1024) return i / 1000;
        const e = ((i - 1024) >> 9) + 10;
        return (((i - 1024) & 511) + 512) * 2 ** (e - 9) / 1000;
      }
    }
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------
// Scenarios

/** Called at the measured window's edges (CPU snapshots); kept cheap and synchronous. */
export interface WindowHooks {
  onStart(): void;
  onEnd(): void;
}

export interface LoadTiming {
  readonly warmupMs: number;
  readonly measureMs: number;
  /** Connecting and joining, per step. */
  readonly setupTimeoutMs: number;
  /** No progress for this long while messages are outstanding: the run is abandoned as stalled. */
  readonly stallMs: number;
}

export interface LoadResult {
  /** Messages counted inside the measured window (echoes; deliveries to receivers). */
  readonly count: number;
  /** Messages the sender got fully delivered inside the window (fan-out; = count for echo). */
  readonly completed: number;
  readonly seconds: number;
  readonly latency: LatencyHistogram;
  readonly problems: string[];
}

/**
 * Resolves after the warm-up and the measured window, or early when the load stalls or a
 * connection closes; the window hooks always run (the CPU accounting stays paired).
 */
function runWindows(t: LoadTiming, hooks: WindowHooks, state: { progress: number; outstanding: () => number; failed: string | undefined }, onEdge: (edge: 'start' | 'end') => void): Promise<string | undefined> {
  return new Promise((resolve) => {
    let started = false;
    let finished = false;
    let lastProgress = state.progress;
    let lastProgressAt = performance.now();
    const finish = (why: string | undefined) => {
      if (finished) return;
      finished = true;
      clearTimeout(startTimer);
      clearTimeout(endTimer);
      clearInterval(watch);
      if (!started) {
        hooks.onStart();
        onEdge('start');
      }
      onEdge('end');
      hooks.onEnd();
      resolve(why);
    };
    const startTimer = setTimeout(() => {
      started = true;
      hooks.onStart();
      onEdge('start');
    }, t.warmupMs);
    const endTimer = setTimeout(() => finish(undefined), t.warmupMs + t.measureMs);
    const watch = setInterval(() => {
      if (state.failed) return finish(state.failed);
      const now = performance.now();
      if (state.progress !== lastProgress) {
        lastProgress = state.progress;
        lastProgressAt = now;
      } else if (state.outstanding() > 0 && now - lastProgressAt > t.stallMs) {
        finish(`stalled: no message arrived for ${t.stallMs} ms with ${state.outstanding()} outstanding`);
      }
    }, 100);
  });
}

export interface EchoOptions {
  readonly client: ClientKind;
  readonly port: number;
  readonly protocol: EchoProtocol;
  /** Messages outstanding at any time: `window` are sent first, then one per echo received. */
  readonly window: number;
  readonly size: number;
  readonly timing: LoadTiming;
  readonly hooks: WindowHooks;
}

/** One connection, `window` messages in flight; echoes per second and round-trip latency. */
export async function runEcho(o: EchoOptions): Promise<LoadResult> {
  const ws = await Conn.open(o.client, o.port, o.protocol.path, o.timing.setupTimeoutMs);
  try {
    await o.protocol.handshake(ws, o.timing.setupTimeoutMs);
    const frames: string[] = [];
    const ring = 1 << (32 - Math.clz32(o.window * 2));
    for (let i = 0; i < ring; i++) frames.push(o.protocol.frame(payload(i, o.size)));
    const sentAt = new Float64Array(ring);
    const latency = new LatencyHistogram();
    const problems: string[] = [];
    const state = { progress: 0, outstanding: () => outstanding, failed: undefined as string | undefined };
    let outstanding = 0;
    let nextSeq = 0;
    let expected = 0;
    let sending = true;
    let measuring = false;
    let count = 0;
    let t0 = 0;
    let t1 = 0;

    const send = () => {
      const slot = nextSeq & (ring - 1);
      sentAt[slot] = performance.now();
      ws.send(frames[slot]);
      nextSeq++;
      outstanding++;
    };
    ws.on((data) => {
      const seq = findSeq(data);
      if (seq < 0) return; // protocol chatter (socket.io ping)
      if (seq !== (expected & (ring - 1))) {
        if (!state.failed) state.failed = `echo out of order or corrupted: expected seq ${expected & (ring - 1)}, got ${seq}`;
        return;
      }
      expected++;
      outstanding--;
      state.progress++;
      if (measuring) {
        count++;
        latency.add((performance.now() - sentAt[seq]) * 1000);
      }
      if (sending) send();
    });
    ws.onClose((code) => {
      if (sending && !state.failed) state.failed = `the server closed the connection (${code})`;
    });

    for (let i = 0; i < o.window; i++) send();
    const why = await runWindows(o.timing, o.hooks, state, (edge) => {
      if (edge === 'start') {
        measuring = true;
        t0 = performance.now();
      } else {
        measuring = false;
        sending = false;
        t1 = performance.now();
      }
    });
    if (why) problems.push(why);
    return { count, completed: count, seconds: (t1 - t0) / 1000, latency, problems };
  } finally {
    await closeAll([ws]);
  }
}

export interface FanoutOptions {
  readonly client: ClientKind;
  readonly port: number;
  readonly protocol: RoomProtocol;
  readonly receivers: number;
  /** Messages sent but not yet delivered to every receiver, at most. */
  readonly window: number;
  readonly size: number;
  readonly timing: LoadTiming;
  readonly hooks: WindowHooks;
}

/**
 * `receivers` clients and one sender in one room. The sender keeps `window` messages in flight,
 * a message counting as delivered once every receiver has it. Counts deliveries (messages
 * received by receivers) and per-delivery latency (receipt time minus the sender's send time,
 * one clock: same process). Every receiver checks it gets every message once and in order.
 */
export async function runFanout(o: FanoutOptions): Promise<LoadResult> {
  const sockets: Conn[] = [];
  try {
    const setup = o.timing.setupTimeoutMs;
    const receivers = await Promise.all(Array.from({ length: o.receivers }, () => Conn.open(o.client, o.port, o.protocol.path, setup)));
    sockets.push(...receivers);
    // Joined in small batches: a join is announced to everyone already in the room (chat), so
    // 100 at once is a burst of 5,000 events that proves nothing about steady fan-out.
    for (let i = 0; i < receivers.length; i += 10) {
      await Promise.all(receivers.slice(i, i + 10).map((ws, j) => o.protocol.join(ws, `r${i + j + 1}`, setup)));
    }
    const sender = await Conn.open(o.client, o.port, o.protocol.path, setup);
    sockets.push(sender);
    await o.protocol.join(sender, 's', setup);
    await sleep(200); // let join announcements settle before the first message

    const n = o.receivers;
    const ring = 1 << (32 - Math.clz32(o.window * 4));
    const sentAt = new Float64Array(ring);
    const got = new Uint32Array(ring);
    const latency = new LatencyHistogram();
    const problems: string[] = [];
    const state = { progress: 0, outstanding: () => outstanding, failed: undefined as string | undefined };
    let outstanding = 0;
    let nextSeq = 0;
    let sending = true;
    let measuring = false;
    let count = 0;
    let completed = 0;
    let lost = 0;
    let t0 = 0;
    let t1 = 0;

    const send = () => {
      const slot = nextSeq & (ring - 1);
      sentAt[slot] = performance.now();
      got[slot] = 0;
      sender.send(o.protocol.say(payload(nextSeq, o.size)));
      nextSeq++;
      outstanding++;
    };
    receivers.forEach((ws, idx) => {
      let last = -1;
      ws.on((data) => {
        const seq = findSeq(data);
        if (seq < 0) return; // joins, pings, presence
        if (seq !== last + 1) {
          if (seq <= last) {
            if (!state.failed) state.failed = `receiver r${idx + 1} got seq ${seq} after ${last} (duplicate or reordered)`;
            return;
          }
          lost += seq - last - 1;
        }
        last = seq;
        const slot = seq & (ring - 1);
        state.progress++;
        if (measuring) {
          count++;
          latency.add((performance.now() - sentAt[slot]) * 1000);
        }
        if (++got[slot] === n) {
          outstanding--;
          if (measuring) completed++;
          if (sending) send();
        }
      });
      ws.onClose((code) => {
        if (sending && !state.failed) state.failed = `the server closed receiver r${idx + 1} (${code})`;
      });
    });
    sender.onClose((code) => {
      if (sending && !state.failed) state.failed = `the server closed the sender (${code})`;
    });

    for (let i = 0; i < o.window; i++) send();
    const why = await runWindows(o.timing, o.hooks, state, (edge) => {
      if (edge === 'start') {
        measuring = true;
        t0 = performance.now();
      } else {
        measuring = false;
        sending = false;
        t1 = performance.now();
      }
    });
    if (why) problems.push(why);
    if (lost > 0) problems.push(`${lost} deliveries lost (receivers saw gaps in the sequence)`);
    return { count, completed, seconds: (t1 - t0) / 1000, latency, problems };
  } finally {
    await closeAll(sockets);
  }
}

// ---------------------------------------------------------------------------------------------
// Content checks before measuring

/** One message through the echo endpoint must come back with the same payload. */
export async function checkEcho(client: ClientKind, port: number, protocol: EchoProtocol, size: number, timeoutMs: number): Promise<string | undefined> {
  let ws: Conn | undefined;
  try {
    ws = await Conn.open(client, port, protocol.path, timeoutMs);
    await protocol.handshake(ws, timeoutMs);
    const p = payload(7, size);
    const back = nextFrame(ws, 'the echo', timeoutMs, (t) => t.includes(MAGIC));
    ws.send(protocol.frame(p));
    const text = await back;
    return text.includes(p) ? undefined : `echo of a ${size}-byte payload came back as ${JSON.stringify(text.slice(0, 200))}`;
  } catch (e) {
    return `echo: ${(e as Error).message}`;
  } finally {
    if (ws) await closeAll([ws]);
  }
}

/** Two members join the room; one message from the second must reach both. */
export async function checkRoom(client: ClientKind, port: number, protocol: RoomProtocol, size: number, timeoutMs: number): Promise<string | undefined> {
  const sockets: Conn[] = [];
  try {
    for (const nick of ['check1', 'check2']) {
      const ws = await Conn.open(client, port, protocol.path, timeoutMs);
      sockets.push(ws);
      await protocol.join(ws, nick, timeoutMs);
    }
    const p = payload(11, size);
    const arrivals = sockets.map((ws, i) => nextFrame(ws, `the room message at member ${i + 1}`, timeoutMs, (t) => t.includes(MAGIC)));
    sockets[1].send(protocol.say(p));
    for (const text of await Promise.all(arrivals)) {
      if (!text.includes(p)) return `room message of a ${size}-byte payload arrived as ${JSON.stringify(text.slice(0, 200))}`;
    }
    return undefined;
  } catch (e) {
    return `room: ${(e as Error).message}`;
  } finally {
    await closeAll(sockets);
  }
}

import assert from 'node:assert/strict';
import { connect, type Socket } from 'node:net';
import WebSocket from 'ws';

// Chat clients for tests: the `ws` client speaking the JSON protocol and a raw TCP line client,
// each collecting what it receives into an Inbox that tests wait on (bounded waits, no sleeps).
// Every client is registered for cleanup, so that a failing test leaves no socket behind.

export const WAIT_MS = 10_000;

/** Closers of every client made here; the test file runs them in `after`. */
export const cleanup: (() => void)[] = [];

export type Msg = Record<string, any>;

/** Waits for the first item at or after a cursor that matches; the cursor moves past it. */
export class Inbox<T> {
  readonly items: T[] = [];
  private cursor = 0;
  private waiters: (() => void)[] = [];
  ended = false;

  push(item: T): void {
    this.items.push(item);
    for (const w of this.waiters.splice(0)) w();
  }

  end(): void {
    this.ended = true;
    for (const w of this.waiters.splice(0)) w();
  }

  next(pred: (m: T) => boolean, what: string, timeoutMs = WAIT_MS): Promise<T> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`gave up waiting for ${what}; got ${JSON.stringify(this.items.slice(this.cursor)).slice(0, 2000)}`)), timeoutMs);
      const check = () => {
        for (let i = this.cursor; i < this.items.length; i++) {
          if (pred(this.items[i])) {
            this.cursor = i + 1;
            clearTimeout(timer);
            return resolve(this.items[i]);
          }
        }
        if (this.ended) {
          clearTimeout(timer);
          return reject(new Error(`connection ended waiting for ${what}; got ${JSON.stringify(this.items.slice(this.cursor)).slice(0, 2000)}`));
        }
        this.waiters.push(check);
      };
      check();
    });
  }

  /** Everything after the cursor, which moves to the end. */
  rest(): T[] {
    const r = this.items.slice(this.cursor);
    this.cursor = this.items.length;
    return r;
  }
}

export interface WsClient {
  ws: WebSocket;
  inbox: Inbox<Msg>;
  send(m: Msg): void;
  next(pred: (m: Msg) => boolean, what?: string): Promise<Msg>;
  type(type: string, pred?: (m: Msg) => boolean): Promise<Msg>;
  closed: Promise<{ code: number; reason: string }>;
}

export async function wsClient(port: number, room = 'lobby', host = '127.0.0.1'): Promise<WsClient> {
  const ws = new WebSocket(`ws://${host}:${port}/chat/${room}`);
  cleanup.push(() => ws.terminate());
  const inbox = new Inbox<Msg>();
  ws.on('message', (data) => inbox.push(JSON.parse(data.toString())));
  ws.on('error', () => undefined);
  const closed = new Promise<{ code: number; reason: string }>((resolve) =>
    ws.on('close', (code, reason) => {
      inbox.end();
      resolve({ code, reason: reason.toString() });
    }),
  );
  await new Promise<void>((resolve, reject) => {
    ws.once('open', () => resolve());
    ws.once('error', reject);
  });
  const next = (pred: (m: Msg) => boolean, what = 'a message') => inbox.next(pred, what);
  return {
    ws,
    inbox,
    send: (m) => ws.send(JSON.stringify(m)),
    next,
    type: (type, pred = () => true) => next((m) => m.type === type && pred(m), `a ${type} message`),
    closed,
  };
}

export async function joined(port: number, nick: string, room = 'lobby'): Promise<WsClient & { welcome: Msg }> {
  const c = await wsClient(port, room);
  c.send({ type: 'join', nick });
  const welcome = await c.type('welcome');
  assert.equal(welcome.nick, nick);
  return { ...c, welcome };
}

export interface LineClient {
  socket: Socket;
  lines: Inbox<string>;
  say(line: string): void;
  line(pred: (l: string) => boolean | RegExpMatchArray | null, what?: string): Promise<string>;
  closed: Promise<void>;
}

export function lineClient(to: number | string): Promise<LineClient> {
  // A port on 127.0.0.1, or a unix socket path.
  const socket = typeof to === 'number' ? connect({ port: to, host: '127.0.0.1' }) : connect({ path: to });
  cleanup.push(() => socket.destroy());
  socket.on('error', () => undefined);
  const lines = new Inbox<string>();
  let buf = '';
  socket.setEncoding('utf8');
  socket.on('data', (d: string) => {
    buf += d;
    for (let nl = buf.indexOf('\n'); nl !== -1; nl = buf.indexOf('\n')) {
      lines.push(buf.slice(0, nl));
      buf = buf.slice(nl + 1);
    }
  });
  const closed = new Promise<void>((resolve) => socket.once('close', () => (lines.end(), resolve())));
  const client: LineClient = {
    socket,
    lines,
    say: (l) => socket.write(`${l}\n`),
    line: (pred, what = 'a line') => lines.next((l) => Boolean(pred(l)), what),
    closed,
  };
  return new Promise((resolve) => socket.once('connect', () => resolve(client)));
}

/** A line client past its greeting; resolves with its guest nick. */
export async function greeted(to: number | string, room = 'lobby'): Promise<LineClient & { nick: string }> {
  const c = await lineClient(to);
  const hello = await c.line((l) => l.startsWith('* welcome'), 'the greeting');
  const m = new RegExp(`you are (guest-[0-9a-f]{4}) in ${room}`).exec(hello);
  assert.ok(m, hello);
  return { ...c, nick: m[1] };
}

/** Waits until `cond` holds, polling; fails after WAIT_MS. */
export async function until(cond: () => boolean, what: string, timeoutMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`gave up waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}


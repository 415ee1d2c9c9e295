import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import WebSocket from 'ws';
import { handlerModule, registerHandler, serve, type Yard } from '../src/index.ts';
import { tickGameHandler } from '../examples/tick-game/handler.ts';
import { UdpGameClient } from '../examples/tick-game/udp-client.ts';

// The tick-game example against real sockets: WebSocket players (the `ws` client) and a UDP
// player in one world; snapshots are deltas against what each acknowledged, inputs are applied
// in order and clamped, floods are bounded. Waits are bounded by count and time, never asserted.

const WAIT_MS = 10_000;
const TICK_RATE = 30;
const SPEED = 300;
const STEP = Math.round((SPEED / TICK_RATE) * 100) / 100;
const publicDir = fileURLToPath(new URL('../examples/tick-game/public/', import.meta.url));

if (!handlerModule('tick-game')) registerHandler(tickGameHandler);

function gameConfig(world: string, extra: Record<string, unknown> = {}) {
  const game = { type: 'tick-game', world, tickRate: TICK_RATE, speed: SPEED, ...extra };
  return {
    listeners: [
      {
        name: 'web',
        protocol: 'http',
        address: '127.0.0.1:0',
        routes: [
          { match: { path: '/game/*' }, handler: game },
          { match: { path: '/*' }, handler: { type: 'static', root: publicDir } },
        ],
      },
      { name: 'udp', protocol: 'udp', address: '127.0.0.1:0', handler: game },
    ],
  };
}

interface Snapshot {
  tick: number;
  base: number;
  ack: number;
  bytes: number;
  state: Map<string, { x: number; y: number }>;
}

/** A WebSocket player that keeps the world state from full and delta snapshots, as a client must. */
class WsPlayer {
  readonly ws: WebSocket;
  id = '';
  readonly snapshots: Snapshot[] = [];
  readonly errors: string[] = [];
  private readonly states = new Map<number, Map<string, { x: number; y: number }>>();
  private lastTick = 0;
  private seq = 0;
  readonly closed: Promise<[number, Buffer]>;

  constructor(port: number) {
    this.ws = new WebSocket(`ws://127.0.0.1:${port}/game/ws`);
    this.closed = once(this.ws, 'close') as Promise<[number, Buffer]>;
    this.ws.on('error', () => {});
    this.ws.on('message', (data: Buffer) => {
      const msg = JSON.parse(data.toString()) as Record<string, unknown>;
      if (msg.t === 'w') this.id = String(msg.id);
      else if (msg.t === 'e') this.errors.push(String(msg.m));
      else if (msg.t === 's') {
        const s = msg as unknown as { tick: number; base: number; ack: number; p: [string, number, number][]; g: string[] };
        const base = s.base === 0 ? new Map() : this.states.get(s.base);
        assert.ok(base, `snapshot ${s.tick} names baseline ${s.base}, which this client acknowledged`);
        const state = new Map(base);
        for (const [id, x, y] of s.p) state.set(id, { x, y });
        for (const id of s.g) state.delete(id);
        this.states.set(s.tick, state);
        this.lastTick = s.tick;
        this.snapshots.push({ tick: s.tick, base: s.base, ack: s.ack, bytes: data.length, state });
        if (this.snapshots.length > 2000) this.snapshots.shift();
      }
    });
  }

  get last(): Snapshot | undefined {
    return this.snapshots.at(-1);
  }

  get me(): { x: number; y: number } | undefined {
    return this.last?.state.get(this.id);
  }

  /** Sends inputs (each [dx, dy]) in one message, with the next seqs, acknowledging the last snapshot. */
  send(...inputs: [number, number][]): number {
    const list = inputs.map(([dx, dy]) => [++this.seq, dx, dy]);
    this.ws.send(JSON.stringify({ t: 'i', ack: this.lastTick, in: list }));
    return this.seq;
  }

  /** Acknowledges the last snapshot with a no-op input. */
  ack(): number {
    return this.send([0, 0]);
  }
}

async function until(what: string, cond: () => boolean, tick?: () => void): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (let i = 0; i < 2000 && !cond(); i++) {
    if (Date.now() > deadline) break;
    tick?.();
    await new Promise((r) => setTimeout(r, 1000 / TICK_RATE));
  }
  assert.ok(cond(), `timed out waiting for ${what}`);
}

let yard: Yard;
let port = 0;
let udpPort = 0;
const players: WsPlayer[] = [];

function player(): WsPlayer {
  const p = new WsPlayer(port);
  players.push(p);
  return p;
}

before(async () => {
  yard = await serve(gameConfig('test-world'), { logLevel: 'silent' });
  port = yard.address('web').port;
  udpPort = yard.address('udp').port;
});

after(async () => {
  for (const p of players) p.ws.terminate();
  await yard.stop(500);
});

test('two players: full snapshot on join, then deltas against the acknowledged tick, with the applied input seq', async () => {
  const a = player();
  const b = player();
  await until('both players get a snapshot with both in it', () => [a, b].every((p) => p.id !== '' && (p.last?.state.has(a.id) ?? false) && (p.last?.state.has(b.id) ?? false)), () => {
    if (a.id) a.ack();
    if (b.id) b.ack();
  });
  assert.equal(a.snapshots[0].base, 0, 'the first snapshot is full');
  const startA = a.me;
  assert.ok(startA);

  // A walks right 10 ticks; B only acknowledges.
  const seqs: number[] = [];
  for (let i = 0; i < 10; i++) {
    seqs.push(a.send([1, 0]));
    b.ack();
    await new Promise((r) => setTimeout(r, 1000 / TICK_RATE));
  }
  const lastSeq = seqs.at(-1) as number;
  await until('A\'s last input applied', () => (a.last?.ack ?? 0) >= lastSeq, () => b.ack());
  assert.deepEqual(a.me, { x: Math.min(800, Math.round((startA.x + 10 * STEP) * 100) / 100), y: startA.y }, 'moved 10 steps right, as the inputs said');

  const acks = a.snapshots.map((s) => s.ack);
  for (let i = 1; i < acks.length; i++) assert.ok(acks[i] >= acks[i - 1], 'the applied seq never goes back');
  assert.ok(acks.at(-1)! > acks[0], 'the applied seq went up');

  await until('B sees A where A is', () => b.last?.state.get(a.id)?.x === a.me?.x, () => b.ack());
  const deltas = b.snapshots.filter((s) => s.base > 0);
  const fulls = b.snapshots.filter((s) => s.base === 0);
  assert.ok(deltas.length > 0, 'B got delta snapshots once it acknowledged');
  const fullBytes = Math.min(...fulls.filter((s) => s.state.size >= 2).map((s) => s.bytes));
  assert.ok(Number.isFinite(fullBytes), 'B got a full snapshot with both players');
  assert.ok(Math.max(...deltas.map((s) => s.bytes)) < fullBytes, 'a delta (one player moved, or none) is smaller than the full snapshot');
  // A leaves: B's deltas say so (the `g` list), and B's state no longer has A.
  a.ws.close();
  await a.closed;
  await until('B sees A gone', () => b.last !== undefined && !b.last.state.has(a.id), () => b.ack());
  assert.ok(b.last!.state.has(b.id));
  b.ws.close();
  await b.closed;
});

test('moves are clamped: a huge dx moves one step, and nobody leaves the world', async () => {
  const p = player();
  await until('a snapshot with me', () => p.me !== undefined, () => p.id && p.ack());
  const start = p.me!;
  const seq = p.send([1000, 0]);
  await until('the big move applied', () => (p.last?.ack ?? 0) >= seq, () => p.ack());
  assert.equal(p.me!.x, Math.min(800, Math.round((start.x + STEP) * 100) / 100), 'one step, not a thousand');
  // Walk up-left, an input a tick, until the corner: the position stops at 0, 0.
  let lowest = Infinity;
  await until('the corner reached', () => p.me!.x === 0 && p.me!.y === 0, () => {
    p.send([-1, -1]);
    lowest = Math.min(lowest, p.me!.x, p.me!.y);
  });
  assert.ok(lowest >= 0, 'never below 0');
  p.ws.close();
  await p.closed;
});

test('sending faster than the tick does not move faster: the queue is bounded, a flood is kicked', async () => {
  const p = player();
  await until('a snapshot with me', () => p.me !== undefined, () => p.id && p.ack());
  const start = p.me!;
  // 40 inputs at once: 32 are queued (maxQueuedInputs), 8 dropped; not enough to count as a flood.
  let last = 0;
  for (let i = 0; i < 5; i++) last = p.send(...Array.from({ length: 8 }, (): [number, number] => [0, 1]));
  const firstOfBurst = last - 39;
  await until('the queued 32 applied', () => (p.last?.ack ?? 0) >= firstOfBurst + 31, () => undefined);
  await new Promise((r) => setTimeout(r, 200));
  const moved = Math.round((p.me!.y - start.y) * 100) / 100;
  assert.ok(moved <= Math.round(32 * STEP * 100) / 100 + 0.01, `moved ${moved}, at most 32 steps although 40 inputs were sent`);
  const stats = (await (await fetch(`http://127.0.0.1:${port}/game/stats`)).json()) as { droppedInputs: number; kicked: number };
  assert.ok(stats.droppedInputs >= 8, 'the inputs over the queue were dropped');

  // A flood: 15 messages of 8 at once, 120 inputs, past 2 x 30 + 32 a second; kicked with 1008.
  const flooder = player();
  await until('the flooder joined', () => flooder.id !== '');
  for (let i = 0; i < 15; i++) flooder.send(...Array.from({ length: 8 }, (): [number, number] => [1, 0]));
  const [code, reason] = await Promise.race([flooder.closed, new Promise<[number, Buffer]>((r) => setTimeout(() => r([0, Buffer.from('still open')]), WAIT_MS))]);
  assert.equal(code, 1008);
  assert.equal(reason.toString(), 'input flood');
  assert.ok(p.ws.readyState === WebSocket.OPEN, 'the well-behaved player is still in');
  p.ws.close();
  await p.closed;
});

test('a bad message is answered with an error and the player stays', async () => {
  const p = player();
  await until('joined', () => p.id !== '');
  p.ws.send('{"t":"i","ack":0,"in":[[1,"fast",0]]}');
  p.ws.send('not json');
  await until('two errors', () => p.errors.length >= 2, () => undefined);
  assert.match(p.errors[0], /each input must be \[seq, dx, dy\]/);
  assert.match(p.errors[1], /not JSON/);
  assert.equal(p.ws.readyState, WebSocket.OPEN);
  p.ws.close();
  await p.closed;
});

test('a UDP player gets snapshots, moves, and WebSocket players see it', async () => {
  const watcher = player();
  await until('watcher joined', () => watcher.id !== '');
  let snaps = 0;
  let deltas = 0;
  let me: { x: number; y: number } | undefined;
  let start: { x: number; y: number } | undefined;
  let acked = 0;
  const client = new UdpGameClient('127.0.0.1', udpPort, {
    onSnapshot: (s) => {
      snaps++;
      if (s.base > 0) deltas++;
      acked = s.ack;
      me = client.id ? s.players.get(client.id) : undefined;
      start ??= me;
    },
  });
  try {
    client.join();
    await until('UDP welcome and a snapshot', () => client.id !== undefined && me !== undefined, () => watcher.ack());
    let lastSeq = 0;
    for (let i = 0; i < 6; i++) {
      client.input(0, -1);
      lastSeq = i + 1;
      watcher.ack();
      await new Promise((r) => setTimeout(r, 1000 / TICK_RATE));
    }
    await until('UDP inputs applied', () => acked >= lastSeq, () => {
      client.input(0, 0);
      watcher.ack();
    });
    assert.ok(snaps > 5 && deltas > 0, `snapshots over UDP (${snaps}, ${deltas} deltas)`);
    assert.equal(me!.y, Math.max(0, Math.round((start!.y - 6 * STEP) * 100) / 100), 'moved up 6 steps');
    await until('the WebSocket player sees the UDP player there', () => watcher.last?.state.get(client.id!)?.y === me!.y, () => {
      client.input(0, 0);
      watcher.ack();
    });
  } finally {
    await client.close();
    watcher.ws.close();
  }
});

test('the page and the stats are served; tick stats are kept', async () => {
  const page = await fetch(`http://127.0.0.1:${port}/`);
  assert.equal(page.status, 200);
  assert.match(await page.text(), /game\.js/);
  const js = await fetch(`http://127.0.0.1:${port}/game.js`);
  assert.equal(js.status, 200);
  await js.arrayBuffer();
  const stats = (await (await fetch(`http://127.0.0.1:${port}/game/stats`)).json()) as { tick: number; samples: number; durationP99Ms: number; jitterP99Ms: number };
  assert.ok(stats.tick > 0 && stats.samples > 0, 'ticks ran and were measured');
  assert.ok(stats.jitterP99Ms >= 0 && stats.durationP99Ms >= 0);
  const plain = await fetch(`http://127.0.0.1:${port}/game/ws`);
  assert.equal(plain.status, 426);
  await plain.arrayBuffer();
});

test('handlers of one world must agree on its settings', async () => {
  const config = gameConfig('disagree');
  (config.listeners[1] as { handler: Record<string, unknown> }).handler = { type: 'tick-game', world: 'disagree', tickRate: 20 };
  await assert.rejects(serve(config, { logLevel: 'silent' }), /world "disagree" already runs with other settings/);
});

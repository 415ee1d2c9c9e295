import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { serve, type Yard } from '../src/index.ts';
import { stateSchema, maxRoomHistoryBytes, type RedisStateConfig } from '../src/state/config.ts';
import { MemoryRoomStore, messageCost } from '../src/state/memory.ts';
import { RedisRoomStore } from '../src/state/redis.ts';
import type { RoomEvent } from '../src/state/types.ts';
import { cleanup, joined } from './helpers/chat.ts';
import { redisSkip, startRedis, type RedisServer } from './helpers/redis.ts';

// Chat history is bounded in bytes, not only in messages per room: state.maxHistoryBytes holds
// across 10,000 rooms, in use or left, on both backends, and one room cannot take it all.

const skipRedis = redisSkip();
const silent = pino({ level: 'silent' });
const MiB = 1024 * 1024;
const ROOMS = 10_000;

// The test runner's command line is fixed, so gc is switched on from here: the flag counts for
// functions made after it, which the new context's `gc` is.
setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

/** Heap in use after collecting twice (once more for what the first run's finalizers freed). */
function heapUsed(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/**
 * A text of `length` Latin-1 characters of its own: a flat string, not a slice or concatenation
 * of a shared one, so that keeping it costs the heap what a text from a socket would.
 */
function uniqueText(tag: string, length: number): string {
  const b = Buffer.alloc(length, 0x61);
  b.write(tag);
  return b.toString('latin1');
}

/** Bytes of the events' JSON: what a client would be sent, a measure independent of the store's own. */
const jsonBytes = (events: RoomEvent[]) => events.reduce((n, e) => n + Buffer.byteLength(JSON.stringify(e)), 0);

describe('memory store: history within maxHistoryBytes', { timeout: 120_000 }, () => {
  test('10,000 rooms of 1000-character messages, in use and then left, stay within the budget (accounting, contents, heap)', async () => {
    const budget = 4 * MiB;
    const perRoom = 6;
    const store = new MemoryRoomStore({ maxHistoryBytes: budget, maxIdleRooms: ROOMS });
    const baseline = heapUsed();
    let peak = 0;
    for (let i = 0; i < ROOMS; i++) {
      const room = `room-${i}`;
      assert.ok(await store.claim(room, 'talker', `o${i}`));
      for (let j = 0; j < perRoom; j++) {
        await store.publish({ type: 'message', room, nick: 'talker', text: uniqueText(`${i}/${j}`, 1000) }, { historyLimit: 99 });
        peak = Math.max(peak, store.historyBytes);
      }
    }
    assert.ok(peak <= budget, `history peaked at ${peak} bytes, over the budget of ${budget}`);

    const check = async (when: string) => {
      assert.ok(store.historyBytes <= budget, `${when}: ${store.historyBytes} bytes of history, budget ${budget}`);
      let json = 0;
      let kept = 0;
      for (let i = 0; i < ROOMS; i++) {
        const h = await store.history(`room-${i}`, 99);
        json += jsonBytes(h);
        kept += h.length;
      }
      assert.ok(json <= budget, `${when}: the kept events are ${json} bytes of JSON`);
      // The budget is used, not emptied: about half of it at 2 bytes reckoned per character.
      assert.ok(json >= budget / 4, `${when}: only ${json} bytes kept`);
      assert.equal((await store.history(`room-${ROOMS - 1}`, 99)).length, perRoom, `${when}: the room written last keeps all its messages`);
      assert.deepEqual(await store.history('room-0', 99), [], `${when}: the room written first lost its history first`);
      return kept;
    };
    const keptInUse = await check('rooms in use');
    // 10,000 rooms in use hold their own structures (nicks, listeners): allowed ~2 KiB each; the
    // history itself may take its budget. Today's 60,000 kept messages would be ~80 MB.
    const inUse = heapUsed() - baseline;
    assert.ok(inUse < budget + ROOMS * 2048, `heap grew by ${(inUse / MiB).toFixed(1)} MiB with the rooms in use`);

    for (let i = 0; i < ROOMS; i++) await store.release(`room-${i}`, 'talker', `o${i}`);
    assert.equal(store.size, ROOMS, 'every room is idle now, kept for its seq (maxIdleRooms)');
    assert.equal(await check('everyone left'), keptInUse, 'leaving neither adds nor drops history');
    const left = heapUsed() - baseline;
    assert.ok(left < budget + ROOMS * 1024, `heap grew by ${(left / MiB).toFixed(1)} MiB once everyone left`);
    await store.close();
    assert.equal(store.historyBytes, 0);
  });

  test('the room written least recently loses its oldest messages first; one room keeps at most 1/16 of the budget', async () => {
    const text = (n: number) => `${String(n).padStart(3, '0')}${'x'.repeat(97)}`;
    // Rooms r00..r15, nick n: every message costs the same.
    const cost = messageCost({ type: 'message', room: 'r00', nick: 'n', text: text(0), seq: 1, ts: 1 });
    const budget = 64 * cost;
    assert.equal(Math.floor(maxRoomHistoryBytes(budget) / cost), 4, 'a room holds 4 of these');
    const store = new MemoryRoomStore({ maxHistoryBytes: budget });
    const say = (room: string, n: number) => store.publish({ type: 'message', room, nick: 'n', text: text(n) }, { historyLimit: 100 });
    const texts = async (room: string) => (await store.history(room, 100)).map((e) => (e.type === 'message' ? Number(e.text.slice(0, 3)) : -1));

    let n = 0;
    for (let r = 0; r < 16; r++) for (let j = 0; j < 4; j++) await say(`r${String(r).padStart(2, '0')}`, n++);
    assert.equal(store.historyBytes, budget, '64 messages fill it exactly');
    assert.deepEqual(await texts('r00'), [0, 1, 2, 3]);

    await say('r16', n++);
    assert.deepEqual(await texts('r00'), [1, 2, 3], 'the room written least recently gave up its oldest');
    await say('r00', n++);
    assert.deepEqual(await texts('r00'), [1, 2, 3, 65], 'written again: now the newest');
    assert.deepEqual(await texts('r01'), [5, 6, 7], 'so the next least recently written gave');
    assert.ok(store.historyBytes <= budget);

    // A busy room (r99) with a generous historyLimit trims itself at 1/16 of the budget: the others keep theirs.
    for (let i = 0; i < 200; i++) await say('r99', 700 + i);
    assert.deepEqual(await texts('r99'), [896, 897, 898, 899]);
    assert.deepEqual(await texts('r15'), [60, 61, 62, 63]);
    assert.ok(store.historyBytes <= budget);

    // The message count limit still applies, and a message that could never fit is not kept.
    await store.publish({ type: 'message', room: 'r15', nick: 'n', text: text(500) }, { historyLimit: 2 });
    assert.deepEqual(await texts('r15'), [63, 500]);
    await store.publish({ type: 'message', room: 'r15', nick: 'n', text: 'y'.repeat(budget) }, { historyLimit: 100 });
    assert.deepEqual(await texts('r15'), [63, 500]);
    await store.close();
  });

  test('a yard passes state.maxHistoryBytes to its rooms: rooms visited long ago replay nothing', async () => {
    const yard: Yard = await serve(
      {
        listeners: [{ name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/chat/*' }, handler: { type: 'chat', history: 50 } }] }],
        state: { backend: 'memory', maxHistoryBytes: '64KiB' },
      },
      { logger: silent },
    );
    try {
      const port = yard.address('web').port;
      const walker = await joined(port, 'walker', 'v0');
      for (let i = 0; i < 100; i++) {
        if (i > 0) {
          walker.send({ type: 'join', room: `v${i}`, nick: 'walker' });
          await walker.type('welcome', (m) => m.room === `v${i}`);
        }
        walker.send({ type: 'message', text: uniqueText(`v${i}`, 1000) });
        await walker.type('message', (m) => m.room === `v${i}`);
      }
      walker.ws.close();
      // 100 messages of ~2 KiB reckoned each against 64 KiB: the first rooms' history is gone.
      const first = await joined(port, 'late', 'v0');
      assert.deepEqual(first.welcome.history, []);
      const last = await joined(port, 'late', 'v99');
      assert.equal(last.welcome.history.length, 1);
      assert.ok(last.welcome.history[0].text.startsWith('v99'));
    } finally {
      for (const c of cleanup.splice(0)) c();
      await yard.stop();
    }
  });
});

describe('redis store: history within maxHistoryBytes', { skip: skipRedis, timeout: 120_000 }, () => {
  let redis: RedisServer;
  let admin: Redis;
  const stores: RedisRoomStore[] = [];
  let prefixes = 0;

  before(async () => {
    redis = await startRedis();
    admin = new Redis(redis.url);
  });
  after(async () => {
    for (const s of stores.splice(0)) await s.close();
    admin?.disconnect();
    await redis?.stop();
  });

  /** A store on its own key prefix (or the one given: several daemons on one Redis). */
  async function open(budget: number, keyPrefix = `budget${++prefixes}:`): Promise<RedisRoomStore> {
    const c = stateSchema.parse({ backend: 'redis', url: redis.url, keyPrefix, maxHistoryBytes: budget }) as RedisStateConfig;
    const s = await RedisRoomStore.connect(c, silent);
    stores.push(s);
    return s;
  }

  /** What Redis holds for the history under `prefix`: its lists' JSON bytes, and MEMORY USAGE of every key involved. */
  async function held(prefix: string): Promise<{ json: number; memory: number; reckoned: number; lists: number }> {
    let json = 0;
    let memory = 0;
    let lists = 0;
    const usage = async (key: string) => Number(await admin.call('MEMORY', 'USAGE', key, 'SAMPLES', '0'));
    for (let cursor = '0'; ; ) {
      const [next, keys] = await admin.scan(cursor, 'MATCH', `${prefix}room:{*}:history`, 'COUNT', 1000);
      for (const key of keys) {
        lists++;
        for (const e of await admin.lrange(key, 0, -1)) json += Buffer.byteLength(e);
        memory += await usage(key);
      }
      if (next === '0') break;
      cursor = next;
    }
    for (const key of [`${prefix}history:rooms`, `${prefix}history:sizes`, `${prefix}history:bytes`]) memory += await usage(key);
    return { json, memory, reckoned: Number(await admin.get(`${prefix}history:bytes`)), lists };
  }

  test('10,000 rooms of 1000-byte messages from two daemons stay within the budget (reckoning, JSON, MEMORY USAGE)', async () => {
    const budget = 2 * MiB;
    const prefix = 'many:';
    const [a, b] = [await open(budget, prefix), await open(budget, prefix)];
    const perRoom = 3;
    const batch = 500;
    for (let start = 0; start < ROOMS; start += batch) {
      const sent: Promise<unknown>[] = [];
      for (let i = start; i < start + batch; i++) {
        for (let j = 0; j < perRoom; j++) {
          sent.push((i % 2 ? a : b).publish({ type: 'message', room: `room-${i}`, nick: 'talker', text: uniqueText(`${i}/${j}`, 1000) }, { historyLimit: 99 }));
        }
      }
      await Promise.all(sent);
      const reckoned = Number(await admin.get(`${prefix}history:bytes`));
      assert.ok(reckoned <= budget, `after room ${start + batch}: ${reckoned} bytes reckoned, budget ${budget}`);
    }
    const h = await held(prefix);
    assert.ok(h.reckoned <= budget, `reckoned ${h.reckoned}`);
    assert.ok(h.json <= budget, `the history lists hold ${h.json} bytes of JSON`);
    assert.ok(h.memory <= budget, `MEMORY USAGE of the history and its bookkeeping: ${h.memory} bytes`);
    assert.ok(h.json >= budget / 2, `the budget is used: ${h.json} bytes kept`);
    assert.ok(h.lists < ROOMS / 4, `${h.lists} rooms still hold history`);
    const sizes = await admin.hgetall(`${prefix}history:sizes`);
    assert.equal(Object.keys(sizes).length, h.lists, 'one size per room holding history');
    assert.equal(Object.values(sizes).reduce((n, v) => n + Number(v), 0), h.reckoned, 'the rooms add up to the total');
    assert.equal(await admin.zcard(`${prefix}history:rooms`), h.lists);
    assert.equal((await a.history(`room-${ROOMS - 1}`, 99)).length, perRoom, 'the room written last keeps all its messages');
    assert.deepEqual(await b.history('room-0', 99), [], 'the room written first lost its history');
    assert.equal(await admin.get(`${prefix}room:{room-0}:seq`), String(perRoom), 'its sequence stays');
  });

  test('one busy room keeps at most 1/16 of the budget, and the others keep theirs', async () => {
    const budget = 1 * MiB;
    const prefix = 'busy:';
    const s = await open(budget, prefix);
    await s.publish({ type: 'message', room: 'quiet', nick: 'q', text: 'still here' }, { historyLimit: 1000 });
    for (let i = 0; i < 300; i += 50) {
      await Promise.all(Array.from({ length: 50 }, (_, j) => s.publish({ type: 'message', room: 'busy', nick: 'b', text: uniqueText(`${i + j}`, 4000) }, { historyLimit: 1000 })));
    }
    const busy = await s.history('busy', 1000);
    assert.ok(jsonBytes(busy) <= maxRoomHistoryBytes(budget), `the busy room holds ${jsonBytes(busy)} bytes`);
    assert.ok(busy.length >= 10, `but uses its share: ${busy.length} messages`);
    assert.equal(busy.at(-1)?.type === 'message' && busy.at(-1)?.seq, 300, 'the newest kept');
    assert.deepEqual((await s.history('quiet', 10)).map((e) => e.type === 'message' && e.text), ['still here']);
    assert.equal(Number(await admin.hget(`${prefix}history:sizes`, 'busy')) <= maxRoomHistoryBytes(budget), true);
    // A message that could never fit in one room's share is delivered but not kept.
    const huge = await s.publish({ type: 'message', room: 'quiet', nick: 'q', text: 'z'.repeat(budget / 8) }, { historyLimit: 1000 });
    assert.equal(huge.seq, 2);
    assert.deepEqual((await s.history('quiet', 10)).map((e) => e.type === 'message' && e.text), ['still here']);
  });

  test('history a former version left in a room is counted and trimmed when the room is next written', async () => {
    const budget = 64 * 1024;
    const prefix = 'legacy:';
    const s = await open(budget, prefix);
    const old = Array.from({ length: 60 }, (_, i) => JSON.stringify({ seq: i + 1, ts: 1, type: 'message', room: 'old', nick: 'o', text: uniqueText(`${i}`, 1000) }));
    await admin.lpush(`${prefix}room:{old}:history`, ...old);
    await admin.set(`${prefix}room:{old}:seq`, '60');
    await s.publish({ type: 'message', room: 'old', nick: 'n', text: 'new' }, { historyLimit: 100 });
    const h = await held(prefix);
    assert.ok(h.json <= maxRoomHistoryBytes(budget), `the room holds ${h.json} bytes`);
    assert.ok(h.reckoned <= budget && h.reckoned >= h.json, `reckoned ${h.reckoned}`);
    const kept = await s.history('old', 100);
    assert.equal(kept.at(-1)?.seq, 61);
    assert.ok(kept.length >= 2, 'the newest of the old messages stay');
  });
});

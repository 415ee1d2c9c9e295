import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { pino } from 'pino';
import { Redis } from 'ioredis';
import { serve, ProvisionError } from '../src/index.ts';
import { stateSchema, type RedisStateConfig } from '../src/state/config.ts';
import { MemoryRoomStore } from '../src/state/memory.ts';
import { RedisRoomStore } from '../src/state/redis.ts';
import type { RoomEvent, RoomStore } from '../src/state/types.ts';
import { freePort, redisSkip, startRedis, type RedisServer } from './helpers/redis.ts';

// The RoomStore contract, run against both backends with the same cases; then what only the
// Redis backend promises: several nodes on one Redis, nodes dying, Redis going away.

const skipRedis = redisSkip();
const silent = pino({ level: 'silent' });
const TTL = 1000;

let roomCounter = 0;
/** A room no other test touches (the Redis is shared by the whole file). */
const freshRoom = () => `room-${process.pid}-${++roomCounter}`;

/** Polls `check` until it holds; fails after `ms`. A bounded wait, not a timing assert. */
async function until(what: string, check: () => boolean | Promise<boolean>, ms = 10_000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for: ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

/** `p`, or a rejection saying it hung when it has not settled within 10 s. */
function promptly<T>(p: Promise<T>): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const hung = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error('hung: neither resolved nor rejected within 10 s')), 10_000);
  });
  return Promise.race([p, hung]).finally(() => clearTimeout(timer));
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function redisConfig(url: string, extra: Record<string, unknown> = {}): RedisStateConfig {
  const c = stateSchema.parse({ backend: 'redis', url, presenceTtl: TTL, ...extra });
  assert.equal(c.backend, 'redis');
  return c as RedisStateConfig;
}

interface Backend {
  name: string;
  skip: false | string;
  setup(): Promise<void>;
  open(): Promise<RoomStore>;
  teardown(): Promise<void>;
}

let shared: RedisServer | undefined;
const opened: RoomStore[] = [];

const backends: Backend[] = [
  {
    name: 'memory',
    skip: false,
    setup: async () => {},
    open: async () => new MemoryRoomStore(),
    teardown: async () => {},
  },
  {
    name: 'redis',
    skip: skipRedis,
    setup: async () => {
      shared = await startRedis();
    },
    open: async () => RedisRoomStore.connect(redisConfig(shared!.url), silent),
    teardown: async () => {
      await shared?.stop();
    },
  },
];

for (const backend of backends) {
  describe(`RoomStore contract: ${backend.name}`, { skip: backend.skip, timeout: 60_000 }, () => {
    let store: RoomStore;
    before(async () => {
      await backend.setup();
      store = await backend.open();
      opened.push(store);
    });
    after(async () => {
      for (const s of opened.splice(0)) await s.close();
      await backend.teardown();
    });

    test('a nick belongs to one owner until that owner releases it', async () => {
      const room = freshRoom();
      assert.equal(await store.claim(room, 'alice', 'o1'), true);
      assert.equal(await store.claim(room, 'alice', 'o2'), false, 'taken by another owner');
      assert.equal(await store.claim(room, 'alice', 'o1'), true, 'claiming again is fine for the holder');
      await store.release(room, 'alice', 'o2');
      assert.deepEqual(await store.members(room), ['alice'], 'a release by a non-holder changes nothing');
      assert.equal(await store.claim(room, 'alice', 'o2'), false);
      await store.release(room, 'alice', 'o1');
      assert.deepEqual(await store.members(room), []);
      assert.equal(await store.claim(room, 'alice', 'o2'), true);
      assert.equal(await store.claim(freshRoom(), 'alice', 'o3'), true, 'nicks are per room');
    });

    test('members are the nicks held now, sorted', async () => {
      const room = freshRoom();
      for (const [nick, owner] of [['carol', 'c'], ['alice', 'a'], ['Bob', 'b'], ['bob', 'b2']]) {
        assert.equal(await store.claim(room, nick, owner), true);
      }
      assert.deepEqual(await store.members(room), ['Bob', 'alice', 'bob', 'carol']);
      await store.release(room, 'alice', 'a');
      assert.deepEqual(await store.members(room), ['Bob', 'bob', 'carol']);
      assert.deepEqual(await store.members(freshRoom()), []);
    });

    test('every event gets the next seq of its room and a time', async () => {
      const room = freshRoom();
      const other = freshRoom();
      const before = Date.now();
      const events = [
        await store.publish({ type: 'join', room, nick: 'alice' }, { historyLimit: 10 }),
        await store.publish({ type: 'message', room, nick: 'alice', text: 'hi "you" \u00e9\u{1f600}\n' }, { historyLimit: 10 }),
        await store.publish({ type: 'join', room: other, nick: 'zed' }, { historyLimit: 10 }),
        await store.publish({ type: 'nick', room, from: 'alice', nick: 'alicia' }, { historyLimit: 10 }),
        await store.publish({ type: 'leave', room, nick: 'alicia', reason: 'left' }, { historyLimit: 10 }),
      ];
      const mine = events.filter((e) => e.room === room);
      const first = mine[0].seq;
      assert.deepEqual(mine.map((e) => e.seq), [first, first + 1, first + 2, first + 3]);
      assert.equal(events[2].room, other);
      assert.ok(Number.isSafeInteger(first) && first >= 1);
      for (const e of events) assert.ok(e.ts >= before - 60_000 && e.ts <= Date.now() + 60_000, `ts ${e.ts} is a time in ms`);
      const { seq: _s, ts: _t, ...message } = events[1];
      assert.deepEqual(message, { type: 'message', room, nick: 'alice', text: 'hi "you" \u00e9\u{1f600}\n' });
      const { seq: _s2, ts: _t2, ...nick } = events[3];
      assert.deepEqual(nick, { type: 'nick', room, from: 'alice', nick: 'alicia' });
    });

    test('history keeps the newest messages, oldest first, and nothing else', async () => {
      const room = freshRoom();
      assert.deepEqual(await store.history(room, 5), []);
      const sent: RoomEvent[] = [];
      for (let i = 1; i <= 7; i++) {
        sent.push(await store.publish({ type: 'message', room, nick: 'a', text: `m${i}` }, { historyLimit: 3 }));
        await store.publish({ type: 'join', room, nick: `j${i}` }, { historyLimit: 3 });
      }
      await store.publish({ type: 'message', room, nick: 'a', text: 'not kept' }, { historyLimit: 0 });
      assert.deepEqual(await store.history(room, 3), sent.slice(-3));
      assert.deepEqual((await store.history(room, 2)).map((e) => e.type === 'message' && e.text), ['m6', 'm7']);
      assert.deepEqual(await store.history(room, 0), []);
    });

    test('a subscriber gets its own and everyone else\'s events, in seq order, once subscribed', async () => {
      const room = freshRoom();
      const a: RoomEvent[] = [];
      const b: RoomEvent[] = [];
      const unA = await store.subscribe(room, (e) => a.push(e));
      const unB = await store.subscribe(room, (e) => b.push(e));
      // Published right after subscribe() resolved: must be delivered.
      const published = await Promise.all(
        Array.from({ length: 40 }, (_, i) =>
          i % 2 === 0
            ? store.publish({ type: 'message', room, nick: 'a', text: `from a ${i}` }, { historyLimit: 0 })
            : store.publish({ type: 'message', room, nick: 'b', text: `from b ${i}` }, { historyLimit: 0 }),
        ),
      );
      await until('40 events on both', () => a.length >= 40 && b.length >= 40);
      const seqs = a.map((e) => e.seq);
      assert.deepEqual(seqs, [...seqs].sort((x, y) => x - y), 'in seq order');
      assert.deepEqual(seqs, Array.from({ length: 40 }, (_, i) => seqs[0] + i), 'none missing');
      assert.deepEqual(b, a, 'every subscriber sees the same stream');
      assert.deepEqual(new Set(a.map((e) => e.seq)), new Set(published.map((e) => e.seq)));
      assert.deepEqual(
        a.find((e) => e.seq === published[7].seq),
        published[7],
        'the delivered event is the one publish returned',
      );
      unA();
      unB();
    });

    test('each of many subscriptions made at once is live when its promise resolves', async () => {
      // Many SUBSCRIBEs in flight at once on one connection, each resolving on its own ack.
      const rooms = Array.from({ length: 300 }, () => freshRoom());
      const got = new Map<string, RoomEvent>();
      const uns = await Promise.all(rooms.map((room) => store.subscribe(room, (e) => got.set(e.room, e))));
      await Promise.all(rooms.map((room) => store.publish({ type: 'join', room, nick: 'first' }, { historyLimit: 0 })));
      await until('an event in every room', () => got.size === rooms.length);
      for (const un of uns) un();
    });

    test('unsubscribing stops delivery to that listener only; a room can be subscribed again', async () => {
      const room = freshRoom();
      const a: RoomEvent[] = [];
      const b: RoomEvent[] = [];
      const listener = (e: RoomEvent) => a.push(e);
      const unA1 = await store.subscribe(room, listener);
      const unA2 = await store.subscribe(room, listener);
      const unB = await store.subscribe(room, (e) => b.push(e));
      await store.publish({ type: 'join', room, nick: 'x' }, { historyLimit: 0 });
      await until('first event', () => b.length === 1 && a.length === 2);
      unA1();
      await store.publish({ type: 'join', room, nick: 'y' }, { historyLimit: 0 });
      await until('second event', () => b.length === 2);
      unA2();
      unA2();
      await store.publish({ type: 'join', room, nick: 'z' }, { historyLimit: 0 });
      await until('third event', () => b.length === 3);
      // Delivery to one room's listeners happens together, so by now `a` would have it.
      assert.deepEqual(a.map((e) => e.type === 'join' && e.nick), ['x', 'x', 'y']);
      unB();

      await store.publish({ type: 'join', room, nick: 'nobody listens' }, { historyLimit: 0 });
      const c: RoomEvent[] = [];
      const unC = await store.subscribe(room, (e) => c.push(e));
      await store.publish({ type: 'join', room, nick: 'back' }, { historyLimit: 0 });
      await until('event after subscribing again', () => c.some((e) => e.type === 'join' && e.nick === 'back'));
      assert.ok(!c.some((e) => e.type === 'join' && e.nick === 'nobody listens'));
      assert.equal(b.length, 3, 'an ended subscription stays ended');
      unC();
    });
  });
}

test('the memory store keeps at most maxIdleRooms rooms nobody is in, forgetting the least recently left', async () => {
  const store = new MemoryRoomStore({ maxIdleRooms: 3 });
  // A visitor walks through 50 new rooms, saying one thing in each and leaving.
  for (let i = 0; i < 50; i++) {
    const room = `r${i}`;
    assert.ok(await store.claim(room, 'walker', 'o1'));
    await store.publish({ type: 'message', room, nick: 'walker', text: 'hi' }, { historyLimit: 10 });
    await store.release(room, 'walker', 'o1');
  }
  assert.equal(store.size, 3);
  assert.equal((await store.history('r49', 10)).length, 1, 'the newest idle room keeps its history');
  assert.equal((await store.history('r0', 10)).length, 0, 'the oldest was forgotten');
  // A room in use is never forgotten, however many rooms go idle after it.
  assert.ok(await store.claim('busy', 'stay', 'o2'));
  await store.publish({ type: 'message', room: 'busy', nick: 'stay', text: 'still here' }, { historyLimit: 10 });
  for (let i = 50; i < 60; i++) {
    assert.ok(await store.claim(`r${i}`, 'walker', 'o1'));
    await store.publish({ type: 'message', room: `r${i}`, nick: 'walker', text: 'hi' }, { historyLimit: 10 });
    await store.release(`r${i}`, 'walker', 'o1');
  }
  assert.deepEqual(await store.members('busy'), ['stay']);
  assert.equal((await store.history('busy', 10)).length, 1);
  assert.equal(store.size, 4);
  await store.close();
});

describe('RedisRoomStore across nodes', { skip: skipRedis, timeout: 120_000 }, () => {
  let redis: RedisServer;
  const stores: RedisRoomStore[] = [];
  const children: ChildProcess[] = [];
  const node = async (extra: Record<string, unknown> = {}) => {
    const s = await RedisRoomStore.connect(redisConfig(redis.url, extra), silent);
    stores.push(s);
    return s;
  };

  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
    for (const s of stores) await s.close();
    await redis.stop();
  });

  test('an event published on one node reaches subscribers on every node, in order', async () => {
    const a = await node();
    const b = await node();
    const room = freshRoom();
    const onA: RoomEvent[] = [];
    const onB: RoomEvent[] = [];
    await a.subscribe(room, (e) => onA.push(e));
    await b.subscribe(room, (e) => onB.push(e));
    const sent = await Promise.all(
      Array.from({ length: 30 }, (_, i) => (i % 3 === 0 ? a : b).publish({ type: 'message', room, nick: 'n', text: `t${i}` }, { historyLimit: 5 })),
    );
    await until('30 events on both nodes', () => onA.length === 30 && onB.length === 30);
    assert.deepEqual(onB, onA);
    assert.deepEqual(onA.map((e) => e.seq), Array.from({ length: 30 }, (_, i) => onA[0].seq + i));
    assert.deepEqual(new Set(sent.map((e) => e.seq)), new Set(onA.map((e) => e.seq)));
    assert.deepEqual(await b.history(room, 5), onA.slice(-5), 'history is shared too');
  });

  test('a nick claimed on one node is taken on the other; released, it is free there', async () => {
    const a = await node();
    const b = await node();
    const room = freshRoom();
    assert.equal(await a.claim(room, 'alice', 'a:1'), true);
    assert.equal(await b.claim(room, 'alice', 'b:1'), false);
    assert.deepEqual(await b.members(room), ['alice']);
    await a.release(room, 'alice', 'a:1');
    assert.deepEqual(await b.members(room), []);
    assert.equal(await b.claim(room, 'alice', 'b:1'), true);
    assert.equal(await a.claim(room, 'alice', 'a:1'), false);
  });

  test('a live node keeps its members present well past presenceTtl', async () => {
    const a = await node();
    const b = await node();
    const room = freshRoom();
    const seen: RoomEvent[] = [];
    await b.subscribe(room, (e) => seen.push(e));
    assert.equal(await a.claim(room, 'steady', 'a:1'), true);
    // Three presenceTtls: without the refresh the claim would have run out twice over.
    await sleep(3 * TTL);
    assert.deepEqual(await b.members(room), ['steady']);
    assert.equal(await b.claim(room, 'steady', 'b:1'), false);
    assert.deepEqual(seen, [], 'nobody saw it leave');
  });

  test('when a node dies its members leave after presenceTtl, announced exactly once', async () => {
    const b = await node();
    const c = await node();
    const room = freshRoom();
    const onB: RoomEvent[] = [];
    const onC: RoomEvent[] = [];
    await b.subscribe(room, (e) => onB.push(e));
    await c.subscribe(room, (e) => onC.push(e));
    assert.equal(await b.claim(room, 'bob', 'b:1'), true);

    const fixture = fileURLToPath(new URL('./fixtures/state-node.ts', import.meta.url));
    const child = spawn(process.execPath, ['--import', import.meta.resolve('tsx'), fixture, redis.url, `${TTL}ms`, room, 'ghost', 'dead:1'], { stdio: ['ignore', 'pipe', 'pipe'] });
    children.push(child);
    let out = '';
    let err = '';
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    await until('the node process to be ready', () => out.includes('ready') || child.exitCode !== null, 20_000);
    assert.equal(child.exitCode, null, err);
    assert.deepEqual(await b.members(room), ['bob', 'ghost']);
    assert.equal(await b.claim(room, 'ghost', 'b:2'), false);
    const exited = new Promise((r) => child.once('exit', r));
    child.kill('SIGKILL');
    await exited;

    const isGhostLeave = (e: RoomEvent) => e.type === 'leave' && e.nick === 'ghost';
    await until('ghost to leave on both nodes', () => onB.some(isGhostLeave) && onC.some(isGhostLeave), 5 * TTL + 5000);
    assert.deepEqual(await b.members(room), ['bob'], 'the live node\'s member stays');
    assert.deepEqual(await c.members(room), ['bob']);
    const leave = onB.find(isGhostLeave)!;
    assert.equal(leave.type === 'leave' && leave.reason, 'expired');

    // Both nodes sweep every presenceTtl/3; give them several rounds to misbehave, then fence
    // with a marker that both must see.
    await sleep(2 * TTL);
    const marker = await b.publish({ type: 'message', room, nick: 'bob', text: 'marker' }, { historyLimit: 0 });
    await until('marker on both', () => onB.some((e) => e.seq === marker.seq) && onC.some((e) => e.seq === marker.seq));
    assert.equal(onB.filter(isGhostLeave).length, 1, 'one leave on B');
    assert.deepEqual(onC.filter(isGhostLeave), onB.filter(isGhostLeave), 'the same single leave on C');
    assert.deepEqual(onB.map((e) => e.seq), Array.from({ length: onB.length }, (_, i) => onB[0].seq + i), 'no seq gaps');
    assert.ok(!onB.some((e) => e.type === 'leave' && e.nick === 'bob'), 'bob never left');
    assert.equal(await c.claim(room, 'ghost', 'c:1'), true, 'the nick is free again');
  });

  test('an expired claim taken over is announced as a leave first', async () => {
    // No subscriber anywhere, so nobody sweeps the room: the claim that takes the nick over
    // must say that its old holder left.
    const room = freshRoom();
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      // A dead node's claim as it is left behind: its owner's hash entry and a run-out expiry.
      await admin.zadd(`switchyard:room:{${room}}:nicks`, 1, 'old');
      await admin.hset(`switchyard:room:{${room}}:owners`, 'old', 'dead:1');
      const a = await node();
      assert.deepEqual(await a.members(room), [], 'an expired claim is not a member');
      const b = await node();
      const onB: RoomEvent[] = [];
      await b.subscribe(room, (e) => onB.push(e));
      // b's sweep may get there first; either way exactly one leave, then the claim.
      assert.equal(await b.claim(room, 'old', 'b:1'), true);
      await until('the leave of the old holder', () => onB.some((e) => e.type === 'leave' && e.nick === 'old'));
      const marker = await b.publish({ type: 'join', room, nick: 'old' }, { historyLimit: 0 });
      await until('marker', () => onB.some((e) => e.seq === marker.seq));
      assert.deepEqual(onB.map((e) => (e.type === 'leave' ? `leave ${e.nick} ${e.reason}` : `${e.type} ${e.nick}`)), ['leave old expired', 'join old']);
    } finally {
      admin.disconnect();
    }
  });

  test('a listener that throws does not stop the others', async () => {
    const a = await node();
    const room = freshRoom();
    const got: RoomEvent[] = [];
    await a.subscribe(room, () => {
      throw new Error('listener bug');
    });
    await a.subscribe(room, (e) => got.push(e));
    await a.publish({ type: 'join', room, nick: 'one' }, { historyLimit: 0 });
    await a.publish({ type: 'join', room, nick: 'two' }, { historyLimit: 0 });
    await until('both events', () => got.length === 2);
  });

  test('malformed messages on a room channel are ignored', async () => {
    const a = await node();
    const room = freshRoom();
    const got: RoomEvent[] = [];
    await a.subscribe(room, (e) => got.push(e));
    const admin = new Redis(redis.url, { lazyConnect: true });
    await admin.connect();
    try {
      for (const junk of ['not json', '[]', 'null', '{"type":"message"}', '{"type":"boom","room":"r","nick":"n","seq":1,"ts":1}']) {
        await admin.publish(`switchyard:room:${room}`, junk);
      }
    } finally {
      admin.disconnect();
    }
    const ok = await a.publish({ type: 'join', room, nick: 'fine' }, { historyLimit: 0 });
    await until('the good event', () => got.length > 0);
    assert.deepEqual(got, [ok]);
  });

  test('keyPrefix keeps two deployments on one Redis apart', async () => {
    const a = await node({ keyPrefix: 'deploy-a:' });
    const b = await node({ keyPrefix: 'deploy-b:' });
    const room = freshRoom();
    const onB: RoomEvent[] = [];
    await b.subscribe(room, (e) => onB.push(e));
    assert.equal(await a.claim(room, 'alice', 'a:1'), true);
    assert.equal(await b.claim(room, 'alice', 'b:1'), true);
    const ea = await a.publish({ type: 'message', room, nick: 'alice', text: 'in a' }, { historyLimit: 5 });
    const eb = await b.publish({ type: 'message', room, nick: 'alice', text: 'in b' }, { historyLimit: 5 });
    assert.equal(ea.seq, 1);
    assert.equal(eb.seq, 1);
    await until('b event', () => onB.length === 1);
    assert.deepEqual(onB, [eb]);
    assert.deepEqual(await a.history(room, 5), [ea]);
  });

  test('close() makes the node\'s remaining members leave (disconnected), once', async () => {
    const a = await RedisRoomStore.connect(redisConfig(redis.url), silent);
    const b = await node();
    const room = freshRoom();
    const onB: RoomEvent[] = [];
    await b.subscribe(room, (e) => onB.push(e));
    assert.equal(await a.claim(room, 'stays', 'a:1'), true);
    assert.equal(await a.claim(room, 'went', 'a:2'), true);
    await a.release(room, 'went', 'a:2');
    await a.close();
    await a.close();
    await until('the leave', () => onB.length >= 1);
    const marker = await b.publish({ type: 'join', room, nick: 'marker' }, { historyLimit: 0 });
    await until('marker', () => onB.some((e) => e.seq === marker.seq));
    assert.deepEqual(onB.map((e) => (e.type === 'leave' ? `leave ${e.nick} ${e.reason}` : e.type)), ['leave stays disconnected', 'join']);
    assert.deepEqual(await b.members(room), []);
  });
});

describe('RedisRoomStore when Redis goes away', { skip: skipRedis, timeout: 120_000 }, () => {
  let redis: RedisServer;
  const stores: RedisRoomStore[] = [];
  before(async () => {
    redis = await startRedis();
  });
  after(async () => {
    for (const s of stores) await s.close();
    await redis.stop();
  });

  test('calls fail instead of hanging or queueing, and everything resumes when Redis is back', async () => {
    const port = redis.port;
    // A command timeout far beyond the waits below: what must fail them is that nothing is queued.
    const a = await RedisRoomStore.connect(redisConfig(redis.url, { connectTimeout: '60s' }), silent);
    const b = await RedisRoomStore.connect(redisConfig(redis.url, { connectTimeout: '60s' }), silent);
    stores.push(a, b);
    const room = freshRoom();
    const onB: RoomEvent[] = [];
    await b.subscribe(room, (e) => onB.push(e));
    assert.equal(await a.claim(room, 'survivor', 'a:1'), true);

    redis.kill();
    await redis.stop();
    await assert.rejects(promptly(a.publish({ type: 'message', room, nick: 'survivor', text: 'into the void' }, { historyLimit: 5 })), /writeable|closed/i);
    await assert.rejects(promptly(a.claim(room, 'late', 'a:2')), /writeable|closed/i);
    await assert.rejects(promptly(a.members(room)), /writeable|closed/i);
    await assert.rejects(promptly(b.subscribe(freshRoom(), () => {})), /writeable|closed/i);

    // A Redis restarted empty on the same address: the nodes reconnect, resubscribe, and the
    // refresh puts the claim back, announcing it, since the room lost it.
    redis = await startRedis({ port });
    await until('a publish to go through again', async () => {
      try {
        await a.publish({ type: 'message', room, nick: 'survivor', text: 'back' }, { historyLimit: 5 });
        return true;
      } catch {
        return false;
      }
    }, 20_000);
    await until('the claim to come back', async () => (await b.members(room).catch((): string[] => [])).includes('survivor'), 20_000);
    assert.equal(await b.claim(room, 'survivor', 'b:1'), false);
    // b's subscriber connection came back on its own schedule: publish until b hears one.
    let n = 0;
    await until('b to hear the room again', async () => {
      await a.publish({ type: 'message', room, nick: 'survivor', text: `ping ${++n}` }, { historyLimit: 0 });
      await sleep(50);
      return onB.some((e) => e.type === 'message' && e.text.startsWith('ping'));
    }, 20_000);
    assert.ok(!onB.some((e) => e.type === 'message' && e.text === 'into the void'), 'a failed publish is not sent later');
    const history = await a.history(room, 5);
    assert.ok(!history.some((e) => e.type === 'message' && e.text === 'into the void'));
  });

  test('close() returns even when Redis is already gone', async () => {
    const a = await RedisRoomStore.connect(redisConfig(redis.url, { connectTimeout: '1s' }), silent);
    const room = freshRoom();
    await a.subscribe(room, () => {});
    assert.equal(await a.claim(room, 'orphan', 'a:1'), true);
    const port = redis.port;
    redis.kill();
    await redis.stop();
    await promptly(a.close());
    redis = await startRedis({ port });
  });
});

describe('state: redis in the config', { timeout: 60_000 }, () => {
  test('the schema fills in defaults and refuses what it cannot use', () => {
    assert.deepEqual(stateSchema.parse({ backend: 'redis', url: 'redis://h:6379' }), {
      backend: 'redis',
      url: 'redis://h:6379',
      keyPrefix: 'switchyard:',
      presenceTtl: 15_000,
      connectTimeout: 5_000,
      maxHistoryBytes: 64 * 1024 * 1024,
    });
    assert.equal((stateSchema.parse({ backend: 'redis', url: 'rediss://u:p@h:1/2', presenceTtl: '2s' }) as RedisStateConfig).presenceTtl, 2000);
    assert.deepEqual(stateSchema.parse(undefined), { backend: 'memory', maxIdleRooms: 1000, maxHistoryBytes: 64 * 1024 * 1024 });
    assert.deepEqual(stateSchema.parse({ backend: 'memory' }), stateSchema.parse(undefined), 'the default is what an empty memory section means');
    assert.equal((stateSchema.parse({ backend: 'redis', url: 'redis://h:1', maxHistoryBytes: '1MiB' }) as RedisStateConfig).maxHistoryBytes, 1024 * 1024);
    const issues = (v: unknown) => {
      const r = stateSchema.safeParse(v);
      assert.equal(r.success, false);
      return r.error!.issues.map((i) => `${i.path.join('.')}: ${i.message}`).join('; ');
    };
    assert.equal(issues({ backend: 'redis', url: 'http://h:1' }), 'url: expected a redis:// or rediss:// URL');
    assert.match(issues({ backend: 'redis', url: 'redis://h:notaport' }), /url: expected a redis:\/\/ or rediss:\/\/ URL \(host, numeric port/);
    assert.match(issues({ backend: 'redis', url: 'redis://h:1', presenceTtl: '500ms' }), /presenceTtl: presenceTtl must be at least 1s/);
    assert.match(issues({ backend: 'etcd' }), /expected backend one of: memory, redis/);
    assert.match(issues({ backend: 'memory', maxHistoryBytes: 'lots' }), /maxHistoryBytes: expected a size like/);
    assert.match(issues({ backend: 'redis', url: 'redis://h:1', extra: 1 }), /extra/);
  });

  test('a yard whose Redis cannot be reached fails to start, naming state and the URL', async () => {
    const port = await freePort();
    const err = await serve(
      {
        listeners: [{ name: 'echo', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } }],
        state: { backend: 'redis', url: `redis://user:hunter2@127.0.0.1:${port}/0`, connectTimeout: '300ms' },
      },
      { logger: silent },
    ).then(
      () => assert.fail('the yard started without its Redis'),
      (e: unknown) => e,
    );
    assert.ok(err instanceof ProvisionError, String(err));
    assert.equal(err.path, 'state');
    assert.match(err.message, new RegExp(`^state \\(redis\\): cannot reach redis at redis://user:\\*\\*\\*@127\\.0\\.0\\.1:${port}/0 within 300 ms: .*ECONNREFUSED`));
    assert.ok(!err.message.includes('hunter2'), 'no password in the error');
    assert.ok(!err.message.includes('\n'), 'one line');
  });

  test('a Redis that refuses the password or the db fails at once, naming what it refused', { skip: skipRedis }, async () => {
    const redis = await startRedis({ password: 'right-one' });
    try {
      const attempt = (url: string) =>
        promptly(RedisRoomStore.connect(redisConfig(url, { connectTimeout: '60s' }), silent)).then(
          async (s) => {
            await s.close();
            assert.fail(`connected with ${url}`);
          },
          (e: Error) => e.message,
        );
      const wrong = await attempt(`redis://:wrong-one@127.0.0.1:${redis.port}`);
      assert.match(wrong, new RegExp(`^cannot use redis at redis://:\\*\\*\\*@127\\.0\\.0\\.1:${redis.port}: WRONGPASS`));
      assert.ok(!wrong.includes('wrong-one'));
      assert.match(await attempt(`redis://127.0.0.1:${redis.port}`), /NOAUTH/);
      assert.match(await attempt(`${redis.url}/99`), /DB index/);
      const fine = await RedisRoomStore.connect(redisConfig(`${redis.url}/3`), silent);
      const room = freshRoom();
      assert.equal(await fine.claim(room, 'in-db-3', 'o'), true);
      const admin = new Redis(`${redis.url}/3`, { lazyConnect: true });
      await admin.connect();
      assert.equal(await admin.hget(`switchyard:room:{${room}}:owners`, 'in-db-3'), 'o', 'the claim is in db 3');
      admin.disconnect();
      await fine.close();
    } finally {
      await redis.stop();
    }
  });

  test('a yard with a reachable Redis starts, and its stop closes the connections', { skip: skipRedis }, async () => {
    const redis = await startRedis();
    const admin = new Redis(redis.url, { lazyConnect: true });
    const ours = async () => ((await admin.client('LIST')) as string).split('\n').filter((l) => / name=switchyard-state/.test(l)).length;
    try {
      await admin.connect();
      const yard = await serve(
        {
          listeners: [{ name: 'echo', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'echo' } }],
          state: { backend: 'redis', url: redis.url, presenceTtl: '1s' },
        },
        { logger: silent },
      );
      assert.ok(yard.address('echo').port > 0);
      assert.equal(await ours(), 2, 'a command and a subscriber connection');
      await yard.stop(1000);
      await until('the state connections to close', async () => (await ours()) === 0);
    } finally {
      admin.disconnect();
      await redis.stop();
    }
  });
});

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Redis } from 'ioredis';
import { serve } from '../src/index.ts';
import { startDaemon, killDaemon, type Daemon } from './helpers/daemon.ts';
import { redisSkip, startRedis, type RedisServer } from './helpers/redis.ts';
import { cleanup, greeted, joined, wsClient } from './helpers/chat.ts';

// Chat across two real daemon processes sharing one real redis-server: a WebSocket user on one
// and a TCP user on the other are in the same room, nicks are unique across both, and when one
// daemon is killed with SIGKILL (no goodbye of any kind) its users leave the other's rooms as
// `expired` once their presence runs out, and the surviving daemon's rooms go on working.

const skip = redisSkip();
const dir = mkdtempSync(join(tmpdir(), 'sy-chat-redis-'));
let redis: RedisServer | undefined;
const daemons: Daemon[] = [];

before(async () => {
  if (skip) return;
  redis = await startRedis();
});

after(async () => {
  for (const c of cleanup) c();
  for (const d of daemons) await killDaemon(d);
  await redis?.stop();
});

/** A daemon with the chat route on `web` and chat lines on `chat-tcp`, its rooms in the shared Redis. */
async function daemon(name: string): Promise<Daemon> {
  const config = {
    listeners: [
      { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/chat/*' }, handler: { type: 'chat', history: 20 } }] },
      { name: 'chat-tcp', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'chat', history: 20 } },
    ],
    state: { backend: 'redis', url: redis!.url, presenceTtl: '1s' },
  };
  const file = join(dir, `${name}.json`);
  writeFileSync(file, JSON.stringify(config));
  const d = await startDaemon([file, '--log-level', 'warn']);
  daemons.push(d);
  return d;
}

test('two daemons on one Redis: one room across them, nicks unique across them, a killed daemon\'s users expire', { skip, timeout: 60_000 }, async () => {
  const a = await daemon('a');
  const b = await daemon('b');

  // A WebSocket user on A, a TCP user on B, one room.
  const alice = await joined(a.port('web'), 'alice', 'across');
  const tcpB = await greeted(b.port('chat-tcp'));
  tcpB.say('/nick bob');
  await tcpB.line((l) => l.endsWith(' is now bob'), 'the nick change on B');
  tcpB.say('/join across');
  await tcpB.line((l) => l === '* you are bob in across', 'the join on B');
  await alice.type('join', (m) => m.nick === 'bob');

  tcpB.say('hello from B over tcp');
  const m1 = await alice.type('message');
  assert.deepEqual([m1.nick, m1.text, m1.room], ['bob', 'hello from B over tcp', 'across']);
  alice.send({ type: 'message', text: 'hello from A over ws' });
  assert.equal(await tcpB.line((l) => l.startsWith('alice: ')), 'alice: hello from A over ws');

  // Presence is the union of both daemons.
  alice.send({ type: 'who' });
  assert.deepEqual((await alice.type('presence')).members, ['alice', 'bob']);

  // Nicks are unique across daemons, both ways.
  const wsB = await wsClient(b.port('web'), 'across');
  wsB.send({ type: 'join', nick: 'alice' });
  assert.equal((await wsB.type('error')).code, 'NICK_TAKEN');
  tcpB.say('/nick alice');
  assert.equal(await tcpB.line((l) => l.startsWith('! ')), '! nick "alice" is taken in across');
  const wsA = await wsClient(a.port('web'), 'across');
  wsA.send({ type: 'join', nick: 'bob' });
  assert.equal((await wsA.type('error')).code, 'NICK_TAKEN');
  wsB.send({ type: 'join', nick: 'carol' });
  assert.deepEqual((await wsB.type('welcome')).members, ['alice', 'bob', 'carol']);
  await alice.type('join', (m) => m.nick === 'carol');

  // Daemon B dies without a word: its users' presence runs out and A's members see them expire.
  b.child.kill('SIGKILL');
  await b.exited;
  const expired = new Map<string, string>();
  for (let i = 0; i < 2; i++) {
    const leave = await alice.type('leave');
    expired.set(leave.nick, leave.reason);
  }
  assert.deepEqual(Object.fromEntries(expired), { bob: 'expired', carol: 'expired' });

  // A's room goes on: presence, history, a new join (under a nick the dead daemon held), messages.
  alice.send({ type: 'who' });
  assert.deepEqual((await alice.type('presence')).members, ['alice']);
  const dave = await joined(a.port('web'), 'bob', 'across');
  assert.deepEqual(dave.welcome.members, ['alice', 'bob']);
  assert.deepEqual(
    dave.welcome.history.map((e: Record<string, unknown>) => `${e.nick}: ${e.text}`),
    ['bob: hello from B over tcp', 'alice: hello from A over ws'],
  );
  const tcpA = await greeted(a.port('chat-tcp'));
  tcpA.say('/join across');
  await tcpA.line((l) => l === `* you are ${tcpA.nick} in across`);
  assert.deepEqual(
    [await tcpA.line((l) => l.includes(': hello from B')), await tcpA.line((l) => l.includes(': hello from A'))],
    ['bob: hello from B over tcp', 'alice: hello from A over ws'],
  );
  dave.send({ type: 'message', text: 'still here' });
  assert.equal((await alice.type('message', (m) => m.text === 'still here')).nick, 'bob');
  assert.equal(await tcpA.line((l) => l.startsWith('bob: still')), 'bob: still here');

  // And A stops cleanly.
  a.child.kill('SIGTERM');
  assert.equal((await alice.type('notice')).text, 'server shutting down');
  assert.equal((await alice.closed).code, 1001);
  assert.equal((await a.exited).code, 0);
});

test('a nick taken over while this daemon was cut off from Redis: its session is told and is out of the room', { skip, timeout: 30_000 }, async () => {
  const yard = await serve(
    {
      listeners: [
        { name: 'web', protocol: 'http', address: '127.0.0.1:0', routes: [{ match: { path: '/chat/*' }, handler: { type: 'chat' } }] },
        { name: 'chat-tcp', protocol: 'tcp', address: '127.0.0.1:0', handler: { type: 'chat' } },
      ],
      state: { backend: 'redis', url: redis!.url, presenceTtl: '1s', keyPrefix: 'lost:' },
    },
    { logLevel: 'silent' },
  );
  const admin = new Redis(redis!.url);
  try {
    const ada = await joined(yard.address('web').port, 'ada', 'lost');
    const tcp = await greeted(yard.address('chat-tcp').port);
    tcp.say('/nick ben');
    await tcp.line((l) => l.endsWith(' is now ben'), 'the nick change');
    tcp.say('/join lost');
    await tcp.line((l) => l === '* you are ben in lost', 'the join');

    // What a partition longer than presenceTtl leaves behind: both claims ran out and other
    // members took the nicks on a daemon that could still reach Redis.
    const until = Date.now() + 60_000;
    await admin.zadd('lost:room:{lost}:nicks', until, 'ada', until, 'ben');
    await admin.hset('lost:room:{lost}:owners', 'ada', 'elsewhere:1', 'ben', 'elsewhere:2');

    const notice = await ada.type('notice', (m) => /taken by someone else/.test(m.text));
    assert.match(notice.text, /"ada" in lost/);
    await tcp.line((l) => l.startsWith('* your nick "ben" in lost was taken by someone else'), 'the line notice');
    ada.send({ type: 'message', text: 'still here?' });
    assert.equal((await ada.type('error')).code, 'NOT_JOINED');
    tcp.say('/who');
    await tcp.line((l) => l.startsWith('! '), 'an error for /who out of a room');
    // Both carry on under other nicks.
    ada.send({ type: 'join', nick: 'ada2' });
    const again = await ada.type('welcome');
    assert.deepEqual(again.members, ['ada', 'ada2', 'ben']);
  } finally {
    admin.disconnect();
    await yard.stop(1000);
  }
});

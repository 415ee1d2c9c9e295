import { test, before, after, describe } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { Redis } from 'ioredis';
import { killDaemon, startDaemon, type Daemon } from './helpers/daemon.ts';
import { rawExchange, run } from './helpers/net.ts';

// The resp handler (a Redis-compatible cache) against real clients: redis-cli (spawned, as a
// person would use it) and ioredis, over a daemon started from a config file, on tcp and unix.

const dir = mkdtempSync(join(tmpdir(), 'sy-resp-'));
after(() => rmSync(dir, { recursive: true, force: true }));

/** Starts a daemon with one resp listener (extra handler fields as YAML flow text) and a unix one. */
async function startCache(name: string, handlerExtra = ''): Promise<{ d: Daemon; port: number; sock: string }> {
  const sock = join(dir, `${name}.sock`);
  const cfg = join(dir, `${name}.yaml`);
  writeFileSync(
    cfg,
    `listeners:\n` +
      `  - name: cache\n    protocol: tcp\n    address: 127.0.0.1:0\n    handler: { type: resp${handlerExtra} }\n` +
      `  - name: cache-unix\n    protocol: unix\n    path: ${sock}\n    handler: { type: resp${handlerExtra} }\n`,
  );
  const d = await startDaemon([cfg, '--log-level', 'warn'], { cwd: dir });
  return { d, port: d.port('cache'), sock };
}

async function cli(port: number, ...args: string[]): Promise<string> {
  const r = await run('redis-cli', ['-p', String(port), ...args]);
  assert.equal(r.code, 0, r.stderr);
  return r.stdout.replace(/\n+$/, '');
}

function client(port: number, extra: Record<string, unknown> = {}): Redis {
  return new Redis({ port, host: '127.0.0.1', lazyConnect: true, maxRetriesPerRequest: 0, retryStrategy: () => null, ...extra });
}

/** A raw connection that collects what it receives. */
async function rawConn(port: number): Promise<{ s: Socket; received: () => string; bytes: () => number; closed: () => boolean }> {
  const s = connect({ port, host: '127.0.0.1' });
  let got = '';
  let bytes = 0;
  let closed = false;
  s.on('data', (d: Buffer) => {
    bytes += d.length;
    if (got.length < 64 * 1024) got += d.toString('latin1');
  });
  s.on('close', () => (closed = true));
  s.on('error', () => {});
  await new Promise<void>((resolve, reject) => {
    s.once('connect', resolve);
    s.once('error', reject);
  });
  return { s, received: () => got, bytes: () => bytes, closed: () => closed };
}

/** Polls `check` up to `tries` times, 50 ms apart; resolves with whether it came true. */
async function eventually(check: () => boolean | Promise<boolean>, tries = 100): Promise<boolean> {
  for (let i = 0; i < tries; i++) {
    if (await check()) return true;
    await sleep(50);
  }
  return false;
}

function infoField(info: string, field: string): number {
  const m = new RegExp(`^${field}:(\\d+)`, 'm').exec(info);
  assert.ok(m, `INFO has no ${field}:\n${info}`);
  return Number(m[1]);
}

describe('resp: a plain cache', () => {
  let d: Daemon;
  let port: number;
  let sock: string;

  before(async () => {
    ({ d, port, sock } = await startCache('plain'));
  });
  after(() => killDaemon(d));

  test('redis-cli: strings, counters, and Redis-worded errors', async () => {
    assert.equal(await cli(port, 'PING'), 'PONG');
    assert.equal(await cli(port, 'SET', 'greeting', 'hello world'), 'OK');
    assert.equal(await cli(port, 'GET', 'greeting'), 'hello world');
    assert.equal(await cli(port, 'APPEND', 'greeting', '!'), '12');
    assert.equal(await cli(port, 'STRLEN', 'greeting'), '12');
    assert.equal(await cli(port, 'INCR', 'n'), '1');
    assert.equal(await cli(port, 'INCRBY', 'n', '41'), '42');
    assert.equal(await cli(port, 'DECRBY', 'n', '2'), '40');
    assert.equal(await cli(port, 'DECR', 'n'), '39');
    assert.equal(await cli(port, 'MSET', 'm1', 'a', 'm2', 'b'), 'OK');
    assert.equal(await cli(port, 'MGET', 'm1', 'nope', 'm2'), 'a\n\nb');
    assert.equal(await cli(port, 'SET', 'greeting', 'x', 'NX'), '');
    assert.equal(await cli(port, 'SET', 'fresh', 'x', 'XX'), '');
    assert.equal(await cli(port, 'SET', 'greeting', 'bye', 'GET'), 'hello world!');
    assert.equal(await cli(port, 'TYPE', 'greeting'), 'string');
    assert.equal(await cli(port, 'TYPE', 'nothing'), 'none');
    assert.equal(await cli(port, 'EXISTS', 'greeting', 'n', 'nothing'), '2');
    assert.equal(await cli(port, 'DEL', 'greeting', 'nothing'), '1');

    assert.equal(await cli(port, 'FOO', 'bar', 'baz'), "ERR unknown command 'FOO', with args beginning with: 'bar' 'baz' ");
    assert.equal(await cli(port, 'GET'), "ERR wrong number of arguments for 'get' command");
    assert.equal(await cli(port, 'SET', 'k', 'v', 'BOGUS'), 'ERR syntax error');
    assert.equal(await cli(port, 'INCRBY', 'n', 'ten'), 'ERR value is not an integer or out of range');
    assert.equal(await cli(port, 'SET', 'big', '9223372036854775807'), 'OK');
    assert.equal(await cli(port, 'INCR', 'big'), 'ERR increment or decrement would overflow');
    assert.equal(await cli(port, 'RPUSH', 'alist', 'a'), '1');
    assert.equal(await cli(port, 'GET', 'alist'), 'WRONGTYPE Operation against a key holding the wrong kind of value');
    assert.equal(await cli(port, 'SELECT', '0'), 'OK');
    assert.equal(await cli(port, 'SELECT', '1'), 'ERR DB index is out of range');
  });

  test('redis-cli over the unix listener; HELLO 3 gets RESP3 types', async () => {
    const r = await run('redis-cli', ['-s', sock, 'SET', 'via-unix', 'yes']);
    assert.equal(r.stdout.trim(), 'OK');
    const g = await run('redis-cli', ['-s', sock, 'GET', 'via-unix']);
    assert.equal(g.stdout.trim(), 'yes');
    // The raw bytes: a RESP3 map (%), then a RESP3 null (_) for a missing key.
    const raw = (await rawExchange(port, 'HELLO 3\r\nGET missing\r\nHGETALL missing\r\nQUIT\r\n')).toString('latin1');
    assert.match(raw, /^%7\r\n\$6\r\nserver\r\n\$5\r\nredis\r\n/);
    assert.match(raw, /\$5\r\nproto\r\n:3\r\n/);
    assert.match(raw, /\r\n_\r\n%0\r\n\+OK\r\n$/);
    const resp2 = (await rawExchange(port, 'HELLO 2\r\nGET missing\r\nQUIT\r\n')).toString('latin1');
    assert.match(resp2, /^\*14\r\n/);
    assert.match(resp2, /\$-1\r\n\+OK\r\n$/);
    assert.match((await rawExchange(port, 'HELLO 4\r\nQUIT\r\n')).toString('latin1'), /^-NOPROTO unsupported protocol version\r\n/);
  });

  test('ioredis: hashes, lists, TTLs, SCAN, COMMAND and CLIENT', async () => {
    const r = client(port);
    await r.connect();
    try {
      assert.equal(await r.hset('user:1', 'name', 'ada', 'age', '36'), 2);
      assert.equal(await r.hget('user:1', 'name'), 'ada');
      assert.deepEqual(await r.hgetall('user:1'), { name: 'ada', age: '36' });
      assert.equal(await r.hincrby('user:1', 'age', 1), 37);
      assert.deepEqual(await r.hmget('user:1', 'name', 'nope'), ['ada', null]);
      assert.equal(await r.hlen('user:1'), 2);
      assert.equal(await r.hexists('user:1', 'age'), 1);
      assert.equal(await r.hdel('user:1', 'age', 'nope'), 1);
      await assert.rejects(r.hincrby('user:1', 'name', 1), /ERR hash value is not an integer/);

      assert.equal(await r.rpush('q', 'b', 'c'), 2);
      assert.equal(await r.lpush('q', 'a'), 3);
      assert.deepEqual(await r.lrange('q', 0, -1), ['a', 'b', 'c']);
      assert.equal(await r.llen('q'), 3);
      assert.equal(await r.lpop('q'), 'a');
      assert.equal(await r.rpop('q'), 'c');
      assert.equal(await r.rpop('q'), 'b');
      assert.equal(await r.exists('q'), 0, 'a list is gone with its last element');
      await assert.rejects(r.lpush('user:1', 'x'), /^ReplyError: WRONGTYPE Operation against a key holding the wrong kind of value/);

      await r.set('ttl', 'v', 'EX', 100);
      const ttl = await r.ttl('ttl');
      assert.ok(ttl > 90 && ttl <= 100, String(ttl));
      assert.ok((await r.pttl('ttl')) > 90_000);
      assert.equal(await r.persist('ttl'), 1);
      assert.equal(await r.ttl('ttl'), -1);
      assert.equal(await r.ttl('absent'), -2);
      await r.set('ttl', 'v2', 'KEEPTTL');
      assert.equal(await r.ttl('ttl'), -1);

      // Short expiry: gone on access (lazily) within a bounded number of tries.
      await r.set('short', 'v', 'PX', 30);
      await r.pexpire('user:1', 30);
      assert.ok(await eventually(async () => (await r.get('short')) === null), 'PX 30 key expired');
      assert.ok(await eventually(async () => (await r.exists('user:1')) === 0), 'PEXPIRE 30 key expired');

      // SCAN over many keys returns each exactly once under MATCH; KEYS agrees.
      const pipe = r.pipeline();
      for (let i = 0; i < 300; i++) pipe.set(`scan:${i}`, String(i));
      await pipe.exec();
      const seen = new Set<string>();
      let cursor = '0';
      let rounds = 0;
      do {
        const [next, keys] = await r.scan(cursor, 'MATCH', 'scan:*', 'COUNT', 50);
        for (const k of keys) seen.add(k);
        cursor = next;
        rounds++;
      } while (cursor !== '0' && rounds < 1000);
      assert.equal(cursor, '0');
      assert.equal(seen.size, 300);
      assert.equal((await r.keys('scan:1?')).length, 10);
      assert.equal((await r.keys('scan:[12]5')).sort().join(), 'scan:15,scan:25');

      assert.ok((await r.call('COMMAND', 'COUNT')) as number > 50);
      assert.equal(await r.client('SETNAME', 'tester'), 'OK');
      assert.equal(await r.client('GETNAME'), 'tester');
      assert.match((await r.call('CLIENT', 'INFO')) as string, /name=tester/);
      const info = await r.info();
      assert.match(info, /# Server\r\nredis_version:/);
      assert.ok(infoField(info, 'connected_clients') >= 1);
      assert.match(info, /# Keyspace\r\ndb0:keys=\d+,expires=\d+/);
      assert.ok(infoField(info, 'used_memory') > 300 * 10);
    } finally {
      r.disconnect();
    }
  });

  test('ioredis: a pipeline of 2000 commands is answered in order', async () => {
    const r = client(port);
    await r.connect();
    try {
      const p = r.pipeline();
      for (let i = 0; i < 1000; i++) p.set(`p:${i}`, `v${i}`).get(`p:${i}`);
      const res = await p.exec();
      assert.ok(res);
      assert.equal(res.length, 2000);
      for (let i = 0; i < 1000; i++) {
        assert.deepEqual(res[2 * i], [null, 'OK']);
        assert.deepEqual(res[2 * i + 1], [null, `v${i}`]);
      }
    } finally {
      r.disconnect();
    }
  });

  test('inline commands and a pipeline in one raw write, with quotes', async () => {
    const raw = await rawExchange(port, 'SET inl "two words"\r\nGET inl\r\n*2\r\n$4\r\nECHO\r\n$3\r\na\r\n\r\nPING\nQUIT\r\nPING\r\n');
    assert.equal(raw.toString('latin1'), '+OK\r\n$9\r\ntwo words\r\n$3\r\na\r\n\r\n+PONG\r\n+OK\r\n');
  });

  test('pub/sub between two clients: channels, patterns, subscribed-mode rules', async () => {
    const sub = client(port);
    const pub = client(port);
    await sub.connect();
    await pub.connect();
    try {
      const got: string[] = [];
      sub.on('message', (ch: string, msg: string) => got.push(`${ch}=${msg}`));
      sub.on('pmessage', (pat: string, ch: string, msg: string) => got.push(`${pat}:${ch}=${msg}`));
      assert.equal(await sub.subscribe('news'), 1);
      assert.equal(await sub.psubscribe('ne*'), 2);
      assert.equal(await pub.publish('news', 'hello'), 2);
      assert.equal(await pub.publish('nets', 'pattern only'), 1);
      assert.equal(await pub.publish('other', 'nobody'), 0);
      assert.ok(await eventually(() => got.length >= 3));
      assert.deepEqual(got.sort(), ['ne*:nets=pattern only', 'ne*:news=hello', 'news=hello']);
      assert.deepEqual(await pub.call('PUBSUB', 'NUMSUB', 'news'), ['news', 1]);
      await sub.unsubscribe('news');
      await sub.punsubscribe();
      assert.equal(await pub.publish('news', 'late'), 0);
    } finally {
      sub.disconnect();
      pub.disconnect();
    }
    // RESP2 subscribed mode: only (un)subscribe, PING and QUIT.
    const raw = (await rawExchange(port, 'SUBSCRIBE ch\r\nGET x\r\nPING\r\nQUIT\r\n')).toString('latin1');
    assert.equal(
      raw,
      '*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n' +
        "-ERR Can't execute 'get': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context\r\n" +
        '*2\r\n$4\r\npong\r\n$0\r\n\r\n+OK\r\n',
    );
  });

  test('a huge bulk header is refused at once, without allocating it', async () => {
    const before = infoField(await cli(port, 'INFO', 'memory'), 'used_memory_rss');
    for (const hdr of ['*1\r\n$999999999999\r\n', '*1\r\n$99999999\r\n', '*999999999999\r\n', '*1\r\n$-5\r\n']) {
      const c = await rawConn(port);
      c.s.write(hdr);
      assert.ok(await eventually(() => c.closed()), `closed after ${JSON.stringify(hdr)}`);
      assert.match(c.received(), /^-ERR Protocol error: invalid (bulk|multibulk) length\r\n$/, JSON.stringify(hdr));
      c.s.destroy();
    }
    const afterRss = infoField(await cli(port, 'INFO', 'memory'), 'used_memory_rss');
    assert.ok(afterRss - before < 32 * 1024 * 1024, `rss grew by ${afterRss - before}`);
    // An inline line past maxInlineSize (64 KiB) is refused too.
    const c = await rawConn(port);
    c.s.write(Buffer.alloc(70 * 1024, 'a'));
    assert.ok(await eventually(() => c.closed()));
    assert.match(c.received(), /^-ERR Protocol error: too big inline request\r\n$/);
  });

  test('a client that does not read its replies stops being served until it does', async () => {
    const r = client(port);
    await r.connect();
    const value = 'x'.repeat(1024 * 1024);
    await r.set('big', value);
    const before = infoField(await r.info('stats'), 'total_commands_processed');
    const c = await rawConn(port);
    c.s.pause(); // read nothing
    const n = 300; // 300 MiB of replies if nothing held them back
    // Half-closed at once: the commands held back are still answered, then the server ends.
    c.s.end('GET big\r\n'.repeat(n));
    await sleep(500);
    const during = infoField(await r.info('stats'), 'total_commands_processed') - before;
    assert.ok(during < n / 2, `${during} of ${n} GETs were run while the client read nothing`);
    // Reading resumes the rest, in order and whole.
    c.s.resume();
    const total = n * (`$${value.length}\r\n`.length + value.length + 2);
    assert.ok(await eventually(() => c.bytes() >= total, 400), `got ${c.bytes()} of ${total}`);
    assert.equal(c.bytes(), total);
    assert.ok(c.received().startsWith(`$${value.length}\r\nxxx`));
    assert.ok(await eventually(() => c.closed()), 'the server ended the connection after the last reply');
    c.s.destroy();
    r.disconnect();
  });
});

describe('resp: AUTH', () => {
  let d: Daemon;
  let port: number;
  before(async () => {
    ({ d, port } = await startCache('auth', ', password: s3cret'));
  });
  after(() => killDaemon(d));

  test('NOAUTH before AUTH, WRONGPASS for a bad one, then served; ioredis with the password works', async () => {
    const raw = (await rawExchange(port, 'GET k\r\nAUTH nope\r\nPING\r\nAUTH s3cret\r\nPING\r\nQUIT\r\n')).toString('latin1');
    assert.equal(
      raw,
      '-NOAUTH Authentication required.\r\n-WRONGPASS invalid username-password pair or user is disabled.\r\n-NOAUTH Authentication required.\r\n+OK\r\n+PONG\r\n+OK\r\n',
    );
    assert.equal(await cli(port, '--no-auth-warning', '-a', 's3cret', 'SET', 'k', 'v'), 'OK');
    const good = client(port, { password: 's3cret' });
    await good.connect();
    assert.equal(await good.get('k'), 'v');
    good.disconnect();
    const bad = client(port, { password: 'wrong' });
    const errors: Error[] = [];
    bad.on('error', (e: Error) => errors.push(e));
    await assert.rejects(bad.connect());
    bad.disconnect();
    assert.match(errors.map((e) => e.message).join(), /WRONGPASS invalid username-password pair/);
    const hello = (await rawExchange(port, 'HELLO 3 AUTH default s3cret\r\nGET k\r\nQUIT\r\n')).toString('latin1');
    assert.match(hello, /^%7\r\n/);
    assert.match(hello, /\$1\r\nv\r\n\+OK\r\n$/);
  });
});

describe('resp: maxmemory', () => {
  test('allkeys-lru evicts to stay under maxmemory; noeviction refuses with OOM', async () => {
    const lru = await startCache('lru', ', maxmemory: 256KiB, maxmemoryPolicy: allkeys-lru');
    const r = client(lru.port);
    try {
      await r.connect();
      const p = r.pipeline();
      for (let i = 0; i < 1000; i++) p.set(`k${i}`, 'v'.repeat(1024));
      const res = await p.exec();
      assert.ok(res?.every(([err]) => err === null), 'every SET succeeded');
      const size = await r.dbsize();
      assert.ok(size > 50 && size < 1000, `dbsize ${size}`);
      const info = await r.info();
      assert.ok(infoField(info, 'evicted_keys') >= 1000 - size);
      assert.ok(infoField(info, 'used_memory') <= 256 * 1024 + 2 * 1024, String(infoField(info, 'used_memory')));
      assert.equal(await r.get('k999'), 'v'.repeat(1024), 'the newest key is still there');
    } finally {
      r.disconnect();
      await killDaemon(lru.d);
    }

    const no = await startCache('noevict', ', maxmemory: 64KiB');
    const r2 = client(no.port);
    try {
      await r2.connect();
      let refused: Error | undefined;
      for (let i = 0; i < 200 && !refused; i++) await r2.set(`k${i}`, 'v'.repeat(1024)).catch((e: Error) => (refused = e));
      assert.ok(refused, 'a write was refused');
      assert.equal(refused.message, "OOM command not allowed when used memory > 'maxmemory'.");
      assert.ok((await r2.get('k0')) !== null, 'reads still work, nothing was evicted');
      assert.ok((await r2.del('k0')) === 1, 'DEL still works');
    } finally {
      r2.disconnect();
      await killDaemon(no.d);
    }
  });
});

describe('resp: snapshot', () => {
  test('the keyspace is saved and loaded again after a restart', async () => {
    const extra = `, snapshot: { file: ${join(dir, 'cache.snap')}, interval: 100ms }`;
    const first = await startCache('snap', extra);
    const r = client(first.port);
    await r.connect();
    await r.set('s', 'kept');
    await r.hset('h', 'f', 'v');
    await r.rpush('l', 'a', 'b');
    await r.set('ttl', 'x', 'EX', 1000);
    await r.set('gone', 'x', 'PX', 1);
    await r.set('bin', Buffer.from([0, 255, 13, 10]));
    await r.set(Buffer.from([1, 200]), 'binary key');
    const saved = await eventually(async () => {
      const info = await r.info('persistence');
      return infoField(info, 'rdb_last_save_time') > 0 && infoField(info, 'rdb_changes_since_last_save') === 0;
    });
    assert.ok(saved, 'saved within the bounded wait');
    r.disconnect();
    await killDaemon(first.d);

    const second = await startCache('snap', extra);
    const r2 = client(second.port);
    try {
      await r2.connect();
      assert.equal(await r2.get('s'), 'kept');
      assert.deepEqual(await r2.hgetall('h'), { f: 'v' });
      assert.deepEqual(await r2.lrange('l', 0, -1), ['a', 'b']);
      const ttl = await r2.ttl('ttl');
      assert.ok(ttl > 900 && ttl <= 1000, String(ttl));
      assert.equal(await r2.get('gone'), null);
      assert.deepEqual(await r2.getBuffer('bin'), Buffer.from([0, 255, 13, 10]));
      assert.equal(await r2.get(Buffer.from([1, 200])), 'binary key');
    } finally {
      r2.disconnect();
      await killDaemon(second.d);
    }
  });
});

import type { Connection } from '../connection.ts';
import { ITEM_OVERHEAD, type Entry } from '../store.ts';
import { NOT_INTEGER, OVERFLOW, WRONGTYPE, command, inI64, parseI64, str, type Command } from './types.ts';

// Hash commands. A hash whose last field goes is deleted, as in Redis.

type HashEntry = Entry & { value: { type: 'hash'; data: Map<string, Buffer> } };

/** The hash at `key`; undefined when none, null (after replying WRONGTYPE) when another type. */
function hashAt(c: Connection, key: string, read = false): HashEntry | undefined | null {
  const e = read ? c.service.store.read(key) : c.service.store.lookup(key);
  if (!e) return undefined;
  if (e.value.type !== 'hash') {
    c.out.error(WRONGTYPE);
    return null;
  }
  return e as HashEntry;
}

function hashForWrite(c: Connection, key: string): HashEntry | null {
  const e = hashAt(c, key);
  if (e !== undefined) return e;
  return c.service.store.set(key, { type: 'hash', data: new Map() }, 0) as HashEntry;
}

/** Sets one field, keeping the memory count right; true when the field is new. */
function setField(c: Connection, e: HashEntry, field: string, value: Buffer): boolean {
  const old = e.value.data.get(field);
  const copy = Buffer.from(value);
  e.value.data.set(field, copy);
  c.service.store.grow(e, old ? copy.length - old.length : field.length + copy.length + ITEM_OVERHEAD);
  return old === undefined;
}

function hsetLike(name: string, replyOk: boolean): Command {
  return command({
    name, arity: -4, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      if (args.length % 2 !== 0) return c.out.error(`ERR wrong number of arguments for '${name}' command`);
      const e = hashForWrite(c, str(args[1]));
      if (!e) return;
      let added = 0;
      for (let i = 2; i < args.length; i += 2) if (setField(c, e, str(args[i]), args[i + 1])) added++;
      if (replyOk) c.out.ok();
      else c.out.int(added);
    },
  });
}

const hsetnx = command({
  name: 'hsetnx', arity: 4, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashForWrite(c, str(args[1]));
    if (!e) return;
    if (e.value.data.has(str(args[2]))) return c.out.int(0);
    setField(c, e, str(args[2]), args[3]);
    c.out.int(1);
  },
});

const hget = command({
  name: 'hget', arity: 3, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashAt(c, str(args[1]), true);
    if (e === null) return;
    const v = e?.value.data.get(str(args[2]));
    if (v) c.out.bulk(v);
    else c.out.nil();
  },
});

const hmget = command({
  name: 'hmget', arity: -3, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashAt(c, str(args[1]), true);
    if (e === null) return;
    c.out.array(args.length - 2);
    for (let i = 2; i < args.length; i++) {
      const v = e?.value.data.get(str(args[i]));
      if (v) c.out.bulk(v);
      else c.out.nil();
    }
  },
});

const hdel = command({
  name: 'hdel', arity: -3, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashAt(c, str(args[1]));
    if (e === null) return;
    if (!e) return c.out.int(0);
    let n = 0;
    for (let i = 2; i < args.length; i++) {
      const f = str(args[i]);
      const old = e.value.data.get(f);
      if (!old) continue;
      e.value.data.delete(f);
      c.service.store.grow(e, -(f.length + old.length + ITEM_OVERHEAD));
      n++;
    }
    if (e.value.data.size === 0) c.service.store.remove(e);
    c.out.int(n);
  },
});

const hgetall = command({
  name: 'hgetall', arity: 2, flags: ['readonly'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashAt(c, str(args[1]), true);
    if (e === null) return;
    if (!e) return c.out.map(0);
    c.out.map(e.value.data.size);
    for (const [f, v] of e.value.data) {
      c.out.key(f);
      c.out.bulk(v);
    }
  },
});

function hashList(name: string, pick: 'keys' | 'values'): Command {
  return command({
    name, arity: 2, flags: ['readonly'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      const e = hashAt(c, str(args[1]), true);
      if (e === null) return;
      if (!e) return c.out.array(0);
      c.out.array(e.value.data.size);
      if (pick === 'keys') for (const f of e.value.data.keys()) c.out.key(f);
      else for (const v of e.value.data.values()) c.out.bulk(v);
    },
  });
}

const hlen = command({
  name: 'hlen', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashAt(c, str(args[1]));
    if (e === null) return;
    c.out.int(e ? e.value.data.size : 0);
  },
});

const hexists = command({
  name: 'hexists', arity: 3, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = hashAt(c, str(args[1]));
    if (e === null) return;
    c.out.int(e?.value.data.has(str(args[2])) ? 1 : 0);
  },
});

const hincrby = command({
  name: 'hincrby', arity: 4, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const delta = parseI64(args[3]);
    if (delta === undefined) return c.out.error(NOT_INTEGER);
    const existing = hashAt(c, str(args[1]));
    if (existing === null) return;
    const field = str(args[2]);
    const old = existing?.value.data.get(field);
    let current = 0n;
    if (old) {
      const n = parseI64(old);
      if (n === undefined) return c.out.error('ERR hash value is not an integer');
      current = n;
    }
    const next = current + delta;
    if (!inI64(next)) return c.out.error(OVERFLOW);
    const e = existing ?? hashForWrite(c, str(args[1]));
    if (!e) return;
    setField(c, e, field, Buffer.from(next.toString(), 'latin1'));
    c.out.int(next);
  },
});

export const HASH_COMMANDS: Command[] = [
  hsetLike('hset', false),
  hsetLike('hmset', true),
  hsetnx,
  hget,
  hmget,
  hdel,
  hgetall,
  hashList('hkeys', 'keys'),
  hashList('hvals', 'values'),
  hlen,
  hexists,
  hincrby,
];

import type { Connection } from '../connection.ts';
import type { Entry } from '../store.ts';
import { NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE, command, inI64, parseI64, parseInt53, str, word, type Command } from './types.ts';

// String commands. Values are copied out of the read buffer (Buffer.from) so that a stored value
// never keeps a whole socket chunk alive.

/** The string entry of `key`, undefined when there is none, null when the key holds another type. */
function stringEntry(c: Connection, key: string, read = false): Entry | undefined | null {
  const e = read ? c.service.store.read(key) : c.service.store.lookup(key);
  if (e === undefined) return undefined;
  return e.value.type === 'string' ? e : null;
}

const get = command({
  name: 'get', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  runArgs(c, args) {
    const e = c.service.store.read(args.latin1(1));
    if (e === undefined) return c.out.nil();
    if (e.value.type !== 'string') return c.out.error(WRONGTYPE);
    c.out.bulk(e.value.data);
  },
});

/** An expiry option's time as absolute ms (EX/PX relative, EXAT/PXAT absolute), or an error reply. */
export function expiryFrom(opt: string, arg: Buffer, now: number, cmd: string): number | string {
  const n = parseInt53(arg);
  if (n === undefined) return NOT_INTEGER;
  const at = opt === 'ex' ? now + n * 1000 : opt === 'px' ? now + n : opt === 'exat' ? n * 1000 : n;
  if (n <= 0 || !Number.isSafeInteger(at)) return `ERR invalid expire time in '${cmd}' command`;
  return at;
}

const set = command({
  name: 'set', arity: -3, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 1, keyStep: 1,
  runArgs(c, args) {
    const store = c.service.store;
    let nx = false;
    let xx = false;
    let returnOld = false;
    let keepTtl = false;
    let expiresAt = 0;
    let expiryGiven = false;
    for (let i = 3; i < args.length; i++) {
      const opt = args.latin1(i).toLowerCase();
      if (opt === 'nx' && !xx) nx = true;
      else if (opt === 'xx' && !nx) xx = true;
      else if (opt === 'get') returnOld = true;
      else if (opt === 'keepttl' && !expiryGiven) keepTtl = true;
      else if ((opt === 'ex' || opt === 'px' || opt === 'exat' || opt === 'pxat') && !expiryGiven && !keepTtl && i + 1 < args.length) {
        const at = expiryFrom(opt, args.view(++i), Date.now(), 'set');
        if (typeof at === 'string') return c.out.error(at);
        expiresAt = at;
        expiryGiven = true;
      } else return c.out.error(SYNTAX);
    }
    const key = args.latin1(1);
    const old = store.lookup(key);
    if (old === undefined) {
      if (xx) return c.out.nil();
      store.set(key, { type: 'string', data: args.copy(2) }, expiresAt, old);
      return returnOld ? c.out.nil() : c.out.ok();
    }
    const oldValue = old.value.type === 'string' ? old.value.data : undefined;
    if (returnOld && oldValue === undefined) return c.out.error(WRONGTYPE);
    if (nx) return returnOld && oldValue ? c.out.bulk(oldValue) : c.out.nil();
    if (oldValue !== undefined && oldValue.length === args.byteLength(2) && !returnOld) {
      // The same size as before: the new bytes go over the old ones, no new value object.
      args.copyInto(2, oldValue);
      store.touchWrite(old, keepTtl ? old.expiresAt : expiresAt);
      return c.out.ok();
    }
    store.set(key, { type: 'string', data: args.copy(2) }, keepTtl ? old.expiresAt : expiresAt, old);
    if (returnOld) return oldValue ? c.out.bulk(oldValue) : c.out.nil();
    c.out.ok();
  },
});

const setnx = command({
  name: 'setnx', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const key = str(args[1]);
    if (c.service.store.lookup(key)) return c.out.int(0);
    c.service.store.set(key, { type: 'string', data: Buffer.from(args[2]) }, 0);
    c.out.int(1);
  },
});

function setWithExpiry(name: string, unitMs: number): Command {
  return command({
    name, arity: 4, flags: ['write', 'denyoom'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      const at = expiryFrom(unitMs === 1000 ? 'ex' : 'px', args[2], Date.now(), name);
      if (typeof at === 'string') return c.out.error(at);
      c.service.store.set(str(args[1]), { type: 'string', data: Buffer.from(args[3]) }, at);
      c.out.ok();
    },
  });
}

const getdel = command({
  name: 'getdel', arity: 2, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = stringEntry(c, str(args[1]), true);
    if (e === null) return c.out.error(WRONGTYPE);
    if (e === undefined) return c.out.nil();
    c.service.store.remove(e);
    c.out.bulk(e.value.data as Buffer);
  },
});

const mget = command({
  name: 'mget', arity: -2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: -1, keyStep: 1,
  run(c, args) {
    c.out.array(args.length - 1);
    for (let i = 1; i < args.length; i++) {
      const e = c.service.store.read(str(args[i]));
      if (e && e.value.type === 'string') c.out.bulk(e.value.data);
      else c.out.nil();
    }
  },
});

const mset = command({
  name: 'mset', arity: -3, flags: ['write', 'denyoom'], firstKey: 1, lastKey: -1, keyStep: 2,
  run(c, args) {
    if (args.length % 2 === 0) return c.out.error("ERR wrong number of arguments for 'mset' command");
    for (let i = 1; i < args.length; i += 2) c.service.store.set(str(args[i]), { type: 'string', data: Buffer.from(args[i + 1]) }, 0);
    c.out.ok();
  },
});

function incrBy(c: Connection, keyArg: Buffer, delta: bigint): void {
  const store = c.service.store;
  const key = str(keyArg);
  const e = store.lookup(key);
  let current = 0n;
  if (e) {
    if (e.value.type !== 'string') return c.out.error(WRONGTYPE);
    const n = parseI64(e.value.data);
    if (n === undefined) return c.out.error(NOT_INTEGER);
    current = n;
  }
  const next = current + delta;
  if (!inI64(next)) return c.out.error(OVERFLOW);
  const data = Buffer.from(next.toString(), 'latin1');
  if (e) {
    e.value = { type: 'string', data };
    store.resize(e);
    store.dirty++;
  } else store.set(key, { type: 'string', data }, 0);
  c.out.int(next);
}

const incr = command({ name: 'incr', arity: 2, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1, run: (c, a) => incrBy(c, a[1], 1n) });
const decr = command({ name: 'decr', arity: 2, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1, run: (c, a) => incrBy(c, a[1], -1n) });

function byArg(sign: 1n | -1n): (c: Connection, args: Buffer[]) => void {
  return (c, args) => {
    const n = parseI64(args[2]);
    if (n === undefined) return c.out.error(NOT_INTEGER);
    if (sign < 0n && n === -(2n ** 63n)) return c.out.error("ERR decrement would overflow");
    incrBy(c, args[1], n * sign);
  };
}

const incrby = command({ name: 'incrby', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1, run: byArg(1n) });
const decrby = command({ name: 'decrby', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1, run: byArg(-1n) });

const append = command({
  name: 'append', arity: 3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const store = c.service.store;
    const key = str(args[1]);
    const e = store.lookup(key);
    if (!e) {
      store.set(key, { type: 'string', data: Buffer.from(args[2]) }, 0);
      return c.out.int(args[2].length);
    }
    if (e.value.type !== 'string') return c.out.error(WRONGTYPE);
    const data = Buffer.concat([e.value.data, args[2]]);
    if (data.length > c.service.config.maxBulkSize) return c.out.error('ERR string exceeds maximum allowed size (maxBulkSize)');
    e.value = { type: 'string', data };
    store.grow(e, args[2].length);
    c.out.int(data.length);
  },
});

const strlen = command({
  name: 'strlen', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = stringEntry(c, str(args[1]));
    if (e === null) return c.out.error(WRONGTYPE);
    c.out.int(e ? (e.value.data as Buffer).length : 0);
  },
});

export const STRING_COMMANDS: Command[] = [get, set, setnx, setWithExpiry('setex', 1000), setWithExpiry('psetex', 1), getdel, mget, mset, incr, decr, incrby, decrby, append, strlen];

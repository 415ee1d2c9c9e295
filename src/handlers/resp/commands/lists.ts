import type { Connection } from '../connection.ts';
import { Deque } from '../deque.ts';
import { ITEM_OVERHEAD, type Entry } from '../store.ts';
import { NOT_INTEGER, WRONGTYPE, command, parseInt53, str, type Command } from './types.ts';

// List commands. A list whose last element goes is deleted, as in Redis.

type ListEntry = Entry & { value: { type: 'list'; data: Deque<Buffer> } };

function listAt(c: Connection, key: string, read = false): ListEntry | undefined | null {
  const e = read ? c.service.store.read(key) : c.service.store.lookup(key);
  if (!e) return undefined;
  if (e.value.type !== 'list') {
    c.out.error(WRONGTYPE);
    return null;
  }
  return e as ListEntry;
}

function push(name: string, front: boolean): Command {
  return command({
    name, arity: -3, flags: ['write', 'denyoom', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      const key = str(args[1]);
      let e = listAt(c, key);
      if (e === null) return;
      e ??= c.service.store.set(key, { type: 'list', data: new Deque() }, 0) as ListEntry;
      let bytes = 0;
      for (let i = 2; i < args.length; i++) {
        const v = Buffer.from(args[i]);
        if (front) e.value.data.pushFront(v);
        else e.value.data.pushBack(v);
        bytes += v.length + ITEM_OVERHEAD;
      }
      c.service.store.grow(e, bytes);
      c.out.int(e.value.data.length);
    },
  });
}

function pop(name: string, front: boolean): Command {
  return command({
    name, arity: -2, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      if (args.length > 3) return c.out.error(`ERR wrong number of arguments for '${name}' command`);
      let count: number | undefined;
      if (args.length === 3) {
        count = parseInt53(args[2]);
        if (count === undefined || count < 0) return c.out.error('ERR value is out of range, must be positive');
      }
      const e = listAt(c, str(args[1]));
      if (e === null) return;
      if (!e) return count === undefined ? c.out.nil() : c.out.nilArray();
      const list = e.value.data;
      const take = () => {
        const v = (front ? list.popFront() : list.popBack()) as Buffer;
        c.service.store.grow(e, -(v.length + ITEM_OVERHEAD));
        return v;
      };
      if (count === undefined) c.out.bulk(take());
      else {
        const n = Math.min(count, list.length);
        c.out.array(n);
        for (let i = 0; i < n; i++) c.out.bulk(take());
      }
      if (list.length === 0) c.service.store.remove(e);
    },
  });
}

const lrange = command({
  name: 'lrange', arity: 4, flags: ['readonly'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    let start = parseInt53(args[2]);
    let stop = parseInt53(args[3]);
    if (start === undefined || stop === undefined) return c.out.error(NOT_INTEGER);
    const e = listAt(c, str(args[1]), true);
    if (e === null) return;
    if (!e) return c.out.array(0);
    const list = e.value.data;
    const len = list.length;
    if (start < 0) start = Math.max(0, len + start);
    if (stop < 0) stop = len + stop;
    if (stop >= len) stop = len - 1;
    if (start > stop || start >= len) return c.out.array(0);
    c.out.array(stop - start + 1);
    for (let i = start; i <= stop; i++) c.out.bulk(list.at(i));
  },
});

const llen = command({
  name: 'llen', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = listAt(c, str(args[1]));
    if (e === null) return;
    c.out.int(e ? e.value.data.length : 0);
  },
});

const lindex = command({
  name: 'lindex', arity: 3, flags: ['readonly'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    let i = parseInt53(args[2]);
    if (i === undefined) return c.out.error(NOT_INTEGER);
    const e = listAt(c, str(args[1]), true);
    if (e === null) return;
    if (!e) return c.out.nil();
    if (i < 0) i += e.value.data.length;
    if (i < 0 || i >= e.value.data.length) return c.out.nil();
    c.out.bulk(e.value.data.at(i));
  },
});

export const LIST_COMMANDS: Command[] = [push('lpush', true), push('rpush', false), pop('lpop', true), pop('rpop', false), lrange, llen, lindex];

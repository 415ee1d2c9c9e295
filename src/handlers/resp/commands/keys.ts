import type { Connection } from '../connection.ts';
import { globMatch } from '../glob.ts';
import { NOT_INTEGER, SYNTAX, command, parseInt53, str, word, type Command } from './types.ts';

// Commands on keys whatever their type: DEL, EXISTS, TTLs, TYPE, KEYS and SCAN.

const del = (name: string) =>
  command({
    name, arity: -2, flags: ['write'], firstKey: 1, lastKey: -1, keyStep: 1,
    run(c, args) {
      let n = 0;
      for (let i = 1; i < args.length; i++) if (c.service.store.delete(str(args[i]))) n++;
      c.out.int(n);
    },
  });

const exists = command({
  name: 'exists', arity: -2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: -1, keyStep: 1,
  run(c, args) {
    let n = 0;
    for (let i = 1; i < args.length; i++) if (c.service.store.lookup(str(args[i]))) n++;
    c.out.int(n);
  },
});

/** EXPIRE and friends: `toMs` turns the argument into an absolute time in ms. */
function expireCommand(name: string, toMs: (n: number, now: number) => number): Command {
  return command({
    name, arity: -3, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      const n = parseInt53(args[2]);
      if (n === undefined) return c.out.error(NOT_INTEGER);
      const at = toMs(n, Date.now());
      if (!Number.isSafeInteger(at)) return c.out.error(`ERR invalid expire time in '${name}' command`);
      let nx = false, xx = false, gt = false, lt = false;
      for (let i = 3; i < args.length; i++) {
        const opt = word(args[i]);
        if (opt === 'nx') nx = true;
        else if (opt === 'xx') xx = true;
        else if (opt === 'gt') gt = true;
        else if (opt === 'lt') lt = true;
        else return c.out.error(`ERR Unsupported option ${str(args[i])}`);
      }
      if (nx && (xx || gt || lt)) return c.out.error('ERR NX and XX, GT or LT options at the same time are not compatible');
      if (gt && lt) return c.out.error('ERR GT and LT options at the same time are not compatible');
      const store = c.service.store;
      const e = store.lookup(str(args[1]));
      if (!e) return c.out.int(0);
      const current = e.expiresAt === 0 ? Infinity : e.expiresAt;
      if ((nx && e.expiresAt !== 0) || (xx && e.expiresAt === 0) || (gt && at <= current) || (lt && at >= current)) return c.out.int(0);
      if (at <= Date.now()) store.remove(e);
      else {
        store.setExpiry(e, at);
        store.dirty++;
      }
      c.out.int(1);
    },
  });
}

function ttlCommand(name: string, unitMs: number): Command {
  return command({
    name, arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
    run(c, args) {
      const e = c.service.store.lookup(str(args[1]));
      if (!e) return c.out.int(-2);
      if (e.expiresAt === 0) return c.out.int(-1);
      const left = Math.max(0, e.expiresAt - Date.now());
      c.out.int(unitMs === 1 ? left : Math.round(left / unitMs));
    },
  });
}

const persist = command({
  name: 'persist', arity: 2, flags: ['write', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = c.service.store.lookup(str(args[1]));
    if (!e || e.expiresAt === 0) return c.out.int(0);
    c.service.store.setExpiry(e, 0);
    c.service.store.dirty++;
    c.out.int(1);
  },
});

const type = command({
  name: 'type', arity: 2, flags: ['readonly', 'fast'], firstKey: 1, lastKey: 1, keyStep: 1,
  run(c, args) {
    const e = c.service.store.lookup(str(args[1]));
    c.out.simple(e ? e.value.type : 'none');
  },
});

const keys = command({
  name: 'keys', arity: 2, flags: ['readonly'],
  run(c, args) {
    const pattern = str(args[1]);
    const now = Date.now();
    const found: string[] = [];
    for (const e of c.service.store.entries()) {
      if (e.expiresAt !== 0 && e.expiresAt <= now) continue;
      if (globMatch(pattern, e.key)) found.push(e.key);
    }
    c.out.array(found.length);
    for (const k of found) c.out.key(k);
  },
});

/** Most slots one SCAN call looks at, whatever COUNT says, so that one call stays short. */
const SCAN_MAX_WORK = 100_000;

/**
 * SCAN walks the key slots from the top down; the cursor is the next slot + 1 (0: done). Removing
 * a key moves the last slot (already visited) into the freed one, and new keys go on top (past
 * the cursor), so every key present for the whole scan is returned, as Redis promises; a key
 * may come twice.
 */
function scan(c: Connection, args: Buffer[]): void {
  const cursorArg = parseInt53(args[1]);
  if (cursorArg === undefined || cursorArg < 0) return c.out.error('ERR invalid cursor');
  let pattern: string | undefined;
  let count = 10;
  let typeFilter: string | undefined;
  for (let i = 2; i < args.length; i++) {
    const opt = word(args[i]);
    if (i + 1 >= args.length) return c.out.error(SYNTAX);
    if (opt === 'match') pattern = str(args[++i]);
    else if (opt === 'count') {
      const n = parseInt53(args[++i]);
      if (n === undefined) return c.out.error(NOT_INTEGER);
      if (n < 1) return c.out.error(SYNTAX);
      count = n;
    } else if (opt === 'type') typeFilter = word(args[++i]);
    else return c.out.error(SYNTAX);
  }
  const store = c.service.store;
  let next = cursorArg === 0 ? store.slotCount - 1 : Math.min(cursorArg - 1, store.slotCount - 1);
  const now = Date.now();
  const found: string[] = [];
  for (let work = 0; next >= 0 && work < Math.min(count, SCAN_MAX_WORK); work++, next--) {
    const e = store.slotAt(next);
    if (!e || (e.expiresAt !== 0 && e.expiresAt <= now)) continue;
    if (pattern !== undefined && !globMatch(pattern, e.key)) continue;
    if (typeFilter !== undefined && e.value.type !== typeFilter) continue;
    found.push(e.key);
  }
  c.out.array(2);
  c.out.bulk(next < 0 ? '0' : String(next + 1));
  c.out.array(found.length);
  for (const k of found) c.out.key(k);
}

const scanCommand = command({ name: 'scan', arity: -2, flags: ['readonly'], run: scan });

export const KEY_COMMANDS: Command[] = [
  del('del'),
  del('unlink'),
  exists,
  expireCommand('expire', (n, now) => now + n * 1000),
  expireCommand('pexpire', (n, now) => now + n),
  expireCommand('expireat', (n) => n * 1000),
  expireCommand('pexpireat', (n) => n),
  ttlCommand('ttl', 1000),
  ttlCommand('pttl', 1),
  persist,
  type,
  keys,
  scanCommand,
];

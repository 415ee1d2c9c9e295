import { HASH_COMMANDS } from './hashes.ts';
import { KEY_COMMANDS } from './keys.ts';
import { LIST_COMMANDS } from './lists.ts';
import { PUBSUB_COMMANDS } from './pubsub.ts';
import { SERVER_COMMANDS, commandCommand } from './server.ts';
import { STRING_COMMANDS } from './strings.ts';
import type { Command } from './types.ts';
import type { CommandArgs } from '../args.ts';

// Every command the resp handler knows, by lower-case name.

const table = new Map<string, Command>();
for (const cmd of [...STRING_COMMANDS, ...KEY_COMMANDS, ...HASH_COMMANDS, ...LIST_COMMANDS, ...PUBSUB_COMMANDS, ...SERVER_COMMANDS]) {
  table.set(cmd.name, cmd);
}
table.set('command', commandCommand(table));

export const COMMANDS: ReadonlyMap<string, Command> = table;

/** Also by upper-case name, as clients mostly send them, so that lookup can skip lower-casing. */
const ANY_CASE: ReadonlyMap<string, Command> = new Map([...table, ...[...table].map(([n, c]) => [n.toUpperCase(), c] as const)]);

/** Longest name looked up by `packName`: 4 bytes of 7 bits stay a small integer (no allocation). */
const PACKED_MAX = 4;

/**
 * The bytes buf[start, start + n) lower-cased and packed base 128 into one number, or -1 when a
 * byte is not printable ASCII. Distinct names give distinct numbers (no byte is 0).
 */
function packName(buf: Buffer, start: number, n: number): number {
  let k = 0;
  for (let i = start; i < start + n; i++) {
    let b = buf[i];
    if (b >= 0x41 && b <= 0x5a) b |= 0x20;
    else if (b < 0x21 || b > 0x7e) return -1;
    k = k * 128 + b;
  }
  return k;
}

/** The commands of up to PACKED_MAX letters (GET, SET, DEL, INCR, MGET ...), by packed name. */
const SHORT = new Map<number, Command>();
for (const [name, cmd] of table) {
  if (name.length <= PACKED_MAX) SHORT.set(packName(Buffer.from(name, 'latin1'), 0, name.length), cmd);
}

/** The command named by args[0], any case; undefined when there is none. */
export function findCommand(args: CommandArgs): Command | undefined {
  const n = args.byteLength(0);
  if (n <= PACKED_MAX) {
    const k = packName(args.buf, args.start(0), n);
    if (k >= 0) return SHORT.get(k);
  }
  const raw = args.latin1(0);
  return ANY_CASE.get(raw) ?? table.get(raw.toLowerCase());
}

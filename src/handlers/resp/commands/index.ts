import { HASH_COMMANDS } from './hashes.ts';
import { KEY_COMMANDS } from './keys.ts';
import { LIST_COMMANDS } from './lists.ts';
import { PUBSUB_COMMANDS } from './pubsub.ts';
import { SERVER_COMMANDS, commandCommand } from './server.ts';
import { STRING_COMMANDS } from './strings.ts';
import type { Command } from './types.ts';

// Every command the resp handler knows, by lower-case name.

const table = new Map<string, Command>();
for (const cmd of [...STRING_COMMANDS, ...KEY_COMMANDS, ...HASH_COMMANDS, ...LIST_COMMANDS, ...PUBSUB_COMMANDS, ...SERVER_COMMANDS]) {
  table.set(cmd.name, cmd);
}
table.set('command', commandCommand(table));

export const COMMANDS: ReadonlyMap<string, Command> = table;

/** Also by upper-case name, as clients mostly send them, so the dispatcher can skip lower-casing. */
export const COMMANDS_ANY_CASE: ReadonlyMap<string, Command> = new Map([...table, ...[...table].map(([n, c]) => [n.toUpperCase(), c] as const)]);

import type { CommandArgs } from '../args.ts';
import type { Connection } from '../connection.ts';

// What a command is: its name, Redis arity (positive: exactly that many arguments counting the
// name; negative: at least that many), flags the dispatcher acts on, its key positions (for
// COMMAND's reply) and the function that writes its reply to the connection.

export type CommandFlag =
  /** Changes the keyspace. */
  | 'write'
  | 'readonly'
  /** May grow memory: refused (or evicts first) when over maxmemory. */
  | 'denyoom'
  /** Allowed before AUTH. */
  | 'noauth'
  /** Allowed while subscribed on RESP2. */
  | 'pubsub'
  | 'fast'
  | 'admin';

export interface Command {
  /** Lower case, as the dispatcher looks it up. */
  readonly name: string;
  readonly arity: number;
  readonly flags: readonly CommandFlag[];
  readonly firstKey: number;
  readonly lastKey: number;
  readonly keyStep: number;
  /** The flags the dispatcher checks per command, looked up once. */
  readonly noauth: boolean;
  readonly subscribedOk: boolean;
  readonly denyoom: boolean;
  /** Runs the command, writing its reply to the connection; `args` are valid only during the call. */
  exec(c: Connection, args: CommandArgs): void;
}

/**
 * How a command is written: `run` takes its arguments as an array of Buffers (views, built per
 * call), `runArgs` reads them straight from the read buffer; the hot commands (GET, SET) take
 * the latter so that a pipelined batch of them allocates nothing per argument.
 */
type Runner = { run(c: Connection, args: Buffer[]): void; runArgs?: never } | { runArgs(c: Connection, args: CommandArgs): void; run?: never };

type Def = Omit<Command, 'firstKey' | 'lastKey' | 'keyStep' | 'noauth' | 'subscribedOk' | 'denyoom' | 'exec'> &
  Partial<Pick<Command, 'firstKey' | 'lastKey' | 'keyStep'>> &
  Runner;

/** A command; key positions default to none. */
export function command(def: Def): Command {
  const { run, runArgs, ...rest } = def;
  const exec = runArgs ?? ((c: Connection, args: CommandArgs) => (run as (c: Connection, args: Buffer[]) => void)(c, args.array()));
  return {
    firstKey: 0,
    lastKey: 0,
    keyStep: 0,
    ...rest,
    noauth: def.flags.includes('noauth'),
    subscribedOk: def.flags.includes('pubsub'),
    denyoom: def.flags.includes('denyoom'),
    exec,
  };
}

// Error replies, worded as Redis words them (clients and people match on them).
export const WRONGTYPE = 'WRONGTYPE Operation against a key holding the wrong kind of value';
export const NOT_INTEGER = 'ERR value is not an integer or out of range';
export const NOT_FLOAT = 'ERR value is not a valid float';
export const SYNTAX = 'ERR syntax error';
export const OVERFLOW = 'ERR increment or decrement would overflow';
export const OOM = "OOM command not allowed when used memory > 'maxmemory'.";
export const NOAUTH = 'NOAUTH Authentication required.';
export const WRONGPASS = 'WRONGPASS invalid username-password pair or user is disabled.';

export function arityError(name: string): string {
  return `ERR wrong number of arguments for '${name}' command`;
}

export function unknownSubcommand(sub: Buffer, container: string): string {
  return `ERR unknown subcommand '${sub.toString('latin1').slice(0, 128)}'. Try ${container.toUpperCase()} HELP.`;
}

/** The latin1 string of an argument: keys, field names and channels stay binary-safe that way. */
export function str(b: Buffer): string {
  return b.toString('latin1');
}

/** Lower-cased option word (NX, EX, MATCH ...). */
export function word(b: Buffer): string {
  return b.toString('latin1').toLowerCase();
}

const MIN_I64 = -(2n ** 63n);
const MAX_I64 = 2n ** 63n - 1n;
const INT_RE = /^(?:0|-?[1-9][0-9]*)$/;

/** A 64-bit signed integer written as Redis accepts it (no sign +, no leading zeros, no spaces). */
export function parseI64(b: Buffer): bigint | undefined {
  if (b.length === 0 || b.length > 20) return undefined;
  const s = b.toString('latin1');
  if (!INT_RE.test(s)) return undefined;
  const n = BigInt(s);
  return n < MIN_I64 || n > MAX_I64 ? undefined : n;
}

/** An integer argument that fits a JS number exactly (counts, seconds, indexes). */
export function parseInt53(b: Buffer): number | undefined {
  const n = parseI64(b);
  if (n === undefined) return undefined;
  const x = Number(n);
  return Number.isSafeInteger(x) ? x : undefined;
}

export function inI64(n: bigint): boolean {
  return n >= MIN_I64 && n <= MAX_I64;
}

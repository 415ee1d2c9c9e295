import os from 'node:os';
import { parseArgs } from 'node:util';

// The runner's flags, checked before anything starts: a bad value is one line naming the flag
// and exit 2. Every limit has a default, so the one command runs as it is.

export interface TradingOptions {
  /** Stop after this many seconds (0: no time limit; Ctrl-C stops). */
  duration: number;
  /** Stop after the feed has sent this many quotes (0: no count limit). */
  count: number;
  /** Quotes per second the feed aims for. */
  rate: number;
  /** Instruments quoted (ids 0 .. instruments-1). */
  instruments: number;
  /** Risk: largest absolute position per instrument, in units. */
  maxPosition: number;
  /** Risk: largest quantity of one order. */
  maxQty: number;
  /** Risk: orders passed per second (a token bucket holding a tenth of a second's worth). */
  maxOrderRate: number;
  /** Trip the kill switch once risk has seen this many orders (0: never by count). */
  killAfterOrders: number;
  /** Trip the kill switch when this file appears (checked every 100 ms); empty: no file. */
  killFile: string;
  /** Ring data bytes per channel (power of two). */
  ringBytes: number;
  /** Stages spin at least this long waiting for a message before they sleep, µs. */
  spinMicros: number;
  /** ... and at most this long when messages keep arriving just after they slept, µs. */
  spinMaxMicros: number;
  /** Print the final summary as one JSON line too. */
  json: boolean;
}

/**
 * With a core for each of the four stages and the runner, waiting stages may spin long (a hop
 * then costs about the ring's own latency). With fewer, a spinning stage takes the core from the
 * one it waits for, so they spin briefly and sleep (a hop then costs a futex wake-up).
 */
const MANY_CORES = os.availableParallelism() >= 5;
const SPIN_DEFAULT = MANY_CORES ? 50 : 20;
const SPIN_MAX_DEFAULT = MANY_CORES ? 1000 : 100;

export const USAGE = `usage: node --import tsx examples/trading/start.ts [options]
  --duration <s>            stop after s seconds (default 10; 0: until Ctrl-C)
  --count <n>               stop after the feed sent n quotes (default: no limit)
  --rate <n>                quotes per second (default 20000)
  --instruments <n>         instruments quoted (default 8)
  --max-position <n>        risk: largest |position| per instrument (default 500)
  --max-qty <n>             risk: largest order quantity (default 100)
  --max-order-rate <n>      risk: orders per second passed (default 1500)
  --kill-after-orders <n>   trip the kill switch after n orders (default: never)
  --kill-file <path>        trip the kill switch when this file exists
  --ring-bytes <n>          ring size per channel, a power of two (default 1048576)
  --spin-us <n>             least busy-wait before a stage sleeps, µs (default ${SPIN_DEFAULT}: 50 with 5 cores or more, else 20)
  --spin-max-us <n>         most busy-wait before a stage sleeps, µs (default ${SPIN_MAX_DEFAULT}: 1000 with 5 cores or more, else 100)
  --json                    also print the summary as one JSON line
The kill switch can also be tripped with: kill -USR1 <pid of start.ts>`;

export class UsageError extends Error {}

function int(name: string, raw: string | undefined, fallback: number, min: number, max: number): number {
  if (raw === undefined) return fallback;
  const n = Number(raw);
  if (!/^\d+$/.test(raw.trim()) || !Number.isSafeInteger(n) || n < min || n > max) {
    throw new UsageError(`--${name} must be a whole number from ${min} to ${max} (got ${JSON.stringify(raw)})`);
  }
  return n;
}

export function parseOptions(argv: string[]): TradingOptions {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        duration: { type: 'string' },
        count: { type: 'string' },
        rate: { type: 'string' },
        instruments: { type: 'string' },
        'max-position': { type: 'string' },
        'max-qty': { type: 'string' },
        'max-order-rate': { type: 'string' },
        'kill-after-orders': { type: 'string' },
        'kill-file': { type: 'string' },
        'ring-bytes': { type: 'string' },
        'spin-us': { type: 'string' },
        'spin-max-us': { type: 'string' },
        json: { type: 'boolean' },
        help: { type: 'boolean' },
      },
    }));
  } catch (err) {
    throw new UsageError((err as Error).message);
  }
  if (values.help) throw new UsageError('');
  const s = (k: string) => values[k] as string | undefined;
  const ringBytes = int('ring-bytes', s('ring-bytes'), 1 << 20, 4096, 1 << 28);
  if ((ringBytes & (ringBytes - 1)) !== 0) throw new UsageError(`--ring-bytes must be a power of two (got ${ringBytes})`);
  const spinMicros = int('spin-us', s('spin-us'), SPIN_DEFAULT, 0, 1_000_000);
  const o: TradingOptions = {
    duration: int('duration', s('duration'), 10, 0, 86_400),
    count: int('count', s('count'), 0, 0, 2 ** 32 - 2),
    rate: int('rate', s('rate'), 20_000, 1, 5_000_000),
    instruments: int('instruments', s('instruments'), 8, 1, 65_535),
    maxPosition: int('max-position', s('max-position'), 500, 1, 2 ** 31 - 1),
    maxQty: int('max-qty', s('max-qty'), 100, 1, 2 ** 31 - 1),
    maxOrderRate: int('max-order-rate', s('max-order-rate'), 1500, 1, 10_000_000),
    killAfterOrders: int('kill-after-orders', s('kill-after-orders'), 0, 0, 2 ** 32 - 2),
    killFile: s('kill-file') ?? '',
    ringBytes,
    spinMicros,
    spinMaxMicros: int('spin-max-us', s('spin-max-us'), Math.max(SPIN_MAX_DEFAULT, spinMicros), spinMicros, 1_000_000),
    json: values.json === true,
  };
  return o;
}

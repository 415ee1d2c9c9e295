import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration } from '../config/unit-text.ts';
import { LIMITS } from '../load/options.ts';
import { parseTarget, type LoadTarget } from '../load/target.ts';
import type { BenchCliOptions } from './bench.ts';

// `switchyard bench URL` on the command line: its options and how each is read. The load
// generator itself (bench.ts, src/load/) loads only when the command runs.

const intArg = (min: number, max: number) => (v: string): number => {
  const n = Number(v);
  if (!Number.isInteger(n) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
  return n;
};

const durationArg = (v: string): number => {
  const ms = parseDuration(v);
  if (ms === undefined) throw new InvalidArgumentError('expected a duration like 10s, 500ms or 1m');
  return ms;
};

const rateArg = (v: string): number => {
  const n = Number(v);
  if (!Number.isFinite(n) || n <= 0 || n > 10_000_000) throw new InvalidArgumentError('expected requests per second, a number above 0 and up to 10000000');
  return n;
};

const targetArg = (v: string): LoadTarget => {
  try {
    return parseTarget(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
};

/** Adds `bench` to the program (so it inherits the program's exit and output settings). */
export function addBenchCommand(program: Command): void {
  program
    .command('bench')
    .description('load a server and report requests/s, latency percentiles and errors by kind: http(s) (HTTP/1.1, pipelining, --http2), ws(s), tcp and udp echo round trips (docs/load.md)')
    .argument('<url>', 'http(s)://host[:port]/path, ws(s)://host[:port]/path, tcp://host:port, udp://host:port', targetArg)
    .addOption(new Option('-c, --connections <n>', 'connections to keep open').argParser(intArg(1, LIMITS.maxConnections)).default(10))
    .addOption(new Option('-d, --duration <duration>', 'how long to send requests, e.g. 10s (default 10s unless -n is given)').argParser(durationArg))
    .addOption(new Option('-n, --requests <n>', 'send this many requests in all, then stop (with -d too: whichever comes first)').argParser(intArg(1, Number.MAX_SAFE_INTEGER)))
    .addOption(new Option('-R, --rate <n>', 'open model: this many requests per second in all, each due at a fixed time from the start, latency counted from that time').argParser(rateArg))
    .addOption(new Option('-p, --pipeline <n>', 'requests in flight per connection: HTTP/1.1 pipelining; messages in flight for ws, tcp, udp (default 1)').argParser(intArg(1, LIMITS.maxPipeline)))
    .option('--http2', 'HTTP/2 (over TLS with ALPN for https://, h2c prior knowledge for http://)')
    .addOption(new Option('-m, --streams <n>', 'HTTP/2: concurrent streams per connection (default 1)').argParser(intArg(1, LIMITS.maxStreams)))
    .option('-X, --method <method>', 'http: request method (default GET, or POST with a body)')
    .option('-H, --header <header>', 'http, ws: extra request header "Name: value" (repeatable)', (v: string, prev: string[]) => [...prev, v], [])
    .option('--body <string>', 'http: request body; ws, tcp, udp: the message sent each round trip (default "ping\\n")')
    .option('--body-file <path>', 'as --body, read from a file')
    .addOption(new Option('--timeout <duration>', 'a request with no answer after this long is a timeout error and its connection is reopened').argParser(durationArg).default(2000, '2s'))
    .addOption(new Option('--warmup <duration>', 'send load for this long first, not counted (e.g. 2s)').argParser(durationArg).default(0, 'none'))
    .option('--json', 'print the report as JSON')
    .option('--progress', 'print a progress line on stderr every second (the default on a terminal)')
    .option('--no-progress', 'no progress line, even on a terminal')
    .option('--insecure', 'https, wss: do not verify the server\'s certificate')
    .option('--ca <file>', 'https, wss: trust the CA certificate(s) in this PEM file')
    .action(async (target: LoadTarget, opts: BenchCliOptions) => {
      const { benchCommand } = await import('./bench.ts');
      await benchCommand(target, opts);
    });
}

import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration } from '../config/unit-text.ts';
import { parsePorts } from '../scan/ports.ts';
import type { ScanCliOptions } from './scan.ts';

// `switchyard scan TARGETS` on the command line: its options and how each is read. The scanner
// itself (scan.ts, src/scan/) loads only when the command runs.

function wholeNumber(min: number, max: number): (v: string) => number {
  return (v) => {
    const n = Number(v);
    if (!/^\d+$/.test(v) || n < min || n > max) throw new InvalidArgumentError(`expected a whole number from ${min} to ${max}`);
    return n;
  };
}

function durationArg(v: string): number {
  const ms = parseDuration(v);
  if (ms === undefined || ms < 1) throw new InvalidArgumentError('expected a duration like 1s, 500ms or 2m');
  return ms;
}

function portsArg(v: string): number[] {
  try {
    return parsePorts(v);
  } catch (err) {
    throw new InvalidArgumentError((err as Error).message);
  }
}

function rateArg(v: string): number {
  const n = Number(v);
  if (!(n > 0) || !Number.isFinite(n)) throw new InvalidArgumentError('expected a positive number of attempts per second, e.g. 500');
  return n;
}

/** Adds `scan` to the program (so it inherits the program's exit and output settings). */
export function addScanCommand(program: Command): void {
  program
    .command('scan')
    .description('scan the TCP (connect) or UDP ports of the hosts named, and only those; scan only hosts you own or may test (docs/scan.md)')
    .argument('<targets...>', 'hosts: addresses, names or CIDR blocks, comma-separated or as separate arguments (127.0.0.1, example.lan, 10.0.0.0/24)')
    .option('-p, --ports <ports>', 'ports: 22,80,8000-8100; -p- for all 65535 (default: the common ports, see --top-ports)', portsArg)
    .option('--top-ports <n>', 'the first N of the common-port list, most often open first', wholeNumber(1, 65535))
    .addOption(new Option('-s <type>', 'scan type, as nmap: -sT TCP connect (the default), -sU UDP').choices(['T', 'U']).default('T'))
    .option('--udp', 'UDP scan (the same as -sU)')
    .option('--concurrency <n>', 'probes in flight at once', wholeNumber(1, 16384), 256)
    .addOption(new Option('--timeout <duration>', 'how long one attempt waits for an answer').argParser(durationArg).default(1000, '1s'))
    .option('--retries <n>', 'further attempts after one that got no answer', wholeNumber(0, 10), 1)
    .option('--rate <n>', 'at most this many connection attempts (or datagrams) per second (default: no limit but --concurrency)', rateArg)
    .option('--max-hosts <n>', 'refuse targets covering more addresses than this', wholeNumber(1, 2 ** 32), 65536)
    .option('--banner', 'TCP: read what each open port says: its first bytes, the Server header of HTTP ports, the certificate of TLS ports')
    .addOption(new Option('--banner-timeout <duration>', 'how long one banner grab may take').argParser(durationArg).default(2000, '2s'))
    .option('--tls', 'with --banner: handshake TLS on every open port, not only the usual TLS ports (443, 993, 8443, ...)')
    .option('--open', 'list only open ports')
    .option('--json', 'print one JSON document')
    .option('--grepable', 'print one line per host, in nmap\'s grepable format (-oG)')
    .option('--progress', 'report progress on stderr (the default when stderr is a terminal)')
    .option('--no-progress', 'no progress on stderr')
    .action(async (targets: string[], opts: ScanCliOptions) => {
      const { scanCommand } = await import('./scan.ts');
      await scanCommand(targets, opts);
    });
}

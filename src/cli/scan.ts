import { InvalidArgumentError, Option, type Command } from 'commander';
import { parseDuration } from '../config/units.ts';
import { parsePorts, progressLine, runScan, scanFormatter, ScanUsageError, topPorts, type OutputFormat, type ScanOptions } from '../scan/index.ts';

// `switchyard scan TARGETS`: a TCP connect (or UDP) port scan of exactly the hosts named
// (docs/scan.md). Results go to stdout as hosts finish; progress to stderr. Exit: 0 when the scan
// ran (whatever the ports' states), 1 when it could not, 2 for bad targets or options, 130 when
// stopped by Ctrl-C (the hosts finished so far are printed).

export interface ScanCliOptions {
  ports?: number[];
  topPorts?: number;
  s: 'T' | 'U';
  udp?: boolean;
  concurrency: number;
  timeout: number;
  retries: number;
  rate?: number;
  maxHosts?: number;
  banner?: boolean;
  bannerTimeout: number;
  tls?: boolean;
  open?: boolean;
  json?: boolean;
  grepable?: boolean;
  progress?: boolean;
}

class ScanExit extends Error {
  constructor(
    message: string,
    readonly exitCode: number,
  ) {
    super(message);
  }
}

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
    .action(async (targets: string[], opts: ScanCliOptions) => scanCommand(targets, opts));
}

export async function scanCommand(targets: string[], opts: ScanCliOptions): Promise<void> {
  if (opts.json && opts.grepable) throw new ScanExit('choose one of --json and --grepable', 2);
  if (opts.ports && opts.topPorts !== undefined) throw new ScanExit('choose one of -p and --top-ports', 2);
  const protocol = opts.udp || opts.s === 'U' ? 'udp' : 'tcp';
  if (protocol === 'udp' && (opts.banner || opts.tls)) throw new ScanExit('--banner and --tls are for TCP scans (a UDP scan shows each reply already)', 2);
  const format: OutputFormat = opts.json ? 'json' : opts.grepable ? 'grepable' : 'table';
  const formatter = scanFormatter(format);
  const showProgress = opts.progress ?? process.stderr.isTTY === true;
  const stopper = new AbortController();
  const onSigint = (): void => stopper.abort();
  process.once('SIGINT', onSigint);
  let progressShown = false;
  const clearProgress = (): void => {
    if (progressShown && process.stderr.isTTY) process.stderr.write('\r\x1b[K');
    progressShown = false;
  };
  const options: ScanOptions = {
    targets,
    protocol,
    concurrency: opts.concurrency,
    timeoutMs: opts.timeout,
    retries: opts.retries,
    maxHosts: opts.maxHosts,
    banner: opts.banner === true,
    bannerTimeoutMs: opts.bannerTimeout,
    tls: opts.tls === true,
    signal: stopper.signal,
    onStart: (start) => {
      const commandLine = ['switchyard', 'scan', ...process.argv.slice(3)].join(' ');
      process.stdout.write(formatter.start({ protocol, hostsTotal: start.hostsTotal, portCount: start.ports.length, startedAt: start.startedAt, commandLine, openOnly: opts.open === true }));
    },
    onHost: (host) => {
      clearProgress();
      process.stdout.write(formatter.host(host));
    },
  };
  if (opts.rate !== undefined) options.rate = opts.rate;
  if (showProgress) {
    // On a terminal one line rewritten in place; elsewhere (a log) one line every few seconds.
    options.progressIntervalMs = process.stderr.isTTY ? 1000 : 5000;
    options.onProgress = (p) => {
      const line = progressLine(p);
      if (process.stderr.isTTY) process.stderr.write(`\r\x1b[K${line}`);
      else process.stderr.write(`${line}\n`);
      progressShown = true;
    };
  }
  try {
    options.ports = opts.ports ?? topPorts(protocol, opts.topPorts);
    const summary = await runScan(options);
    clearProgress();
    process.stdout.write(formatter.end(summary));
    if (summary.interrupted && stopper.signal.aborted) process.exitCode = 130;
  } catch (err) {
    clearProgress();
    if (err instanceof ScanUsageError) throw new ScanExit(err.message, 2);
    throw err;
  } finally {
    process.off('SIGINT', onSigint);
  }
}

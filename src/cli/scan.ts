import { progressLine, runScan, scanFormatter, ScanUsageError, topPorts, type OutputFormat, type ScanOptions } from '../scan/index.ts';

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

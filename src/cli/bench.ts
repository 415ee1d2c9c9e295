import { readFileSync } from 'node:fs';
import { formatReport, LIMITS, runBench, type LoadOptions, type LoadTarget } from '../load/index.ts';

// `switchyard bench URL`: load a server and report requests/s, latency percentiles and errors
// by kind (docs/load.md). Exit: 0 when at least one request succeeded, 1 when none did, 2 for
// bad usage.

export interface BenchCliOptions {
  connections: number;
  duration?: number;
  requests?: number;
  rate?: number;
  pipeline?: number;
  http2?: boolean;
  streams?: number;
  method?: string;
  header: string[];
  body?: string;
  bodyFile?: string;
  timeout: number;
  warmup: number;
  json?: boolean;
  progress?: boolean;
  insecure?: boolean;
  ca?: string;
}

/** Bad usage found after parsing (combinations of options): exit 2. */
class BenchUsageError extends Error {
  readonly exitCode = 2;
}

/** The payload of ws, tcp and udp round trips when no --body is given. */
const DEFAULT_PAYLOAD = 'ping\n';
const DEFAULT_DURATION_MS = 10_000;

function parseHeader(line: string): [string, string] {
  const colon = line.indexOf(':');
  const name = colon > 0 ? line.slice(0, colon).trim() : '';
  if (!/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/.test(name)) throw new BenchUsageError(`-H "${line}": expected "Name: value"`);
  const value = line.slice(colon + 1).trim();
  if (/[\r\n]/.test(value)) throw new BenchUsageError(`-H "${line}": a header value cannot hold a line break`);
  return [name, value];
}

function readBody(o: BenchCliOptions, target: LoadTarget): Buffer {
  if (o.body !== undefined && o.bodyFile !== undefined) throw new BenchUsageError('give --body or --body-file, not both');
  let body: Buffer;
  if (o.bodyFile !== undefined) {
    try {
      body = readFileSync(o.bodyFile);
    } catch (err) {
      throw new BenchUsageError(`--body-file ${o.bodyFile}: ${(err as Error).message}`);
    }
  } else if (o.body !== undefined) {
    body = Buffer.from(o.body);
  } else {
    body = Buffer.from(target.protocol === 'http' ? '' : DEFAULT_PAYLOAD);
  }
  if (body.length > LIMITS.maxBodyBytes) throw new BenchUsageError(`the body is ${body.length} bytes; at most ${LIMITS.maxBodyBytes}`);
  if (target.protocol !== 'http' && body.length === 0) throw new BenchUsageError(`${target.protocol} round trips need a payload of at least one byte`);
  if (target.protocol === 'udp' && body.length > LIMITS.maxDatagramBytes) throw new BenchUsageError(`a UDP payload is at most ${LIMITS.maxDatagramBytes} bytes; this one is ${body.length}`);
  return body;
}

/** The checked options of one run, from the parsed command line. */
export function benchOptions(target: LoadTarget, o: BenchCliOptions): LoadOptions {
  if (o.http2 && target.protocol !== 'http') throw new BenchUsageError('--http2 is for http:// and https:// targets');
  if (o.http2 && o.pipeline !== undefined) throw new BenchUsageError('--pipeline is HTTP/1.1 pipelining; with --http2 use --streams');
  if (!o.http2 && o.streams !== undefined) throw new BenchUsageError('--streams is for --http2');
  if (target.protocol !== 'http' && (o.method !== undefined || o.header.length > 0) && target.protocol !== 'ws') throw new BenchUsageError(`--method and -H are for http and ws targets, not ${target.protocol}://`);
  let ca: Buffer | undefined;
  if (o.ca !== undefined) {
    try {
      ca = readFileSync(o.ca);
    } catch (err) {
      throw new BenchUsageError(`--ca ${o.ca}: ${(err as Error).message}`);
    }
  }
  const body = readBody(o, target);
  const method = (o.method ?? (body.length > 0 && target.protocol === 'http' ? 'POST' : 'GET')).toUpperCase();
  if (!/^[A-Z]+$/.test(method)) throw new BenchUsageError(`--method ${o.method}: expected a method name like GET or POST`);
  if (o.duration !== undefined && o.duration <= 0) throw new BenchUsageError('--duration must be above 0');
  return {
    target,
    connections: o.connections,
    durationMs: o.duration ?? (o.requests === undefined ? DEFAULT_DURATION_MS : undefined),
    requests: o.requests,
    rate: o.rate,
    pipeline: o.pipeline ?? 1,
    http2: o.http2 === true,
    streams: o.streams ?? 1,
    method,
    headers: o.header.map(parseHeader),
    body,
    timeoutMs: o.timeout,
    warmupMs: o.warmup,
    tls: { insecure: o.insecure === true, ca },
  };
}

export async function benchCommand(target: LoadTarget, o: BenchCliOptions): Promise<void> {
  const options = benchOptions(target, o);
  const showProgress = o.progress ?? process.stderr.isTTY === true;
  const report = await runBench(options, { progress: showProgress ? (line) => process.stderr.write(line) : undefined });
  process.stdout.write(o.json ? `${JSON.stringify(report, null, 2)}\n` : formatReport(report));
  if (report.successes === 0) process.exitCode = 1;
}

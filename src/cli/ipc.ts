import { readFileSync } from 'node:fs';
import os from 'node:os';
import { createInterface } from 'node:readline';
import type { Channel } from '../ipc/channel.ts';
import type { ChannelServer } from '../ipc/server.ts';
import { loadIpcModule, pick } from './ipc/load.ts';
import { formatIpcUrl, type IpcUrl } from './ipc/url.ts';
import { formatBytes, formatTable, runBench, type Outcome } from './ipc/bench.ts';
import { TRANSPORT_NAMES } from './ipc/transport-names.ts';
import type { Plan } from './ipc/bench-roles.ts';

// `switchyard ipc bench | listen | send`. Failures that are the user's (bad URL, unknown
// transport) exit 2 from the wiring in main.ts; a connection that fails exits 1 with one line.

class IpcCliError extends Error {
  readonly code = 'SWITCHYARD_IPC_CLI';
}

// ---- bench --------------------------------------------------------------------------------

export interface IpcBenchOptions {
  transports?: string[];
  quick?: boolean;
  size?: number;
  json?: boolean;
  runs?: number;
}

function progressPrinter(total: number): { progress: (label: string, f: number) => void; step: (label: string, o: Outcome) => void; end: () => void } {
  const tty = process.stderr.isTTY === true;
  let done = 0;
  let last = 0;
  const width = 30;
  const draw = (label: string, f: number) => {
    const overall = Math.min(1, (done + f) / total);
    const filled = Math.round(overall * width);
    process.stderr.write(`\r\x1b[2K[${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${String(Math.round(overall * 100)).padStart(3)}%  ${label} ${Math.round(f * 100)}%`);
  };
  return {
    progress(label, f) {
      if (!tty) return;
      const t = Date.now();
      if (f !== 0 && f !== 1 && t - last < 80) return;
      last = t;
      draw(label, f);
    },
    step(label, o) {
      done++;
      const summary = o.ok
        ? `p50 ${o.figures.p50us.toFixed(2)} µs, p99 ${o.figures.p99us.toFixed(2)} µs, ${o.figures.mbps.toFixed(0)} MB/s`
        : `${o.unavailable ? 'not available' : 'FAILED'}: ${o.reason}`;
      if (tty) process.stderr.write(`\r\x1b[2K${label}: ${summary}\n`);
      else process.stderr.write(`ipc bench [${done}/${total}] ${label}: ${summary}\n`);
    },
    end() {
      if (tty) process.stderr.write('\r\x1b[2K');
    },
  };
}

function busyJiffies(): { busy: number; total: number } | undefined {
  try {
    const f = readFileSync('/proc/stat', 'utf8').split('\n')[0].trim().split(/\s+/).slice(1).map(Number);
    const idle = f[3] + (f[4] ?? 0);
    const total = f.reduce((a, b) => a + b, 0);
    return { busy: total - idle, total };
  } catch {
    return undefined;
  }
}

/** The machine and how busy it was just before the run: figures on a loaded machine are noisy. */
async function machineNote(sampleMs: number): Promise<string> {
  const cpus = os.cpus();
  const a = busyJiffies();
  await new Promise((r) => setTimeout(r, sampleMs));
  const b = busyJiffies();
  const busy = a && b && b.total > a.total ? ` ${(((b.busy - a.busy) / (b.total - a.total)) * 100).toFixed(0)}% of all CPU was busy in the ${sampleMs} ms before the run;` : '';
  return `Machine: ${cpus.length} cores (${cpus[0]?.model.trim() ?? 'unknown'}), Node ${process.version};${busy} load average ${os.loadavg()[0].toFixed(2)}.`;
}

export async function ipcBenchCommand(options: IpcBenchOptions): Promise<void> {
  const transports = options.transports ?? [...TRANSPORT_NAMES];
  const plan: Plan = options.quick
    ? { warmup: 50, rounds: 300, bytes: options.size ?? 8 * 1024 * 1024, chunk: 64 * 1024 }
    : { warmup: 1000, rounds: 10_000, bytes: options.size ?? 1024 ** 3, chunk: 64 * 1024 };
  const runs = options.runs ?? (options.quick ? 1 : 3);
  const printer = progressPrinter(transports.length * 2 * runs);
  if (!options.json) {
    process.stderr.write(`ipc bench: ${transports.join(', ')}; ${plan.rounds} round trips, ${formatBytes(plan.bytes)} bulk, ${runs} run${runs === 1 ? '' : 's'}${options.quick ? ' (quick)' : ''}\n`);
  }
  const machine = await machineNote(options.quick ? 200 : 1000);
  const rows = await runBench({ transports, plan, timeoutMs: options.quick ? 20_000 : 180_000, runs, progress: printer.progress, step: printer.step });
  printer.end();
  if (options.json) process.stdout.write(`${JSON.stringify({ machine, plan, rows }, null, 2)}\n`);
  else process.stdout.write(`${machine}\n${formatTable(rows, plan, runs, options.quick === true)}\n`);
  // Exit 1 if something that exists broke; missing transports are not failures.
  if (rows.some((r) => (!r.raw.ok && !r.raw.unavailable) || (!r.framed.ok && !r.framed.unavailable))) process.exitCode = 1;
}

// ---- listen / send ------------------------------------------------------------------------

async function listenOn(url: IpcUrl): Promise<ChannelServer> {
  switch (url.transport) {
    case 'tcp': {
      const f = pick<(a: { host: string; port: number }) => Promise<ChannelServer & { port: number }>>(await loadIpcModule('transports/tcp'), ['listenTcp']);
      if ('reason' in f) throw new IpcCliError(`tcp transport not available: ${f.reason}`);
      return f.fn({ host: url.host, port: url.port });
    }
    case 'unix': {
      const f = pick<(p: string) => Promise<ChannelServer>>(await loadIpcModule('transports/unix'), ['listenUnix']);
      if ('reason' in f) throw new IpcCliError(`unix transport not available: ${f.reason}`);
      return f.fn(url.abstract ? `@${url.path}` : url.path);
    }
    default:
      throw new IpcCliError(`ipc listen: ${url.transport} has no listening server`);
  }
}

async function connectTo(url: IpcUrl): Promise<Channel> {
  switch (url.transport) {
    case 'tcp': {
      const f = pick<(a: { host: string; port: number }) => Promise<Channel>>(await loadIpcModule('transports/tcp'), ['connectTcp']);
      if ('reason' in f) throw new IpcCliError(`tcp transport not available: ${f.reason}`);
      return f.fn({ host: url.host, port: url.port });
    }
    case 'unix': {
      const f = pick<(p: string) => Promise<Channel>>(await loadIpcModule('transports/unix'), ['connectUnix']);
      if ('reason' in f) throw new IpcCliError(`unix transport not available: ${f.reason}`);
      return f.fn(url.abstract ? `@${url.path}` : url.path);
    }
    case 'fifo': {
      const f = pick<(p: string) => Promise<Channel>>(await loadIpcModule('transports/fifo'), ['openFifoChannel']);
      if ('reason' in f) throw new IpcCliError(`fifo transport not available: ${f.reason}`);
      return f.fn(url.path);
    }
    case 'shm': {
      const f = pick<(n: string) => Channel>(await loadIpcModule('transports/shm'), ['openShmChannel']);
      if ('reason' in f) throw new IpcCliError(`shm transport not available: ${f.reason}`);
      return f.fn(url.name);
    }
  }
}

const strictUtf8 = new TextDecoder('utf-8', { fatal: true });

/** A message as a line: its text when it is printable UTF-8, else its length and first bytes in hex. */
export function describeMessage(m: Uint8Array): string {
  try {
    const text = strictUtf8.decode(m);
    // eslint-disable-next-line no-control-regex
    if (!/[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]/.test(text)) return text;
  } catch {
    // not UTF-8
  }
  const head = Buffer.from(m.subarray(0, 16)).toString('hex');
  return `<${m.byteLength} bytes: ${head}${m.byteLength > 16 ? '…' : ''}>`;
}

/** The one channel `listen` serves, and the address to print once a peer can connect. */
async function acceptOne(url: IpcUrl, bound: (address: string) => void): Promise<Channel | undefined> {
  if (url.transport === 'fifo') {
    const f = pick<(p: string, o: object) => Promise<Channel>>(await loadIpcModule('transports/fifo'), ['createFifoChannel']);
    if ('reason' in f) throw new IpcCliError(`fifo transport not available: ${f.reason}`);
    // The FIFOs exist once the call returns (mkfifo runs before its first wait); it then waits for the peer.
    const opening = f.fn(url.path, { openTimeout: 24 * 3600_000 });
    opening.catch(() => {});
    bound(formatIpcUrl(url));
    return opening;
  }
  if (url.transport === 'shm') {
    const f = pick<(n: string) => Channel>(await loadIpcModule('transports/shm'), ['createShmChannel']);
    if ('reason' in f) throw new IpcCliError(`shm transport not available: ${f.reason}`);
    const channel = f.fn(url.name);
    bound(formatIpcUrl(url));
    return channel;
  }
  const server = await listenOn(url);
  bound(formatIpcUrl(url.transport === 'tcp' && 'port' in server ? { ...url, port: (server as { port: number }).port } : url));
  const stop = () => void server.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  const first = await server.accept()[Symbol.asyncIterator]().next();
  await server.close();
  process.off('SIGINT', stop);
  process.off('SIGTERM', stop);
  return first.done ? undefined : first.value;
}

/** Serves one peer: prints its address, then each message, and exits when the peer closes. */
export async function ipcListenCommand(url: IpcUrl): Promise<void> {
  const channel = await acceptOne(url, (address) => process.stdout.write(`listening on ${address}\n`));
  if (!channel) return;
  // Ctrl-C closes the channel (unlinking FIFOs and shm segments this side created).
  const stop = () => void channel.close().then(() => process.exit(0));
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
  if (url.transport !== 'shm') process.stderr.write(`peer connected${channel.peer ? ` (pid ${channel.peer.pid}, uid ${channel.peer.uid})` : ''}\n`);
  let count = 0;
  try {
    for await (const m of channel) {
      count++;
      process.stdout.write(`${describeMessage(m)}\n`);
    }
  } finally {
    await channel.close();
  }
  process.stderr.write(`peer closed the channel after ${count} message${count === 1 ? '' : 's'}\n`);
}

export async function ipcSendCommand(url: IpcUrl, messages: string[]): Promise<void> {
  const channel = await connectTo(url);
  const encoder = new TextEncoder();
  let sent = 0;
  const sendOne = async (text: string) => {
    if (text.length === 0) return; // empty messages are not allowed on a channel
    await channel.send(encoder.encode(text));
    sent++;
  };
  if (messages.length > 0) for (const m of messages) await sendOne(m);
  else for await (const line of createInterface({ input: process.stdin, crlfDelay: Infinity })) await sendOne(line);
  await channel.close();
  process.stderr.write(`sent ${sent} message${sent === 1 ? '' : 's'} to ${formatIpcUrl(url)}\n`);
}

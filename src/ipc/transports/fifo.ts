import fs from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Channel, ChannelOptions } from '../channel.ts';
import { IpcError } from '../errors.ts';
import { StreamChannel } from '../stream-channel.ts';
import { mkfifo } from '../../sys/fifo.ts';
import { FdPairDuplex } from './fd-duplex.ts';

// A two-way channel over a pair of FIFOs. Naming, from the CREATOR's side of `path`:
//   `<path>.in`   the peer writes, the creator reads
//   `<path>.out`  the creator writes, the peer reads
// The creator (createFifoChannel) makes both with mkfifo mode 0600 and unlinks them on close; the
// peer (openFifoChannel) opens the existing pair.
//
// Opening: each side first opens its read end (O_RDONLY|O_NONBLOCK succeeds with no writer), then
// its write end. O_WRONLY|O_NONBLOCK fails with ENXIO until the other side has its read end open,
// so the write open is retried (backing off) until `openTimeout` -> IpcError TIMEOUT. Because both
// sides open the read end first, neither can wait on the other forever.

export interface FifoOptions extends ChannelOptions {
  /** Milliseconds to wait for the other side to open its end; default 10 s. */
  openTimeout?: number;
  /** FIFO permission bits for the creator; default 0o600. */
  mode?: number;
}

export function fifoPaths(path: string): { in: string; out: string } {
  return { in: `${path}.in`, out: `${path}.out` };
}

const { O_RDONLY, O_WRONLY, O_NONBLOCK } = fs.constants;

async function openWriter(path: string, deadline: number, timeout: number): Promise<number> {
  let wait = 2;
  for (;;) {
    try {
      return fs.openSync(path, O_WRONLY | O_NONBLOCK);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENXIO') throw err;
    }
    if (Date.now() >= deadline) throw new IpcError('SWITCHYARD_IPC_TIMEOUT', `no reader opened the FIFO ${path} within ${timeout} ms`);
    await sleep(Math.min(wait, Math.max(1, deadline - Date.now())));
    wait = Math.min(wait * 2, 50);
  }
}

function checkFifo(path: string): void {
  const st = fs.statSync(path);
  if (!st.isFIFO()) throw new IpcError('SWITCHYARD_IPC_PROTOCOL', `${path} is not a FIFO`);
}

async function openPair(readPath: string, writePath: string, options: FifoOptions): Promise<FdPairDuplex> {
  const timeout = options.openTimeout ?? 10_000;
  const readFd = fs.openSync(readPath, O_RDONLY | O_NONBLOCK);
  let writeFd: number;
  try {
    writeFd = await openWriter(writePath, Date.now() + timeout, timeout);
  } catch (err) {
    fs.closeSync(readFd);
    throw err;
  }
  return new FdPairDuplex(readFd, writeFd);
}

/** Closes the channel, then runs `after` (once), whatever close did. */
function onClose(channel: StreamChannel, after: () => void): Channel {
  let done = false;
  const cleanup = () => {
    if (done) return;
    done = true;
    after();
  };
  const close = channel.close.bind(channel);
  channel.close = async () => {
    try {
      await close();
    } finally {
      cleanup();
    }
  };
  return channel;
}

function unlinkQuietly(path: string): void {
  try {
    fs.unlinkSync(path);
  } catch {
    // already gone
  }
}

/** Creates `<path>.in` and `<path>.out` (mode 0600) and waits for a peer to open them. */
export async function createFifoChannel(path: string, options: FifoOptions = {}): Promise<Channel> {
  const p = fifoPaths(path);
  mkfifo(p.in, options.mode ?? 0o600);
  try {
    mkfifo(p.out, options.mode ?? 0o600);
  } catch (err) {
    unlinkQuietly(p.in);
    throw err;
  }
  const unlink = () => {
    unlinkQuietly(p.in);
    unlinkQuietly(p.out);
  };
  let duplex: FdPairDuplex;
  try {
    duplex = await openPair(p.in, p.out, options);
  } catch (err) {
    unlink();
    throw err;
  }
  return onClose(new StreamChannel('fifo', duplex, options), unlink);
}

/** Opens the pair of FIFOs a creator made at `path`. */
export async function openFifoChannel(path: string, options: FifoOptions = {}): Promise<Channel> {
  const p = fifoPaths(path);
  checkFifo(p.in);
  checkFifo(p.out);
  const duplex = await openPair(p.out, p.in, options);
  return new StreamChannel('fifo', duplex, options);
}

import net from 'node:net';
import fs from 'node:fs';
import { isMainThread, workerData, type MessagePort } from 'node:worker_threads';
import type { Channel } from '../../ipc/channel.ts';
import { loadIpcModule, pick } from './load.ts';
import type { RingChannel } from '../../ipc/transports/ring-channel.ts';
import { peerChannel, peerRawPort, peerRawSab, peerRawStream, peerView, sabSize, type Plan } from './bench-roles.ts';

// The far side of `switchyard ipc bench`: run as a child process (spec as JSON in argv[2]) or as
// a worker thread (spec in workerData). It connects to what the parent set up, echoes the latency
// rounds, sinks the bulk bytes, answers one byte, and exits 0; any failure goes to stderr, exit 1.

export interface PeerSpec {
  transport: string;
  mode: 'raw' | 'framed';
  plan: Plan;
  host?: string;
  port?: number;
  path?: string;
  /** FIFOs: [parent->child, child->parent] */
  paths?: [string, string];
  name?: string;
  shmMode?: 'spin' | 'futex';
}

function openFifo(path: string, read: boolean): net.Socket {
  // O_RDWR so neither open waits for the other side; a FIFO fd reads fine as a net.Socket.
  const fd = fs.openSync(path, fs.constants.O_RDWR | fs.constants.O_NONBLOCK);
  return new net.Socket({ fd, readable: read, writable: !read });
}

async function framed(spec: PeerSpec): Promise<Channel> {
  switch (spec.transport) {
    case 'tcp': {
      const f = pick<(a: { host: string; port: number }) => Promise<Channel>>(await loadIpcModule('transports/tcp'), ['connectTcp']);
      if ('reason' in f) throw new Error(f.reason);
      return f.fn({ host: spec.host ?? '127.0.0.1', port: spec.port! });
    }
    case 'unix': {
      const f = pick<(p: string) => Promise<Channel>>(await loadIpcModule('transports/unix'), ['connectUnix']);
      if ('reason' in f) throw new Error(f.reason);
      return f.fn(spec.path!);
    }
    case 'pipe': {
      const f = pick<() => Channel>(await loadIpcModule('transports/pipe'), ['pipeChannelFromFds']);
      if ('reason' in f) throw new Error(f.reason);
      return f.fn();
    }
    case 'fifo': {
      const f = pick<(p: string) => Promise<Channel>>(await loadIpcModule('transports/fifo'), ['openFifoChannel']);
      if ('reason' in f) throw new Error(f.reason);
      return f.fn(spec.path!);
    }
    case 'shm': {
      const f = pick<(n: string, o: object) => Channel>(await loadIpcModule('transports/shm'), ['openShmChannel']);
      if ('reason' in f) throw new Error(f.reason);
      return f.fn(spec.name!, { mode: spec.shmMode ?? 'futex' });
    }
    default:
      throw new Error(`no framed peer for ${spec.transport}`);
  }
}

async function runProcess(spec: PeerSpec): Promise<void> {
  if (spec.mode === 'framed' && spec.transport === 'shm-view') {
    const f = pick<(n: string, o: object) => RingChannel>(await loadIpcModule('transports/shm'), ['openShmChannel']);
    if ('reason' in f) throw new Error(f.reason);
    const ch = f.fn(spec.name!, { mode: 'futex' });
    peerView(ch, spec.plan);
    return ch.close();
  }
  if (spec.mode === 'framed') return peerChannel(await framed(spec), spec.plan);
  let input: net.Socket;
  let output: net.Socket;
  switch (spec.transport) {
    case 'tcp':
    case 'unix': {
      const s = spec.transport === 'tcp' ? net.connect({ host: spec.host ?? '127.0.0.1', port: spec.port!, noDelay: true }) : net.connect(spec.path!);
      await new Promise<void>((resolve, reject) => s.once('connect', resolve).once('error', reject));
      input = output = s;
      break;
    }
    case 'pipe':
      input = new net.Socket({ fd: 3, readable: true, writable: false });
      output = new net.Socket({ fd: 4, readable: false, writable: true });
      break;
    case 'shm':
    case 'shm-view': {
      const sys = await import('../../sys/shm.ts');
      const seg = sys.shmOpen(spec.name!, sabSize(spec.plan.chunk));
      peerRawSab(seg.buffer, spec.plan);
      seg.unmap();
      return;
    }
    case 'fifo':
      input = openFifo(spec.paths![0], true);
      output = openFifo(spec.paths![1], false);
      break;
    default:
      throw new Error(`no raw peer for ${spec.transport}`);
  }
  await peerRawStream(input, output, spec.plan);
  input.destroy();
  output.destroy();
}

async function runThread(data: { spec: PeerSpec; port?: MessagePort; sab?: SharedArrayBuffer; attach?: unknown }): Promise<void> {
  const { spec } = data;
  if (spec.mode === 'framed' && spec.transport === 'worker') {
    const f = pick<(p: MessagePort, o: object) => Channel>(await loadIpcModule('transports/worker'), ['workerChannel']);
    if ('reason' in f) throw new Error(f.reason);
    return peerChannel(f.fn(data.port!, { transfer: false }), spec.plan);
  }
  if (spec.mode === 'framed' && spec.transport === 'shm-thread') {
    // A worker that does nothing else may block in Atomics.wait (the transport's 'sync' mode).
    const f = pick<(p: unknown, o: object) => Channel>(await loadIpcModule('transports/shm-thread'), ['openShmThreadChannel']);
    if ('reason' in f) throw new Error(f.reason);
    return peerChannel(f.fn(data.attach, { wait: 'sync' }), spec.plan);
  }
  if (spec.mode === 'raw' && spec.transport === 'worker') {
    await peerRawPort(data.port!, spec.plan);
    data.port!.close();
    return;
  }
  if (spec.mode === 'raw' && spec.transport === 'shm-thread') {
    peerRawSab(data.sab!, spec.plan);
    return;
  }
  throw new Error(`no thread peer for ${spec.mode} ${spec.transport}`);
}

const main = isMainThread ? runProcess(JSON.parse(process.argv[2] ?? '{}') as PeerSpec) : runThread(workerData);
main.then(
  () => {
    if (isMainThread) process.exit(0);
  },
  (err: Error) => {
    process.stderr.write(`ipc bench peer: ${err.message}\n`);
    process.exit(1);
  },
);

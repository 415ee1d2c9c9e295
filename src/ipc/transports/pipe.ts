import { spawn, type ChildProcess } from 'node:child_process';
import type { Channel, ChannelOptions } from '../channel.ts';
import { StreamChannel } from '../stream-channel.ts';
import { O_CLOEXEC, closeFd, pipe2, setPipeSize } from '../../sys/pipe.ts';
import { FdPairDuplex } from './fd-duplex.ts';

// A channel to a child process over two real anonymous pipes made with pipe2() (Node's own
// 'pipe' stdio is a socketpair, whose size cannot be set). The child gets the pipes as extra
// stdio entries: it READS on fd 3 and WRITES on fd 4 (also announced in the environment as
// SWITCHYARD_IPC_PIPE_FDS=3,4) and builds its side with `pipeChannelFromFds(3, 4)`.

export const CHILD_READ_FD = 3;
export const CHILD_WRITE_FD = 4;

export interface SpawnWithPipesOptions extends ChannelOptions {
  /** Kernel buffer size for both pipes, in bytes (64 KiB by default; up to pipe-max-size). */
  pipeSize?: number;
  /** stdin, stdout, stderr of the child; default ['ignore', 'inherit', 'inherit']. */
  stdio?: ['ignore' | 'inherit' | 'pipe', 'ignore' | 'inherit' | 'pipe', 'ignore' | 'inherit' | 'pipe'];
  env?: NodeJS.ProcessEnv;
  cwd?: string;
}

export function spawnWithPipes(command: string, args: readonly string[], options: SpawnWithPipesOptions = {}): { child: ChildProcess; channel: Channel } {
  // O_CLOEXEC: only the dup2'd copies at fds 3 and 4 reach the child, never these originals.
  const [toChildR, toChildW] = pipe2(O_CLOEXEC);
  let fromChildR: number;
  let fromChildW: number;
  try {
    [fromChildR, fromChildW] = pipe2(O_CLOEXEC);
  } catch (err) {
    closeFd(toChildR);
    closeFd(toChildW);
    throw err;
  }
  let child: ChildProcess;
  try {
    if (options.pipeSize !== undefined) {
      setPipeSize(toChildW, options.pipeSize);
      setPipeSize(fromChildW, options.pipeSize);
    }
    child = spawn(command, args, {
      stdio: [...(options.stdio ?? ['ignore', 'inherit', 'inherit']), toChildR, fromChildW],
      env: { ...(options.env ?? process.env), SWITCHYARD_IPC_PIPE_FDS: `${CHILD_READ_FD},${CHILD_WRITE_FD}` },
      cwd: options.cwd,
    });
  } catch (err) {
    for (const fd of [toChildR, toChildW, fromChildR, fromChildW]) closeFd(fd);
    throw err;
  }
  // The child has its copies now (spawn forks synchronously); the parent keeps only its ends, so
  // the child's death is an EOF here.
  closeFd(toChildR);
  closeFd(fromChildW);
  const channel = new StreamChannel('pipe', new FdPairDuplex(fromChildR, toChildW), options);
  return { child, channel };
}

/** In the child: the channel to the parent over the pipes it was given (default fds 3 and 4). */
export function pipeChannelFromFds(readFd = CHILD_READ_FD, writeFd = CHILD_WRITE_FD, options: ChannelOptions = {}): Channel {
  return new StreamChannel('pipe', new FdPairDuplex(readFd, writeFd), options);
}

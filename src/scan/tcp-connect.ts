import { connect, type Socket } from 'node:net';
import { isLocalShortage, unreachableReason, type ProbeOutcome } from './states.ts';

// One TCP connect probe: a full handshake through the kernel (no raw sockets, no privileges),
// as nmap's -sT does. Connected: open. Reset: closed. Nothing before the timer, or an
// unreachable answer: filtered. The socket is destroyed at once unless the caller wants it for
// a banner.

export interface TcpProbe extends ProbeOutcome {
  /** The connected socket when `keepOpen` asked for it and the port is open; the caller ends it. */
  socket?: Socket;
}

/** A failure of this machine, not an answer about the port: the scan retries later or stops. */
export class LocalShortageError extends Error {
  override name = 'LocalShortageError';
  /** The CLI's exit status for it: the scan could not run. */
  readonly exitCode = 1;
  constructor(readonly code: string) {
    super(`out of local resources (${code}): lower --concurrency or raise the open-file limit (ulimit -n)`);
  }
}

/** Tries one connection to host:port within `timeoutMs`. */
export function probeTcp(host: string, port: number, options: { timeoutMs: number; keepOpen?: boolean }): Promise<TcpProbe> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host, port, noDelay: true });
    let settled = false;
    const finish = (outcome: TcpProbe | Error): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.removeAllListeners('connect');
      if (outcome instanceof Error) {
        socket.destroy();
        reject(outcome);
        return;
      }
      if (outcome.socket) {
        // The banner reader takes over; errors after this point are its to see.
        socket.removeAllListeners('error');
        socket.on('error', () => {});
        resolve(outcome);
        return;
      }
      // Nothing more is wanted from it: destroy frees the descriptor now, with no graceful close to wait on.
      socket.destroy();
      resolve(outcome);
    };
    const timer = setTimeout(() => finish({ state: 'filtered', reason: 'no-response' }), options.timeoutMs);
    socket.once('connect', () => {
      finish(options.keepOpen ? { state: 'open', reason: 'syn-ack', socket } : { state: 'open', reason: 'syn-ack' });
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      const code = err.code;
      if (code === 'ECONNREFUSED' || code === 'ECONNRESET') return finish({ state: 'closed', reason: 'conn-refused' });
      const unreachable = unreachableReason(code);
      if (unreachable) return finish({ state: 'filtered', reason: unreachable });
      if (code === 'ETIMEDOUT') return finish({ state: 'filtered', reason: 'no-response' });
      if (isLocalShortage(code)) return finish(new LocalShortageError(code ?? 'unknown'));
      finish(err);
    });
  });
}

import type { Socket } from 'node:dgram';

// A dgram socket's native UDP handle. Node keeps it in the socket's internal state, under a symbol
// described "state symbol" (lib/dgram.js, kStateSymbol; the same in Node 20 and 24); the public
// `_handle` getter reaches it too but prints a deprecation warning (DEP0112).

/** The parts of Node's UDP handle (udp_wrap) used here. */
export interface DatagramHandle {
  fd?: number;
  /** Starts reading (uv_udp_recv_start); 0 or a negative errno. */
  recvStart(): number;
  /** Stops reading (uv_udp_recv_stop); datagrams stay in the kernel's queue. */
  recvStop(): number;
}

/** The native handle of a dgram socket, or undefined once it is closed (or when Node keeps it elsewhere). */
export function datagramHandle(socket: Socket): DatagramHandle | undefined {
  const state = Object.getOwnPropertySymbols(socket).find((s) => s.description === 'state symbol');
  const handle = state && (socket as unknown as Record<symbol, { handle?: DatagramHandle | null } | undefined>)[state]?.handle;
  return handle && typeof handle.recvStart === 'function' && typeof handle.recvStop === 'function' ? handle : undefined;
}

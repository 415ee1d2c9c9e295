import { spawn } from 'node:child_process';
import type { Server as NetServer } from 'node:net';
import { Socket as DgramSocket } from 'node:dgram';
import type { ListeningSocket } from '../listeners/types.ts';
import { datagramHandle } from '../sys/dgram-handle.ts';

// Zero-downtime upgrade (nginx's binary upgrade, Envoy's hot restart): the running daemon starts
// a new one (the same command line, so a new version installed in place is what starts), hands it
// every listening socket over the IPC channel of the child it spawned (Node passes the socket
// handles: SCM_RIGHTS underneath), and only once the new daemon reports ready does it stop
// accepting, drain and exit. Both accept on the same sockets for that moment, so no connection is
// refused; a new daemon that fails to start (a bad config, a crash) is killed and the old one goes
// on as if nothing happened.
//
//   old                                   new (env SWITCHYARD_UPGRADE_FROM=<old pid>)
//   spawn, detached  ------------------>  starts, sends {hello}
//   {socket name where} + handle, ... -> collects the sockets
//   {sent count}  --------------------->  Yard.start with them (listeners take them, no bind)
//                 <---------------------  {ready pid} (or {failed error}, then exits)
//   stops accepting, drains, exits        disconnects; now the only daemon
//
// One message per listening socket, named by its listener; `where` (`tcp:HOST:PORT`,
// `udp:HOST:PORT`, a unix path) lets the new daemon take it only for a listener of the same
// name at the same address. An http listener with HTTP/3 has two: its TCP socket under its name
// and its UDP socket under `<name>#h3` (http3SocketName, src/listeners/types.ts), so HTTP/3
// starts at once in the new daemon too. Both processes then read that one UDP socket: QUIC
// connection state stays in the old daemon (its connections drain there, as a quic listener's
// do), and a datagram of one of them that the new daemon reads is dropped as an unknown
// connection (a new connection's Initial read by the old one is dropped as not accepting; the
// client sends it again). The old daemon's HTTP/3 closes its copy of the socket as soon as it
// has no connection left (src/http3/server.ts), so from then on every datagram goes to the new one.
//
// A udp socket (a udp or quic listener's, HTTP/3's) is one socket with one receive queue in both
// processes, and the kernel gives each datagram to whichever of them reads first. The new daemon
// must not read it before something there handles what it reads: see holdUntilListened.

/** Set in the new daemon's environment: the pid of the daemon it replaces. */
export const UPGRADE_ENV = 'SWITCHYARD_UPGRADE_FROM';

/** How long the new daemon has to start and report ready. */
const READY_TIMEOUT_MS = 60_000;

type Message =
  | { type: 'hello' }
  | { type: 'socket'; name: string; where: string }
  | { type: 'sent'; count: number }
  | { type: 'ready'; pid: number }
  | { type: 'failed'; error: string };

export type HandOverResult = { ok: true; pid: number } | { ok: false; error: string };

/**
 * Old side: starts the new daemon and hands it `sockets`. Resolves once it is ready (the caller
 * then stops this daemon) or has failed (it is killed; this daemon goes on serving).
 */
export function handOver(sockets: { name: string; where: string; socket: ListeningSocket }[]): Promise<HandOverResult> {
  const child = spawn(process.execPath, [...process.execArgv, ...process.argv.slice(1)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    env: { ...process.env, [UPGRADE_ENV]: String(process.pid) },
    detached: true,
  });
  return new Promise((resolve) => {
    let settled = false;
    const settle = (r: HandOverResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      child.off('exit', onExit);
      resolve(r);
    };
    const fail = (error: string) => {
      if (settled) return;
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
      settle({ ok: false, error });
    };
    const timer = setTimeout(() => fail(`the new daemon did not report ready within ${READY_TIMEOUT_MS / 1000} s`), READY_TIMEOUT_MS);
    const onExit = (code: number | null, signal: NodeJS.Signals | null) => fail(`the new daemon exited (${signal ?? `status ${code}`}) before it was ready`);
    child.on('exit', onExit);
    child.on('error', (err) => fail(`cannot start the new daemon: ${err.message}`));
    child.on('message', (m: Message) => {
      if (m.type === 'hello') {
        // A server goes as its native handle: received as a net.Server, it would start accepting
        // in the new daemon at once, before anything there listens for its connections (they
        // would hang). A udp socket goes as itself: the new side holds it (holdUntilListened).
        for (const s of sockets) {
          const handle = s.socket instanceof DgramSocket ? s.socket : (s.socket as unknown as { _handle: NetServer })._handle;
          child.send({ type: 'socket', name: s.name, where: s.where } satisfies Message, handle as NetServer);
        }
        child.send({ type: 'sent', count: sockets.length } satisfies Message);
      } else if (m.type === 'ready') {
        settle({ ok: true, pid: m.pid });
        child.disconnect();
        child.unref();
      } else if (m.type === 'failed') {
        fail(m.error);
      }
    });
  });
}

/** New side: the pid of the daemon this one replaces, when it was started by a hand-over. */
export function upgradingFrom(): number | undefined {
  const v = Number(process.env[UPGRADE_ENV]);
  return process.send && Number.isInteger(v) && v > 0 ? v : undefined;
}

/** New side: asks for the sockets and collects them, by listener name. */
export function receiveSockets(timeoutMs = 30_000): Promise<Map<string, { where: string; socket: ListeningSocket }>> {
  return new Promise((resolve, reject) => {
    const sockets = new Map<string, { where: string; socket: ListeningSocket }>();
    let expected = -1;
    const finish = (err?: Error) => {
      clearTimeout(timer);
      process.off('message', onMessage);
      if (err) reject(err);
      else resolve(sockets);
    };
    const onMessage = (m: Message, handle: unknown) => {
      if (m.type === 'socket' && handle) {
        if (handle instanceof DgramSocket) holdUntilListened(handle);
        sockets.set(m.name, { where: m.where, socket: handle as ListeningSocket });
      } else if (m.type === 'sent') expected = m.count;
      if (expected >= 0 && sockets.size >= expected) finish();
    };
    const timer = setTimeout(() => finish(new Error(`upgrade: the sockets of the old daemon did not arrive within ${timeoutMs / 1000} s`)), timeoutMs);
    process.on('message', onMessage);
    process.send!({ type: 'hello' } satisfies Message);
  });
}

/**
 * New side: a udp socket received from the old daemon reads nothing until something here listens
 * for its messages. Node's child_process makes a dgram socket of the received handle and binds it,
 * which starts reading at once; until the listener that takes it (UdpListener, QuicServer,
 * HTTP/3) adds its 'message' listener, which takes the config, handlers and certificates (easily
 * hundreds of ms), every datagram this process read would be emitted to nobody and lost, while the
 * old daemon, which reads the same socket, would have answered it. Stopped, the socket leaves
 * every datagram to the old daemon until the first 'message' listener is added here; the old
 * daemon closes its copy only after this one reports ready (every listener started), so one of
 * the two reads at every moment.
 *
 * Called in the `message` event that delivers the socket: child_process emits it on the tick
 * after the bind (process.nextTick), before the event loop polls again, so nothing is read in
 * between (Node 20 and 24). That holds because receiveSockets listens before it asks (hello): a
 * message that finds no listener is kept by child_process for a later one, the socket reading
 * meanwhile. A stopped socket closes as any other (closeUnclaimed, HTTP/3 off).
 */
function holdUntilListened(socket: DgramSocket): void {
  const handle = datagramHandle(socket);
  // Not found (a Node that keeps it elsewhere): the socket reads at once, as it did before.
  if (!handle) return;
  handle.recvStop();
  const resume = (event: string | symbol) => {
    if (event !== 'message') return;
    // Closed meanwhile: nothing to read from.
    if (datagramHandle(socket) !== handle) return void socket.off('newListener', resume);
    const err = handle.recvStart();
    // Thrown out of the listener's socket.on('message'): its start fails, so does the upgrade, and the old daemon goes on.
    if (err < 0) throw new UdpResumeError(err);
    socket.off('newListener', resume);
  };
  socket.on('newListener', resume);
}

/** A handed-over udp socket could not start reading again in the new daemon (holdUntilListened). */
export class UdpResumeError extends Error {
  readonly code = 'SWITCHYARD_UPGRADE_UDP_RESUME_FAILED';
  constructor(readonly errno: number) {
    super(`upgrade: the udp socket handed over cannot start reading (errno ${errno})`);
    this.name = 'UdpResumeError';
  }
}

/**
 * New side, once started: closes the sockets no listener of the new config took (a listener gone
 * from the config, or moved to another address) and returns their names. Held, a TCP one would
 * go on queueing connections nobody accepts once the old daemon is gone: clients would hang
 * instead of being refused. The old daemon's copies are its own: it serves them until it drains.
 */
export function closeUnclaimed(sockets: Map<string, { socket: ListeningSocket }>): string[] {
  const names = [...sockets.keys()];
  for (const { socket } of sockets.values()) {
    try {
      // A TCP listener arrives as its native handle (see handOver), a udp one as a dgram socket: both close().
      (socket as unknown as { close(): void }).close();
    } catch {
      // Closed already.
    }
  }
  sockets.clear();
  return names;
}

/** New side: tells the old daemon it may go, and leaves the channel (this process is on its own now). */
export function reportReady(): void {
  delete process.env[UPGRADE_ENV];
  process.send?.({ type: 'ready', pid: process.pid } satisfies Message);
  process.disconnect?.();
}

export function reportFailed(err: unknown): void {
  process.send?.({ type: 'failed', error: err instanceof Error ? err.message : String(err) } satisfies Message);
}

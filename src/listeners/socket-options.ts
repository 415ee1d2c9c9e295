import { readFileSync } from 'node:fs';
import type { Server, Socket } from 'node:net';
import type { Socket as DatagramSocket } from 'node:dgram';
import type { Logger } from 'pino';
import type { TcpListenerSocketOptions, UdpListenerSocketOptions, UnixListenerSocketOptions } from '../config/socket-options.ts';
import { applySettings, connectionSettings, oncePerField, type Setting, type SocketOptionProblem } from '../upstream/socket-options.ts';
import { getSocketOption, optionFd, socketOptionsUnavailableReason, type SocketOptionName } from '../sys/sockopt.ts';

// A listener's `socket:` (docs/socket-options.md; schemas in src/config/socket-options.ts).
// Where each option is set:
//
// - TCP listeners (http, tcp): backlog and ipv6Only go to listen(); keepAlive and the buffer
//   sizes are set on the listening socket, and Linux copies them to every connection it accepts
//   (as nginx's `listen ... so_keepalive= rcvbuf=` does: a receive buffer set before the SYN-ACK
//   also sizes the window scale offered); fastOpen is the listening socket's own queue; noDelay
//   is Node's to set on each accepted connection (it overwrites an inherited one).
// - unix listeners: backlog to listen(); buffer sizes on each accepted connection (AF_UNIX
//   connections do not inherit them).
// - udp listeners: buffer sizes on the socket.
//
// A value the kernel refuses is logged once, naming the field, and the rest goes on: it never
// stops a listener.

type AnySocketOptions = Partial<TcpListenerSocketOptions>;

/** A number from /proc/sys (the first of several), or undefined when it cannot be read. */
function readSysctl(path: string): number | undefined {
  try {
    const n = Number(readFileSync(path, 'utf8').trim().split(/\s+/)[0]);
    return Number.isFinite(n) ? n : undefined;
  } catch {
    return undefined;
  }
}

/** Buffer sizes the kernel actually holds, and notes when it capped what was asked. */
function bufferNotes(fd: number, s: AnySocketOptions): { effective: Record<string, number>; capped: string[] } {
  const effective: Record<string, number> = {};
  const capped: string[] = [];
  const check = (field: 'receiveBufferSize' | 'sendBufferSize', option: SocketOptionName, sysctl: string) => {
    const asked = s[field];
    if (asked === undefined) return;
    let got: number;
    try {
      got = getSocketOption(fd, option);
    } catch {
      return;
    }
    effective[field] = got;
    if (got < asked * 2) capped.push(`${field} ${asked} is capped by net.core.${sysctl} (${readSysctl(`/proc/sys/net/core/${sysctl}`) ?? '?'}): the kernel holds ${got} (twice the cap); raise it with sysctl -w net.core.${sysctl}=${asked}`);
  };
  check('receiveBufferSize', 'receiveBuffer', 'rmem_max');
  check('sendBufferSize', 'sendBuffer', 'wmem_max');
  return { effective, capped };
}

function listenerProblems(listener: string, log: Logger): SocketOptionProblem {
  return (field, message) => log.warn({ listener, field: `socket.${field}` }, `listener "${listener}": socket.${field} not applied: ${message}`);
}

/**
 * After listen(): the options a TCP listener's accepted connections inherit (keepAlive, buffer
 * sizes) and its own (fastOpen), on the listening socket. Anything refused is logged, naming the
 * field; effective buffer sizes are logged at info, a capped one at warn.
 */
export function applyToTcpListeningSocket(server: Server, socket: TcpListenerSocketOptions | undefined, listener: string, log: Logger): void {
  if (!socket) return;
  // noDelay is not inherited: Node sets it on each accepted connection itself.
  const settings = connectionSettings({ ...socket, noDelay: undefined }, undefined);
  if (socket.fastOpen !== undefined) settings.push({ field: 'fastOpen', option: 'fastOpen', value: socket.fastOpen === false ? 0 : socket.fastOpen });
  const problem = listenerProblems(listener, log);
  if (socket.backlog !== undefined) {
    const somaxconn = readSysctl('/proc/sys/net/core/somaxconn');
    if (somaxconn !== undefined && socket.backlog > somaxconn) problem('backlog', `the kernel caps it at net.core.somaxconn (${somaxconn}); raise that with sysctl -w net.core.somaxconn=${socket.backlog}`);
  }
  if (typeof socket.fastOpen === 'number') {
    const tfo = readSysctl('/proc/sys/net/ipv4/tcp_fastopen');
    if (tfo !== undefined && (tfo & 2) === 0) {
      log.warn({ listener, field: 'socket.fastOpen' }, `listener "${listener}": socket.fastOpen is set, but net.ipv4.tcp_fastopen is ${tfo} (without the server bit 2): clients get the normal handshake until sysctl -w net.ipv4.tcp_fastopen=${tfo | 3}`);
    }
  }
  if (settings.length === 0) return;
  const fd = optionFd(server);
  if (fd === undefined) {
    // A worker's round-robin handle (no socket of its own): the primary's socket is the one used.
    log.debug({ listener }, 'socket options: this listening socket has no fd here; not set');
    return;
  }
  const unavailable = socketOptionsUnavailableReason();
  if (unavailable) {
    for (const s of settings) problem(s.field, unavailable);
    return;
  }
  applySettings(fd, settings, problem);
  reportBuffers(fd, socket, listener, log);
}

function reportBuffers(fd: number, socket: AnySocketOptions, listener: string, log: Logger): void {
  const { effective, capped } = bufferNotes(fd, socket);
  if (Object.keys(effective).length > 0) log.info({ listener, effective }, `listener "${listener}": socket buffers (bytes the kernel holds: twice what was asked, for its bookkeeping)`);
  for (const c of capped) log.warn({ listener }, `listener "${listener}": socket.${c}`);
}

/**
 * For each connection a unix listener accepts: its buffer sizes (AF_UNIX connections do not
 * inherit them from the listening socket). A refusal is logged once per field for the listener.
 */
export function unixConnectionOptions(socket: UnixListenerSocketOptions | undefined, listener: string, log: Logger): ((connection: Socket) => void) | undefined {
  if (!socket) return undefined;
  const settings = connectionSettings({ receiveBufferSize: socket.receiveBufferSize, sendBufferSize: socket.sendBufferSize }, undefined);
  if (settings.length === 0) return undefined;
  const problem = oncePerField(listenerProblems(listener, log));
  let reported = false;
  return (connection) => {
    const fd = optionFd(connection);
    if (fd === undefined) return;
    applySettings(fd, settings, problem);
    if (!reported) {
      reported = true;
      reportBuffers(fd, socket, listener, log);
    }
  };
}

/**
 * For each connection a tcp listener accepts, when `noDelay: false`: Node's server sets
 * TCP_NODELAY on every accepted connection, so turning it off again is per connection.
 */
export function tcpConnectionOptions(socket: TcpListenerSocketOptions | undefined, listener: string, log: Logger): ((connection: Socket) => void) | undefined {
  if (socket?.noDelay !== false) return undefined;
  const settings: Setting[] = [{ field: 'noDelay', option: 'noDelay', value: 0 }];
  const problem = oncePerField(listenerProblems(listener, log));
  return (connection) => {
    const fd = optionFd(connection);
    if (fd !== undefined) applySettings(fd, settings, problem);
  };
}

/**
 * After bind: a udp listener's buffer sizes (through Node's own calls). Refusals are logged,
 * naming the field; the effective sizes at info, a capped one at warn.
 */
export function applyToDatagramSocket(socket: DatagramSocket, options: UdpListenerSocketOptions | undefined, listener: string, log: Logger): void {
  if (!options) return;
  const problem = listenerProblems(listener, log);
  const effective: Record<string, number> = {};
  const set = (field: 'receiveBufferSize' | 'sendBufferSize', apply: (n: number) => void, read: () => number, sysctl: string) => {
    const asked = options[field];
    if (asked === undefined) return;
    try {
      apply(asked);
      const got = read();
      effective[field] = got;
      if (got < asked * 2) problem(field, `${asked} is capped by net.core.${sysctl} (${readSysctl(`/proc/sys/net/core/${sysctl}`) ?? '?'}): the kernel holds ${got} (twice the cap); raise it with sysctl -w net.core.${sysctl}=${asked}`);
    } catch (err) {
      problem(field, (err as Error).message);
    }
  };
  set('receiveBufferSize', (n) => socket.setRecvBufferSize(n), () => socket.getRecvBufferSize(), 'rmem_max');
  set('sendBufferSize', (n) => socket.setSendBufferSize(n), () => socket.getSendBufferSize(), 'wmem_max');
  if (Object.keys(effective).length > 0) log.info({ listener, effective }, `listener "${listener}": socket buffers (bytes the kernel holds: twice what was asked, for its bookkeeping)`);
}


import { readFileSync } from 'node:fs';
import type { Socket } from 'node:net';
import type { TcpListenerSocketOptions, UpstreamSocketOptions } from '../config/socket-options.ts';
import { optionFd, setSocketOption, socketOptionsUnavailableReason, type SocketOptionName } from '../sys/sockopt.ts';

// Socket options on one connection (docs/socket-options.md): what an upstream group sets on each
// connection it makes, once connected (Node makes and connects a socket in one step, so there is
// no moment in between), and the per-option core the listeners use too. A value the kernel
// refuses is reported once per field through a callback; it never fails the connection.

type AnySocketOptions = Partial<TcpListenerSocketOptions>;

/** A field of `socket:` (as `keepAlive.count`) that could not be set, and why. */
export type SocketOptionProblem = (field: string, message: string) => void;

/** Sets `settings` on `fd`; each failure goes to `problem` and the rest are still set. */
export function applySettings(fd: number, settings: Setting[], problem: SocketOptionProblem): void {
  for (const s of settings) {
    try {
      setSocketOption(fd, s.option, s.value);
    } catch (err) {
      problem(s.field, (err as Error).message);
    }
  }
}

/** One option to set: the config field it comes from, for messages. */
export interface Setting {
  field: string;
  option: SocketOptionName;
  value: number;
}

/** The settings `socket:` asks for on a connection (or on a listening socket, to be inherited). */
export function connectionSettings(s: AnySocketOptions, keepAliveBase: KeepAliveTimes | undefined): Setting[] {
  const out: Setting[] = [];
  if (s.noDelay !== undefined) out.push({ field: 'noDelay', option: 'noDelay', value: s.noDelay ? 1 : 0 });
  const k = s.keepAlive;
  if (k !== undefined) {
    out.push({ field: 'keepAlive', option: 'keepAlive', value: k === false ? 0 : 1 });
    if (k !== false) {
      const o = k === true ? {} : k;
      const idle = o.idle !== undefined ? o.idle / 1000 : keepAliveBase?.idle;
      const interval = o.interval !== undefined ? o.interval / 1000 : keepAliveBase?.interval;
      const count = o.count ?? keepAliveBase?.count;
      if (idle !== undefined) out.push({ field: 'keepAlive.idle', option: 'keepIdle', value: idle });
      if (interval !== undefined) out.push({ field: 'keepAlive.interval', option: 'keepInterval', value: interval });
      if (count !== undefined) out.push({ field: 'keepAlive.count', option: 'keepCount', value: count });
    }
  }
  if (s.receiveBufferSize !== undefined) out.push({ field: 'receiveBufferSize', option: 'receiveBuffer', value: s.receiveBufferSize });
  if (s.sendBufferSize !== undefined) out.push({ field: 'sendBufferSize', option: 'sendBuffer', value: s.sendBufferSize });
  return out;
}

export interface KeepAliveTimes {
  idle: number;
  interval: number;
  count: number;
}

let kernelKeepAlive: KeepAliveTimes | undefined;

/**
 * The kernel's keepalive timings (seconds, probes), for outgoing connections: Node's
 * setKeepAlive (undici calls it on every pooled connection) sets a 1 s interval and 10 probes,
 * so an unset field there is set back to the kernel's value rather than left at Node's.
 */
function kernelKeepAliveTimes(): KeepAliveTimes {
  const read = (name: string, fallback: number): number => {
    try {
      const n = Number(readFileSync(`/proc/sys/net/ipv4/${name}`, 'utf8').trim());
      return Number.isInteger(n) && n > 0 ? n : fallback;
    } catch {
      return fallback;
    }
  };
  return (kernelKeepAlive ??= { idle: read('tcp_keepalive_time', 7200), interval: read('tcp_keepalive_intvl', 75), count: read('tcp_keepalive_probes', 9) });
}

/** Reports the first problem of each field, then stays quiet (a per-connection setting fails the same way every time). */
export function oncePerField(problem: SocketOptionProblem): SocketOptionProblem {
  const seen = new Set<string>();
  return (field, message) => {
    if (seen.has(field)) return;
    seen.add(field);
    problem(field, message);
  };
}

/**
 * The function an upstream group runs on each connection it makes, once connected; undefined
 * when the group sets nothing. `problem` hears of each refused field (the group logs it once).
 */
export function upstreamConnectionOptions(socket: UpstreamSocketOptions | undefined, problem: SocketOptionProblem): ((connection: Socket) => void) | undefined {
  if (!socket) return undefined;
  const settings = connectionSettings(socket, socket.keepAlive === undefined || socket.keepAlive === false ? undefined : kernelKeepAliveTimes());
  if (settings.length === 0) return undefined;
  const report = oncePerField(problem);
  const unavailable = socketOptionsUnavailableReason();
  if (unavailable) {
    for (const s of settings) report(s.field, unavailable);
    return undefined;
  }
  return (connection) => {
    const fd = optionFd(connection);
    if (fd === undefined) return;
    applySettings(fd, settings, report);
  };
}

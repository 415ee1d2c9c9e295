import { isIPv6 } from 'node:net';
import { z } from 'zod';
import { duration, size } from './units.ts';

// The `socket:` blocks of listeners and upstream groups (docs/socket-options.md): the kernel's
// per-socket knobs. The schemas are here, below the listeners and upstreams that apply them
// (src/listeners/socket-options.ts, src/upstream/socket-options.ts). Nothing unset is touched:
// the kernel's (and Node's) defaults stay.

/** The kernel's limits for keepalive times (MAX_TCP_KEEPIDLE, MAX_TCP_KEEPINTVL) and probes (MAX_TCP_KEEPCNT). */
const MAX_KEEPALIVE_SECONDS = 32_767;
const MAX_KEEPALIVE_PROBES = 127;
/** The kernel takes at most INT_MAX / 2 (it doubles what it is given). */
const MAX_BUFFER = 1024 ** 3;

/** A keepalive time: the kernel counts them in whole seconds. */
const keepaliveSeconds = () =>
  duration().superRefine((ms, ctx) => {
    if (ms % 1000 !== 0 || ms < 1000 || ms > MAX_KEEPALIVE_SECONDS * 1000) {
      ctx.addIssue({ code: 'custom', message: `expected whole seconds from 1s to ${MAX_KEEPALIVE_SECONDS}s (the kernel counts keepalive time in seconds), got ${ms}ms` });
    }
  });

const bufferSize = () =>
  size().pipe(
    z
      .number()
      .min(1024, { message: 'expected at least 1KiB (the kernel raises smaller buffers to its minimum anyway)' })
      .max(MAX_BUFFER, { message: 'expected at most 1GiB (the kernel stores twice the value in an int)' }),
  );

const keepAliveSchema = z.union([
  z.boolean(),
  z.strictObject({
    /** TCP_KEEPIDLE: idle time before the first probe. Kernel default: net.ipv4.tcp_keepalive_time (7200s). */
    idle: keepaliveSeconds().optional(),
    /** TCP_KEEPINTVL: time between unanswered probes. Kernel default: net.ipv4.tcp_keepalive_intvl (75s). */
    interval: keepaliveSeconds().optional(),
    /** TCP_KEEPCNT: unanswered probes before the connection is dropped. Kernel default: net.ipv4.tcp_keepalive_probes (9). */
    count: z.number().int().min(1).max(MAX_KEEPALIVE_PROBES).optional(),
  }),
]);

const fields = {
  /**
   * TCP_NODELAY: small writes leave at once instead of waiting to be merged (Nagle's algorithm
   * off). Default true, as Node's http server and every proxy here have it.
   */
  noDelay: z.boolean().optional(),
  /**
   * TCP keepalive probes on idle connections (SO_KEEPALIVE), so a peer that vanished is noticed
   * and the connection closed. `false`: off (the kernel's default for a new socket); `true`: on
   * with the kernel's timings; an object: on, with `idle`, `interval` and `count` (each unset
   * one is the kernel's: net.ipv4.tcp_keepalive_time 7200s, _intvl 75s, _probes 9).
   */
  keepAlive: keepAliveSchema.optional(),
  /**
   * SO_RCVBUF: the kernel receive buffer. The kernel stores twice the value (half is its
   * bookkeeping) and caps it at twice net.core.rmem_max; setting it also turns off the kernel's
   * own tuning of the buffer for these sockets. Default: autotuned within net.ipv4.tcp_rmem
   * (TCP), net.core.rmem_default (unix, udp).
   */
  receiveBufferSize: bufferSize().optional(),
  /**
   * SO_SNDBUF: the kernel send buffer; doubled and capped at twice net.core.wmem_max, like
   * receiveBufferSize. Default: autotuned within net.ipv4.tcp_wmem (TCP), net.core.wmem_default.
   */
  sendBufferSize: bufferSize().optional(),
  /**
   * Connections the kernel queues, handshake done, before they are accepted (listen backlog).
   * Capped by net.core.somaxconn (4096 since Linux 5.4). Default 1024.
   */
  backlog: z.number().int().min(1).max(65_535).optional(),
  /**
   * IPV6_V6ONLY for an IPv6 address: `[::]:port` then takes IPv6 only, leaving IPv4 to another
   * socket. Default false: `[::]` is dual-stack and takes IPv4 too (net.ipv6.bindv6only 0).
   */
  ipv6Only: z.boolean().optional(),
  /**
   * TCP Fast Open on the listening socket: how many connections may wait with data sent in their
   * SYN (the queue length; `false`: off, the default). The kernel serves it only when
   * net.ipv4.tcp_fastopen has the server bit (2) set: it is 1 (clients only) by default.
   */
  fastOpen: z.union([z.literal(false), z.number().int().min(1).max(65_535)]).optional(),
};

/** `socket:` of http and tcp listeners. */
export const tcpListenerSocketSchema = z.strictObject(fields);
/** `socket:` of unix listeners: no TCP options there. */
export const unixListenerSocketSchema = z.strictObject({ backlog: fields.backlog, receiveBufferSize: fields.receiveBufferSize, sendBufferSize: fields.sendBufferSize });
/** `socket:` of udp listeners: the buffer sizes (a datagram that finds the receive buffer full is dropped). */
export const udpListenerSocketSchema = z.strictObject({ receiveBufferSize: fields.receiveBufferSize, sendBufferSize: fields.sendBufferSize });
/** `socket:` of upstream groups: set on each connection to a target (http, h2, WebSocket, tcp-proxy). */
export const upstreamSocketSchema = z.strictObject({
  noDelay: fields.noDelay,
  keepAlive: fields.keepAlive,
  receiveBufferSize: fields.receiveBufferSize,
  sendBufferSize: fields.sendBufferSize,
});

export type TcpListenerSocketOptions = z.output<typeof tcpListenerSocketSchema>;
export type UnixListenerSocketOptions = z.output<typeof unixListenerSocketSchema>;
export type UdpListenerSocketOptions = z.output<typeof udpListenerSocketSchema>;
export type UpstreamSocketOptions = z.output<typeof upstreamSocketSchema>;

/** What Node's listen() takes from `socket:` (Switchyard's listeners used 1024 before it existed). */
export const DEFAULT_BACKLOG = 1024;

/**
 * Config issues a listener's `socket:` has with its address (paths relative to the listener).
 * Also called with the raw value when other fields failed: anything unexpected is left to them.
 */
export function socketAddressIssues(host: string, socket: unknown): { path: (string | number)[]; message: string }[] {
  const ipv6Only = typeof socket === 'object' && socket !== null ? (socket as { ipv6Only?: unknown }).ipv6Only : undefined;
  if (typeof ipv6Only !== 'boolean' || isIPv6(host) || !/^[\d.]+$/.test(host)) return [];
  return [{ path: ['socket', 'ipv6Only'], message: `ipv6Only applies to IPv6 addresses (e.g. "[::]:8080"); ${host} is IPv4` }];
}

/** listen() options of a TCP listener. */
export function listenOptions(socket: TcpListenerSocketOptions | undefined): { backlog: number; ipv6Only?: boolean } {
  return { backlog: socket?.backlog ?? DEFAULT_BACKLOG, ...(socket?.ipv6Only !== undefined && { ipv6Only: socket.ipv6Only }) };
}

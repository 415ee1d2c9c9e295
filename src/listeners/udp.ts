import { createSocket, type RemoteInfo, type Socket } from 'node:dgram';
import { isIPv6 } from 'node:net';
import type { Logger } from 'pino';
import type { ListenerConfig, UdpListenerConfig } from '../config/schema.ts';
import { formatHostPort, parseHostPort } from '../config/address.ts';
import type { DatagramContext, DatagramHandler, ListenerSummary } from '../handlers/types.ts';
import type { Metrics } from '../observe/metrics.ts';
import { receiveOwnGroupsOnly } from '../sys/multicast-all.ts';
import { Memberships, MulticastError } from './multicast.ts';
import { applyToDatagramSocket } from './socket-options.ts';
import { ListenError, listenErrorReason, type BoundAddress, type Listener, type ListenerHandlers, type ListeningSocket } from './types.ts';

// The datagram front end. UDP has no connections and no flow control, so the limits are per
// datagram: oversize ones are dropped and counted, and replies are dropped (and counted) rather
// than queued without bound when the kernel send queue is backed up.

/** After a reload, how long the old handler of a udp listener is kept for late replies. */
const UDP_RELEASE_MS = 2000;

/** Replies queued in libuv beyond this are dropped: a flood must not grow memory. */
const MAX_SEND_QUEUE = 1024;

export interface UdpListenerOptions {
  config: UdpListenerConfig;
  handler: DatagramHandler;
  metrics: Metrics;
  log: Logger;
  /** A bound socket handed over by the daemon this one replaces (upgrade), used instead of binding. */
  inherit?: Socket;
}

export class UdpListener implements Listener {
  readonly protocol = 'udp' as const;
  readonly name: string;
  private socket: Socket | undefined;
  private bound: BoundAddress | undefined;
  private memberships: Memberships | undefined;

  constructor(private options: UdpListenerOptions) {
    this.name = options.config.name;
  }

  /**
   * A reload's handler and limits, on the same socket: datagrams from now on go to the new
   * handler. UDP has no connections to wait for: the old handler is released after a short
   * while (replies to datagrams it just forwarded may still come back through it).
   */
  reconfigure(config: ListenerConfig, handlers: ListenerHandlers): Promise<void> {
    if (config.protocol !== 'udp' || Array.isArray(handlers)) throw new Error(`listener "${this.name}": not a udp config`);
    this.options = { ...this.options, config, handler: handlers as DatagramHandler };
    this.applyMembership('reload');
    if (this.socket && config.socket) applyToDatagramSocket(this.socket, config.socket, this.name, this.options.log);
    return new Promise((resolve) => setTimeout(resolve, UDP_RELEASE_MS).unref());
  }

  start(): Promise<void> {
    const where = this.options.config.address;
    const hp = parseHostPort(where);
    if (!hp) return Promise.reject(new ListenError(this.name, where, 'not a host:port address'));
    const inherited = this.options.inherit;
    const socket = inherited ?? createSocket({ type: isIPv6(hp.host) ? 'udp6' : 'udp4', reuseAddr: this.options.config.reuseAddr });
    this.socket = socket;
    const { metrics, log, config } = this.options;
    const name = this.name;
    const route = config.handler.type;
    const sent = metrics.totalBytesSent.labels(name);
    const received = metrics.totalBytesReceived.labels(name);
    const ok = metrics.totalRequests.labels(name, route, 'ok');
    const tooLarge = metrics.totalRequests.labels(name, route, 'too_large');
    const dropped = metrics.totalRequests.labels(name, route, 'reply_dropped');
    const max = (): number => this.options.config.limits.maxDatagramSize;
    const ctx: DatagramContext = {
      listener: name,
      log,
      socket,
      reply(data: Uint8Array, to: RemoteInfo) {
        if (socket.getSendQueueCount() > MAX_SEND_QUEUE) {
          dropped.inc();
          return;
        }
        socket.send(data, to.port, to.address, (err) => {
          if (err) log.debug({ err, listener: name }, 'udp send failed');
          else sent.inc(data.byteLength);
        });
      },
    };
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(new ListenError(name, where, listenErrorReason(err), { cause: err }));
      socket.once('error', onError);
      const ready = () => {
        socket.off('error', onError);
        try {
          this.applyMembership('start');
        } catch (err) {
          socket.close();
          this.socket = undefined;
          reject(new ListenError(name, where, err instanceof Error ? err.message : String(err), { cause: err }));
          return;
        }
        socket.on('error', (err) => log.error({ err, listener: name }, 'udp socket error'));
        applyToDatagramSocket(socket, config.socket, name, log);
        socket.on('message', (msg, rinfo) => {
          received.inc(msg.length);
          if (msg.length > max()) {
            tooLarge.inc();
            return;
          }
          ok.inc();
          try {
            this.options.handler.handle(msg, rinfo, ctx);
          } catch (err) {
            log.error({ err, listener: name }, 'datagram handler failed');
          }
        });
        const a = socket.address();
        this.bound = { host: a.address, port: a.port };
        resolve();
      };
      if (inherited) ready();
      else socket.bind({ address: hp.host, port: hp.port }, ready);
    });
  }

  /**
   * SO_BROADCAST and the multicast groups of the current config, on the bound socket. At start a
   * failure is the listener's (it does not listen); on a reload the socket keeps serving with the
   * groups it could join, and the failure is logged (the config check already saw the interfaces).
   */
  private applyMembership(when: 'start' | 'reload'): void {
    const socket = this.socket;
    if (!socket) return;
    const { config, log } = this.options;
    try {
      socket.setBroadcast(config.broadcast);
      const groups = config.multicast ?? [];
      if (!this.memberships && groups.length === 0) return;
      if (!this.memberships) {
        const family = socket.address().family === 'IPv6' ? 6 : 4;
        const why = receiveOwnGroupsOnly(socket, family);
        if (why) log.warn({ listener: this.name, reason: why }, 'this udp socket also receives groups that other sockets of this host joined on its port (IP_MULTICAST_ALL stays on)');
        this.memberships = new Memberships(socket, 'multicast');
      }
      this.memberships.apply(groups);
    } catch (err) {
      if (when === 'start') throw err;
      log.error({ err, listener: this.name }, err instanceof MulticastError ? 'reload: multicast membership not changed as configured' : 'reload: udp socket options not applied');
    }
  }

  listening(): ListeningSocket | undefined {
    return this.socket;
  }

  address(): BoundAddress {
    if (!this.bound) throw new Error(`listener "${this.name}" is not started`);
    return this.bound;
  }

  summary(): ListenerSummary {
    const a = this.address() as { host: string; port: number };
    return {
      name: this.name,
      protocol: 'udp',
      url: `udp://${formatHostPort(a)}`,
      handlers: [this.options.config.handler.type],
      tryIt: `echo hello | nc -u -w1 ${a.host} ${a.port}`,
    };
  }

  async stopAccepting(): Promise<void> {
    const s = this.socket;
    this.socket = undefined;
    if (s) await new Promise<void>((resolve) => s.close(() => resolve()));
  }

  inFlight(): number {
    return 0;
  }

  destroy(): void {
    try {
      this.socket?.close();
    } catch {
      // already closed
    }
  }
}

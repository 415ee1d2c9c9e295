import type { DatagramHandler, HttpHandler, ListenerSummary, StreamHandler } from '../handlers/types.ts';
import type { ListenerConfig } from '../config/schema.ts';

/** The handlers a reload provisions for a listener it keeps: its routes' (http), or its one handler. */
export type ListenerHandlers = HttpHandler[] | StreamHandler | DatagramHandler;

/** A bound listener's address: host and port, or a unix socket path (`@name` for abstract). */
export type BoundAddress = { host: string; port: number } | { path: string };

/**
 * A protocol front end. Lifecycle: `start` binds (rejecting with a ListenError that names the
 * cause), `stopAccepting` closes the listening socket while in-flight work goes on, `inFlight`
 * says how much is still going on, `destroy` ends whatever is left.
 */
export interface Listener {
  readonly name: string;
  readonly protocol: 'http' | 'tcp' | 'udp' | 'unix' | 'quic';
  start(): Promise<void>;
  address(): BoundAddress;
  summary(): ListenerSummary;
  stopAccepting(): Promise<void>;
  inFlight(): number;
  destroy(): void;
  /**
   * A reload that keeps this listener (same protocol, address, TLS and HTTP/2 settings: the yard
   * decides) gives it its new config and handlers: new requests and connections get them at once,
   * on the same listening socket. Resolves when nothing uses the previous handlers any more.
   */
  reconfigure(config: ListenerConfig, handlers: ListenerHandlers): Promise<void>;
  /** The listening socket (a net.Server, or the udp socket), to hand over to a new daemon (upgrade.ts). */
  listening(): ListeningSocket | undefined;
  /**
   * An http listener's second listening socket: HTTP/3's UDP socket, once HTTP/3 is up (handed
   * over as `http3SocketName(name)`, upgrade.ts).
   */
  http3Listening?(): import('node:dgram').Socket | undefined;
}

/** The hand-over name of an http listener's HTTP/3 UDP socket (upgrade.ts): `<listener>#h3`. */
export function http3SocketName(listener: string): string {
  return `${listener}#h3`;
}

/** What a listener listens with: handed over as it is to the daemon that replaces this one. */
export type ListeningSocket = import('node:net').Server | import('node:dgram').Socket;

/** A listener could not bind. The message names the listener, the address and the cause. */
export class ListenError extends Error {
  readonly code = 'SWITCHYARD_LISTEN_FAILED';
  constructor(
    readonly listener: string,
    readonly where: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`listener "${listener}" cannot listen on ${where}: ${reason}`, options);
    this.name = 'ListenError';
  }
}

export function listenErrorReason(err: NodeJS.ErrnoException): string {
  switch (err.code) {
    case 'EADDRINUSE':
      return 'address already in use (another process is listening there)';
    case 'EACCES':
      return 'permission denied (ports below 1024 need privileges; socket paths need a writable folder)';
    case 'EADDRNOTAVAIL':
      return 'address not available on this machine';
    case 'ENOTFOUND':
    case 'EAI_AGAIN':
      return 'host name does not resolve';
    case 'ENOENT':
      return 'folder does not exist';
    default:
      return err.message;
  }
}

import { EAGAIN, EINTR, sendUnixDatagram, unixDatagramUnavailableReason, unixSocketAddress, type UnixSocketAddress } from '../sys/unix-datagram.ts';
import type { ListenerSummary } from '../handlers/types.ts';

// systemd's notification protocol (sd_notify(3)), for `Type=notify` services: newline-separated
// KEY=VALUE fields in one datagram to the unix socket named by $NOTIFY_SOCKET (a path, or an
// abstract socket written `@name`). Node's dgram has no unix datagram sockets: the datagram goes
// out through sys/unix-datagram.ts. A full receive queue is retried a few times, then the message
// is dropped and said so once.
//
//   READY=1 + MAINPID + STATUS   once every listener is bound (and again after a reload)
//   RELOADING=1 + MONOTONIC_USEC at the start of a reload
//   STOPPING=1                   when draining begins
//   WATCHDOG=1                   every WATCHDOG_USEC/2 when $WATCHDOG_USEC is set and
//                                $WATCHDOG_PID is unset or this process

/**
 * struct sockaddr_un for $NOTIFY_SOCKET, and its length (a path, or `@name` for an abstract socket).
 */
export function notifySocketAddress(value: string): UnixSocketAddress {
  try {
    return unixSocketAddress(value);
  } catch (err) {
    throw new Error(`NOTIFY_SOCKET: ${(err as Error).message}`);
  }
}

/** CLOCK_MONOTONIC in microseconds (libuv's hrtime reads that clock on Linux), for MONOTONIC_USEC. */
export function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n;
}

/** STATUS= text: one line naming every listener and where it is. */
export function listenerStatus(listeners: Pick<ListenerSummary, 'name' | 'url'>[]): string {
  return `listening: ${listeners.map((l) => `${l.name} ${l.url}`).join(', ')}`.replace(/\n/g, ' ');
}

export interface NotifierOptions {
  /** The environment to read NOTIFY_SOCKET, WATCHDOG_USEC and WATCHDOG_PID from (process.env). */
  env?: NodeJS.ProcessEnv;
  /** Where problems go (a message that could not be sent, no koffi). Default: stderr. */
  warn?: (line: string) => void;
}

/** Talks to systemd when it is listening; `SystemdNotifier.fromEnv()` is undefined when it is not. */
export class SystemdNotifier {
  private watchdog: NodeJS.Timeout | undefined;
  private warned = false;
  private readonly address: UnixSocketAddress;
  private readonly warn: (line: string) => void;

  private constructor(
    /** $NOTIFY_SOCKET as given. */
    readonly socket: string,
    /** Watchdog ping interval in ms (half of WATCHDOG_USEC), or undefined without a watchdog. */
    readonly watchdogIntervalMs: number | undefined,
    warn: (line: string) => void,
  ) {
    this.address = notifySocketAddress(socket);
    this.warn = warn;
  }

  /**
   * A notifier when $NOTIFY_SOCKET is set, else undefined. A bad value or a machine without koffi
   * is reported through `warn` (systemd will then time the start out: the reason is in the log).
   */
  static fromEnv(options: NotifierOptions = {}): SystemdNotifier | undefined {
    const env = options.env ?? process.env;
    const warn = options.warn ?? ((line: string) => process.stderr.write(line + '\n'));
    const socket = env.NOTIFY_SOCKET;
    if (!socket) return undefined;
    const unavailable = unixDatagramUnavailableReason();
    if (unavailable) {
      warn(`switchyard: NOTIFY_SOCKET is set but systemd notifications cannot be sent: ${unavailable}`);
      return undefined;
    }
    let interval: number | undefined;
    const usec = Number(env.WATCHDOG_USEC);
    const pid = env.WATCHDOG_PID;
    if (env.WATCHDOG_USEC && Number.isFinite(usec) && usec > 0 && (!pid || Number(pid) === process.pid)) interval = Math.max(1, Math.floor(usec / 2000));
    try {
      return new SystemdNotifier(socket, interval, warn);
    } catch (err) {
      warn(`switchyard: ${(err as Error).message}; systemd notifications are off`);
      return undefined;
    }
  }

  /**
   * Sends one message of KEY=VALUE fields. Resolves true once sent, false when it could not be
   * (said once through `warn`). Never throws, never blocks the event loop.
   */
  async send(fields: Record<string, string | number | bigint>): Promise<boolean> {
    const text = Object.entries(fields)
      .map(([k, v]) => `${k}=${String(v).replace(/\n/g, ' ')}`)
      .join('\n');
    if (unixDatagramUnavailableReason()) return false;
    const buf = Buffer.from(text);
    for (let attempt = 0; ; attempt++) {
      const result = sendUnixDatagram(this.address, buf, this.socket);
      if (result.sent) return true;
      if ((result.errno === EAGAIN || result.errno === EINTR) && attempt < 20) {
        await new Promise((resolve) => setTimeout(resolve, 25));
        continue;
      }
      return this.failed(result.why);
    }
  }

  private failed(why: string): false {
    if (!this.warned) {
      this.warned = true;
      this.warn(`switchyard: systemd notification not sent: ${why} (further failures are not reported)`);
    }
    return false;
  }

  /** READY=1 with MAINPID and a STATUS naming the listeners. */
  ready(listeners: Pick<ListenerSummary, 'name' | 'url'>[]): Promise<boolean> {
    return this.send({ READY: 1, MAINPID: process.pid, STATUS: listenerStatus(listeners) });
  }

  /** RELOADING=1 with MONOTONIC_USEC (systemd needs both for Type=notify-reload). */
  reloading(): Promise<boolean> {
    return this.send({ RELOADING: 1, STATUS: 'reloading the config', MONOTONIC_USEC: monotonicUsec() });
  }

  stopping(): Promise<boolean> {
    return this.send({ STOPPING: 1, STATUS: 'draining' });
  }

  status(text: string): Promise<boolean> {
    return this.send({ STATUS: text });
  }

  /** Starts the WATCHDOG=1 pings when the watchdog is on (the timer does not hold the process open). */
  startWatchdog(): void {
    if (this.watchdogIntervalMs === undefined || this.watchdog) return;
    void this.send({ WATCHDOG: 1 });
    this.watchdog = setInterval(() => void this.send({ WATCHDOG: 1 }), this.watchdogIntervalMs);
    this.watchdog.unref();
  }

  stopWatchdog(): void {
    clearInterval(this.watchdog);
    this.watchdog = undefined;
  }
}

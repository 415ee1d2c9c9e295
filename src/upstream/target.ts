// One backend of an upstream group and its live state. Balancers read `weight` and `inFlight`;
// health checks set `healthy`; outlier detection sets `ejectedUntil`. Everything here is plain
// data on purpose: the hot path reads it without calls.

export type TargetProtocol = 'http:' | 'https:' | 'h2c:' | 'tls:' | undefined;

export interface TargetAddress {
  /** `127.0.0.1:9001` (IPv6: `[::1]:9001`): the id used in logs, metrics and /upstreams. */
  readonly id: string;
  readonly host: string;
  readonly port: number;
  /**
   * `http:`, `https:` or `h2c:` (HTTP/2 without TLS, by prior knowledge) for HTTP groups; `tls:`
   * (TLS to the target) or undefined (plain TCP) for L4 groups.
   */
  readonly protocol: TargetProtocol;
  /** Origin for the HTTP client, e.g. `http://127.0.0.1:9001`. */
  readonly origin: string;
}

/** Targets an HTTP group may have (the proxy's); the rest are L4. */
export function isHttpProtocol(p: TargetProtocol): boolean {
  return p === 'http:' || p === 'https:' || p === 'h2c:';
}

export class Target implements TargetAddress {
  /** Requests (or L4 connections) in progress right now. */
  inFlight = 0;
  /** Active health state; true until checks say otherwise. */
  healthy = true;
  /** Outlier ejection: not picked before this time (ms since epoch); 0 when not ejected. */
  ejectedUntil = 0;
  /** How many times outlier detection has ejected it (drives the growing ejection time). */
  ejections = 0;
  /** Taken out by an operator (admin API): no new requests; those in flight finish. */
  drained = false;
  /**
   * When health checks or outlier detection took it out (ms since epoch); 0 while in service.
   * Kept so an outage is logged once when it starts and once when it ends, however many
   * detectors notice it and however many probes fail in between.
   */
  downSince = 0;
  /** Why it went down (the first detector's reason), for the line that says it is back. */
  downReason = '';

  constructor(
    readonly id: string,
    readonly host: string,
    readonly port: number,
    readonly protocol: TargetProtocol,
    readonly origin: string,
    readonly weight: number,
    /** Position in the group's target list (stable; balancers may index by it). */
    readonly index: number,
  ) {}

  /** The connection to it is TLS (https:// or tls://). */
  get tls(): boolean {
    return this.protocol === 'https:' || this.protocol === 'tls:';
  }

  /** Usable now: healthy, not drained and not ejected. */
  available(now: number): boolean {
    return this.healthy && !this.drained && this.ejectedUntil <= now;
  }
}

/** Parses `http://host:port`, `https://host:port`, `h2c://host:port`, `tls://host:port` or `host:port`. */
export function parseTargetAddress(input: string): TargetAddress | undefined {
  let protocol: TargetProtocol;
  let rest = input;
  const m = /^(https?|h2c|tls):\/\/(.*)$/i.exec(input);
  if (m) {
    protocol = `${m[1].toLowerCase()}:` as TargetProtocol;
    rest = m[2].replace(/\/$/, '');
  }
  const hp = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(rest) ?? /^([^:/\s[\]]+):(\d{1,5})$/.exec(rest);
  let host: string;
  let port: number;
  if (hp) {
    host = hp[1];
    port = Number(hp[2]);
  } else if ((protocol === 'http:' || protocol === 'https:' || protocol === 'h2c:') && /^[^:/\s[\]]+$/.test(rest)) {
    host = rest;
    port = protocol === 'https:' ? 443 : 80;
  } else return undefined;
  if (port < 1 || port > 65535) return undefined;
  const hostPart = host.includes(':') ? `[${host}]` : host;
  const id = `${hostPart}:${port}`;
  return { id, host, port, protocol, origin: `${protocol === 'https:' ? 'https:' : 'http:'}//${id}` };
}

// What a load run points at: the URL given on the command line, checked once, with the
// pieces every engine needs (host, port, TLS or not, the request path).

/** The protocols `switchyard bench` can load. */
export type TargetProtocol = 'http' | 'ws' | 'tcp' | 'udp';

export interface LoadTarget {
  /** The URL as given, for the report. */
  readonly url: string;
  readonly protocol: TargetProtocol;
  /** https:// and wss:// */
  readonly tls: boolean;
  /** Host name or address to connect to (IPv6 without brackets). */
  readonly host: string;
  readonly port: number;
  /** Host header / :authority value (host, with the port when it is not the default). */
  readonly authority: string;
  /** Path and query of http(s) and ws(s) targets. */
  readonly path: string;
}

const DEFAULT_PORTS: Readonly<Record<string, number>> = { 'http:': 80, 'https:': 443, 'ws:': 80, 'wss:': 443 };

/** Parses a target URL; the Error message says what is wrong and what is expected. */
export function parseTarget(input: string): LoadTarget {
  let u: URL;
  try {
    u = new URL(input);
  } catch {
    throw new Error(`"${input}" is not a URL; expected http://, https://, ws://, wss://, tcp:// or udp://HOST:PORT[/path]`);
  }
  const scheme = u.protocol;
  const protocol: TargetProtocol | undefined =
    scheme === 'http:' || scheme === 'https:' ? 'http' : scheme === 'ws:' || scheme === 'wss:' ? 'ws' : scheme === 'tcp:' ? 'tcp' : scheme === 'udp:' ? 'udp' : undefined;
  if (!protocol) throw new Error(`unsupported scheme "${scheme}" in ${input}; expected http, https, ws, wss, tcp or udp`);
  const host = u.hostname.startsWith('[') ? u.hostname.slice(1, -1) : u.hostname;
  if (!host) throw new Error(`${input} names no host`);
  const port = u.port ? Number(u.port) : DEFAULT_PORTS[scheme];
  if (port === undefined || !Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`${input} needs a port (tcp://HOST:PORT, udp://HOST:PORT)`);
  return {
    url: input,
    protocol,
    tls: scheme === 'https:' || scheme === 'wss:',
    host,
    port,
    authority: u.host,
    path: `${u.pathname || '/'}${u.search}`,
  };
}

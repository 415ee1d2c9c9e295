import { ConnectUsageError } from './errors.ts';

// The URLs `switchyard connect` takes. Host-and-port schemes go through WHATWG URL parsing (so
// IPv6 literals are written `tcp://[::1]:7000`); unix paths are taken as written, relative ones
// included, and `@name` is Linux's abstract namespace. gRPC URLs name the method in the path:
// `grpc://127.0.0.1:8080/helloworld.Greeter/SayHello`.

export type HostScheme = 'tcp' | 'tls' | 'udp' | 'frame+tcp' | 'quic';
export type PathScheme = 'unix' | 'frame+unix';
export type WebScheme = 'ws' | 'wss' | 'http' | 'https';
export type GrpcScheme = 'grpc' | 'grpcs';

export type ConnectUrl =
  | { scheme: HostScheme; host: string; port: number; href: string }
  | { scheme: PathScheme; path: string; href: string }
  | { scheme: WebScheme; url: URL; href: string }
  /** `grpc://host:port/package.Service/Method` (grpcs: TLS, port 443 by default). */
  | { scheme: GrpcScheme; host: string; port: number; service: string; method: string; href: string };

export const CONNECT_SCHEMES = ['tcp', 'tls', 'udp', 'quic', 'unix', 'ws', 'wss', 'frame+tcp', 'frame+unix', 'http', 'https', 'grpc', 'grpcs'] as const;

export function parseConnectUrl(input: string): ConnectUrl {
  const m = /^([a-z][a-z0-9+.-]*):/i.exec(input);
  if (!m) throw new ConnectUsageError(`"${input}" is not a URL; expected one of ${CONNECT_SCHEMES.map((s) => `${s}:`).join(', ')}`);
  const scheme = m[1].toLowerCase();
  switch (scheme) {
    case 'unix':
    case 'frame+unix': {
      let path = input.slice(m[0].length);
      // unix:///run/x.sock is the same as unix:/run/x.sock.
      if (path.startsWith('//')) path = path.slice(2);
      if (path === '' || path === '@') throw new ConnectUsageError(`${scheme}: needs a socket path (${scheme}:/run/app.sock) or an abstract name (${scheme}:@name)`);
      return { scheme, path, href: `${scheme}:${path}` };
    }
    case 'tcp':
    case 'tls':
    case 'udp':
    case 'quic':
    case 'frame+tcp': {
      const url = parse(input);
      if (!url.hostname) throw new ConnectUsageError(`${input}: needs a host (${scheme}://127.0.0.1:7000)`);
      if (!url.port) throw new ConnectUsageError(`${input}: needs a port (${scheme}://${url.hostname}:7000)`);
      const port = Number(url.port);
      if (port === 0) throw new ConnectUsageError(`${input}: port 0 cannot be connected to`);
      if ((url.pathname !== '' && url.pathname !== '/') || url.search || url.hash) throw new ConnectUsageError(`${input}: ${scheme} URLs take a host and a port only`);
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      return { scheme, host, port, href: `${scheme}://${url.host}` };
    }
    case 'ws':
    case 'wss':
    case 'http':
    case 'https': {
      const url = parse(input);
      if (!url.hostname) throw new ConnectUsageError(`${input}: needs a host`);
      return { scheme, url, href: url.href };
    }
    case 'grpc':
    case 'grpcs': {
      const url = parse(input);
      if (!url.hostname) throw new ConnectUsageError(`${input}: needs a host (${scheme}://127.0.0.1:8080/helloworld.Greeter/SayHello)`);
      if (!url.port && scheme === 'grpc') throw new ConnectUsageError(`${input}: needs a port (grpc://${url.hostname}:8080/...); grpc has no default port`);
      const port = url.port ? Number(url.port) : 443;
      if (port === 0) throw new ConnectUsageError(`${input}: port 0 cannot be connected to`);
      const m = /^\/([A-Za-z_][\w.]*)\/([A-Za-z_]\w*)$/.exec(url.pathname);
      if (!m || url.search || url.hash) throw new ConnectUsageError(`${input}: expected the method as the path: ${scheme}://${url.host}/package.Service/Method`);
      const host = url.hostname.startsWith('[') ? url.hostname.slice(1, -1) : url.hostname;
      return { scheme, host, port, service: m[1], method: m[2], href: `${scheme}://${url.host}${url.pathname}` };
    }
    default:
      throw new ConnectUsageError(`unsupported scheme "${scheme}:"; expected one of ${CONNECT_SCHEMES.map((s) => `${s}:`).join(', ')}`);
  }
}

function parse(input: string): URL {
  try {
    return new URL(input);
  } catch {
    throw new ConnectUsageError(`"${input}" is not a valid URL (a port must be 1 to 65535; IPv6 hosts go in brackets)`);
  }
}

/** The address net.connect takes for a unix URL path (`@name` -> the abstract namespace). */
export function socketPath(path: string): string {
  return path.startsWith('@') ? `\0${path.slice(1)}` : path;
}

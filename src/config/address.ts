// Listener addresses: `host:port`, `[v6]:port`. Port 0 asks the kernel for a free port.

export interface HostPort {
  host: string;
  port: number;
}

export function parseHostPort(input: string): HostPort | undefined {
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(input) ?? /^([^:\s[\]]+):(\d{1,5})$/.exec(input);
  if (!m) return undefined;
  const port = Number(m[2]);
  if (port > 65535) return undefined;
  return { host: m[1], port };
}

export function formatHostPort({ host, port }: HostPort): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

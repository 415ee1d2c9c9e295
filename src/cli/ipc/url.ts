// Transport URLs for `switchyard ipc listen|send`:
//   unix:/path/to.sock   unix:@name (Linux abstract namespace)   tcp://127.0.0.1:9000
//   fifo:/path           shm:name
// A bad URL is a usage error (exit 2), reported with the forms that are accepted.

export type IpcUrl =
  | { transport: 'unix'; path: string; abstract: boolean }
  | { transport: 'tcp'; host: string; port: number }
  | { transport: 'fifo'; path: string }
  | { transport: 'shm'; name: string };

export class IpcUrlError extends Error {
  readonly code = 'SWITCHYARD_IPC_BAD_URL';
}

export const URL_FORMS = 'unix:/path, unix:@name, tcp://host:port, fifo:/path, shm:name';

export function parseIpcUrl(raw: string): IpcUrl {
  const bad = (why: string): never => {
    throw new IpcUrlError(`bad transport URL "${raw}": ${why} (expected one of: ${URL_FORMS})`);
  };
  const colon = raw.indexOf(':');
  if (colon <= 0) bad('no scheme');
  const scheme = raw.slice(0, colon).toLowerCase();
  const rest = raw.slice(colon + 1);
  switch (scheme) {
    case 'unix': {
      const body = rest.startsWith('//') ? rest.slice(2) : rest;
      if (body.startsWith('@')) {
        if (body.length < 2) bad('empty abstract socket name');
        return { transport: 'unix', path: body.slice(1), abstract: true };
      }
      if (!body.startsWith('/')) bad('a unix socket path must be absolute, or @name for the abstract namespace');
      return { transport: 'unix', path: body, abstract: false };
    }
    case 'tcp': {
      if (!rest.startsWith('//')) bad('write tcp://host:port');
      const hostPort = rest.slice(2).replace(/\/$/, '');
      const m = /^(\[[^\]]+\]|[^:/\[\]]+):(\d{1,5})$/.exec(hostPort);
      if (!m) bad('write tcp://host:port');
      const port = Number(m![2]);
      if (port > 65535) bad(`port ${port} is out of range`);
      return { transport: 'tcp', host: m![1].replace(/^\[|\]$/g, ''), port };
    }
    case 'fifo': {
      const body = rest.startsWith('//') ? rest.slice(2) : rest;
      if (!body.startsWith('/')) bad('a FIFO path must be absolute');
      return { transport: 'fifo', path: body };
    }
    case 'shm': {
      const name = rest.replace(/^\/+/, '');
      if (!/^[A-Za-z0-9._-]{1,200}$/.test(name)) bad('a shm name is letters, digits, ".", "_" or "-"');
      return { transport: 'shm', name };
    }
    default:
      return bad(`unknown scheme "${scheme}"`);
  }
}

export function formatIpcUrl(u: IpcUrl): string {
  switch (u.transport) {
    case 'unix':
      return u.abstract ? `unix:@${u.path}` : `unix:${u.path}`;
    case 'tcp':
      return `tcp://${u.host.includes(':') ? `[${u.host}]` : u.host}:${u.port}`;
    case 'fifo':
      return `fifo:${u.path}`;
    case 'shm':
      return `shm:${u.name}`;
  }
}

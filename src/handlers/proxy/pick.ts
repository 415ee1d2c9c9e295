import type { HttpRequest } from '../types.ts';
import type { PickContext } from '../../upstream/balancers/types.ts';

// What a hashing balancer may key on, read from an HTTP request (either version) only when a
// balancer asks: the path, a header, a cookie, the client's address. The HTTP exchange extends
// it (one object per request) and a WebSocket upgrade makes one; both hand it to group.admit().

export class RequestPick implements PickContext {
  constructor(
    readonly req: HttpRequest,
    readonly clientIp: string,
  ) {}

  get path(): string {
    const url = this.req.url ?? '/';
    const q = url.indexOf('?');
    return q === -1 ? url : url.slice(0, q);
  }

  header(name: string): string | undefined {
    const v = this.req.headers[name];
    return typeof v === 'string' ? v : v?.[0];
  }

  cookie(name: string): string | undefined {
    const header = this.req.headers.cookie;
    if (!header) return undefined;
    for (const part of header.split(';')) {
      const eq = part.indexOf('=');
      if (eq !== -1 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
    }
    return undefined;
  }
}

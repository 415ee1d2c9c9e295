import type { HashConfig } from '../config.ts';
import { hash32, hashIp } from './hash.ts';
import type { PickContext } from './types.ts';

const HEADER = 0;
const COOKIE = 1;
const PATH = 2;
const CLIENT_IP = 3;

/**
 * The key a consistent-hash balancer hashes, from the group's `hash` config: a header, a cookie,
 * the path, or the client IP. A missing or empty header/cookie (or the empty path of an L4
 * connection) falls back to the client IP, so such clients still stick to one target.
 */
export class HashKey {
  private readonly kind: number;
  private readonly name: string;

  constructor(config: Pick<HashConfig, 'key' | 'name'>) {
    // Header names arrive lower-case (PickContext); cookie names are case-sensitive.
    this.name = (config.key === 'header' ? config.name?.toLowerCase() : config.name) ?? '';
    switch (config.key) {
      case 'header':
        this.kind = this.name ? HEADER : CLIENT_IP;
        break;
      case 'cookie':
        this.kind = this.name ? COOKIE : CLIENT_IP;
        break;
      case 'path':
        this.kind = PATH;
        break;
      default:
        this.kind = CLIENT_IP;
    }
  }

  /** The 32-bit hash of this request's key. */
  hash(ctx: PickContext): number {
    let s: string | undefined;
    switch (this.kind) {
      case HEADER:
        s = ctx.header(this.name);
        break;
      case COOKIE:
        s = ctx.cookie(this.name);
        break;
      case PATH:
        s = ctx.path;
        break;
    }
    return s !== undefined && s !== '' ? hash32(s) : hashIp(ctx.clientIp);
  }
}

import { timingSafeEqual } from 'node:crypto';
import type { HttpRequest } from '../types.ts';

// Who is calling the admin API, and whether they may: a loopback peer always (whoever can reach
// 127.0.0.1 is on this machine already), anyone else only with the configured bearer token. The
// socket's peer address decides, never a header a client could forge (X-Forwarded-For).

export interface Caller {
  readonly allowed: boolean;
  /** For the log line of every change: the peer address, and `token` when it presented one. */
  readonly who: string;
}

export function isLoopback(address: string | undefined): boolean {
  if (!address) return false;
  const a = address.startsWith('::ffff:') ? address.slice(7) : address;
  return a === '::1' || a.startsWith('127.');
}

function tokenMatches(header: string | undefined, token: string): boolean {
  if (!header?.startsWith('Bearer ')) return false;
  const given = Buffer.from(header.slice(7).trim());
  const want = Buffer.from(token);
  return given.length === want.length && timingSafeEqual(given, want);
}

export function callerOf(req: HttpRequest, token: string | undefined): Caller {
  const address = req.socket?.remoteAddress;
  const auth = req.headers.authorization;
  const bearer = token !== undefined && tokenMatches(typeof auth === 'string' ? auth : undefined, token);
  const who = `${address ?? 'unknown'}${bearer ? ' (token)' : ''}`;
  return { allowed: isLoopback(address) || bearer, who };
}

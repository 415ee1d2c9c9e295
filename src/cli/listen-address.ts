import { formatHostPort, parseHostPort } from '../config/address.ts';

/**
 * The address a one-liner (file-server, reverse-proxy) listens on, as given on its command line:
 * `HOST:PORT`, `[V6]:PORT`, `:PORT` (every IPv4 interface, 0.0.0.0) or a bare `PORT` (loopback,
 * 127.0.0.1). Throws a message for the command line otherwise.
 */
export function parseListenAddress(text: string): string {
  const t = text.trim();
  if (/^\d{1,5}$/.test(t)) return checked(`127.0.0.1:${t}`, text);
  if (/^:\d{1,5}$/.test(t)) return checked(`0.0.0.0${t}`, text);
  return checked(t, text);
}

function checked(address: string, written: string): string {
  const hp = parseHostPort(address);
  if (!hp) throw new Error(`expected an address like 127.0.0.1:8080, :8080 (every interface) or 8080 (loopback), got "${written}"`);
  return formatHostPort(hp);
}

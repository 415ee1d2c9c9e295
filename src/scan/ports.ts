import { ScanUsageError } from './targets.ts';
import { COMMON_TCP_PORTS, COMMON_UDP_PORTS } from './services.ts';

// Port lists as nmap's -p takes them: `22,80,8000-8100`, `-` for every port, open-ended ranges
// (`-1024`, `60000-`). Kept as a sorted list of distinct numbers: at most 65535 of them.

export const MAX_PORT = 65535;

/** Ports from a `-p` value. */
export function parsePorts(spec: string): number[] {
  const text = spec.trim();
  if (!text) throw new ScanUsageError('an empty port list');
  const seen = new Uint8Array(MAX_PORT + 1);
  for (const raw of text.split(',')) {
    const part = raw.trim();
    const m = /^(\d*)(-?)(\d*)$/.exec(part);
    if (!part || !m) throw new ScanUsageError(`${part || '(empty)'}: expected a port (80), a range (8000-8100), an open range (-1024, 60000-) or - for all`);
    const [, lo = '', dash, hi = ''] = m;
    const from = lo === '' ? 1 : Number(lo);
    const to = dash ? (hi === '' ? MAX_PORT : Number(hi)) : from;
    if (!dash && lo === '') throw new ScanUsageError(`${part}: expected a port number`);
    for (const p of [from, to]) {
      if (p < 1 || p > MAX_PORT) throw new ScanUsageError(`${part}: ports run from 1 to ${MAX_PORT}`);
    }
    if (from > to) throw new ScanUsageError(`${part}: a range runs from the lower port to the higher`);
    seen.fill(1, from, to + 1);
  }
  const ports: number[] = [];
  for (let p = 1; p <= MAX_PORT; p++) if (seen[p]) ports.push(p);
  return ports;
}

/** The first `n` of the common ports (all of them without `n`), in the list's order of likelihood. */
export function topPorts(protocol: 'tcp' | 'udp', n?: number): number[] {
  const list = protocol === 'tcp' ? COMMON_TCP_PORTS : COMMON_UDP_PORTS;
  if (n === undefined) return [...list];
  if (!Number.isInteger(n) || n < 1 || n > list.length) {
    throw new ScanUsageError(`--top-ports takes 1 to ${list.length} for ${protocol} (the common-port list's length); use -p for anything else`);
  }
  return list.slice(0, n);
}

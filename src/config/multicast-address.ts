import { isIP, isIPv4, isIPv6 } from 'node:net';
import { networkInterfaces } from 'node:os';

// Multicast addresses and the local interface a group is used on: shared by the udp listener's
// config and socket (src/listeners/multicast.ts) and the `connect` client (src/connect/udp.ts).

/** Whether `ip` is a multicast group address: IPv4 224.0.0.0/4 or IPv6 ff00::/8. */
export function isMulticastAddress(ip: string): boolean {
  if (isIPv4(ip)) {
    const first = Number(ip.split('.')[0]);
    return first >= 224 && first <= 239;
  }
  return isIPv6(ip) && /^ff[0-9a-f]{0,2}:/i.test(ip);
}

/** A network interface by name as the OS spells it (`lo`, `eth0`, `enp3s0`, `br-lan.10`). */
export const INTERFACE_NAME = /^[A-Za-z0-9][A-Za-z0-9_.:-]{0,14}$/;

/** An interface this host does not have (or one without an address of the family needed). */
export class InterfaceError extends Error {
  constructor(readonly reason: string) {
    super(reason);
    this.name = 'InterfaceError';
  }
}

/**
 * The interface a group is joined on and sent through, in the form node:dgram takes: an IPv4
 * address of this host, or `::%name` for IPv6 (the kernel picks an IPv6 interface by its index,
 * not by an address). `spec` is an address of this host or an interface name.
 */
export function resolveInterface(spec: string, family: 4 | 6): string {
  const nics = networkInterfaces();
  if (isIP(spec) === 0) {
    const addrs = nics[spec];
    if (!addrs) throw new InterfaceError(`this host has no interface "${spec}" (it has: ${Object.keys(nics).join(', ') || 'none'})`);
    if (family === 6) return `::%${spec}`;
    const v4 = addrs.find((a) => a.family === 'IPv4');
    if (!v4) throw new InterfaceError(`interface "${spec}" has no IPv4 address`);
    return v4.address;
  }
  for (const [name, addrs] of Object.entries(nics)) {
    if (addrs?.some((a) => a.address.toLowerCase() === spec.toLowerCase())) return family === 4 ? spec : `::%${name}`;
  }
  const mine = Object.values(nics)
    .flatMap((a) => a ?? [])
    .filter((a) => (a.family === 'IPv4' ? 4 : 6) === family)
    .map((a) => a.address);
  throw new InterfaceError(`${spec} is not an address of this host (its IPv${family} addresses: ${mine.join(', ') || 'none'})`);
}

import type { Socket } from 'node:dgram';
import { isIP, isIPv4, isIPv6 } from 'node:net';
import { z } from 'zod';
import { INTERFACE_NAME, InterfaceError, isMulticastAddress, resolveInterface } from '../config/multicast-address.ts';

// Multicast group membership of a udp listener (docs/multicast.md). The schema lives here, next
// to the code that joins and leaves, and is referenced from the udp listener's schema
// (src/config/schema.ts). Membership belongs to the socket: closing it leaves every group, so
// only a reload that keeps the socket but changes the groups leaves any explicitly.

export const multicastGroupSchema = z
  .strictObject({
    /** The group to join: IPv4 224.0.0.0/4 or IPv6 ff00::/8. */
    group: z.string().refine(isMulticastAddress, { message: 'expected a multicast group address: IPv4 224.0.0.0 to 239.255.255.255, or IPv6 ff00::/8 (ff02::1, ff05::1:3, ...)' }),
    /**
     * The local interface to join on and send group datagrams through: an address of this host
     * (of the group's family) or an interface name (`lo`, `eth0`). Default: any (the kernel picks
     * by its routes).
     */
    interface: z
      .string()
      .refine((v) => isIP(v) !== 0 || INTERFACE_NAME.test(v), { message: 'expected an address of this host (e.g. 192.168.1.10) or an interface name (e.g. eth0)' })
      .optional(),
    /** Hops a datagram this socket sends to a group may make (IP_MULTICAST_TTL); 1 keeps it on the local network. */
    ttl: z.number().int().min(0).max(255).default(1),
    /** Whether group datagrams sent from this host are delivered to its own members too (IP_MULTICAST_LOOP). */
    loopback: z.boolean().default(true),
    /** Source-specific membership: only datagrams from this sender's address are received (IPv4 232.0.0.0/8, IPv6 ff3x::/32 by convention). */
    source: z.string().refine((v) => isIP(v) !== 0, { message: 'expected the IP address of the one sender to receive from' }).optional(),
  })
  .superRefine((g, ctx) => {
    const family = isIPv4(g.group) ? 4 : 6;
    if (g.interface !== undefined && isIP(g.interface) !== 0 && isIP(g.interface) !== family) {
      ctx.addIssue({ code: 'custom', path: ['interface'], message: `the group ${g.group} is IPv${family}; give an IPv${family} address of this host or an interface name` });
    }
    if (g.interface !== undefined) {
      // The host's interfaces, as `serve` would find them: a config naming one it lacks is refused
      // at load, check and reload alike, rather than by a listener half way through a reload.
      try {
        resolveInterface(g.interface, family);
      } catch (err) {
        if (!(err instanceof InterfaceError)) throw err;
        ctx.addIssue({ code: 'custom', path: ['interface'], message: err.reason });
      }
    }
    if (g.source !== undefined && isIP(g.source) !== family) {
      ctx.addIssue({ code: 'custom', path: ['source'], message: `the group ${g.group} is IPv${family}; its source must be an IPv${family} address` });
    }
  });

/**
 * One group, or a list of them (all of one family). The socket's sending settings (ttl,
 * loopback, interface) are one per socket: the first group's.
 */
export const multicastSchema = z.union([multicastGroupSchema, z.array(multicastGroupSchema).min(1, 'give at least one group')]).transform((v) => (Array.isArray(v) ? v : [v]));

export type MulticastGroup = z.output<typeof multicastGroupSchema>;

/**
 * Where a listener with these groups must bind to receive them, as issues at their paths
 * (relative to the listener): the wildcard address of the groups' family, or the one group's
 * own address. A socket bound to a unicast address never sees datagrams sent to a group.
 */
export function multicastBindIssues(host: string, groups: MulticastGroup[]): { path: (string | number)[]; message: string }[] {
  const issues: { path: (string | number)[]; message: string }[] = [];
  if (!groups.every((g) => typeof g?.group === 'string' && isMulticastAddress(g.group))) return issues;
  const families = new Set(groups.map((g) => (isIPv4(g.group) ? 4 : 6)));
  if (families.size > 1) {
    issues.push({ path: ['multicast'], message: 'the groups of one listener are all IPv4 or all IPv6 (one socket has one family); use two listeners' });
    return issues;
  }
  const family = [...families][0];
  const any = family === 4 ? '0.0.0.0' : '::';
  const single = groups.length === 1 ? groups[0].group : undefined;
  const ok = host === any || (single !== undefined && host.toLowerCase() === single.toLowerCase());
  if (!ok) {
    const alternatives = single !== undefined ? `${any} (every group on the port) or ${single} (that group only)` : `${any} (a listener with several groups)`;
    const why = isMulticastAddress(host) ? `${host} is not one of its groups` : `a socket bound to ${host} does not receive datagrams sent to a group`;
    issues.push({ path: ['address'], message: `${why}; bind ${alternatives}, with the port` });
  }
  const seen = new Set<string>();
  for (const [i, g] of groups.entries()) {
    const key = `${g.group.toLowerCase()} ${g.interface ?? ''} ${g.source ?? ''}`;
    if (seen.has(key)) issues.push({ path: ['multicast', i, 'group'], message: `${g.group} is joined twice on the same interface` });
    seen.add(key);
  }
  return issues;
}

/** Thrown when a group cannot be joined: names the field, says why. */
export class MulticastError extends Error {
  constructor(
    readonly field: string,
    readonly reason: string,
    options?: { cause?: unknown },
  ) {
    super(`${field}: ${reason}`, options);
    this.name = 'MulticastError';
  }
}

/** A group joined on a socket, as it was joined (to leave it the same way). */
interface Joined {
  key: string;
  group: string;
  iface: string | undefined;
  source: string | undefined;
}

function keyOf(g: MulticastGroup): string {
  return `${g.group.toLowerCase()}|${g.interface ?? ''}|${g.source ?? ''}`;
}

/**
 * The groups one socket is a member of. `apply` moves it to a new list: leaves the groups not in
 * it, joins the new ones, and sets the sending options. When workers share one socket, each
 * joins and leaves; the kernel's "already a member" and "not a member" answers then mean
 * another worker got there first.
 */
export class Memberships {
  private joined: Joined[] = [];

  constructor(
    private readonly socket: Socket,
    /** The config path of the listener's `multicast` field, for errors (`listeners[2].multicast`). */
    private readonly at: string,
  ) {}

  apply(groups: MulticastGroup[]): void {
    const wanted = new Map(groups.map((g, i) => [keyOf(g), { g, i }]));
    const family: 4 | 6 = groups.length > 0 && isIPv6(groups[0].group) ? 6 : 4;
    const field = (i: number, name: string) => (groups.length === 1 ? `${this.at}.${name}` : `${this.at}[${i}].${name}`);
    // Resolve every interface first: a bad one must fail before anything is changed.
    const plans = groups.map((g, i) => ({ g, i, iface: g.interface === undefined ? undefined : this.resolve(g.interface, family, field(i, 'interface')) }));
    for (const j of this.joined.filter((x) => !wanted.has(x.key))) this.leave(j);
    this.joined = this.joined.filter((x) => wanted.has(x.key));
    for (const { g, i, iface } of plans) {
      const key = keyOf(g);
      if (this.joined.some((x) => x.key === key)) continue;
      try {
        if (g.source !== undefined) this.socket.addSourceSpecificMembership(g.source, g.group, iface);
        else this.socket.addMembership(g.group, iface);
      } catch (err) {
        const code = (err as NodeJS.ErrnoException).code;
        if (code !== 'EADDRINUSE') {
          throw new MulticastError(field(i, 'group'), `cannot join ${g.group}${iface ? ` on ${g.interface}` : ''}: ${joinFailure(code, err)}`, { cause: err });
        }
      }
      this.joined.push({ key, group: g.group, iface, source: g.source });
    }
    if (groups.length === 0) return;
    const first = plans[0];
    try {
      this.socket.setMulticastTTL(first.g.ttl);
      this.socket.setMulticastLoopback(first.g.loopback);
      if (first.iface !== undefined) this.socket.setMulticastInterface(first.iface);
    } catch (err) {
      throw new MulticastError(this.at, `cannot set the sending options: ${(err as Error).message}`, { cause: err });
    }
  }

  private resolve(spec: string, family: 4 | 6, field: string): string {
    try {
      return resolveInterface(spec, family);
    } catch (err) {
      if (err instanceof InterfaceError) throw new MulticastError(field, err.reason, { cause: err });
      throw err;
    }
  }

  /** Leaves every group (the socket stays open). */
  leaveAll(): void {
    for (const j of this.joined) this.leave(j);
    this.joined = [];
  }

  private leave(j: Joined): void {
    try {
      if (j.source !== undefined) this.socket.dropSourceSpecificMembership(j.source, j.group, j.iface);
      else this.socket.dropMembership(j.group, j.iface);
    } catch {
      // Not a member any more (another worker on this socket left first), or the socket closed.
    }
  }
}

function joinFailure(code: string | undefined, err: unknown): string {
  switch (code) {
    case 'ENODEV':
      return 'no such interface, or it cannot do multicast';
    case 'EADDRNOTAVAIL':
      return 'the interface is not usable for multicast (no such address, or no route to the group: on Linux, `ip route add 224.0.0.0/4 dev IFACE`)';
    case 'ENOBUFS':
      return 'the kernel\'s limit of groups per socket is reached (net.ipv4.igmp_max_memberships)';
    case 'EINVAL':
      return 'the kernel refused the group on this socket (family or address mismatch)';
    default:
      return (err as Error).message;
  }
}

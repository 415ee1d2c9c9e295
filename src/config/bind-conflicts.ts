import { isIP } from 'node:net';
import { posix } from 'node:path';
import { formatHostPort, parseHostPort } from './address.ts';

// Two listeners of one config that would bind the same address: found at validation, so that
// `switchyard check` refuses what `serve` would fail on at bind time. The rules follow what the
// kernel does with the sockets the listeners open (src/listeners/bind.ts, udp.ts, unix.ts):
//
// - http and tcp listeners share the TCP port space; udp listeners have their own (a udp and a tcp
//   listener may use the same port number). Port 0 asks for a free port and never conflicts.
// - The same host and port conflict. `0.0.0.0` takes the port on every IPv4 address, so it
//   conflicts with any IPv4 host on that port. `::` is bound dual-stack unless its listener sets
//   `socket.ipv6Only`, so it takes the port on every IPv6 and IPv4 address (IPv6 only with it). `::ffff:a.b.c.d` is the IPv4
//   address a.b.c.d. IPv6 addresses are compared in their canonical form (`0:0::1` is `::1`).
// - A host name (e.g. `localhost`) is compared as written, case aside: validation does no DNS, so
//   `localhost:8080` and `127.0.0.1:8080` are not caught here (the bind then reports it). A name
//   still conflicts with `::` on its port, whatever it resolves to; a udp listener binds a name
//   as IPv4 (udp4 socket), so there it also conflicts with `0.0.0.0`.
// - unix listeners conflict on the same socket path, compared after lexical normalisation
//   (`./a.sock` is `a.sock`), or the same abstract `@name`, compared exactly. A relative path and
//   an absolute one are not compared (they resolve against the config file's directory, unknown
//   here); the second listener's bind then reports the live socket.
// - An http listener with `http3` also takes its host and port in the UDP space (QUIC). Two udp
//   listeners that both set `reuseAddr` may share an address (SO_REUSEADDR: several receivers of
//   one multicast group), so they are not a conflict.

/** The minimal listener shape the check needs (a parsed listener config fits it). */
export interface BindingListener {
  name: string;
  protocol: string;
  address?: string;
  path?: string;
  /** `socket:` of the listener; only `ipv6Only` matters here (read leniently: also run on raw configs). */
  socket?: unknown;
  /** http listeners: HTTP/3 binds the same host and port over UDP too (read leniently). */
  http3?: unknown;
  /** udp listeners: SO_REUSEADDR, which lets another such socket bind the same address. */
  reuseAddr?: unknown;
}

export interface BindConflict {
  /** Path of the later listener's field, e.g. `['listeners', 1, 'address']`. */
  path: (string | number)[];
  message: string;
}

type Space = 'tcp' | 'udp';

interface IpBinding {
  space: Space;
  port: number;
  /** Canonical host: an IP in canonical form, or a lower-cased name. */
  host: string;
  /** 4 or 6 for an IP (v4-mapped IPv6 counts as 4); 4 for a name on udp; undefined for a name on tcp. */
  family: 4 | 6 | undefined;
  /** As written in the config, for messages. */
  written: string;
  /** `socket.ipv6Only`: `::` then takes IPv6 addresses only. */
  v6only: boolean;
  /** A udp listener's `reuseAddr: true`. */
  reuse: boolean;
  /** The UDP side of an http listener's `http3`. */
  quic: boolean;
}

const SPACE_OF_PROTOCOL: Record<string, Space | undefined> = { http: 'tcp', tcp: 'tcp', udp: 'udp', quic: 'udp' };

function canonicalHost(host: string, space: Space): { host: string; family: 4 | 6 | undefined } {
  const v = isIP(host);
  if (v === 4) return { host, family: 4 };
  if (v === 6) {
    // The WHATWG URL parser prints an IPv6 address in its canonical (RFC 5952) form.
    const canon = new URL(`http://[${host}]/`).hostname.slice(1, -1);
    const mapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/.exec(canon);
    if (mapped) {
      const hi = parseInt(mapped[1], 16);
      const lo = parseInt(mapped[2], 16);
      return { host: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: 4 };
    }
    return { host: canon, family: 6 };
  }
  return { host: host.toLowerCase(), family: space === 'udp' ? 4 : undefined };
}

function ipBindings(l: BindingListener): IpBinding[] {
  const space = SPACE_OF_PROTOCOL[l.protocol];
  if (!space || l.address === undefined) return [];
  const hp = parseHostPort(l.address);
  if (!hp || hp.port === 0) return [];
  const v6only = typeof l.socket === 'object' && l.socket !== null && (l.socket as { ipv6Only?: unknown }).ipv6Only === true;
  const reuse = l.protocol === 'udp' && l.reuseAddr === true;
  const out: IpBinding[] = [{ space, port: hp.port, ...canonicalHost(hp.host, space), written: formatHostPort(hp), v6only, reuse, quic: false }];
  const http3 = l.protocol === 'http' && l.http3 !== undefined && l.http3 !== false && l.http3 !== null;
  if (http3) out.push({ space: 'udp', port: hp.port, ...canonicalHost(hp.host, 'udp'), written: formatHostPort(hp), v6only, reuse: false, quic: true });
  return out;
}

/** Why `a` and `b` (same space and port) cannot both be bound, or undefined when they can. */
function overlap(a: IpBinding, b: IpBinding): string | undefined {
  if (a.host === b.host) return 'same';
  for (const [wide, other] of [
    [a, b],
    [b, a],
  ]) {
    if (wide.host === '::' && wide.v6only && other.family === 4) continue;
    if (wide.host === '::') return wide.v6only ? `"::" takes port ${wide.port} on every IPv6 address` : `"::" takes port ${wide.port} on every IPv6 and IPv4 address (bound dual-stack; socket.ipv6Only leaves IPv4 free)`;
    if (wide.host === '0.0.0.0' && other.family === 4) return `"0.0.0.0" takes port ${wide.port} on every IPv4 address`;
  }
  return undefined;
}

function unixKey(path: string): string {
  return path.startsWith('@') ? path : posix.normalize(path);
}

/** Every listener that would bind an address an earlier listener of the same config binds (the first such one named). */
export function findBindConflicts(listeners: readonly BindingListener[]): BindConflict[] {
  const out: BindConflict[] = [];
  const ip: IpBinding[][] = listeners.map(ipBindings);
  listeners.forEach((l, i) => {
    const before = (j: number) => `listener "${listeners[j].name}" (listeners[${j}])`;
    if (l.protocol === 'unix' && l.path !== undefined) {
      const key = unixKey(l.path);
      const j = listeners.findIndex((o, k) => k < i && o.protocol === 'unix' && o.path !== undefined && unixKey(o.path) === key);
      if (j >= 0) {
        const what = l.path.startsWith('@') ? `abstract socket name "${l.path}"` : `socket path "${l.path}"`;
        out.push({ path: ['listeners', i, 'path'], message: `${what} is already used by ${before(j)}` });
      }
      return;
    }
    for (const mine of ip[i]) {
      const found = firstOverlap(mine, i);
      if (!found) continue;
      const { j, theirs, why } = found;
      const shared =
        mine.quic || theirs.quic
          ? `; http3 takes the listener's port over UDP too`
          : listeners[j].protocol !== l.protocol && mine.space === 'tcp'
            ? `; http and tcp listeners share TCP ports`
            : '';
      const written = mine.quic ? `${mine.written} (UDP, for http3)` : mine.written;
      const message =
        why === 'same' ? `${written} is already used by ${before(j)}${shared}` : `${written} overlaps ${theirs.written} of ${before(j)}: ${why}${shared}`;
      out.push({ path: ['listeners', i, mine.quic ? 'http3' : 'address'], message });
      break;
    }
  });
  return out;

  function firstOverlap(mine: IpBinding, i: number): { j: number; theirs: IpBinding; why: string } | undefined {
    for (let j = 0; j < i; j++) {
      for (const theirs of ip[j]) {
        if (theirs.space !== mine.space || theirs.port !== mine.port) continue;
        if (mine.reuse && theirs.reuse) continue;
        const why = overlap(mine, theirs);
        if (why) return { j, theirs, why };
      }
    }
    return undefined;
  }
}

import { isIPv4, isIPv6 } from 'node:net';
import { lookup } from 'node:dns/promises';

// What `switchyard scan` may touch: exactly the hosts the user wrote (addresses, names, CIDR
// blocks), never more. Blocks are kept as ranges and walked lazily, so a /16 costs a few numbers,
// not 65536 strings; their size is checked against a cap before anything is sent.

/** A cap on the addresses one scan covers unless the user raises it (`--max-hosts`). */
export const DEFAULT_MAX_HOSTS = 65536;

/** Bad target or port syntax, a name that does not resolve, too many hosts: the user's to fix. */
export class ScanUsageError extends Error {
  override name = 'ScanUsageError';
}

/** One item of the target list as written, before names are resolved. */
export type TargetSpec =
  | { kind: 'address'; written: string; address: string }
  | { kind: 'name'; written: string; name: string; prefix?: number }
  | { kind: 'block4'; written: string; first: number; count: number }
  | { kind: 'block6'; written: string; first: bigint; count: bigint };

/** One address to scan, with the name it was written as (when it was a name). */
export interface ScanHost {
  /** Position in the scan order: results are reported in this order. */
  index: number;
  address: string;
  /** The host name the user wrote, when the address came from one. */
  name?: string;
}

function ipv4ToNumber(address: string): number {
  return address.split('.').reduce((n, octet) => n * 256 + Number(octet), 0);
}

function numberToIpv4(n: number): string {
  return [n >>> 24, (n >>> 16) & 255, (n >>> 8) & 255, n & 255].join('.');
}

function ipv6ToBigInt(address: string): bigint {
  let text = address;
  // An embedded IPv4 tail (::ffff:10.0.0.1) becomes two hextets.
  const v4 = /(\d+\.\d+\.\d+\.\d+)$/.exec(text);
  if (v4?.[1]) {
    const n = ipv4ToNumber(v4[1]);
    text = `${text.slice(0, -v4[1].length)}${(n >>> 16).toString(16)}:${(n & 0xffff).toString(16)}`;
  }
  const [head = '', tail] = text.split('::');
  const headParts = head ? head.split(':') : [];
  const tailParts = tail ? tail.split(':') : [];
  const parts = tail === undefined ? headParts : [...headParts, ...Array<string>(8 - headParts.length - tailParts.length).fill('0'), ...tailParts];
  return parts.reduce((n, h) => (n << 16n) | BigInt(parseInt(h, 16)), 0n);
}

function bigIntToIpv6(n: bigint): string {
  const hextets: string[] = [];
  for (let i = 7; i >= 0; i--) hextets.push(((n >> BigInt(i * 16)) & 0xffffn).toString(16));
  // Compress the longest run of zero hextets, as addresses are usually written.
  let best = { at: -1, len: 0 };
  for (let i = 0; i < 8; ) {
    if (hextets[i] !== '0') {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && hextets[j] === '0') j++;
    if (j - i > best.len && j - i > 1) best = { at: i, len: j - i };
    i = j;
  }
  if (best.at < 0) return hextets.join(':');
  return `${hextets.slice(0, best.at).join(':')}::${hextets.slice(best.at + best.len).join(':')}`;
}

function parsePrefix(text: string, max: number, written: string): number {
  if (!/^\d{1,3}$/.test(text) || Number(text) > max) throw new ScanUsageError(`${written}: the prefix length must be a whole number from 0 to ${max}`);
  return Number(text);
}

/** One target as written: an IPv4 or IPv6 address, a host name, or either with a /prefix. */
export function parseTarget(written: string): TargetSpec {
  const text = written.trim();
  if (!text) throw new ScanUsageError('an empty target');
  const slash = text.indexOf('/');
  const base = slash < 0 ? text : text.slice(0, slash);
  const bracketless = base.startsWith('[') && base.endsWith(']') ? base.slice(1, -1) : base;
  if (slash < 0) {
    if (isIPv4(bracketless) || isIPv6(bracketless)) return { kind: 'address', written: text, address: bracketless };
  } else if (isIPv4(bracketless)) {
    const prefix = parsePrefix(text.slice(slash + 1), 32, text);
    const size = 2 ** (32 - prefix);
    const first = Math.floor(ipv4ToNumber(bracketless) / size) * size;
    return { kind: 'block4', written: text, first, count: size };
  } else if (isIPv6(bracketless)) {
    const prefix = parsePrefix(text.slice(slash + 1), 128, text);
    const size = 1n << BigInt(128 - prefix);
    const first = (ipv6ToBigInt(bracketless) / size) * size;
    return { kind: 'block6', written: text, first, count: size };
  }
  // A DNS name: letters, digits, hyphens, dots; nothing a shell or a URL would have added.
  if (!/^[a-z0-9]([a-z0-9-]{0,62})(\.[a-z0-9]([a-z0-9-]{0,62}))*\.?$/i.test(base) || base.length > 253) {
    throw new ScanUsageError(`${text}: expected an IPv4 or IPv6 address, a host name, or either with a /prefix (10.0.0.0/24)`);
  }
  if (slash < 0) return { kind: 'name', written: text, name: base };
  return { kind: 'name', written: text, name: base, prefix: parsePrefix(text.slice(slash + 1), 32, text) };
}

/** `HOST[,HOST|CIDR]...`, from one or more arguments. */
export function parseTargets(args: readonly string[]): TargetSpec[] {
  const specs = args.flatMap((a) => a.split(',')).map((t) => t.trim()).filter(Boolean).map(parseTarget);
  if (specs.length === 0) throw new ScanUsageError('no target: name the hosts to scan, e.g. 127.0.0.1 or 192.168.1.0/24');
  return specs;
}

/** How many addresses the specs cover (a name with a prefix counts as its IPv4 block). */
export function hostCount(specs: readonly TargetSpec[]): bigint {
  let total = 0n;
  for (const s of specs) {
    if (s.kind === 'block4') total += BigInt(s.count);
    else if (s.kind === 'block6') total += s.count;
    else if (s.kind === 'name' && s.prefix !== undefined) total += 1n << BigInt(32 - s.prefix);
    else total += 1n;
  }
  return total;
}

/** The scan's hosts: names resolved (one address each, IPv4 first), blocks walked lazily. */
export interface ResolvedTargets {
  count: number;
  hosts(): Generator<ScanHost>;
}

/**
 * Checks the size against `maxHosts` (before any lookup or packet), resolves the names, and
 * returns the hosts in the order written.
 */
export async function resolveTargets(specs: readonly TargetSpec[], maxHosts = DEFAULT_MAX_HOSTS): Promise<ResolvedTargets> {
  const total = hostCount(specs);
  if (total > BigInt(maxHosts)) {
    throw new ScanUsageError(`the targets cover ${total} addresses, more than the limit of ${maxHosts}; narrow them, or raise the limit with --max-hosts if you mean it`);
  }
  const resolved: TargetSpec[] = [];
  const names = new Map<TargetSpec, string>();
  for (const s of specs) {
    if (s.kind !== 'name') {
      resolved.push(s);
      continue;
    }
    let address: string;
    let family: number;
    try {
      ({ address, family } = await lookup(s.name, { verbatim: false }));
    } catch (err) {
      throw new ScanUsageError(`cannot resolve ${s.name}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`);
    }
    if (s.prefix === undefined) {
      const spec: TargetSpec = { kind: 'address', written: s.written, address };
      names.set(spec, s.name);
      resolved.push(spec);
    } else {
      if (family !== 4) throw new ScanUsageError(`${s.written}: ${s.name} has no IPv4 address to take a /${s.prefix} block around`);
      resolved.push(parseTarget(`${address}/${s.prefix}`));
    }
  }
  return {
    count: Number(total),
    *hosts() {
      let index = 0;
      for (const s of resolved) {
        if (s.kind === 'address') {
          const name = names.get(s);
          yield name === undefined ? { index: index++, address: s.address } : { index: index++, address: s.address, name };
        } else if (s.kind === 'block4') {
          for (let i = 0; i < s.count; i++) yield { index: index++, address: numberToIpv4(s.first + i) };
        } else if (s.kind === 'block6') {
          for (let i = 0n; i < s.count; i++) yield { index: index++, address: bigIntToIpv6(s.first + i) };
        }
      }
    },
  };
}

import { isIP } from 'node:net';
import type { X509Certificate } from 'node:crypto';

// Host names as TLS sees them: SNI carries a DNS name (never an IP address, RFC 6066 3), compared
// without case and without a trailing dot. A wildcard covers exactly one leftmost label, as
// browsers do (RFC 6125 6.4.3): `*.example.com` matches `a.example.com`, not `example.com` nor
// `a.b.example.com`.

/** Lower case, no trailing dot, IPv6 compressed and without brackets. */
export function normalizeName(name: string): string {
  let n = name.trim().toLowerCase();
  if (n.endsWith('.')) n = n.slice(0, -1);
  if (n.startsWith('[') && n.endsWith(']')) n = n.slice(1, -1);
  // One spelling per IPv6 address (Node prints SAN addresses uncompressed: 0:0:0:0:0:0:0:1).
  if (isIP(n) === 6) n = new URL(`http://[${n}]/`).hostname.slice(1, -1);
  return n;
}

export function isWildcard(name: string): boolean {
  return name.startsWith('*.');
}

/** `a.example.com` -> `*.example.com`; undefined for a name with a single label or an IP. */
export function wildcardOf(name: string): string | undefined {
  if (isIP(name)) return undefined;
  const dot = name.indexOf('.');
  if (dot <= 0 || dot === name.length - 1) return undefined;
  return `*${name.slice(dot)}`;
}

/** Whether `pattern` (a name from a certificate, maybe `*.x.y`) covers `host`. */
export function nameMatches(pattern: string, host: string): boolean {
  const p = normalizeName(pattern);
  const h = normalizeName(host);
  if (p === h) return true;
  return isWildcard(p) && wildcardOf(h) === p;
}

/**
 * The names a certificate serves: its DNS and IP subjectAltNames, or its subject CN when it has
 * no DNS name at all (old self-signed certificates; clients ignore the CN but the store can still
 * pick it by SNI).
 */
export function certificateNames(cert: X509Certificate): string[] {
  const names: string[] = [];
  // Node writes `DNS:a.example, IP Address:127.0.0.1`; a name with a comma or quote is quoted
  // as a JSON string (Node >= 17.3), which no host name has, so a plain split is enough here.
  for (const part of (cert.subjectAltName ?? '').split(/,\s*/)) {
    const m = /^(DNS|IP Address):(.+)$/.exec(part.trim());
    if (m) names.push(normalizeName(m[2]));
  }
  if (!names.some((n) => !isIP(n))) {
    const cn = /(?:^|\n)CN=([^\n]+)/.exec(cert.subject)?.[1];
    if (cn && !names.includes(normalizeName(cn))) names.push(normalizeName(cn));
  }
  return [...new Set(names)];
}

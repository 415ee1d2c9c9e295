import type { ConfigInput } from '../config/schema.ts';
import { parseTargetAddress } from '../upstream/target.ts';
import type { balancePolicies } from '../upstream/config.ts';
import type { BuiltConfig } from './serve.ts';

/** Where `switchyard reverse-proxy` listens without --from: loopback only. */
export const REVERSE_PROXY_ADDRESS = '127.0.0.1:8080';

export interface ReverseProxyOptions {
  /** Targets as given: `host:port` (taken as http://host:port) or a URL with its scheme. */
  to: string[];
  /** Listener address, already checked (parseListenAddress). */
  from: string;
  balance: (typeof balancePolicies)[number];
  /** Turn on active health checks: GET this path on each target. Off without it (passive outlier detection stays on). */
  healthPath?: string;
}

/**
 * A `--to` value as an upstream target: a bare `host:port` is an HTTP backend here (in a config
 * file it means a TCP one, for tcp-proxy), so it gets `http://`. Throws a message for the
 * command line when it is neither form.
 */
export function proxyTarget(text: string): string {
  const t = text.trim();
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(t) ? t : `http://${t}`;
  const parsed = parseTargetAddress(withScheme);
  if (!parsed) throw new Error(`expected host:port or http(s)://host:port, got "${text}"`);
  if (parsed.protocol === 'tls:') throw new Error(`"${text}": tls:// is a TCP target; the reverse proxy speaks HTTP (use https://)`);
  return withScheme;
}

/**
 * The config `switchyard reverse-proxy --to ...` runs: one http listener named `proxy` with one
 * route to the proxy handler, over an upstream group named `backend` of the targets (docs/cli.md).
 */
export function reverseProxyConfig(o: ReverseProxyOptions): BuiltConfig {
  const config: ConfigInput = {
    listeners: [{ name: 'proxy', protocol: 'http', address: o.from, routes: [{ name: 'proxy', match: { path: '/*' }, handler: { type: 'proxy', upstream: 'backend' } }] }],
    upstreams: {
      backend: {
        targets: o.to.map(proxyTarget),
        balance: o.balance,
        ...(o.healthPath === undefined ? {} : { health: { path: o.healthPath } }),
      },
    },
  };
  return { config, source: `reverse-proxy to ${o.to.join(', ')}` };
}

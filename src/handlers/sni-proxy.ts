import type { Socket } from 'node:net';
import { z } from 'zod';
import { duration } from '../config/units.ts';
import { MAX_CLIENT_HELLO, nameMatches, readClientHello } from '../tls/index.ts';
import { tcpProxyHandler } from './tcp-proxy.ts';
import type { ConnContext, HandlerModule, StreamHandler } from './types.ts';

// TLS passthrough: routes each connection of a tcp listener by the server name of its TLS
// ClientHello to a tcp-proxy upstream, without terminating TLS (HAProxy's req.ssl_sni, nginx's
// ssl_preread). The hello is read without being consumed (at most one TLS record, within
// helloTimeout), then the connection, hello and all, is handed to that route's tcp-proxy, which
// does the rest (balancing, connect retries, splice with backpressure). The backends hold the
// certificates; this listener never sees a key or a byte of plaintext.

const route = z.strictObject({
  /** Server names (SNI) of this route: exact, or `*.example.com` for one label. */
  names: z.array(z.string().min(1).max(253)).min(1),
  /** Name of a group under `upstreams:` (host:port targets). */
  upstream: z.string().min(1),
});

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('sni-proxy'),
  /** First route whose names match the ClientHello's server name wins. */
  routes: z.array(route).min(1),
  /**
   * Upstream for a hello with no server name or a name no route has; without it such
   * connections are closed. Connections that do not start with a TLS ClientHello are always closed.
   */
  default: z.string().min(1).optional(),
  /** How long a client may take to send its ClientHello. */
  helloTimeout: duration().default(10_000),
});

export type SniProxyConfig = z.output<typeof schema>;

/** Why a connection was not routed; counted as the listener's request status. */
type Refusal = 'not-tls' | 'no-route' | 'hello-timeout';

class SniProxyHandler implements StreamHandler {
  constructor(
    private readonly config: SniProxyConfig,
    private readonly routes: { names: string[]; proxy: StreamHandler }[],
    private readonly fallback: StreamHandler | undefined,
  ) {}

  handle(client: Socket, ctx: ConnContext): void {
    const chunks: Buffer[] = [];
    let length = 0;
    const refuse = (why: Refusal) => {
      finish();
      ctx.countRequest(why);
      ctx.log.debug({ listener: ctx.listener, remote: client.remoteAddress, why }, 'sni-proxy: connection not routed');
      client.destroy();
    };
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      const head = chunks.length === 1 ? chunk : Buffer.concat(chunks, length);
      const hello = readClientHello(head);
      if (hello === 'incomplete' && length < MAX_CLIENT_HELLO) return;
      if (hello === 'incomplete' || hello === undefined) return refuse('not-tls');
      const name = hello.servername;
      const proxy = (name === undefined ? undefined : this.routes.find((r) => r.names.some((n) => nameMatches(n, name)))?.proxy) ?? this.fallback;
      if (!proxy) return refuse('no-route');
      finish();
      // The hello goes on to the backend as the first bytes it reads.
      client.unshift(head);
      proxy.handle(client, ctx);
    };
    const onGone = () => finish();
    const timer = setTimeout(() => refuse('hello-timeout'), this.config.helloTimeout);
    const finish = () => {
      clearTimeout(timer);
      client.off('data', onData);
      client.off('close', onGone);
      client.pause();
    };
    client.on('data', onData);
    client.once('close', onGone);
  }

  drain(): void {
    for (const r of this.routes) r.proxy.drain?.();
    this.fallback?.drain?.();
  }

  async close(): Promise<void> {
    for (const r of this.routes) await r.proxy.close?.();
    await this.fallback?.close?.();
  }
}

export const sniProxyHandler: HandlerModule<SniProxyConfig> = {
  type: 'sni-proxy',
  summary: 'TLS passthrough: routes each connection by its ClientHello server name to a tcp-proxy upstream, without terminating TLS',
  schema,
  upstreamRefs: (config) => [
    ...config.routes.map((r, i) => ({ path: ['routes', i, 'upstream'], name: r.upstream })),
    ...(config.default === undefined ? [] : [{ path: ['default'], name: config.default }]),
  ],
  stream: async (config, ctx) => {
    // One tcp-proxy per upstream named, shared by the routes that name it.
    const proxies = new Map<string, StreamHandler>();
    const proxyFor = async (upstream: string): Promise<StreamHandler> => {
      let p = proxies.get(upstream);
      if (!p) {
        p = await tcpProxyHandler.stream!(tcpProxyHandler.schema.parse({ type: 'tcp-proxy', upstream }), ctx);
        proxies.set(upstream, p);
      }
      return p;
    };
    const routes = [];
    for (const r of config.routes) routes.push({ names: r.names, proxy: await proxyFor(r.upstream) });
    const fallback = config.default === undefined ? undefined : await proxyFor(config.default);
    return new SniProxyHandler(config, routes, fallback);
  },
};

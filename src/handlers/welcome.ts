import { resolve } from 'node:path';
import { z } from 'zod';
import type { HandlerModule, ListenerSummary } from './types.ts';
import type { HandlerConfigOutput, ListenerConfig, RouteConfig } from '../config/schema.ts';
import { handlerModule } from './registry.ts';
import { VERSION } from '../version.ts';
import { bundledPublicDir } from '../config/default.ts';

// The page the embedded default shows at `/`: what is running right now and a command to try
// each listener. Built per request from the live listeners and the running config, so
// overridden ports and a reloaded config show correctly; each row says what that listener's
// own routes (or its one handler) do.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('welcome'),
});

export type WelcomeConfig = z.output<typeof schema>;

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** A field of a handler's config, when it is a string (each module owns its config's shape). */
function text(handler: HandlerConfigOutput, key: string): string | undefined {
  const v = (handler as Record<string, unknown>)[key];
  return typeof v === 'string' ? v : undefined;
}

/** `/chat/*` -> `/chat`; undefined for a pattern that is not a plain prefix. */
function prefixOf(pattern: string): string | undefined {
  const m = /^((?:\/[^*:/]+)*)\/\*$/.exec(pattern);
  return m ? m[1] : undefined;
}

/** What a handler does behind one route of an http listener. */
function aboutHttp(handler: HandlerConfigOutput, pattern: string): string {
  const prefix = prefixOf(pattern);
  switch (handler.type) {
    case 'welcome':
      return 'this page';
    case 'respond':
      return `a fixed answer (status ${String((handler as { status?: unknown }).status ?? 200)})`;
    case 'echo':
      return 'the request sent back as JSON';
    case 'chat':
      return prefix === undefined ? 'chat rooms: the chat page and WebSocket' : `chat rooms: the page at ${prefix}/, WebSocket at ${prefix}/ROOM`;
    case 'grpc': {
      const service = prefix === undefined ? undefined : /^\/([\w.]+)$/.exec(prefix)?.[1];
      return service ? `gRPC service ${service} (HTTP/2, and gRPC-Web over HTTP/1.1)` : 'gRPC services (HTTP/2, and gRPC-Web over HTTP/1.1)';
    }
    case 'static':
      return `static files with ETag and Range${(handler as { listing?: unknown }).listing === true ? ', directory listings' : ''}`;
    case 'proxy':
      return `reverse proxy to upstream ${text(handler, 'upstream') ?? ''}`.trim();
    case 'ws-echo':
      return 'WebSocket echo';
    case 'metrics':
      return 'Prometheus metrics of this daemon';
    case 'upstreams':
      return 'the upstream groups as JSON';
    case 'admin':
      return 'the admin API: running config, load and reload, listeners, draining targets, chat rooms';
    default:
      return handlerModule(handler.type)?.summary ?? handler.type;
  }
}

/** What the one handler of a tcp, unix or udp listener does with a connection or datagram. */
function aboutStream(handler: HandlerConfigOutput, protocol: string): string {
  const datagrams = protocol === 'udp';
  switch (handler.type) {
    case 'echo':
      return datagrams ? 'sends every datagram back' : 'sends back every byte it receives';
    case 'file-tcp':
      return "send a file name and a newline, get the file's bytes";
    case 'chat':
      return text(handler, 'framing') === 'frames' ? 'chat rooms over length-prefixed JSON frames' : 'chat rooms as text lines, for nc; the same rooms as the web chat';
    case 'frame-echo':
      return 'echoes length-prefixed frames';
    case 'tcp-proxy':
      return `forwards each connection to upstream ${text(handler, 'upstream') ?? ''}`.trim();
    case 'udp-proxy':
      return `forwards datagrams to upstream ${text(handler, 'upstream') ?? ''}`.trim();
    default:
      return handlerModule(handler.type)?.summary ?? handler.type;
  }
}

/** One route as the page shows it: its path (a link when it is one page), methods and host. */
function routeLine(route: RouteConfig, base: string | undefined): string {
  const pattern = route.match.path;
  const methods = route.match.method === undefined ? '' : ` ${[route.match.method].flat().join(', ')}`;
  const hosts = route.match.host === undefined ? '' : ` (host ${[route.match.host].flat().join(', ')})`;
  // Absolute links: the page lists every listener, not only the one it is served on.
  const href = base !== undefined && !/[*:]/.test(pattern) ? new URL(pattern, base).href : undefined;
  const path = href ? `<a href="${escape(href)}"><code>${escape(pattern)}</code></a>` : `<code>${escape(pattern)}</code>`;
  return `<li>${path}${escape(methods + hosts)}: ${escape(aboutHttp(route.handler, pattern))}</li>`;
}

/** The listener's own handlers: its routes in order for http, its one handler otherwise. */
function about(l: ListenerSummary, config: ListenerConfig | undefined): string {
  if (!config) return escape([...new Set(l.handlers)].join(', '));
  if (config.protocol === 'http') {
    const base = l.url.startsWith('http') ? l.url : undefined;
    return `<ul>${config.routes.map((r) => routeLine(r, base)).join('')}</ul>`;
  }
  return escape(aboutStream(config.handler, config.protocol));
}

function row(l: ListenerSummary, config: ListenerConfig | undefined): string {
  const link = l.url.startsWith('http') ? `<a href="${escape(l.url)}">${escape(l.url)}</a>` : escape(l.url);
  return `<tr data-listener="${escape(l.name)}"><td>${escape(l.name)}</td><td>${escape(l.protocol)}</td><td>${link}</td><td>${about(l, config)}</td><td><code>${escape(l.tryIt)}</code></td></tr>`;
}

/** The routes of every http listener that has a URL, with that URL. */
function httpRoutes(listeners: readonly ListenerSummary[], configs: readonly ListenerConfig[]): { url: string; route: RouteConfig }[] {
  const out: { url: string; route: RouteConfig }[] = [];
  for (const l of listeners) {
    const c = configs.find((x) => x.name === l.name);
    if (c?.protocol === 'http' && l.url.startsWith('http')) for (const route of c.routes) out.push({ url: l.url, route });
  }
  return out;
}

/** Next steps that fit what runs: each names a listener or route that is there. */
function nextSteps(listeners: readonly ListenerSummary[], configs: readonly ListenerConfig[]): string[] {
  const routes = httpRoutes(listeners, configs);
  const steps = ['Write a config (YAML or JSON) and run <code>switchyard serve config.yaml</code>; check it first with <code>switchyard check config.yaml</code>.'];
  if (routes.some((r) => r.route.handler.type === 'chat')) {
    steps.push('Open the <a href="/chat/">chat page</a> in two tabs, and <code>nc</code> to a tcp chat listener: all of them meet in room <code>lobby</code>.');
  }
  steps.push('Try any listener with <code>switchyard connect URL</code> (tcp://, udp://, ws://, frame+tcp://, http://).');
  const demo = resolve(bundledPublicDir);
  if (routes.some((r) => r.route.handler.type === 'static' && resolve(text(r.route.handler, 'root') ?? '.') === demo)) {
    steps.push('Put files in <code>./public</code> (in the folder you start Switchyard from) and they are served here instead of the demo files.');
  }
  for (const r of routes) {
    if (r.route.handler.type !== 'metrics' || /[*:]/.test(r.route.match.path)) continue;
    const href = new URL(r.route.match.path, r.url).href;
    steps.push(`Scrape <a href="${escape(href)}">${escape(href)}</a> with Prometheus.`);
  }
  return steps;
}

function page(listeners: ListenerSummary[], configs: readonly ListenerConfig[], version: string): string {
  const rows = listeners.map((l) => row(l, configs.find((c) => c.name === l.name)));
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchyard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{margin-bottom:0}table{border-collapse:collapse;width:100%;margin:1rem 0}
td,th{border-bottom:1px solid #dde;padding:.4rem .6rem;text-align:left;vertical-align:top}
td ul{margin:0;padding-left:1rem}
code{background:#f3f4f8;padding:.1rem .3rem;border-radius:3px;font-size:13px}
.muted{color:#667}
</style></head><body>
<h1>Switchyard is running</h1>
<p class="muted">version ${escape(version)} &middot; ${listeners.length} listener${listeners.length === 1 ? '' : 's'}</p>
<p>One daemon, many listeners, each routing its traffic to handlers. This is what runs now:</p>
<table><thead><tr><th>listener</th><th>protocol</th><th>address</th><th>what it does</th><th>try it</th></tr></thead>
<tbody>
${rows.join('\n')}
</tbody></table>
<h2>Next steps</h2>
<ul>
${nextSteps(listeners, configs).map((s) => `<li>${s}</li>`).join('\n')}
</ul>
</body></html>
`;
}

export const welcomeHandler: HandlerModule<WelcomeConfig> = {
  type: 'welcome',
  summary: 'a page describing the running listeners',
  schema,
  http: (_config, { yard }) => ({
    handle({ req, res }) {
      const body = Buffer.from(page(yard.listeners(), yard.config.listeners, VERSION));
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  }),
};

import { z } from 'zod';
import type { HandlerModule, ListenerSummary } from './types.ts';
import { VERSION } from '../version.ts';

// The page the embedded default shows at `/`: what is running right now and a command to try
// each listener. Built per request from the live listeners, so overridden ports show correctly.

const schema = z.strictObject({
  type: z.literal('welcome'),
});

export type WelcomeConfig = z.output<typeof schema>;

const escape = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

const ABOUT: Record<string, string> = {
  static: 'static files with ETag, Range, precompression and directory listings',
  'file-tcp': "the raw file protocol: send a file name and a newline, get the file's bytes",
  echo: 'sends back what it receives',
  metrics: 'Prometheus metrics',
  respond: 'a fixed answer',
  welcome: 'this page',
  chat: 'chat rooms: the page at /chat/ and WebSocket at /chat/<room> over http, text lines for nc over tcp',
  'ws-echo': 'WebSocket echo',
  'frame-echo': 'echoes length-prefixed frames',
  proxy: 'reverse proxy to an upstream group',
  upstreams: 'the upstream groups as JSON',
};

function row(l: ListenerSummary): string {
  const what = [...new Set(l.handlers)].map((h) => ABOUT[h] ?? h).join('; ');
  return `<tr><td>${escape(l.name)}</td><td>${escape(l.protocol)}</td><td><a href="${l.protocol === 'http' ? escape(l.url) : '#'}">${escape(l.url)}</a></td><td>${escape(what)}</td><td><code>${escape(l.tryIt)}</code></td></tr>`;
}

function page(listeners: ListenerSummary[], version: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Switchyard</title>
<meta name="viewport" content="width=device-width, initial-scale=1">
<style>
body{font:15px/1.5 system-ui,sans-serif;max-width:70rem;margin:2rem auto;padding:0 1rem;color:#1d2330}
h1{margin-bottom:0}table{border-collapse:collapse;width:100%;margin:1rem 0}
td,th{border-bottom:1px solid #dde;padding:.4rem .6rem;text-align:left;vertical-align:top}
code{background:#f3f4f8;padding:.1rem .3rem;border-radius:3px;font-size:13px}
.muted{color:#667}
</style></head><body>
<h1>Switchyard is running</h1>
<p class="muted">version ${escape(version)} &middot; the embedded default config</p>
<p>One daemon, many listeners, each routing its traffic to handlers. This is what runs now:</p>
<table><thead><tr><th>listener</th><th>protocol</th><th>address</th><th>what it does</th><th>try it</th></tr></thead>
<tbody>
${listeners.map(row).join('\n')}
</tbody></table>
<h2>Next steps</h2>
<ul>
<li>Write a config (YAML or JSON) and run <code>switchyard serve config.yaml</code>; check it first with <code>switchyard check config.yaml</code>.</li>
${listeners.some((l) => l.protocol === 'http' && l.handlers.includes('chat')) ? '<li>Open the <a href="/chat/">chat page</a> in two tabs, and <code>nc</code> to a tcp chat listener: all of them meet in room <code>lobby</code>.</li>\n' : ''}<li>Try any listener with <code>switchyard connect URL</code> (tcp://, udp://, ws://, frame+tcp://, http://).</li>
<li>Put files in <code>./public</code> and they are served here, with ETag, Range and directory listings.</li>
<li>Scrape <code>/metrics</code> on the admin listener with Prometheus.</li>
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
      const body = Buffer.from(page(yard.listeners(), VERSION));
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'content-length': body.length, 'cache-control': 'no-cache' });
      res.end(req.method === 'HEAD' ? undefined : body);
    },
  }),
};

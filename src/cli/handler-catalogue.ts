import type { TrafficKind } from '../handlers/types.ts';

// The handler types that ship with Switchyard, as `switchyard --help` lists them: written out here
// rather than read from the handler modules, which would load every handler (and with them most
// of the daemon) to print a line of help. test/cli-startup.test.ts checks this list against the
// registry (type, kinds and summary of every built-in module, in order), so it cannot drift.

export interface HandlerSummary {
  /** `handler: { type: NAME }` in a config. */
  readonly type: string;
  /** The kinds of listener it serves. */
  readonly kinds: readonly TrafficKind[];
  /** One line on what it does (the module's own `summary`). */
  readonly summary: string;
}

export const HANDLER_CATALOGUE: readonly HandlerSummary[] = [
  { type: 'inline', kinds: ['http'], summary: 'a function given in code answers the request (library only)' },
  { type: 'echo', kinds: ['http', 'stream', 'datagram'], summary: 'sends back what it receives (tcp, unix, udp; http as JSON)' },
  { type: 'respond', kinds: ['http'], summary: 'answers with a fixed status, headers and body' },
  { type: 'redirect', kinds: ['http'], summary: 'answers with a redirect (301-308) to a target built from placeholders and regex captures' },
  { type: 'metrics', kinds: ['http'], summary: 'Prometheus metrics of this daemon (text format)' },
  { type: 'welcome', kinds: ['http'], summary: 'a page describing the running listeners' },
  { type: 'static', kinds: ['http'], summary: 'serves files under a root (GET/HEAD, ranges, conditional requests, precompressed siblings, sendfile)' },
  { type: 'file-tcp', kinds: ['stream'], summary: 'a file by name: send its name and a newline, receive its bytes (see docs/file-tcp.md)' },
  { type: 'upstreams', kinds: ['http'], summary: 'live state of the upstream groups as JSON (admin)' },
  { type: 'proxy', kinds: ['http'], summary: 'reverse proxy to an upstream group (balanced, health-checked, retried, circuit-broken; WebSocket too)' },
  { type: 'tcp-proxy', kinds: ['stream'], summary: 'L4 proxy: pipes each connection to a target of an upstream group (balanced, health-checked, retried on connect failure)' },
  { type: 'sni-proxy', kinds: ['stream'], summary: 'TLS passthrough: routes each connection by its ClientHello server name to a tcp-proxy upstream, without terminating TLS' },
  { type: 'udp-proxy', kinds: ['datagram'], summary: 'L4 datagram proxy: a session (own socket to a target) per client address, replies sent back, idle sessions closed' },
  { type: 'ws-echo', kinds: ['http'], summary: 'WebSocket echo: sends every message back as it came' },
  { type: 'frame-echo', kinds: ['stream'], summary: 'length-prefixed frames (u32 BE length + payload) echoed back; oversize gets an error frame (docs/frames.md)' },
  { type: 'chat', kinds: ['http', 'stream'], summary: 'chat rooms: WebSocket and the chat page (http), text lines or frames (tcp, unix); rooms shared through `state:`' },
  { type: 'grpc', kinds: ['http'], summary: 'gRPC and gRPC-Web services: helloworld.Greeter and grpc.health.v1.Health (docs/grpc.md)' },
  { type: 'admin', kinds: ['http'], summary: 'the admin API: running config, load/reload, listeners, drain/enable targets, chat rooms (loopback or a token)' },
  { type: 'objects', kinds: ['http'], summary: 'an S3-style object store on a folder (PUT/GET/HEAD/DELETE, list, ranges, checksums, multipart uploads)' },
  { type: 'resp', kinds: ['stream'], summary: 'a Redis-compatible cache (RESP2/RESP3): strings, hashes, lists, TTLs, pub/sub, maxmemory eviction (docs/resp.md)' },
];

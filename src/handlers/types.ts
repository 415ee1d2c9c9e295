import type { IncomingMessage, OutgoingHttpHeaders, ServerResponse } from 'node:http';
import type { IncomingHttpHeaders as Http2IncomingHeaders } from 'node:http2';
import type { H2ServerStream } from '../listeners/http/h2-engine/stream.ts';
import type { Readable, Writable } from 'node:stream';
import type { Socket } from 'node:net';
import type { RemoteInfo, Socket as UdpSocket } from 'node:dgram';
import type { Logger } from 'pino';
import type { z } from 'zod';
import type { Metrics } from '../observe/metrics.ts';
import type { Config } from '../config/schema.ts';
import type { ReloadResult } from '../yard/yard.ts';
import type { UpstreamGroup } from '../upstream/group.ts';
import type { SharedState } from '../state/types.ts';

// The contracts between listeners and handlers. A handler is a module registered by name with
// its own config schema (like a Caddy module); a listener of a given kind asks the module for a
// handler of that kind. Lifecycle: provision (the factory: open files, check roots, allocate
// caches; throw to refuse the config), use (handle), cleanup (close).

/** What kind of traffic a listener hands over: HTTP requests, byte streams or datagrams. */
export type TrafficKind = 'http' | 'stream' | 'datagram';

/** HTTP limits in force for the listener a request arrived on. */
export interface HttpLimits {
  /** Largest request body accepted, in bytes; larger gets 413. */
  readonly maxBodySize: number;
}

/**
 * An HTTP/2 request (the listener's, over one stream of its HTTP/2 engine): a Readable of the body with the
 * head of node:http's IncomingMessage. `headers` holds the pseudo-headers too (`:method`, `:path`,
 * `:authority`, `:scheme`; `host` is set from `:authority` by the listener's checks), as does
 * `rawHeaders`. `socket` is the connection's own socket (TLS or TCP).
 */
export interface Http2Request extends Readable {
  method: string;
  url: string;
  readonly headers: Http2IncomingHeaders;
  readonly rawHeaders: string[];
  readonly httpVersion: '2.0';
  readonly httpVersionMajor: 2;
  readonly httpVersionMinor: 0;
  readonly socket: Socket;
  readonly stream: H2ServerStream;
  /** The stream closed before the response ended (the client reset it, or the connection went). */
  readonly aborted: boolean;
  /** No more of the body will come. */
  readonly complete: boolean;
}

/**
 * An HTTP/3 request (the listener's, over one QUIC stream: src/http3/exchange.ts): like the
 * HTTP/2 one, a Readable of the body whose `headers` and `rawHeaders` hold the pseudo-headers
 * too. It has no `stream`: its response is written as HTTP/3 frames by the response itself
 * (never nghttp2's methods, never sendfile). `socket` stands in for the QUIC connection:
 * addresses, `encrypted`, byte counts; nothing may be written to it.
 */
export interface Http3Request extends Readable {
  method: string;
  url: string;
  readonly headers: Http2IncomingHeaders;
  readonly rawHeaders: string[];
  readonly httpVersion: '3.0';
  readonly httpVersionMajor: 3;
  readonly httpVersionMinor: 0;
  readonly socket: Socket;
  readonly aborted: boolean;
  readonly complete: boolean;
  /** The request stream ended right after its HEADERS: there is no body (as HTTP/2's stream.endAfterHeaders). */
  readonly endAfterHeaders: boolean;
}

/**
 * A request as handlers see it, whichever HTTP version carried it: node:http's IncomingMessage
 * (HTTP/1.x), the listener's HTTP/2 request (`httpVersionMajor` 2) or its HTTP/3 request
 * (`httpVersionMajor` 3). All are a Readable of the body with `method`, `url` and lower-case
 * `headers`; code that needs one of them in particular (the raw socket of HTTP/1.1, the stream
 * of HTTP/2) narrows on `httpVersionMajor` (or instanceof IncomingMessage).
 */
export type HttpRequest = IncomingMessage | Http2Request | Http3Request;

/**
 * A response as handlers write it: what node:http's ServerResponse and the listener's HTTP/2
 * response (Http2Response) have in common (both take the body as a Writable does: write with
 * 'drain', end, 'finish', 'close'). HTTP/1.1-only things (`shouldKeepAlive`, the socket a
 * sendfile writes to) are reached by narrowing to ServerResponse; on HTTP/2 connection-specific
 * headers (Connection, Keep-Alive, Transfer-Encoding, Upgrade) are refused and must not be set.
 */
export interface HttpResponse extends Writable {
  statusCode: number;
  readonly headersSent: boolean;
  readonly req: HttpRequest;
  setHeader(name: string, value: number | string | readonly string[]): unknown;
  getHeader(name: string): number | string | string[] | undefined;
  getHeaders(): OutgoingHttpHeaders;
  hasHeader(name: string): boolean;
  removeHeader(name: string): void;
  appendHeader(name: string, value: string | string[]): unknown;
  writeHead(statusCode: number, headers?: OutgoingHttpHeaders): this;
  /** Trailers sent after the body (HTTP/1.1 only with chunked encoding; gRPC's status lives here). */
  addTrailers(headers: OutgoingHttpHeaders): void;
  /** A 100 Continue interim response. */
  writeContinue(): void;
  /** A 103 Early Hints interim response. */
  writeEarlyHints(hints: Record<string, string | string[]>): void;
}

/**
 * An HTTP/2 response (the listener's): an HttpResponse with its stream, for what only HTTP/2 can
 * do (respondWithFD, a headers-only answer as one frame, closing the stream). Its head goes out
 * with the first write() or end(), as node:http's does. Trailers (addTrailers) reach the client
 * when added before the head goes out, or when the head said they may come: a gRPC content type,
 * a `Trailer` field, or a client that sent `TE: trailers` (listeners/http/h2-exchange.ts).
 */
export interface Http2Response extends HttpResponse {
  readonly stream: H2ServerStream;
  readonly req: Http2Request;
}

/** The HTTP/2 stream of a response, or undefined for HTTP/1.x. */
export function http2Stream(res: HttpResponse): H2ServerStream | undefined {
  return (res as Partial<Http2Response>).stream;
}

/** One HTTP request's context: created by the listener, passed through middleware into the handler. */
export interface HttpContext {
  readonly req: HttpRequest;
  readonly res: HttpResponse;
  /** Listener name, from the config. */
  readonly listener: string;
  /** Route name (the config's `name`, or its index and pattern), for logs and metrics. */
  readonly route: string;
  /** The request id (x-request-id) this request is known by. */
  readonly requestId: string;
  /**
   * The request path below the route's prefix, still percent-encoded and without the query:
   * for route `/static/*` and request `/static/a%20b.txt?x=1` it is `/a%20b.txt`; for exact
   * routes it is the whole path. Always starts with `/`.
   */
  readonly pathRest: string;
  /**
   * The named path parameters of the matched route (`match.path`), percent-decoded: for route
   * `/users/:id/posts/:post` and request `/users/42/posts/a%20b` it is `{ id: '42', post: 'a b' }`;
   * for `/files/*path` and `/files/a/b.txt`, `{ path: 'a/b.txt' }` (empty for `/files/`). A
   * frozen object without prototype; the same empty one for routes without parameters.
   */
  readonly params: Readonly<Record<string, string>>;
  readonly limits: HttpLimits;
  readonly log: Logger;
  /** Bytes written to the socket behind Node's back (sendfile), so that metrics still count them. */
  addBytesSent(bytes: number): void;
}

/**
 * An HTTP/1.1 Upgrade request (WebSocket) routed to a handler that takes its protocol. It has
 * passed the same phases as any request (checks, route, middleware); `res` is a response bound
 * to the raw socket, so a refusal before the switch is an ordinary reply (replyError) and is
 * logged and counted like one. A handler that switches protocols sets `res.statusCode` to the
 * status the client got (101, or the upstream's answer) so that logs and metrics tell the truth.
 */
export interface UpgradeContext extends HttpContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  /** The client's raw socket; the handler owns it once it switches (writes its 101). */
  readonly socket: Socket;
  /**
   * Bytes the client sent after the request head. They belong to the new protocol: nothing of
   * them may be acted on (or forwarded) before the switch is agreed, or a request smuggled
   * behind the head would pass unrouted.
   */
  readonly head: Buffer;
  /** The Upgrade protocol chosen, lower case (one of the handler's `upgrades`). */
  readonly protocol: string;
}

export interface HttpHandler {
  handle(ctx: HttpContext): void | Promise<void>;
  /**
   * Upgrade protocols `upgrade` takes, lower case; `['websocket']` when left out. A request
   * asking for any other (h2c, say) is served as a plain request: a server may ignore Upgrade
   * (RFC 9110 §7.8), and must not hand it on.
   */
  readonly upgrades?: readonly string[];
  /** Takes an Upgrade request for one of `upgrades`. */
  upgrade?(ctx: UpgradeContext): void | Promise<void>;
  /** The yard is stopping: tell long-lived sessions (WebSocket, chat) to go; see Drainable. */
  drain?(): void;
  close?(): void | Promise<void>;
}

/** Context for one accepted stream connection (tcp or unix). */
export interface ConnContext {
  readonly listener: string;
  readonly log: Logger;
  /** Bytes written to the socket behind Node's back (sendfile), so that metrics still count them. */
  addBytesSent(bytes: number): void;
  /** Counts one request served on this connection (file-tcp: one file), or `count` of them (resp: a pipelined batch). */
  countRequest(status: string, count?: number): void;
}

export interface StreamHandler {
  handle(socket: Socket, ctx: ConnContext): void;
  /** The yard is stopping: tell long-lived sessions to go; see Drainable. */
  drain?(): void;
  close?(): void | Promise<void>;
}

export interface DatagramContext {
  readonly listener: string;
  readonly log: Logger;
  readonly socket: UdpSocket;
  /** Sends a reply and counts its bytes. */
  reply(data: Uint8Array, to: RemoteInfo): void;
}

export interface DatagramHandler {
  handle(message: Buffer, from: RemoteInfo, ctx: DatagramContext): void;
  close?(): void | Promise<void>;
}

/** One running listener as people see it: where it is and a command to try it. */
export interface ListenerSummary {
  readonly name: string;
  readonly protocol: 'http' | 'tcp' | 'udp' | 'unix' | 'quic';
  /** `http://127.0.0.1:8080/`, `tcp://127.0.0.1:7000`, `unix:/run/x.sock`, `unix:@abstract`. */
  readonly url: string;
  /** Handler types behind it. */
  readonly handlers: readonly string[];
  /** A shell command that exercises it (curl, nc). */
  readonly tryIt: string;
}

/** What a handler may ask of the yard it runs in. */
export interface YardView {
  listeners(): ListenerSummary[];
  upstreams(): UpstreamGroup[];
  /** The running config (the admin API shows it, secrets redacted). */
  readonly config: Config;
  /** Swaps in a new config (src/yard/yard.ts reload). */
  reload(next: Config): Promise<ReloadResult>;
  /** A zero-downtime upgrade: a new daemon takes the listening sockets over, then this one drains and exits. */
  upgrade(by: string): Promise<{ ok: true; pid: number } | { ok: false; error: string }>;
  /** Reads the config again from where the daemon got it (its file) and reloads it. */
  reloadFromSource(): Promise<ReloadResult>;
  /** Requests and connections in flight, per listener. */
  inFlightByListener(): Record<string, number>;
  /** Chat rooms with someone in them or a history, at most `limit`. */
  rooms(limit: number): Promise<{ room: string; members: number }[]>;
}

/** What a module gets when it provisions a handler. */
export interface ProvisionContext {
  readonly yard: YardView;
  /** Directory relative paths in the config are resolved against (the config file's folder, or cwd). */
  readonly baseDir: string;
  readonly listener: string;
  readonly log: Logger;
  readonly metrics: Metrics;
  /** The upstream group of that name (the config has been checked: it exists). */
  upstream(name: string): UpstreamGroup;
  /** The yard's shared state (chat rooms), one for every handler of the yard. */
  readonly state: SharedState;
}

type Factory<C, H> = (config: C, ctx: ProvisionContext) => H | Promise<H>;

/** What a module's `validate` gets: where relative paths resolve, and the config's upstream groups. */
export interface ValidateContext {
  /** Directory relative paths in the config are resolved against (the config file's folder, or cwd). */
  readonly baseDir: string;
  /**
   * The kind of the upstream group of that name: `http` when every target has an HTTP scheme
   * (http://, https://, h2c://), `l4` otherwise; undefined when the config has no such group
   * (reported elsewhere) or its targets are not valid.
   */
  upstreamKind(name: string): 'http' | 'l4' | undefined;
}

/** One problem `validate` found: `path` inside the handler's config, e.g. `['root']`. */
export interface HandlerProblem {
  path: (string | number)[];
  message: string;
}

/**
 * A handler module. `schema` validates the handler's config object, including its `type`
 * literal; it must be a strict object so that typos in field names are errors.
 */
export interface HandlerModule<C extends { type: string } = { type: string }> {
  readonly type: string;
  /** One line for `switchyard --help` and docs. */
  readonly summary: string;
  readonly schema: z.ZodType<C, unknown>;
  /**
   * The upstream groups the config names, with the path of each reference inside the handler's
   * config, so that `check` can report a missing one; default: the `upstream` field, if any.
   */
  readonly upstreamRefs?: (config: C) => { path: (string | number)[]; name: string }[];
  /**
   * What the factory would refuse at start, found at validation so that `switchyard check` (and
   * serve, reload, POST /load before anything changes) reports it: a missing root, a file that
   * cannot be read, an upstream group of the wrong kind. Runs on the handler's parsed config
   * whenever the config is loaded from a file or the admin API; synchronous and cheap (a stat
   * or two). Each problem's path is inside the handler's config (`['root']`); empty: none.
   */
  readonly validate?: (config: C, ctx: ValidateContext) => HandlerProblem[];
  readonly http?: Factory<C, HttpHandler>;
  readonly stream?: Factory<C, StreamHandler>;
  readonly datagram?: Factory<C, DatagramHandler>;
}

/** Which traffic kinds a module can serve. */
export function kindsOf(mod: HandlerModule): TrafficKind[] {
  const kinds: TrafficKind[] = [];
  if (mod.http) kinds.push('http');
  if (mod.stream) kinds.push('stream');
  if (mod.datagram) kinds.push('datagram');
  return kinds;
}

import type { Socket } from 'node:net';
import type { GaugeCell } from '../../observe/hot-metrics.ts';
import type { ConnContext, HandlerModule, HttpContext, HttpHandler, ProvisionContext, StreamHandler, UpgradeContext } from '../types.ts';
import { replyError } from '../http/reply.ts';
import { WsEndpoint } from '../ws/endpoint.ts';
import { chatSchema, type ChatConfig } from './config.ts';
import { Hub } from './hub.ts';
import { ChatPage } from './page.ts';
import { isRoomName } from './protocol.ts';
import type { SessionOptions } from './session.ts';
import { WsChatSession } from './ws-session.ts';
import { LineChatSession } from './line-session.ts';
import { FrameChatSession } from './frame-session.ts';
import type { StreamChatSession } from './stream-session.ts';

// The `chat` handler (docs/chat.md): rooms over WebSocket and the web page on an http listener,
// over text lines or frames on a tcp/unix listener. Every instance has its own hub (one store
// subscription per room it has local members in); the rooms themselves live in the yard's
// shared state, so a handler on another listener, or another daemon on the same Redis, meets in
// the same rooms.
//
// Shutdown: drain() sends every session a notice and ends it (WebSocket: 1001); close() waits,
// bounded, for the sessions' leaves (their nicks released), then ends the hub's subscriptions.

export { chatSchema, type ChatConfig } from './config.ts';
export { ChatPage } from './page.ts';

const SHUTDOWN_NOTICE = 'server shutting down';
/** How long close() waits for sessions to release their nicks (each store call is bounded too). */
const LEAVE_WAIT_MS = 5000;

/** What both kinds of chat handler share: the hub, the session options, leaves in progress. */
class ChatRooms {
  readonly hub: Hub;
  readonly sessionOptions: SessionOptions;
  private readonly leaving = new Set<Promise<void>>();
  private readonly sessions: GaugeCell;

  constructor(
    readonly config: ChatConfig,
    readonly ctx: ProvisionContext,
    transport: string,
  ) {
    this.hub = new Hub(ctx.state.rooms, ctx.log);
    this.sessionOptions = { hub: this.hub, history: config.history, maxMessageLength: config.maxMessageLength, log: ctx.log };
    this.sessions = ctx.metrics.gauge('switchyard_chat_sessions', 'Chat connections open now, by listener and transport.', ['listener', 'transport']).labels(ctx.listener, transport);
  }

  opened(): void {
    this.sessions.inc();
  }

  /** A session's connection is gone; its leave is awaited on close. */
  gone(leaving: Promise<void>): void {
    this.sessions.dec();
    this.leaving.add(leaving);
    void leaving.finally(() => this.leaving.delete(leaving));
  }

  /** Waits (bounded) for the leaves under way and `more`, then ends the hub's subscriptions. */
  async close(more: Promise<void>[] = []): Promise<void> {
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([Promise.allSettled([...this.leaving, ...more]), new Promise((resolve) => (timer = setTimeout(resolve, LEAVE_WAIT_MS)))]);
    clearTimeout(timer);
    this.hub.close();
  }
}

class ChatHttpHandler implements HttpHandler {
  private readonly rooms: ChatRooms;
  private readonly endpoint: WsEndpoint;
  private readonly page: ChatPage | undefined;
  private readonly sessions = new Set<WsChatSession>();
  readonly upgrades = ['websocket'];

  constructor(
    private readonly config: ChatConfig,
    ctx: ProvisionContext,
  ) {
    this.rooms = new ChatRooms(config, ctx, 'websocket');
    this.endpoint = new WsEndpoint(config.websocket, { listener: ctx.listener, handlerType: 'chat', log: ctx.log, metrics: ctx.metrics });
    this.page = config.page ? new ChatPage() : undefined;
    if (this.page && !this.page.available) ctx.log.warn({ listener: ctx.listener }, 'chat: the page files (public/chat/) are missing; the page answers 404');
  }

  handle(ctx: HttpContext): void {
    if (this.page) return this.page.serve(ctx);
    replyError(ctx.res, 426, 'this route takes WebSocket upgrades only', { headers: { upgrade: 'websocket', connection: 'upgrade' } });
  }

  upgrade(ctx: UpgradeContext): void {
    const rest = ctx.pathRest;
    const room = rest === '/' ? this.config.defaultRoom : rest.slice(1);
    if (!isRoomName(room)) return replyError(ctx.res, 400, 'bad room name: 1 to 64 of A-Z a-z 0-9 _ . -, starting with a letter or digit', { close: true });
    this.endpoint.accept(ctx, (peer) => {
      const s = new WsChatSession(peer, room, this.rooms.sessionOptions, (gone, leaving) => {
        this.sessions.delete(gone);
        this.rooms.gone(leaving);
      });
      this.sessions.add(s);
      this.rooms.opened();
    });
  }

  drain(): void {
    for (const s of this.sessions) s.notice(SHUTDOWN_NOTICE);
    this.endpoint.drain();
  }

  async close(): Promise<void> {
    await this.endpoint.close();
    await this.rooms.close();
  }
}

class ChatStreamHandler implements StreamHandler {
  private readonly rooms: ChatRooms;
  private readonly sessions = new Set<StreamChatSession>();
  private readonly slow;

  constructor(
    private readonly config: ChatConfig,
    ctx: ProvisionContext,
  ) {
    this.rooms = new ChatRooms(config, ctx, config.framing);
    this.slow = ctx.metrics.counter('switchyard_chat_slow_clients_total', 'Chat connections cut off for not reading (send queue over sendQueueLimit), by listener.', ['listener']).labels(ctx.listener);
  }

  handle(socket: Socket, _ctx: ConnContext): void {
    const c = this.config;
    const options = { ...this.rooms.sessionOptions, defaultRoom: c.defaultRoom, sendQueueLimit: c.sendQueueLimit, rateLimit: c.rateLimit, onSlow: () => this.slow.inc() };
    const onGone = (gone: StreamChatSession, leaving: Promise<void>) => {
      this.sessions.delete(gone);
      this.rooms.gone(leaving);
    };
    const s = c.framing === 'frames' ? new FrameChatSession(socket, { ...options, maxFrameSize: c.maxFrameSize }, onGone) : new LineChatSession(socket, options, onGone);
    this.sessions.add(s);
    this.rooms.opened();
  }

  drain(): void {
    for (const s of this.sessions) s.notice(SHUTDOWN_NOTICE);
  }

  async close(): Promise<void> {
    // The listener has destroyed the sockets, but their 'close' events (and so the leaves) are
    // still to come: start the leaves here so that they are waited for.
    const leaves = [...this.sessions].map((s) => {
      s.abort();
      return s.session.disconnect();
    });
    await this.rooms.close(leaves);
  }
}

export const chatHandler: HandlerModule<ChatConfig> = {
  type: 'chat',
  summary: 'chat rooms: WebSocket and the chat page (http), text lines or frames (tcp, unix); rooms shared through `state:`',
  schema: chatSchema,
  http: (config, ctx) => new ChatHttpHandler(config, ctx),
  stream: (config, ctx) => new ChatStreamHandler(config, ctx),
};

import type { RemoteInfo } from 'node:dgram';
import { z } from 'zod';
import { parseDuration, replyError, replyJson, websocketOptionsSchema, WsEndpoint, type DatagramContext, type HandlerModule, type WsPeer } from '../../src/index.ts';
import { acquireWorld, releaseWorld, type Player, type World, type WorldSettings } from './world.ts';
import { parseClientMessage, ProtocolError, type ClientMessage } from './protocol.ts';

// The `tick-game` handler a program registers (start.ts does): on an http route, WebSocket
// players at `<route>/ws` and the world's tick stats at `<route>/stats`; on a udp listener,
// players by datagram. Handlers naming the same `world` share it.

const durationSchema = z.union([z.number(), z.string()]).transform((v, ctx) => {
  const ms = parseDuration(v);
  if (ms === undefined || ms < 1) {
    ctx.addIssue({ code: 'custom', message: 'expected a duration such as 10s or 500ms' });
    return z.NEVER;
  }
  return ms;
});

export const schema = z.strictObject({
  type: z.literal('tick-game'),
  /** The world's name: handlers (one per listener) naming the same world share its players. Their settings must agree. */
  world: z.string().regex(/^[A-Za-z0-9_-]{1,64}$/, 'expected 1 to 64 letters, digits, _ or -').default('main'),
  /** Simulation ticks a second; a snapshot goes to every player each tick. */
  tickRate: z.number().int().min(1).max(240).default(30),
  /** Units a player moves per second at full input. */
  speed: z.number().positive().max(100_000).default(200),
  /** Width of the world, units (positions are clamped to it). */
  width: z.number().positive().max(1_000_000).default(800),
  /** Height of the world, units. */
  height: z.number().positive().max(1_000_000).default(600),
  /** Players at once; a join past it is refused (WebSocket 1013, UDP a `k` message). */
  maxPlayers: z.number().int().min(1).max(100_000).default(256),
  /**
   * Inputs waiting per player; more are dropped. A player sending more than 2 x tickRate +
   * maxQueuedInputs new inputs within a second is kicked (input flood).
   */
  maxQueuedInputs: z.number().int().min(1).max(1024).default(32),
  /** Ticks of world state kept as delta baselines; a player whose last acknowledged snapshot is older gets a full one. */
  history: z.number().int().min(2).max(1024).default(64),
  /** A UDP player not heard from for this long is removed. */
  udpIdle: durationSchema.default(10_000),
  /** Limits of the WebSocket endpoint (docs/websocket.md); its message rate limit is the first line against floods. */
  websocket: websocketOptionsSchema,
});

export type TickGameConfig = z.output<typeof schema>;

function settingsOf(c: TickGameConfig): WorldSettings {
  return { tickRate: c.tickRate, speed: c.speed, width: c.width, height: c.height, maxPlayers: c.maxPlayers, maxQueuedInputs: c.maxQueuedInputs, history: c.history, udpIdle: c.udpIdle };
}

/** What a joined player's message does, on either transport. */
function apply(world: World, player: Player, msg: ClientMessage): void {
  if (msg.t === 'i') world.receive(player, msg.ack, msg.inputs);
}

function errorText(err: unknown): string {
  return JSON.stringify({ t: 'e', m: err instanceof Error ? err.message : String(err) });
}

function wsPlayer(world: World, peer: WsPeer): void {
  const player = world.join({
    kind: 'ws',
    send: (data) => void peer.send(data, false),
    kick: (reason) => peer.close(reason === 'server shutting down' ? 1001 : 1008, reason),
  });
  if (!player) return peer.close(1013, 'world is full');
  peer.onMessage((data) => {
    let msg: ClientMessage;
    try {
      msg = parseClientMessage(data);
    } catch (err) {
      if (err instanceof ProtocolError) return void peer.send(errorText(err));
      throw err;
    }
    if (msg.t === 'bye') return peer.close(1000, 'bye');
    apply(world, player, msg);
  });
  peer.onClose(() => world.leave(player));
}

export const tickGameHandler: HandlerModule<TickGameConfig> = {
  type: 'tick-game',
  summary: 'a fixed-tick game world: players over WebSocket (http) and UDP, delta snapshots',
  schema,
  http: (config, ctx) => {
    const world = acquireWorld(config.world, settingsOf(config), ctx.log);
    const endpoint = new WsEndpoint(config.websocket, { listener: ctx.listener, handlerType: 'tick-game', log: ctx.log, metrics: ctx.metrics });
    return {
      handle({ req, res, pathRest }) {
        if (pathRest === '/ws') return replyError(res, 426, 'this path takes WebSocket upgrades only', { headers: { upgrade: 'websocket', connection: 'upgrade' } });
        if (pathRest !== '/stats') return replyError(res, 404, 'not found');
        if (req.method !== 'GET' && req.method !== 'HEAD') return replyError(res, 405, 'method not allowed', { headers: { allow: 'GET, HEAD' } });
        const since = Number(new URL(req.url ?? '/', 'http://x').searchParams.get('since') ?? 0);
        replyJson(res, 200, world.stats(Number.isSafeInteger(since) && since > 0 ? since : 0));
      },
      upgrades: ['websocket'],
      upgrade(uctx) {
        if (uctx.pathRest !== '/ws') return replyError(uctx.res, 404, 'not found', { close: true });
        endpoint.accept(uctx, (peer) => wsPlayer(world, peer));
      },
      drain() {
        endpoint.drain();
      },
      async close() {
        await endpoint.close();
        releaseWorld(world);
      },
    };
  },
  datagram: (config, ctx) => {
    const world = acquireWorld(config.world, settingsOf(config), ctx.log);
    const sessions = new Map<string, Player>();
    return {
      handle(message: Buffer, from: RemoteInfo, dctx: DatagramContext) {
        const key = `${from.address}:${from.port}`;
        let msg: ClientMessage;
        try {
          msg = parseClientMessage(message);
        } catch (err) {
          // Only known players hear about bad datagrams: answering anyone would make this a reflector.
          if (err instanceof ProtocolError && sessions.has(key)) dctx.reply(Buffer.from(errorText(err)), from);
          return;
        }
        const player = sessions.get(key);
        if (msg.t === 'join') {
          if (player) return world.welcome(player); // a repeated join: the welcome was lost
          const joined = world.join({
            kind: 'udp',
            send: (data) => dctx.reply(typeof data === 'string' ? Buffer.from(data) : data, from),
            kick: (reason) => {
              sessions.delete(key);
              dctx.reply(Buffer.from(JSON.stringify({ t: 'k', m: reason })), from);
            },
          });
          if (joined) sessions.set(key, joined);
          else dctx.reply(Buffer.from(JSON.stringify({ t: 'k', m: 'world is full' })), from);
          return;
        }
        if (!player) return;
        if (msg.t === 'bye') {
          sessions.delete(key);
          world.leave(player);
          return;
        }
        apply(world, player, msg);
      },
      close() {
        for (const p of sessions.values()) world.leave(p);
        sessions.clear();
        releaseWorld(world);
      },
    };
  },
};

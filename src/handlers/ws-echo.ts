import { z } from 'zod';
import type { HandlerModule } from './types.ts';
import type { WsPeer } from './ws/peer.ts';
import { WsEndpoint, websocketOptionsSchema } from './ws/index.ts';
import { replyError } from './http/reply.ts';

// WebSocket echo: every message goes back as it came (text as text, binary as binary), under the
// endpoint's limits. The WebSocket counterpart of `echo`, and what the ws benchmark runs against
// a bare `ws` server.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('ws-echo'),
  /** Limits of the WebSocket endpoint (see docs/websocket.md). */
  websocket: websocketOptionsSchema,
});

export type WsEchoConfig = z.output<typeof schema>;

function echo(peer: WsPeer): void {
  peer.onMessage((data, isBinary) => {
    peer.send(data, isBinary);
  });
}

export const wsEchoHandler: HandlerModule<WsEchoConfig> = {
  type: 'ws-echo',
  summary: 'WebSocket echo: sends every message back as it came',
  schema,
  http: (config, ctx) => {
    const endpoint = new WsEndpoint(config.websocket, { listener: ctx.listener, handlerType: 'ws-echo', log: ctx.log, metrics: ctx.metrics });
    return {
      handle({ res }) {
        replyError(res, 426, 'this route takes WebSocket upgrades only', { headers: { upgrade: 'websocket', connection: 'upgrade' } });
      },
      upgrades: ['websocket'],
      upgrade(uctx) {
        endpoint.accept(uctx, echo);
      },
      drain() {
        endpoint.drain();
      },
      close() {
        return endpoint.close();
      },
    };
  },
};

import type { z } from 'zod';
import type { schema as echo } from './echo.ts';
import type { schema as respond } from './respond.ts';
import type { schema as redirect } from './redirect.ts';
import type { schema as metrics } from './metrics.ts';
import type { schema as welcome } from './welcome.ts';
import type { schema as fileTcp } from './file-tcp.ts';
import type { schema as upstreams } from './upstreams.ts';
import type { schema as tcpProxy } from './tcp-proxy.ts';
import type { schema as sniProxy } from './sni-proxy.ts';
import type { schema as udpProxy } from './udp-proxy.ts';
import type { schema as frameEcho } from './frame-echo.ts';
import type { schema as wsEcho } from './ws-echo.ts';
import type { schema as admin } from './admin/index.ts';
import type { staticSchema } from './static/config.ts';
import type { proxySchema } from './proxy/config.ts';
import type { chatSchema } from './chat/config.ts';
import type { grpcSchema } from './grpc/config.ts';
import type { respSchema } from './resp/config.ts';
import type { objectsSchema } from './objects/config.ts';
import type { InlineHandler, InlineHandlerConfig } from './inline.ts';

// The handler configs a program may write, as types: what each module's schema accepts (its
// z.input, so `timeout: '5s'` and left-out defaults are fine). A config written in TypeScript
// gets a compile error for an unknown `type` or a misspelt field, as the schema would give at
// run time.

/**
 * Handler config input by `type`. A module registered by a program (registerHandler) adds its
 * own entry by augmenting this interface:
 *
 * ```ts
 * declare module 'switchyard' {
 *   interface HandlerConfigs {
 *     hello: { type: 'hello'; greeting?: string };
 *   }
 * }
 * ```
 */
export interface HandlerConfigs {
  echo: z.input<typeof echo>;
  respond: z.input<typeof respond>;
  redirect: z.input<typeof redirect>;
  metrics: z.input<typeof metrics>;
  welcome: z.input<typeof welcome>;
  static: z.input<typeof staticSchema>;
  'file-tcp': z.input<typeof fileTcp>;
  upstreams: z.input<typeof upstreams>;
  proxy: z.input<typeof proxySchema>;
  'tcp-proxy': z.input<typeof tcpProxy>;
  'sni-proxy': z.input<typeof sniProxy>;
  'udp-proxy': z.input<typeof udpProxy>;
  'ws-echo': z.input<typeof wsEcho>;
  'frame-echo': z.input<typeof frameEcho>;
  chat: z.input<typeof chatSchema>;
  grpc: z.input<typeof grpcSchema>;
  resp: z.input<typeof respSchema>;
  objects: z.input<typeof objectsSchema>;
  admin: z.input<typeof admin>;
  inline: InlineHandlerConfig;
}

/** One handler config object: a union discriminated by `type` over every entry of HandlerConfigs. */
export type HandlerConfigObject = HandlerConfigs[keyof HandlerConfigs];

/**
 * What a config's `handler:` field takes: a module's config object, or (in a config built in
 * code) a function answering the request itself.
 */
export type HandlerConfig = HandlerConfigObject | InlineHandler;

/**
 * A handler config of a module the type system does not know (registered at run time, without
 * an entry in HandlerConfigs): checked by the module's schema when the config is parsed, not
 * at compile time. Prefer augmenting HandlerConfigs.
 */
export function untypedHandler(config: { type: string; [field: string]: unknown }): HandlerConfig {
  return config as unknown as HandlerConfig;
}

import { z } from 'zod';
import type { HandlerModule } from './types.ts';
import { replyError, replyJson } from './http/reply.ts';

// GET /upstreams on the admin listener: the live state of every upstream group (targets, health,
// ejections, in-flight requests, breaker, retry budget, pools) as JSON.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('upstreams'),
});

export type UpstreamsConfig = z.output<typeof schema>;

export const upstreamsHandler: HandlerModule<UpstreamsConfig> = {
  type: 'upstreams',
  summary: 'live state of the upstream groups as JSON (admin)',
  schema,
  http: (_config, { yard }) => ({
    handle({ req, res }) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return replyError(res, 405, 'method not allowed', { headers: { allow: 'GET, HEAD' } });
      replyJson(res, 200, { upstreams: yard.upstreams().map((g) => g.state()) }, { 'cache-control': 'no-store' });
    },
  }),
};

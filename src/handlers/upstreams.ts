import { z } from 'zod';
import type { HandlerModule } from './types.ts';
import { replyError, replyJson } from './http/reply.ts';
import { upstreamsView } from './admin/upstreams-view.ts';

// GET /upstreams on the admin listener: the live state of every upstream group (targets, health,
// ejections, in-flight requests, breaker, retry budget, pools) as JSON; with workers, merged from
// every worker (admin/upstreams-view.ts).

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
    async handle({ req, res }) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return replyError(res, 405, 'method not allowed', { headers: { allow: 'GET, HEAD' } });
      // With workers, the whole daemon's view (every worker's targets), as the admin handler's.
      replyJson(res, 200, await upstreamsView(yard), { 'cache-control': 'no-store' });
    },
  }),
};

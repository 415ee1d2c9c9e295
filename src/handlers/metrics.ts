import { z } from 'zod';
import type { HandlerModule } from './types.ts';
import { replyError } from './http/reply.ts';

// Prometheus exposition of the yard's metrics registry, for the admin listener.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('metrics'),
});

export type MetricsConfig = z.output<typeof schema>;

export const metricsHandler: HandlerModule<MetricsConfig> = {
  type: 'metrics',
  summary: 'Prometheus metrics of this daemon (text format)',
  schema,
  http: (_config, { metrics }) => ({
    async handle({ req, res }) {
      if (req.method !== 'GET' && req.method !== 'HEAD') return replyError(res, 405, 'method not allowed', { headers: { allow: 'GET, HEAD' } });
      const text = Buffer.from(await metrics.text());
      res.writeHead(200, { 'content-type': metrics.contentType, 'content-length': text.length, 'cache-control': 'no-store' });
      res.end(req.method === 'HEAD' ? undefined : text);
    },
  }),
};

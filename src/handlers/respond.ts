import { z } from 'zod';
import type { HandlerModule } from './types.ts';

// A fixed answer: health checks, maintenance pages, and the cheapest possible handler for
// benchmarks. Everything is computed once at provision time.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('respond'),
  /** HTTP status code. */
  status: z.number().int().min(200).max(599).default(200),
  /** Extra response headers. */
  headers: z.record(z.string().regex(/^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/, 'not a valid header name'), z.string()).default({}),
  /** Response body (text). */
  body: z.string().default(''),
  /** Content-Type unless `headers` sets one. */
  contentType: z.string().default('text/plain; charset=utf-8'),
});

export type RespondConfig = z.output<typeof schema>;

export const respondHandler: HandlerModule<RespondConfig> = {
  type: 'respond',
  summary: 'answers with a fixed status, headers and body',
  schema,
  http: (config) => {
    const body = Buffer.from(config.body);
    // The length as text: node turns a number into a new string on every response.
    const headers: Record<string, string> = { 'content-type': config.contentType, ...config.headers, 'content-length': String(body.length) };
    const noBody = config.status === 204 || config.status === 304;
    if (noBody) delete headers['content-length'];
    // The same head for every response: frozen, HTTP/2 passes it to node without a copy.
    Object.freeze(headers);
    return {
      handle({ req, res }) {
        res.writeHead(config.status, headers);
        res.end(req.method === 'HEAD' || noBody ? undefined : body);
      },
    };
  },
};

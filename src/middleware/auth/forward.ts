import { performance } from 'node:perf_hooks';
import type { TLSSocket } from 'node:tls';
import { Agent, request } from 'undici';
import { z } from 'zod';
import { duration, size } from '../../config/units.ts';
import type { HttpRequest } from '../../handlers/types.ts';
import { replyError } from '../../handlers/http/reply.ts';
import { clientIp } from '../../handlers/proxy/request-headers.ts';
import type { Middleware } from '../types.ts';
import { firstHeader, removeRequestHeaders, setRequestHeader } from './request-headers.ts';
import { headerNameSchema, httpUrlSchema, setHeaderNameSchema } from './schema.ts';

// Forward auth, as Traefik's ForwardAuth and Caddy's forward_auth: every request is first put to
// an authentication service (a bodiless request to `url`, with some of the client's headers and
// X-Forwarded-Method/-Proto/-Host/-Uri/-For saying what the client asked for). A 2xx lets the
// request through, with `copyResponseHeaders` of the service's answer set on it (the user it
// found, say); any other answer goes back to the client as it is (status, headers, body: a 401
// with WWW-Authenticate, a 302 to a login page), the body bounded by `maxBodySize`. A service
// that cannot be reached is 502, one that does not answer within `timeout` 504: never a hang,
// never a pass.

export const forwardAuthSchema = z.strictObject({
  /** The authentication service's endpoint; the client's path is sent in X-Forwarded-Uri, not appended. */
  url: httpUrlSchema,
  /** The method of the request to the service (it carries no body). */
  method: z.enum(['GET', 'HEAD', 'POST']).default('GET'),
  /** The longest the service may take, connection and whole answer included. */
  timeout: duration()
    .pipe(z.number().int().min(1).max(60_000, 'expected a duration of at most 60s'))
    .default(5_000),
  /** The client's request headers the service gets (all their values). */
  copyRequestHeaders: z.array(headerNameSchema).default(['authorization', 'cookie']),
  /**
   * Headers of the service's 2xx answer set on the request for the handler and upstream (the
   * user it found, say). The client's own headers of these names are always removed first.
   */
  copyResponseHeaders: z.array(setHeaderNameSchema).default([]),
  /**
   * Pass the client's own X-Forwarded-Proto/-Host/-For on to the service (the For list with the
   * client's address appended) instead of ours: only behind a proxy that sets them.
   */
  trustForwardHeader: z.boolean().default(false),
  /** The largest answer body passed back to the client on a refusal; a larger one is 502. */
  maxBodySize: size()
    .pipe(z.number().int().min(0).max(1024 * 1024, 'expected a size of at most 1MiB'))
    .default(64 * 1024),
  /** Connections to the service at most (per origin). */
  maxConnections: z.number().int().min(1).max(10_000).default(64),
});

export type ForwardAuthInput = z.input<typeof forwardAuthSchema>;
export type ForwardAuthConfig = z.output<typeof forwardAuthSchema>;

/** Headers of the service's refusal that describe its connection, not the answer: not passed on. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-connection', 'proxy-authenticate', 'content-length', 'http2-settings']);

/** A failed call is logged at most this often per forwardAuth (a service down fails every request). */
const WARN_INTERVAL_MS = 10_000;

class AnswerTooLargeError extends Error {}

function isTimeout(err: unknown): boolean {
  if (!(err instanceof Error)) return false;
  const code = (err as { code?: unknown }).code;
  return err.name === 'TimeoutError' || code === 'UND_ERR_HEADERS_TIMEOUT' || code === 'UND_ERR_BODY_TIMEOUT' || code === 'UND_ERR_CONNECT_TIMEOUT';
}

/** The headers the service gets for `req`. */
function serviceHeaders(req: HttpRequest, config: ForwardAuthConfig, requestId: string): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name of config.copyRequestHeaders) {
    const v = req.headers[name];
    if (v !== undefined) out[name] = v;
  }
  const trust = config.trustForwardHeader;
  const sentFor = firstHeader(req.headers['x-forwarded-for']);
  const sentProto = firstHeader(req.headers['x-forwarded-proto']);
  const sentHost = firstHeader(req.headers['x-forwarded-host']);
  const ip = clientIp(req);
  const host = (req.headers[':authority'] as string | undefined) ?? req.headers.host;
  out['x-forwarded-method'] = req.method ?? 'GET';
  out['x-forwarded-proto'] = trust && sentProto ? sentProto : (req.socket as TLSSocket).encrypted ? 'https' : 'http';
  if (trust && sentHost) out['x-forwarded-host'] = sentHost;
  else if (host !== undefined) out['x-forwarded-host'] = host;
  out['x-forwarded-uri'] = req.url ?? '/';
  out['x-forwarded-for'] = trust && sentFor ? `${sentFor}, ${ip}` : ip;
  if (requestId !== '') out['x-request-id'] = requestId;
  return out;
}

export function forwardAuth(config: ForwardAuthConfig): Middleware {
  const agent = new Agent({
    connections: config.maxConnections,
    keepAliveTimeout: 4_000,
    headersTimeout: config.timeout,
    bodyTimeout: config.timeout,
    connect: { timeout: config.timeout },
  });
  const spoofable = new Set(config.copyResponseHeaders);
  let lastWarn = -Infinity;

  const step: Middleware = async (ctx, next) => {
    const { req, res } = ctx;
    removeRequestHeaders(req, spoofable);
    // The call ends when the client goes, too: no one is waiting for its answer.
    const gone = new AbortController();
    const onClose = () => gone.abort();
    res.once('close', onClose);
    let status: number;
    let headers: Record<string, string | string[] | undefined>;
    let body: Buffer | undefined;
    try {
      const answer = await request(config.url, {
        dispatcher: agent,
        method: config.method,
        headers: serviceHeaders(req, config, ctx.requestId),
        signal: AbortSignal.any([AbortSignal.timeout(config.timeout), gone.signal]),
      });
      status = answer.statusCode;
      headers = answer.headers;
      if (status >= 200 && status < 300) {
        await answer.body.dump();
      } else {
        const declared = Number(firstHeader(headers['content-length']) ?? 0);
        if (declared > config.maxBodySize) {
          answer.body.destroy();
          throw new AnswerTooLargeError();
        }
        const chunks: Buffer[] = [];
        let length = 0;
        for await (const chunk of answer.body as AsyncIterable<Buffer>) {
          length += chunk.length;
          if (length > config.maxBodySize) {
            answer.body.destroy();
            throw new AnswerTooLargeError();
          }
          chunks.push(chunk);
        }
        body = Buffer.concat(chunks);
      }
    } catch (err) {
      if (gone.signal.aborted) return;
      const now = performance.now();
      if (now - lastWarn >= WARN_INTERVAL_MS) {
        lastWarn = now;
        ctx.log.warn({ err: err instanceof Error ? err.message : String(err), url: config.url }, 'forward auth: service call failed');
      }
      if (err instanceof AnswerTooLargeError) return replyError(res, 502, 'authentication service answer too large');
      if (isTimeout(err)) return replyError(res, 504, 'authentication service did not answer in time');
      return replyError(res, 502, 'authentication service unreachable');
    } finally {
      res.removeListener('close', onClose);
    }
    if (body === undefined) {
      for (const name of config.copyResponseHeaders) {
        const v = headers[name];
        if (v !== undefined) setRequestHeader(req, name, Array.isArray(v) ? v.join(', ') : v);
      }
      return next();
    }
    ctx.log.debug({ status }, 'forward auth refused');
    if (res.headersSent) return;
    const out: Record<string, string | string[]> = {};
    for (const [name, value] of Object.entries(headers)) if (value !== undefined && !HOP_BY_HOP.has(name)) out[name] = value;
    const bodiless = status === 204 || status === 304;
    if (!bodiless) out['content-length'] = String(body.length);
    res.writeHead(status, out);
    res.end(req.method === 'HEAD' || bodiless ? undefined : body);
  };
  // Its connections to the service end with it (a reload's new generation has its own pool).
  // Destroyed rather than closed gracefully: it is closed only once no request of its generation
  // is waiting for an answer.
  step.close = () => agent.destroy();
  return step;
}

import { z } from 'zod';
import type { HandlerModule } from './types.ts';
import { readBody } from './http/body.ts';
import { replyJson } from './http/reply.ts';

// Echo on every kind of listener, as in the seeds' echo servers: a stream gets its own bytes back
// (piped, so a client that does not read is slowed, not buffered), a datagram gets the same
// datagram back, and an HTTP request gets its request line, headers and body back as JSON.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('echo'),
});

export type EchoConfig = z.output<typeof schema>;

const TEXT = /^[\t\n\r\x20-\x7e\u00a0-\uffff]*$/;

export const echoHandler: HandlerModule<EchoConfig> = {
  type: 'echo',
  summary: 'sends back what it receives (tcp, unix, udp; http as JSON)',
  schema,
  stream: () => ({
    handle(socket) {
      socket.pipe(socket);
    },
  }),
  datagram: () => ({
    handle(message, from, ctx) {
      ctx.reply(message, from);
    },
  }),
  http: () => ({
    async handle(ctx) {
      const { req, res } = ctx;
      const body = await readBody(req, ctx.limits.maxBodySize);
      const text = body.toString('utf8');
      const isText = TEXT.test(text) && Buffer.byteLength(text) === body.length;
      replyJson(res, 200, {
        method: req.method,
        url: req.url,
        httpVersion: req.httpVersion,
        headers: req.headers,
        body: isText ? text : body.toString('base64'),
        bodyEncoding: isText ? 'utf8' : 'base64',
        bodyLength: body.length,
        remoteAddress: req.socket.remoteAddress,
        requestId: ctx.requestId || undefined,
      });
    },
  }),
};

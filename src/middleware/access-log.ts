import type { Middleware } from './types.ts';

// One JSON line per request, written when the response is finished or the client went away,
// so aborted transfers are logged too (with `aborted: true`).

export function accessLog(): Middleware {
  return (ctx, next) => {
    const started = process.hrtime.bigint();
    const { req, res } = ctx;
    res.once('close', () => {
      ctx.log.info(
        {
          listener: ctx.listener,
          route: ctx.route,
          method: req.method,
          url: req.url,
          status: res.statusCode,
          bytes: Number(res.getHeader('content-length') ?? 0) || undefined,
          durationMs: Number(process.hrtime.bigint() - started) / 1e6,
          // A handler may have detached the socket (undici does when it destroys a request stream).
          remote: req.socket?.remoteAddress,
          requestId: ctx.requestId || undefined,
          userAgent: req.headers['user-agent'],
          // An upgraded connection (101) ends without a finished response: not an abort.
          aborted: res.writableFinished || res.statusCode === 101 ? undefined : true,
        },
        'request',
      );
    });
    return next();
  };
}

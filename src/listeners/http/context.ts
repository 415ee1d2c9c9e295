import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { HttpLimits } from '../../handlers/types.ts';
import type { MiddlewareContext } from '../../middleware/index.ts';

/** The one per-request context (a class, so every request has the same shape for V8). */
export class RequestContext implements MiddlewareContext {
  requestId = '';
  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly listener: string,
    readonly route: string,
    readonly pathRest: string,
    readonly limits: HttpLimits,
    readonly log: Logger,
    private readonly onSendfileBytes: (bytes: number) => void,
  ) {}

  addBytesSent(bytes: number): void {
    this.onSendfileBytes(bytes);
  }
}

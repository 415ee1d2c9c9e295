import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from 'pino';
import type { Socket } from 'node:net';
import type { HttpLimits, HttpRequest, HttpResponse, UpgradeContext } from '../../handlers/types.ts';
import type { MiddlewareContext } from '../../middleware/index.ts';
import { clientCertificate, type ClientCertificate } from '../../tls/client-cert.ts';
import type { PathParams } from './router.ts';

/** The one per-request context (a class, so every request has the same shape for V8). */
export class RequestContext implements MiddlewareContext {
  requestId = '';
  constructor(
    readonly req: HttpRequest,
    readonly res: HttpResponse,
    readonly listener: string,
    readonly route: string,
    readonly pathRest: string,
    readonly params: PathParams,
    readonly limits: HttpLimits,
    readonly log: Logger,
    private readonly onSendfileBytes: (bytes: number) => void,
  ) {}

  addBytesSent(bytes: number): void {
    this.onSendfileBytes(bytes);
  }

  /**
   * The client certificate of this request's connection (tls.clientAuth): subject, SANs,
   * fingerprint, serial and whether it verified; undefined without one. Read once per connection.
   */
  get clientCert(): ClientCertificate | undefined {
    return clientCertificate(this.req.socket);
  }
}

/** An upgrade request's context: a request's, plus the raw socket, what followed the head, and the protocol. */
export class UpgradeRequestContext extends RequestContext implements UpgradeContext {
  declare readonly req: IncomingMessage;
  declare readonly res: ServerResponse;
  constructor(
    req: IncomingMessage,
    res: ServerResponse,
    listener: string,
    route: string,
    pathRest: string,
    params: PathParams,
    limits: HttpLimits,
    log: Logger,
    onSendfileBytes: (bytes: number) => void,
    readonly socket: Socket,
    readonly head: Buffer,
    readonly protocol: string,
  ) {
    super(req, res, listener, route, pathRest, params, limits, log, onSendfileBytes);
  }
}

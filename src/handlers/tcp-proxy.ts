import { connect, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import { z } from 'zod';
import { duration } from '../config/units.ts';
import type { UpstreamGroup } from '../upstream/group.ts';
import { addressPick } from '../upstream/admission.ts';
import type { Target } from '../upstream/target.ts';
import { StreamInspector, streamInspectSchema } from '../inspect/stream.ts';
import { describeTlsError, isTlsError } from '../upstream/tls.ts';
import type { ConnContext, HandlerModule, StreamHandler } from './types.ts';

// L4 proxy: each client connection gets one connection to a target of an upstream group, and
// bytes are piped both ways. Connecting: the group admits the connection (its balancer picks a
// target among those health checks and outlier ejection leave eligible; the pending cap and the
// circuit breaker hold as for HTTP); a refused or timed-out connect is reported and another
// target tried within retry.attempts and the retry budget, which is always safe as nothing was
// sent yet. Meanwhile early client bytes
// are held up to EARLY_LIMIT, then the client is paused (no unbounded buffer). Connected: pipe in
// both directions (backpressure both ways), half-close forwarded (a client FIN becomes our FIN
// upstream and the reply still flows back, and the other way round), no bytes either way for the
// group's idle timeout closes both, an error or abort on either side destroys both.
// A tls://host:port target is connected to over TLS with the group's `tls:` block (trust, SNI,
// client certificate): the client's bytes go inside it, and "connected" means the handshake,
// verification included, is done; a failed handshake counts and is retried like a refused
// connect. (Under sni-proxy this wraps the client's own TLS in ours: rarely what is wanted.)

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('tcp-proxy'),
  /** Name of a group under `upstreams:`. */
  upstream: z.string().min(1),
  /** Overrides the group's `timeouts.connect` for this listener. */
  connectTimeout: duration().optional(),
  /**
   * Traffic inspection of the proxied bytes: literal patterns (`match.raw`) matched in either
   * direction across chunk boundaries; `block` closes both sides, `log` warns. Fields at
   * streamInspectSchema (src/inspect/stream.ts) and in docs/inspect.md. Off unless set.
   */
  inspect: streamInspectSchema.optional(),
});

export type TcpProxyConfig = z.output<typeof schema>;

/** Client bytes held while the upstream connection is being made; beyond it the client is paused. */
const EARLY_LIMIT = 64 * 1024;

class ConnectTimeoutError extends Error {
  readonly code = 'ETIMEDOUT';
  constructor(target: Target, ms: number) {
    super(`connect to ${target.id} timed out after ${ms} ms`);
  }
}

/** Closes a socket with a reset (TCP), so the peer sees an abort rather than an end. */
function abort(s: Socket): void {
  if (s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    // Not a TCP handle (a unix socket client): a plain close is all there is.
    s.destroy();
  }
}

class TcpProxyHandler implements StreamHandler {
  /** Upstream sockets open now (connecting or connected), destroyed by close(). */
  private readonly upstreams = new Set<Socket>();
  private readonly idle: number;

  constructor(
    private readonly group: UpstreamGroup,
    private readonly connectTimeout: number,
    private readonly inspector?: StreamInspector,
  ) {
    this.idle = group.config.timeouts.idle;
  }

  handle(client: Socket, ctx: ConnContext): void {
    // A client FIN must not make Node end our side: the reply may still be coming.
    client.allowHalfOpen = true;
    const group = this.group;
    // The group's admission (upstream/admission.ts): a target, the pending cap while connecting,
    // the breaker (whose maxRequests caps the group's connections, Envoy's max_connections).
    const adm = group.admit(addressPick(client.remoteAddress ?? ''));
    if (!adm.ok) {
      ctx.log.debug({ listener: ctx.listener, upstream: group.name, reason: adm.reason }, 'tcp-proxy: refused by the upstream group');
      ctx.countRequest(adm.reason.replace('-', '_'));
      client.destroy();
      return;
    }
    // The connection is one call for the breaker: its outcome is known at connect, and it stays
    // admitted (in flight) until the client's side closes.
    let outcome: 'success' | 'failure' = 'success';
    client.once('close', () => adm.end(outcome));
    // Before the early-data listener and the pipe: a blocked chunk is never forwarded.
    const inspection = this.inspector?.watch(client, ctx);
    let early: Buffer[] = [];
    let earlyBytes = 0;
    let pending: Socket | undefined;

    const onEarlyData = (chunk: Buffer) => {
      early.push(chunk);
      earlyBytes += chunk.length;
      if (earlyBytes >= EARLY_LIMIT) client.pause();
    };
    client.on('data', onEarlyData);
    // The client gave up while we were still connecting: the attempt is dropped.
    const onEarlyClose = () => pending?.destroy();
    client.once('close', onEarlyClose);

    const attempt = (target: Target) => {
      if (client.destroyed) return;
      adm.begin(target);
      const secure = target.protocol === 'tls:';
      const upstream: Socket = secure
        ? connectTls({ ...group.tlsOptions(target), host: target.host, port: target.port })
        : connect({ host: target.host, port: target.port, allowHalfOpen: true, noDelay: true });
      if (secure) {
        // The reply may still come after the client's FIN (tls.connect has no such option).
        upstream.allowHalfOpen = true;
        upstream.setNoDelay(true);
      }
      pending = upstream;
      // The group's `socket:` options, once the TCP connection is up (under TLS too).
      upstream.once('connect', () => group.connected(upstream));
      this.upstreams.add(upstream);
      const timer = setTimeout(() => upstream.destroy(new ConnectTimeoutError(target, this.connectTimeout)), this.connectTimeout);
      // One socket, one 'close': the try stops being in flight exactly once, whatever happened
      // (a later try is never on the same target: a refused connect is not retried there).
      upstream.once('close', () => {
        clearTimeout(timer);
        if (adm.target === target) adm.finishTry();
        this.upstreams.delete(upstream);
      });
      const onConnectError = (err: NodeJS.ErrnoException) => {
        clearTimeout(timer);
        pending = undefined;
        adm.report('connect-failure');
        adm.finishTry();
        const tls = isTlsError(err);
        if (tls) group.errored(target, 'upstream_tls');
        ctx.log.debug({ err, listener: ctx.listener, upstream: group.name, target: target.id, reason: tls ? describeTlsError(err) : err.code }, 'tcp-proxy: connect failed');
        upstream.destroy();
        if (client.destroyed) return;
        const next = adm.retry(false);
        if (next) return attempt(next);
        ctx.log.debug({ listener: ctx.listener, upstream: group.name, tries: adm.tries }, 'tcp-proxy: no target could be connected to');
        ctx.countRequest('connect_failed');
        outcome = 'failure';
        client.destroy();
      };
      upstream.once('error', onConnectError);
      upstream.once(secure ? 'secureConnect' : 'connect', () => {
        clearTimeout(timer);
        pending = undefined;
        upstream.off('error', onConnectError);
        client.off('close', onEarlyClose);
        adm.connected();
        adm.report('success');
        ctx.countRequest('ok');
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        client.off('data', onEarlyData);
        inspection?.connected(upstream);
        for (const chunk of early) upstream.write(chunk);
        early = [];
        this.splice(client, upstream);
      });
    };
    attempt(adm.target);
  }

  /** Pipes the two sockets together until both sides have ended, or either fails. */
  private splice(client: Socket, upstream: Socket): void {
    // An error on either side aborts both, and the other side learns it by a reset (RST), not a
    // FIN that would look like a complete answer. The listener logs the client's own errors.
    const abortBoth = () => {
      abort(client);
      abort(upstream);
    };
    upstream.on('error', abortBoth);
    client.on('error', abortBoth);
    if (this.idle > 0) {
      upstream.setTimeout(this.idle, () => {
        client.destroy();
        upstream.destroy();
      });
    }
    // A socket that closes without having finished both directions cleanly was aborted (reset,
    // destroyed by a timeout or by the listener): the other side goes too. A clean close (FIN
    // both ways) leaves the other side to flush what it still holds.
    const cleanlyDone = (s: Socket) => s.readableEnded && s.writableFinished && !s.errored;
    client.once('close', () => {
      if (!cleanlyDone(client)) abort(upstream);
    });
    upstream.once('close', () => {
      if (!cleanlyDone(upstream)) abort(client);
    });
    // pipe() ends the destination when the source ends (a FIN becomes a FIN), resumes a paused
    // client, and stops reading a side whose destination is backed up.
    client.pipe(upstream);
    upstream.pipe(client);
  }

  close(): void {
    for (const s of this.upstreams) s.destroy();
    this.upstreams.clear();
  }
}

export const tcpProxyHandler: HandlerModule<TcpProxyConfig> = {
  type: 'tcp-proxy',
  summary: 'L4 proxy: pipes each connection to a target of an upstream group (balanced, health-checked, retried on connect failure)',
  schema,
  stream: (config, ctx) => {
    const group = ctx.upstream(config.upstream);
    return new TcpProxyHandler(group, config.connectTimeout ?? group.config.timeouts.connect, config.inspect && new StreamInspector(config.inspect, ctx.metrics));
  },
};

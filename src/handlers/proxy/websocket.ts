import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls } from 'node:tls';
import type { UpgradeContext } from '../types.ts';
import type { UpstreamGroup } from '../../upstream/group.ts';
import type { Target } from '../../upstream/target.ts';
import { clientIp, requestHeaders, type ForwardPolicy } from './request-headers.ts';
import { ProxyError, classify, refusalError, refusalHeaders } from './errors.ts';
import { RequestPick } from './pick.ts';
import { isTlsError } from '../../upstream/tls.ts';
import { replyError } from '../http/reply.ts';

// Phase "upgrade" (WebSocket: the only protocol a proxy route takes, see handler.ts): the request
// goes to a target over a connection of its own (TCP, or TLS for https:// targets; never a pooled
// one, since after 101 it is no longer HTTP). Steps: the group's admission (a target, the pending
// cap while connecting, the breaker; a refusal is a 503); connect (refused or timed out: report, try the next target, as nothing was sent);
// write the request head alone, with the forwarded headers plus Connection/Upgrade naming only
// the agreed protocol; read the upstream's response head (at most MAX_HEAD bytes, within
// timeouts.firstByte). A 101 is passed to the client byte for byte, then what the client sent
// after its head, then the two sockets are piped both ways with backpressure. Anything else is
// the upstream's refusal, relayed as it is, and both sides are closed: the client's bytes after
// its head never reach the upstream unless it agreed to switch, so no request can be smuggled
// behind an upgrade. Either side closing or failing closes the other; errors on either socket
// are handled, so nothing here can take the process down.

const MAX_HEAD = 16 * 1024;

/** Our own refusal (no target, breaker, connect failure), through the upgrade's response. */
function refuse(ctx: UpgradeContext, status: number, reason: string, headers?: Record<string, string>): void {
  if (ctx.socket.destroyed) return;
  replyError(ctx.res, status, reason, { close: true, headers });
}

export function proxyWebSocket(ctx: UpgradeContext, group: UpstreamGroup, policy: ForwardPolicy, path: string): void {
  const client = ctx.socket;
  const adm = group.admit(new RequestPick(ctx.req, clientIp(ctx.req)));
  if (!adm.ok) return refuse(ctx, 503, refusalError(adm).reason, refusalHeaders(adm));
  const base = requestHeaders(ctx.req, ctx.requestId, policy);
  const timeouts = group.config.timeouts;
  let upstream: Socket | undefined;
  // The client may leave at any time; whatever upstream socket exists goes with it.
  client.once('close', () => {
    upstream?.destroy();
    adm.end('success');
  });
  client.on('error', () => client.destroy());

  const attempt = (target: Target): void => {
    // In flight from here until this upstream socket closes; waiting (maxPending) until connected.
    adm.begin(target);
    const tls = target.protocol === 'https:';
    const up = tls
      ? connectTls({ ...group.tlsOptions(target), host: target.host, port: target.port, ALPNProtocols: ['http/1.1'] })
      : connectTcp({ host: target.host, port: target.port, noDelay: true });
    upstream = up;
    // The group's `socket:` options, once the TCP connection is up (under TLS too).
    up.once('connect', () => group.connected(up));
    up.once('close', () => {
      if (adm.target === target) adm.finishTry();
    });
    let phase: 'connect' | 'head' | 'open' = 'connect';
    const report = (outcome: 'success' | 'connect-failure' | 'failure') => adm.report(outcome);
    const timer = setTimeout(() => up.destroy(new ProxyError('UPSTREAM_CONNECT_TIMEOUT', { sent: false })), timeouts.connect);

    const onFailure = (err: Error) => {
      clearTimeout(timer);
      up.destroy();
      if (client.destroyed) return;
      if (phase === 'connect') {
        report('connect-failure');
        const e = err instanceof ProxyError ? err : connectError(err);
        group.errored(target, e.kind.toLowerCase());
        adm.finishTry();
        const next = adm.retry(false);
        if (next) {
          attempt(next);
          return;
        }
        ctx.log.debug({ err, upstream: group.name, target: target.id }, 'proxy: websocket upstream connect failed');
        adm.end('failure');
        return refuse(ctx, e.status, e.reason);
      }
      if (phase === 'head') {
        report('failure');
        adm.end('failure');
        // A TLS 1.3 upstream refuses our client certificate (or its absence) only after our side of the handshake.
        const e = err instanceof ProxyError ? err : isTlsError(err) ? classify(err, true) : new ProxyError('UPSTREAM_RESET', { cause: err });
        group.errored(target, e.kind.toLowerCase());
        return refuse(ctx, e.status, e.reason);
      }
      client.destroy();
    };
    up.on('error', onFailure);
    // Closed by the upstream before the head was complete (no error event for a clean FIN).
    up.once('end', () => {
      if (phase === 'head') onFailure(new ProxyError('UPSTREAM_RESET', { detail: 'closed before the response head' }));
    });

    up.once(tls ? 'secureConnect' : 'connect', () => {
      if (client.destroyed) {
        up.destroy();
        return;
      }
      phase = 'head';
      adm.connected();
      clearTimeout(timer);
      const headTimer = setTimeout(() => up.destroy(new ProxyError('UPSTREAM_FIRST_BYTE_TIMEOUT')), timeouts.firstByte);
      up.once('close', () => clearTimeout(headTimer));
      let head = `GET ${path} HTTP/1.1\r\n`;
      let hasHost = false;
      for (let i = 0; i < base.length; i += 2) {
        if (base[i] === 'host') hasHost = true;
        head += `${base[i]}: ${base[i + 1]}\r\n`;
      }
      if (!hasHost) head += `host: ${target.id}\r\n`;
      head += `connection: Upgrade\r\nupgrade: ${ctx.protocol}\r\n\r\n`;
      up.write(head);

      let buffered: Buffer[] = [];
      let size = 0;
      const onHead = (chunk: Buffer) => {
        buffered.push(chunk);
        size += chunk.length;
        const all = buffered.length === 1 ? chunk : Buffer.concat(buffered, size);
        buffered = [all];
        const end = all.indexOf('\r\n\r\n');
        if (end === -1) {
          if (size > MAX_HEAD) onFailure(new ProxyError('UPSTREAM_PROTOCOL', { detail: 'response head too large' }));
          return;
        }
        up.off('data', onHead);
        clearTimeout(headTimer);
        const statusLine = /^HTTP\/1\.[01] (\d{3})/.exec(all.toString('latin1', 0, Math.min(end, 64)));
        if (!statusLine) return onFailure(new ProxyError('UPSTREAM_PROTOCOL'));
        const status = Number(statusLine[1]);
        report(status >= 500 ? 'failure' : 'success');
        adm.end(status >= 500 ? 'failure' : 'success');
        phase = 'open';
        up.pause();
        ctx.res.statusCode = status;
        // The head (and any frames right behind it) go to the client as they came.
        client.write(all);
        if (status === 101) {
          // Only now has the upstream agreed to the new protocol: the client's bytes may follow.
          if (ctx.head.length > 0) up.write(ctx.head);
          splice(client, up, timeouts.idle);
        } else relayRefusal(client, up, all, end + 4);
      };
      up.on('data', onHead);
    });
  };
  attempt(adm.target);
}

/** A failed connect (TCP or TLS handshake; nothing was sent) as a ProxyError. */
function connectError(err: Error): ProxyError {
  const e = classify(err, false);
  return e.kind === 'UPSTREAM_ERROR' ? new ProxyError('UPSTREAM_CONNECT_FAILED', { sent: false, cause: err }) : e;
}

/** Pipes the two sockets both ways until either side is done; an abrupt end of one destroys the other. */
function splice(client: Socket, up: Socket, idle: number): void {
  const both = () => {
    client.destroy();
    up.destroy();
  };
  up.on('error', both);
  client.on('error', both);
  if (idle > 0) up.setTimeout(idle, both);
  const clean = (s: Socket) => s.readableEnded && !s.errored;
  client.once('close', () => {
    if (!clean(client)) up.destroy();
  });
  up.once('close', () => {
    if (!clean(up)) client.destroy();
    else client.end();
  });
  client.pipe(up);
  up.pipe(client);
  up.resume();
}

/** A non-101 answer: relay its body (by Content-Length, else until the upstream closes), then close both. */
function relayRefusal(client: Socket, up: Socket, all: Buffer, bodyStart: number): void {
  const headText = all.toString('latin1', 0, bodyStart);
  const m = /\r\ncontent-length:[ \t]*(\d+)/i.exec(headText);
  let left = m ? Number(m[1]) - (all.length - bodyStart) : Infinity;
  const done = () => {
    client.end();
    up.destroy();
  };
  up.on('error', () => client.destroy());
  up.setTimeout(5000, done);
  if (left <= 0) return done();
  up.on('data', (chunk: Buffer) => {
    const part = chunk.length > left ? chunk.subarray(0, left) : chunk;
    left -= part.length;
    if (!client.write(part)) {
      up.pause();
      client.once('drain', () => up.resume());
    }
    if (left <= 0) done();
  });
  up.once('end', done);
  up.resume();
}

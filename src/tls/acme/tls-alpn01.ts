import type { Socket } from 'node:net';
import { createSecureContext, TLSSocket, type SecureContext } from 'node:tls';
import { MAX_CLIENT_HELLO, readClientHello, type ClientHelloInfo } from '../client-hello.ts';

// TLS-ALPN-01 (RFC 8737): the CA opens TLS to <name>:443 offering only the ALPN protocol
// acme-tls/1 and expects a self-signed certificate for <name> carrying the acmeIdentifier
// extension (the SHA-256 of the key authorization). Ordinary clients never offer acme-tls/1, so
// the challenge certificate is served to the validator only and normal traffic keeps its own.

export const ACME_TLS_ALPN = 'acme-tls/1';

/** What the daemon's TLS listeners ask when a client offers ALPN acme-tls/1. */
export interface TlsAlpnResponder {
  /** The challenge certificate's context for `servername`, or undefined when no order waits on it. */
  contextFor(servername: string): SecureContext | undefined;
}

/** The challenge certificates of the orders under way; filled while pending, emptied after. */
export class TlsAlpnChallenges implements TlsAlpnResponder {
  private readonly contexts = new Map<string, SecureContext>();

  set(servername: string, keyPem: string | Buffer, certPem: string | Buffer): void {
    this.contexts.set(servername.toLowerCase(), createSecureContext({ key: keyPem, cert: certPem }));
  }

  delete(servername: string): void {
    this.contexts.delete(servername.toLowerCase());
  }

  contextFor(servername: string): SecureContext | undefined {
    return this.contexts.get(servername.toLowerCase());
  }

  get size(): number {
    return this.contexts.size;
  }
}

/** The challenge context to answer `hello` with, or undefined when it is not a TLS-ALPN-01 validation we wait for. */
export function tlsAlpn01Context(responder: TlsAlpnResponder, hello: ClientHelloInfo): SecureContext | undefined {
  if (!hello.alpn.includes(ACME_TLS_ALPN) || hello.servername === undefined) return undefined;
  return responder.contextFor(hello.servername);
}

/**
 * Completes a handshake on raw `socket` (nothing read from it yet but `head`, the bytes already
 * peeked, which are put back) with the challenge certificate `context`, negotiating acme-tls/1,
 * then closes: the validator needs nothing more (RFC 8737 section 3).
 */
export function answerTlsAlpn01(socket: Socket, context: SecureContext, head?: Buffer): void {
  if (head && head.length > 0) socket.unshift(head);
  const tls = new TLSSocket(socket, { isServer: true, secureContext: context, ALPNProtocols: [ACME_TLS_ALPN] });
  tls.setTimeout(10_000, () => tls.destroy());
  tls.on('secure', () => tls.end());
  tls.on('error', () => tls.destroy());
  tls.on('close', () => socket.destroy());
}

/**
 * Reads the ClientHello from raw `socket` (up to timeoutMs), without losing a byte: when it is a
 * TLS-ALPN-01 validation for a pending challenge, answers it and resolves 'answered'; otherwise
 * puts the bytes back, leaves the socket paused, and resolves 'pass' for the caller to hand the
 * socket on (to its tls.Server with server.emit('connection', socket)). 'closed' when the client
 * went away or sent nothing in time (the socket is destroyed).
 */
export function peekTlsAlpn01(socket: Socket, responder: TlsAlpnResponder, timeoutMs = 10_000): Promise<'answered' | 'pass' | 'closed'> {
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let length = 0;
    const done = (outcome: 'answered' | 'pass' | 'closed', head?: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onGone);
      socket.off('error', onGone);
      socket.off('close', onGone);
      socket.pause();
      if (outcome === 'closed') socket.destroy();
      else if (outcome === 'pass' && head && head.length > 0) socket.unshift(head);
      resolve(outcome);
    };
    const onGone = () => done('closed');
    const onData = (chunk: Buffer) => {
      chunks.push(chunk);
      length += chunk.length;
      const head = Buffer.concat(chunks, length);
      const hello = readClientHello(head);
      if (hello === 'incomplete' && length < MAX_CLIENT_HELLO) return;
      const context = hello === 'incomplete' || hello === undefined ? undefined : tlsAlpn01Context(responder, hello);
      if (context === undefined) return done('pass', head);
      done('answered');
      answerTlsAlpn01(socket, context, head);
    };
    const timer = setTimeout(onGone, timeoutMs);
    socket.on('data', onData);
    socket.once('end', onGone);
    socket.once('error', onGone);
    socket.once('close', onGone);
    socket.resume();
  });
}

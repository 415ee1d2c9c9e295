import { connect as connectTcp, type Socket } from 'node:net';
import { connect as connectTls, type ConnectionOptions, type TLSSocket } from 'node:tls';
import { H2ClientError } from './errors.ts';

// The socket under an HTTP/2 client connection: TCP for h2c (prior knowledge, RFC 9113 §3.3),
// TLS with ALPN h2 otherwise. A TLS target that does not choose h2 is refused here: it would read
// our preface as a broken HTTP/1.1 request.

export interface SocketTarget {
  readonly protocol: 'http:' | 'https:';
  readonly host: string;
  readonly port: number;
  /** `host:port`, for messages. */
  readonly id: string;
  /** TLS options (the group's CA, SNI, client certificate). */
  readonly tls?: ConnectionOptions;
  /** Runs on the socket once its TCP connection is up (the group's `socket:` options). */
  readonly onConnect?: (socket: Socket) => void;
}

/**
 * Connects; `done` gets the socket once it is ready for the preface (TCP up, or TLS handshake
 * done with h2 chosen), or the error. The returned function gives the attempt up (a timeout).
 */
export function openSocket(target: SocketTarget, done: (err: Error | null, socket?: Socket) => void): (err: Error) => void {
  const { host, port, onConnect } = target;
  let settled = false;
  const settle = (err: Error | null, socket: Socket): void => {
    if (settled) return;
    settled = true;
    socket.off('error', onError);
    if (err) {
      socket.destroy();
      done(err);
    } else done(null, socket);
  };
  const onError = (err: NodeJS.ErrnoException): void => {
    // A TLS server with ALPN but without h2 answers our offer with this alert.
    if (err.code === 'ERR_SSL_TLSV1_ALERT_NO_APPLICATION_PROTOCOL') return settle(new H2ClientError(`${target.id} does not offer HTTP/2 over TLS (ALPN h2): it refused the protocol`, 'HPE_INVALID_CONSTANT', { cause: err }), socket);
    settle(err, socket);
  };
  let socket: Socket;
  if (target.protocol === 'https:') {
    const tls: TLSSocket = connectTls({ ...target.tls, host, port, ALPNProtocols: ['h2'] });
    socket = tls;
    if (onConnect) tls.once('connect', () => onConnect(tls));
    tls.once('secureConnect', () => {
      if (tls.alpnProtocol !== 'h2') {
        const chosen = tls.alpnProtocol ? `chose ${tls.alpnProtocol}` : 'chose no protocol';
        return settle(new H2ClientError(`${target.id} does not offer HTTP/2 over TLS (ALPN h2): it ${chosen}`, 'HPE_INVALID_CONSTANT'), tls);
      }
      settle(null, tls);
    });
  } else {
    socket = connectTcp({ host, port });
    if (onConnect) socket.once('connect', () => onConnect(socket));
    socket.once('connect', () => settle(null, socket));
  }
  socket.setNoDelay(true);
  socket.on('error', onError);
  return (err: Error) => settle(err, socket);
}

import { formatHostPort } from '../config/address.ts';
import { listenTcp } from './bind.ts';
import type { ListenerSummary } from '../handlers/types.ts';
import { StreamListener, type StreamListenerOptions } from './stream.ts';
import type { TcpListenerSocketOptions } from '../config/socket-options.ts';
import { tcpConnectionOptions } from './socket-options.ts';

export class TcpListener extends StreamListener {
  readonly protocol = 'tcp' as const;

  constructor(
    options: StreamListenerOptions,
    private readonly where: string,
    /** `socket:` (docs/socket-options.md): set on the listening socket at start, noDelay on each connection. */
    private readonly socket?: TcpListenerSocketOptions,
  ) {
    super(options);
    // The raw TCP connection, before any TLS handshake.
    const perConnection = tcpConnectionOptions(socket, this.name, options.log);
    if (perConnection) this.server.on('connection', perConnection);
  }

  async start(): Promise<void> {
    this.bound = await listenTcp(this.server, this.name, this.where, this.options.log, this.options.inherit, this.socket);
  }

  summary(): ListenerSummary {
    const a = this.address() as { host: string; port: number };
    const hp = formatHostPort(a);
    const tls = this.options.tls;
    const nc = tls
      ? `openssl s_client -quiet -connect ${hp}${tls.rootCertFile ? ` -CAfile ${tls.rootCertFile}` : ''}`
      : `nc ${a.host} ${a.port}`;
    const tryIt = this.options.handlerType === 'file-tcp' ? `printf 'hello.txt\\n' | ${nc}` : nc;
    return { name: this.name, protocol: 'tcp', url: `${tls ? 'tls' : 'tcp'}://${hp}`, handlers: [this.options.handlerType], tryIt };
  }
}

import { formatHostPort, parseHostPort } from '../config/address.ts';
import type { ListenerSummary } from '../handlers/types.ts';
import { StreamListener, type StreamListenerOptions } from './stream.ts';
import { ListenError, listenErrorReason } from './types.ts';

export class TcpListener extends StreamListener {
  readonly protocol = 'tcp' as const;

  constructor(
    options: StreamListenerOptions,
    private readonly where: string,
  ) {
    super(options);
  }

  start(): Promise<void> {
    const hp = parseHostPort(this.where);
    if (!hp) return Promise.reject(new ListenError(this.name, this.where, 'not a host:port address'));
    return new Promise((resolve, reject) => {
      const onError = (err: NodeJS.ErrnoException) => reject(new ListenError(this.name, this.where, listenErrorReason(err), { cause: err }));
      this.server.once('error', onError);
      this.server.listen({ host: hp.host, port: hp.port, backlog: 1024 }, () => {
        this.server.off('error', onError);
        this.server.on('error', (err) => this.options.log.error({ err, listener: this.name }, 'listener error'));
        const a = this.server.address();
        if (a && typeof a === 'object') this.bound = { host: a.address, port: a.port };
        resolve();
      });
    });
  }

  summary(): ListenerSummary {
    const a = this.address() as { host: string; port: number };
    const hp = formatHostPort(a);
    const nc = a.host.includes(':') ? `nc ${a.host} ${a.port}` : `nc ${a.host} ${a.port}`;
    const tryIt = this.options.handlerType === 'file-tcp' ? `printf 'hello.txt\\n' | ${nc}` : nc;
    return { name: this.name, protocol: 'tcp', url: `tcp://${hp}`, handlers: [this.options.handlerType], tryIt };
  }
}

import type { Socket } from 'node:net';
import type { ConnContext } from '../types.ts';
import type { CommandArgs } from './args.ts';
import { ProtocolError, ReplyWriter, RespParser } from './frame.ts';
import type { RespService } from './service.ts';
import type { Subscriber } from './pubsub.ts';
import { findCommand } from './commands/index.ts';
import { NOAUTH, OOM, arityError } from './commands/types.ts';

// One client connection: bytes in through the parser, each complete command dispatched in order,
// the replies of everything parsed from one read sent with one write. When the client does not
// read its replies (the socket's buffer is over outputHighWaterMark) we stop reading its
// commands until the buffer drains, so a pipelining client cannot make us queue without end.

/** After our last reply to a client we are closing, how long it may keep the socket. */
const LINGER_MS = 5000;

export class Connection implements Subscriber {
  readonly out = new ReplyWriter();
  readonly id: number;
  readonly createdAt = Date.now();
  name = '';
  authenticated: boolean;
  readonly channels = new Set<string>();
  readonly patterns = new Set<string>();
  lastCommand = '';
  /** QUIT, a protocol error or a drain: no more commands are read; the socket ends after the replies. */
  private closing = false;
  private inBatch = false;
  private flushQueued = false;
  private paused = false;
  /** The client half-closed while its commands were held back: end once they are answered. */
  private endPending = false;
  private readonly parser: RespParser;
  private readonly hwm: number;
  /** Commands served in the current batch, counted in the metrics once per batch. */
  private served = 0;

  constructor(
    readonly socket: Socket,
    readonly service: RespService,
    private readonly ctx: ConnContext,
  ) {
    this.id = service.newClientId();
    this.authenticated = service.config.password === undefined;
    this.parser = new RespParser(service.config);
    this.hwm = service.config.outputHighWaterMark;
  }

  get resp3(): boolean {
    return this.out.resp3;
  }

  get subscriptions(): number {
    return this.channels.size + this.patterns.size;
  }

  start(): void {
    // A client that half-closes (nc -N, a script piping commands) still gets every reply; we
    // end our side once the commands it sent are answered.
    this.socket.allowHalfOpen = true;
    this.socket.setNoDelay(true);
    this.socket.on('data', (chunk: Buffer) => this.onData(chunk));
    this.socket.on('end', () => {
      if (this.paused) this.endPending = true;
      else this.endAfterReplies();
    });
    this.socket.on('drain', () => {
      if (!this.paused || this.closing) return;
      this.paused = false;
      this.socket.resume();
      this.runBuffered();
      if (!this.paused && this.endPending) this.endAfterReplies();
    });
  }

  private onData(chunk: Buffer): void {
    if (this.closing) return;
    this.parser.append(chunk);
    if (!this.paused) this.runBuffered();
  }

  /** Runs the buffered commands until they run out or their replies pile up, then sends the replies. */
  private runBuffered(): void {
    this.service.store.tick();
    this.inBatch = true;
    try {
      this.parser.parse(this.executeBound);
    } catch (err) {
      if (!(err instanceof ProtocolError)) throw err;
      this.ctx.countRequest('protocol_error');
      this.ctx.log.debug({ listener: this.ctx.listener, err: err.message }, 'resp: protocol error');
      this.out.error(`ERR ${err.message}`);
      this.closing = true;
    } finally {
      this.inBatch = false;
      if (this.served > 0) {
        this.ctx.countRequest('ok', this.served);
        this.served = 0;
      }
    }
    this.flush();
    if (this.closing) this.endAfterReplies();
  }

  private readonly executeBound = (args: CommandArgs): boolean => {
    const go = this.execute(args);
    const hwm = this.hwm;
    if (this.out.length >= hwm) this.flush();
    if (this.socket.writableLength > hwm && !this.closing) {
      // The client is not reading its replies: stop running its commands until it does.
      this.paused = true;
      this.socket.pause();
      return false;
    }
    return go;
  };

  /** Runs one command; false stops the parser (the connection is closing). */
  private execute(args: CommandArgs): boolean {
    const cmd = findCommand(args);
    const out = this.out;
    this.service.commandsProcessed++;
    if (cmd === undefined) {
      let rest = '';
      for (let i = 1; i < args.length && rest.length < 128; i++) rest += `'${args.latin1(i).slice(0, 128)}' `;
      out.error(`ERR unknown command '${args.latin1(0).slice(0, 128)}', with args beginning with: ${rest}`);
      this.ctx.countRequest('error');
      return true;
    }
    if (cmd.arity > 0 ? args.length !== cmd.arity : args.length < -cmd.arity) {
      out.error(arityError(cmd.name));
      this.ctx.countRequest('error');
      return true;
    }
    if (!this.authenticated && !cmd.noauth) {
      out.error(NOAUTH);
      this.ctx.countRequest('noauth');
      return true;
    }
    if (!this.out.resp3 && this.subscriptions > 0 && !cmd.subscribedOk) {
      out.error(`ERR Can't execute '${cmd.name}': only (P|S)SUBSCRIBE / (P|S)UNSUBSCRIBE / PING / QUIT / RESET are allowed in this context`);
      this.ctx.countRequest('error');
      return true;
    }
    if (cmd.denyoom && !this.service.makeRoom()) {
      out.error(OOM);
      this.ctx.countRequest('oom');
      return true;
    }
    this.lastCommand = cmd.name;
    cmd.exec(this, args);
    this.served++;
    return !this.closing;
  }

  /** QUIT: the reply already written goes out, then the connection ends. */
  quit(): void {
    this.closing = true;
  }

  /** A pub/sub message for this subscriber, sent at the end of the current batch (or soon). */
  deliver(channel: Buffer, message: Buffer, pattern?: string): void {
    if (this.socket.destroyed || this.closing) return;
    if (this.socket.writableLength > this.service.config.maxPubsubBacklog) {
      // Redis's client-output-buffer-limit for pubsub: a subscriber this far behind is dropped.
      this.ctx.log.warn({ listener: this.ctx.listener, client: this.id }, 'resp: subscriber too far behind, disconnected');
      this.close();
      return;
    }
    const out = this.out;
    if (pattern === undefined) {
      out.push(3);
      out.bulk('message');
    } else {
      out.push(4);
      out.bulk('pmessage');
      out.key(pattern);
    }
    out.bulk(channel);
    out.bulk(message);
    if (!this.inBatch && !this.flushQueued) {
      this.flushQueued = true;
      queueMicrotask(() => {
        this.flushQueued = false;
        this.flush();
      });
    }
  }

  private flush(): void {
    if (this.out.length === 0 || this.socket.destroyed) return;
    this.socket.write(this.out.take());
  }

  /** Ends our side once the replies are written, reading (and dropping) what the client still sends. */
  private endAfterReplies(): void {
    this.closing = true;
    this.flush();
    if (this.socket.destroyed) return;
    this.socket.end();
    if (this.paused) this.socket.resume();
    setTimeout(() => this.socket.destroy(), LINGER_MS).unref();
  }

  /** The yard is stopping, or the subscriber is too slow: replies so far go out, then the socket ends. */
  close(): void {
    this.endAfterReplies();
  }

  /** Forgets this connection's subscriptions (it closed). */
  dispose(): void {
    for (const c of this.channels) this.service.pubsub.unsubscribe(c, this);
    for (const p of this.patterns) this.service.pubsub.punsubscribe(p, this);
    this.channels.clear();
    this.patterns.clear();
  }
}

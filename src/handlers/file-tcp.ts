import type { Socket } from 'node:net';
import { isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { duration, size } from '../config/units.ts';
import type { ConnContext, HandlerModule, StreamHandler } from './types.ts';
import { FsRoot } from './fs-root.ts';
import { rootDirProblems } from './root-dir.ts';
import { canSendfile, sendFile, SendfileUnsupportedError } from '../sys/index.ts';
import { streamRange } from './static/transfer.ts';

// A file by name over a stream (docs/file-tcp.md): the client sends a file name and `\n`, the
// server answers with the file's bytes and closes. Errors are one line starting with `ERR `.
// Names go through the same root policy as `static` (fs-root.ts), in plain form: no percent
// decoding, and an absolute name is refused, not re-rooted. Refusals answer `ERR not found` so a
// client cannot tell a forbidden file from a missing one.

/** This module's config schema (its z.input is the handler's entry in HandlerConfigs, src/handlers/configs.ts). */
export const schema = z.strictObject({
  type: z.literal('file-tcp'),
  /** Directory served. Relative paths are taken from the config file's folder. */
  root: z.string().min(1),
  /** Names with a segment starting with `.`: `deny` answers `ERR not found`. */
  dotfiles: z.enum(['deny', 'allow']).default('deny'),
  /** Same meaning as for `static`: `within-root` (default), `follow` or `deny`. */
  symlinks: z.enum(['within-root', 'follow', 'deny']).default('within-root'),
  /** Longest name line accepted, newline excluded; longer gets `ERR name too long`. */
  maxNameLength: size().pipe(z.number().int().min(1).max(64 * 1024)).default(4096),
  /** Time allowed for the name line to arrive; then `ERR timeout`. */
  readTimeout: duration().default(10_000),
  /** Use sendfile(2) when the connection is plain TCP/unix (streams otherwise). */
  sendfile: z.boolean().default(true),
  /** Read size when streaming instead of sendfile. */
  streamChunk: size().pipe(z.number().int().min(4096).max(8 * 1024 * 1024)).default(512 * 1024),
});

export type FileTcpConfig = z.output<typeof schema>;

/** The protocol's error lines, and the status each is counted under. */
const ERR = {
  notFound: ['ERR not found\n', 'not_found'],
  badRequest: ['ERR bad request\n', 'bad_request'],
  tooLong: ['ERR name too long\n', 'name_too_long'],
  timeout: ['ERR timeout\n', 'timeout'],
} as const satisfies Record<string, readonly [string, string]>;

/** After our last byte, how long a client that never closes its side keeps the socket. */
const LINGER_MS = 5000;
const utf8 = new TextDecoder('utf-8', { fatal: true });

class FileTcpHandler implements StreamHandler {
  constructor(
    private readonly root: FsRoot,
    private readonly config: FileTcpConfig,
  ) {}

  handle(socket: Socket, ctx: ConnContext): void {
    // We close when the file is sent; a client that half-closes after its name (`nc -N`) must
    // not make Node end our side before that.
    socket.allowHalfOpen = true;
    const chunks: Buffer[] = [];
    let length = 0;
    let settled = false;
    const timer = setTimeout(() => finish(undefined, ERR.timeout), this.config.readTimeout);
    const finish = (name: Buffer | undefined, err?: readonly [string, string]) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('end', onEnd);
      // Whatever else the client sends is read and dropped, so that its FIN is still seen.
      socket.on('data', discard);
      if (err) return this.reject(socket, ctx, err);
      this.serve(socket, ctx, name!).catch((e: unknown) => {
        ctx.log.error({ err: e, listener: ctx.listener }, 'file-tcp: transfer failed');
        ctx.countRequest('error');
        socket.destroy();
      });
    };
    const onData = (chunk: Buffer) => {
      const nl = chunk.indexOf(10);
      const take = nl === -1 ? chunk : chunk.subarray(0, nl);
      length += take.length;
      if (length > this.config.maxNameLength) return finish(undefined, ERR.tooLong);
      chunks.push(take);
      if (nl !== -1) finish(Buffer.concat(chunks, length));
    };
    // A name without its newline, then EOF (`printf a.txt | nc -N`), is still a whole request.
    const onEnd = () => finish(Buffer.concat(chunks, length), length === 0 ? ERR.badRequest : undefined);
    socket.on('data', onData);
    socket.once('end', onEnd);
    socket.once('close', () => {
      settled = true;
      clearTimeout(timer);
    });
  }

  private reject(socket: Socket, ctx: ConnContext, [line, status]: readonly [string, string]): void {
    ctx.countRequest(status);
    this.endSoon(socket, line);
  }

  private async serve(socket: Socket, ctx: ConnContext, raw: Buffer): Promise<void> {
    const bytes = raw.length > 0 && raw[raw.length - 1] === 13 ? raw.subarray(0, -1) : raw;
    let name: string;
    try {
      name = utf8.decode(bytes);
    } catch {
      return this.reject(socket, ctx, ERR.badRequest);
    }
    const parsed = this.root.parsePlainName(name);
    if (parsed.kind === 'bad-request') return this.reject(socket, ctx, ERR.badRequest);
    if (parsed.kind === 'refused') return this.reject(socket, ctx, ERR.notFound);
    const found = await this.root.lookup(parsed.segments);
    if (found.kind !== 'file' || parsed.trailingSlash) return this.reject(socket, ctx, ERR.notFound);
    const opened = await this.root.openFile(found.path);
    if (!opened) return this.reject(socket, ctx, ERR.notFound);
    const { handle, stat } = opened;
    try {
      if (socket.destroyed) return ctx.countRequest('aborted');
      let sent = false;
      if (this.config.sendfile && stat.size > 0 && canSendfile(socket)) {
        try {
          await sendFile(socket, handle.fd, 0, stat.size, { onBytes: (n) => ctx.addBytesSent(n) });
          sent = true;
        } catch (err) {
          if (!(err instanceof SendfileUnsupportedError)) throw err;
        }
      }
      if (!sent) await streamRange(handle, 0, stat.size, socket, this.config.streamChunk, false);
      ctx.countRequest('ok');
      this.endSoon(socket);
    } catch {
      // Client gone or file cut short: the byte count is all a client can check, so it must not
      // look complete.
      ctx.countRequest('aborted');
      socket.destroy();
    } finally {
      await handle.close().catch(() => {});
    }
  }

  /** Ends our side (after `last`), and drops the socket if the client never closes its own. */
  private endSoon(socket: Socket, last?: string): void {
    if (socket.destroyed) return;
    if (last === undefined) socket.end();
    else socket.end(last);
    setTimeout(() => socket.destroy(), LINGER_MS).unref();
  }
}

export const fileTcpHandler: HandlerModule<FileTcpConfig> = {
  type: 'file-tcp',
  summary: 'a file by name: send its name and a newline, receive its bytes (see docs/file-tcp.md)',
  schema,
  validate: (config, ctx) => rootDirProblems(config.root, ctx.baseDir),
  stream: async (config, ctx) => {
    const dir = isAbsolute(config.root) ? config.root : resolve(ctx.baseDir, config.root);
    const root = await FsRoot.open(dir, { dotfiles: config.dotfiles, symlinks: config.symlinks });
    return new FileTcpHandler(root, config);
  },
};

function discard(): void {}

import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

// Pipelined requests of one connection, handled at most `depth` at a time.
//
// node:http parses every request in the bytes it has read and hands each to the server at once;
// it pauses reading only when responses already waiting to be written pass the socket's
// high-water mark, and it checks that between requests, not within one read. A client that
// pipelines thousands of requests and never reads therefore has thousands of handlers run, each
// response held in memory behind the first (20 such clients took a static server past 1 GB, a
// proxy past 2.7 GB). Responses must leave in order anyway, so handling more than a few ahead
// buys nothing: past `depth`, requests wait here (a parked request costs only the objects node
// has already made) and the socket is not read until the connection catches up. Memory per
// connection is then bounded by `depth` responses plus one read's worth of parked requests.

const kPipeline = Symbol('switchyard.pipeline');

type PipelinedSocket = Socket & { [kPipeline]?: ConnectionPipeline };

class ConnectionPipeline {
  /** Requests being handled: started, response not yet closed. */
  active = 0;
  private readonly waiting: (() => void)[] = [];
  private idle: (() => void)[] = [];
  private held = false;

  constructor(
    private readonly socket: Socket,
    private readonly depth: number,
  ) {
    socket.once('close', () => {
      this.waiting.length = 0;
      this.idle.length = 0;
    });
  }

  admit(res: ServerResponse, run: () => void): void {
    if (this.active < this.depth && this.waiting.length === 0) return this.start(res, run);
    this.waiting.push(() => this.start(res, run));
    if (!this.held) {
      this.held = true;
      this.socket.pause();
    }
  }

  /** Calls `fn` once every request read so far is answered (at once if none is pending). */
  whenIdle(fn: () => void): void {
    if (this.active === 0 && this.waiting.length === 0) return fn();
    this.idle.push(fn);
  }

  private start(res: ServerResponse, run: () => void): void {
    this.active++;
    res.once('close', this.done);
    run();
  }

  private readonly done = (): void => {
    this.active--;
    const next = this.waiting.shift();
    if (next) return next();
    if (this.held) {
      this.held = false;
      if (!this.socket.destroyed) this.socket.resume();
    }
    if (this.active === 0 && this.idle.length > 0) for (const fn of this.idle.splice(0)) fn();
  };
}

function pipelineOf(socket: Socket, depth: number): ConnectionPipeline {
  const s = socket as PipelinedSocket;
  return (s[kPipeline] ??= new ConnectionPipeline(socket, depth));
}

/** Runs `run` for the request of `res` now, or once fewer than `depth` requests of its connection are in hand. */
export function admitPipelined(socket: Socket, res: ServerResponse, depth: number, run: () => void): void {
  pipelineOf(socket, depth).admit(res, run);
}

/** Calls `fn` once the connection has answered every request read before (an upgrade must not overtake them). */
export function whenPipelineIdle(socket: Socket, fn: () => void): void {
  const p = (socket as PipelinedSocket)[kPipeline];
  if (p) p.whenIdle(fn);
  else fn();
}

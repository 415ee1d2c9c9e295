import type { ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

// Pipelined requests of one connection, handled at most `depth` at a time, and read no further
// ahead than that.
//
// node:http parses every request in the bytes it has read and hands each to the server at once;
// it pauses reading only when responses already waiting to be written pass the socket's
// high-water mark, and it checks that between reads, not within one. A client that pipelines
// thousands of requests and never reads therefore has thousands of handlers run, each response
// held in memory behind the first (20 such clients took a static server past 1 GB, a proxy past
// 2.7 GB); and even with handlers held back, node makes a request and a response object (about
// 2 KB) for each of the thousand-odd tiny requests one 64 KB read can hold, before anyone can
// say stop.
//
// So: responses must leave in order anyway, and handling more than a few ahead buys nothing.
// Past `depth`, requests wait here and the connection stops being read. Reads are handed to
// node's parser in slices of READ_SLICE bytes, and no further slice while the connection is
// held, so at most one slice's worth of requests is ever parsed ahead: the rest of a read waits
// as bytes in the socket's buffer.
//
// Slicing needs the reads in JavaScript, and that is dear: node:http otherwise "consumes" the
// socket, its parser reading straight from the handle in C++, with no Buffer, no stream
// machinery and no JavaScript per read (measured on a 4 KiB static file over TLS keep-alive:
// about a quarter of the CPU per request). A client that does not pipeline never needs the
// slices. So a TLS connection keeps node's reader until it pipelines (a request arrives while
// one of its own is still being answered), and is read in slices from then on. What a flood can
// still make node parse at once is the rest of the read that showed the pipelining, and over
// TLS node hands its parser at most 16 KB at a time (one record's plaintext). Memory per TLS
// connection is bounded by `depth` responses plus that one read's requests, then one slice's,
// however many the client sends. A plain-text read is up to 64 KB (libuv's read size): four
// times the requests at once, which 20 flooding connections turned into 90 MB measured (a
// proxy route), so plain-text connections are sliced from the start. Re-measured 2026-12-07 on
// Node 24: node's reader for plain text until the connection pipelines (as for TLS) took the
// proxy's CPU per request about 1% lower in an interleaved run, within the noise, and
// test/security/pipelining-memory.test.ts's proxy route to 97 MB of growth against its 64 MB
// bound: not worth it. (Pausing node's parser from a request handler does not stop it within
// a read either: it parses the whole read first.)

/** Bytes of a read given to the parser at a time: a few dozen requests at most, a whole ordinary head. */
const READ_SLICE = 4096;

const kPipeline = Symbol('switchyard.pipeline');
const kSliced = Symbol('switchyard.sliced-reads');
const kSliceWhenPipelined = Symbol('switchyard.slice-when-pipelined');


/**
 * `_paused` is node:http's own flag for "this connection is not to be read": with it set, the
 * socket stays paused when a request body is read or a finished response dumps its request
 * (both call socket.resume(), which would otherwise undo a plain pause at once). node:http
 * clears it itself whenever its queued responses are small (socketOnDrain), so the pipeline
 * also pauses again on every 'resume' while requests are parked.
 */
type PipelinedSocket = Socket & {
  [kPipeline]?: ConnectionPipeline;
  _paused?: boolean;
  [kSliced]?: SlicedReads;
  /** Read by node's own reader (it consumes the handle) until the connection pipelines. */
  [kSliceWhenPipelined]?: boolean;
  /** node:http's parser of the connection; `_consumed` while it reads the handle itself. */
  parser?: { _consumed?: boolean } | null;
};
/**
 * One connection's requests in hand. The listener asks `admit` for each request (true: handle
 * it now; false: `park` it) and calls `done` when its response closes; the fast path (no
 * pipelining: one request in hand at a time) costs two field writes per request, no closure, no
 * listener and no Set (whose first insert of an object makes V8 give it a hash).
 */
export class ConnectionPipeline {
  /** The response being handled, when it is the only one (the keep-alive case). */
  private first: ServerResponse | undefined;
  /** Responses being handled besides `first` (pipelined requests); made on the first of them. */
  private more: Set<ServerResponse> | undefined;
  /** How many requests are being handled: started, their response not yet closed. */
  private inHand = 0;
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
      // node:http closes only the response writing to the socket; those queued behind it would
      // never hear that their client is gone, and a handler waiting on one (a proxied body
      // paused for backpressure) would hold it, and with it every request of the connection,
      // for good. They are closed as node closes its own, once it has.
      setImmediate(() => {
        for (const res of this.openResponses()) {
          if (res.destroyed && res.listenerCount('close') === 0) continue;
          res.destroyed = true;
          res.emit('close');
        }
      });
    });
    socket.on('resume', () => {
      if (this.waiting.length > 0) this.hold();
    });
  }

  /** A request came while another of the connection's was in hand: from now on, sliced reads (see the top). */
  private pipelining(): void {
    const s = this.socket as PipelinedSocket;
    if (!s[kSliceWhenPipelined]) return;
    s[kSliceWhenPipelined] = false;
    sliceReads(this.socket);
  }

  /** Stops reading the connection (node:http's way: the flag it checks, then pause). */
  private hold(): void {
    const s = this.socket as PipelinedSocket;
    this.held = true;
    s._paused = true;
    s.pause();
  }

  /** The responses of the requests in hand. */
  private openResponses(): ServerResponse[] {
    const all = this.more ? [...this.more] : [];
    if (this.first) all.unshift(this.first);
    return all;
  }

  private take(res: ServerResponse): void {
    this.inHand++;
    if (this.first === undefined) this.first = res;
    else (this.more ??= new Set()).add(res);
  }

  /** True when the request of `res` may be handled now (it is then in hand until `done`). */
  admit(res: ServerResponse): boolean {
    if (this.inHand > 0 || this.waiting.length > 0) this.pipelining();
    if (this.inHand >= this.depth || this.waiting.length > 0) return false;
    this.take(res);
    return true;
  }

  /** Handles the request of `res` (with `run`) once the connection has room; stops reading it meanwhile. */
  park(res: ServerResponse, run: () => void): void {
    if (this.socket.destroyed) return;
    this.waiting.push(() => {
      this.take(res);
      run();
    });
    // Checked on every parked request, not once: node:http unpauses on its own when the socket
    // drains, and a request parked after that must stop reading again.
    if (!(this.socket as PipelinedSocket)._paused) this.hold();
  }

  /** Calls `fn` once every request read so far is answered (at once if none is pending). */
  whenIdle(fn: () => void): void {
    if (this.inHand === 0 && this.waiting.length === 0) return fn();
    this.idle.push(fn);
  }

  /** The response of a request admitted or parked here has closed. */
  done(res: ServerResponse): void {
    if (res === this.first) this.first = undefined;
    else if (!this.more?.delete(res)) return;
    this.inHand--;
    if (this.waiting.length === 0 && !this.held && this.idle.length === 0) return;
    const next = this.waiting.shift();
    if (next) return next();
    if (this.held) {
      this.held = false;
      const s = this.socket as PipelinedSocket;
      s._paused = false;
      if (!s.destroyed) s.resume();
    }
    if (this.inHand === 0 && this.idle.length > 0) for (const fn of this.idle.splice(0)) fn();
  }
}

/** The pipeline of a connection, made on its first request. */
export function pipelineOf(socket: Socket, depth: number): ConnectionPipeline {
  const s = socket as PipelinedSocket;
  return (s[kPipeline] ??= new ConnectionPipeline(socket, depth));
}

/** Calls `fn` once the connection has answered every request read before (an upgrade must not overtake them). */
export function whenPipelineIdle(socket: Socket, fn: () => void): void {
  const p = (socket as PipelinedSocket)[kPipeline];
  if (p) p.whenIdle(fn);
  else fn();
}

/** What the slicing reader keeps per socket: node's own reader, and the unparsed rest of a read. */
interface SlicedReads {
  readonly parse: (chunk: Buffer) => void;
  readonly feed: (chunk: Buffer) => void;
  /** The part of the current read not yet given to the parser (see takeUnparsed). */
  rest: Buffer | undefined;
}

/**
 * How a connection node:http has just set up is read. With `keepNodeReader` (TLS: reads of at
 * most 16 KB), by node's own reader while node consumes the socket, until the connection
 * pipelines. In slices at once otherwise, and when node could not consume the socket or bytes
 * wait in its buffer (a socket handed back after an upgrade request served as a plain one, an
 * HTTP/2 stream standing in for a socket). Call from the server's 'connection' event, after
 * node's own listener has run, for the listener's own sockets only.
 */
export function watchReads(socket: Socket, keepNodeReader: boolean): void {
  const s = socket as PipelinedSocket;
  // Bytes already waiting in the socket's buffer (put back by a look at the first bytes) are
  // node's 'data' to read, past its C++ reader: sliced from the start, as ever.
  if (keepNodeReader && s.parser?._consumed === true && socket.readableLength === 0 && !s[kSliced]) s[kSliceWhenPipelined] = true;
  else sliceReads(socket);
}

/**
 * Puts the parser of a connection behind a reader that hands it each read in slices, and none
 * while the connection is held (`_paused`, node's own rule for its reader).
 */
function sliceReads(socket: Socket): void {
  const s = socket as PipelinedSocket;
  // node:http's reader is the only 'data' listener at this point.
  const [parse] = socket.listeners('data') as ((chunk: Buffer) => void)[];
  if (!parse || s[kSliced]) return;
  const sliced: SlicedReads = {
    parse,
    rest: undefined,
    feed(chunk: Buffer): void {
      // The common read: one request or a few, not held. Straight through, no slice views.
      if (chunk.length <= READ_SLICE && !s._paused && s.writable && s[kSliced] === sliced) {
        sliced.rest = undefined;
        parse(chunk);
        return;
      }
      let at = 0;
      while (at < chunk.length) {
        // Nothing more can be answered (a refusal or a `Connection: close` response has ended
        // the socket): the rest of the read is dropped. Put back, it would come straight back
        // here from a flowing socket, over and over, until the stack overflowed.
        if (!s.writable || s.destroyed) return;
        if (s[kSliced] !== sliced) {
          // Another reader has the connection now: the rest is its to read.
          s.unshift(chunk.subarray(at));
          return;
        }
        if (s._paused) {
          // Held: the rest waits as bytes, read again when the socket resumes. Paused first, so
          // that the unshift cannot hand the bytes back to this reader at once.
          s.pause();
          s.unshift(chunk.subarray(at));
          return;
        }
        const end = Math.min(at + READ_SLICE, chunk.length);
        sliced.rest = end < chunk.length ? chunk.subarray(end) : undefined;
        parse(chunk.subarray(at, end));
        at = end;
        if (sliced.rest === undefined) return; // taken by an upgrade (takeUnparsed)
      }
    },
  };
  s[kSliced] = sliced;
  socket.removeListener('data', parse);
  // Adding a 'data' listener makes node:http read in JavaScript instead of straight from the
  // handle into its parser: what lets the rest of a read wait.
  socket.on('data', sliced.feed);
}

/**
 * An upgrade took the connection from the HTTP parser in the middle of a read: detaches the
 * slicing reader and returns the part of that read the parser never saw (it follows the upgrade
 * request's head), or an empty buffer.
 */
export function takeUnparsed(socket: Socket): Buffer {
  const s = socket as PipelinedSocket;
  const sliced = s[kSliced];
  s[kSliceWhenPipelined] = false;
  if (!sliced) return Buffer.alloc(0);
  s[kSliced] = undefined;
  socket.removeListener('data', sliced.feed);
  const rest = sliced.rest ?? Buffer.alloc(0);
  sliced.rest = undefined;
  return rest;
}

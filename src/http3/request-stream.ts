import type { QuicStream } from '../quic/stream.ts';
import { H3, Http3Error } from './errors.ts';
import { H3Request, H3Response } from './exchange.ts';
import { requestHead } from './fields.ts';
import { FRAME, FrameReader } from './frames.ts';
import { QuicPeerSocket, asSocket } from './peer-socket.ts';
import { decodeFieldSection, FieldSectionTooLarge } from './qpack.ts';
import type { Http3Session } from './session.ts';

// One request stream on the server (RFC 9114 §4.1): HEADERS, DATA frames of the body, maybe
// trailers (a last HEADERS), then the FIN. The head becomes an H3Request and H3Response
// (exchange.ts) handed to the listener's phases; the body flows into the request as it comes,
// and reading stops while the request's buffer is full (QUIC flow control then holds the client).
//
// What the RFC makes a connection error (a frame of the wrong kind or in the wrong place, a
// stream ended inside a frame, a QPACK failure) closes the connection (session.fail); what it
// makes a stream error (a malformed message: H3_MESSAGE_ERROR, a request without HEADERS:
// H3_REQUEST_INCOMPLETE) ends this stream only, with a 400 first when nothing was answered yet.
// A head over the field-section limit is answered 431, as RFC 9114 §4.2.2 suggests.
//
// A request whose stream started in 0-RTT (early data, when the listener accepts it) may be a
// replay: only safe methods go on, marked `Early-Data: 1` (RFC 8470 §5.1) so that handlers and
// upstreams can tell; the rest are answered 425 Too Early (§5.2) and never reach the phases.

/** The request's phases: the listener's (server.ts feeds them to serve()). */
export type Http3RequestSink = (req: H3Request, res: H3Response, expectsContinue: boolean) => void;

export interface RequestStreamOptions {
  readonly session: Http3Session;
  readonly peer: QuicPeerSocket;
  readonly onRequest: Http3RequestSink;
  readonly dateNow: () => string;
  /** Body bytes the request buffers before the stream stops being read. */
  readonly bodyHighWaterMark: number;
  /** A request answered here, before the phases (400 malformed, 408 slow head, 425 unsafe in early data, 431 too large). */
  readonly onRefused: (status: number) => void;
  /** The request head must have arrived within this long (ms) of the stream opening; else 408. */
  readonly headerTimeout: number;
  /** A stream with no byte moving either way for this long (ms) is reset (a client that stopped reading holds our response otherwise). */
  readonly idleTimeout: number;
}

type State = 'head' | 'body' | 'trailers';

/** Methods served from early data: safe ones (RFC 9110 §9.2.1), whose replay changes nothing. */
const EARLY_SAFE_METHODS = new Set(['GET', 'HEAD', 'OPTIONS']);

export function serveRequestStream(stream: QuicStream, options: RequestStreamOptions): void {
  const { session, peer } = options;
  const limits = session.limits;
  let state: State = 'head';
  let req: H3Request | undefined;
  let res: H3Response | undefined;
  let declared = -1;
  let received = 0;
  let readEnded = false;
  let over = false;

  const refuse = (status: number, text: string, code: number) => {
    if (over) return;
    over = true;
    const r = new H3Response(stream, new H3Request(Object.create(null), [], asSocket(peer), () => {}, 1), options.dateNow);
    r.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', 'content-length': Buffer.byteLength(text) + 1 });
    r.end(`${text}\n`);
    stream.stopSending(code);
    options.onRefused(status);
  };

  const streamError = (err: Http3Error) => {
    if (over) return;
    if (!res) return refuse(400, `bad request: ${err.message}`, err.code);
    over = true;
    req?.cut(err);
    stream.reset(err.code);
  };

  // The head must come in time: a client that opens streams and trickles their HEADERS would
  // otherwise hold them (and their buffers) for as long as it keeps the connection alive.
  const headTimer = setTimeout(() => {
    if (state === 'head') refuse(408, '408 request head not received in time', H3.REQUEST_INCOMPLETE);
  }, options.headerTimeout);
  headTimer.unref();
  // No progress either way for idleTimeout: the stream is reset. Checked by its byte counts, so
  // a busy stream costs one timer per period, not one per chunk.
  let lastBytes = -1;
  const idleTimer = setInterval(() => {
    const bytes = stream.bytesRead + stream.bytesWritten;
    if (bytes !== lastBytes) {
      lastBytes = bytes;
      return;
    }
    clearInterval(idleTimer);
    over = true;
    req?.cut();
    stream.reset(H3.REQUEST_CANCELLED);
  }, options.idleTimeout);
  idleTimer.unref();

  const reader = new FrameReader(
    {
      frame(type, payload) {
        if (type !== FRAME.HEADERS) throw new Http3Error(H3.FRAME_UNEXPECTED, `frame 0x${type.toString(16)} on a request stream`);
        if (state === 'trailers') throw new Http3Error(H3.FRAME_UNEXPECTED, 'HEADERS after the trailers');
        let fields;
        try {
          fields = decodeFieldSection(payload, { maxSectionSize: limits.maxFieldSectionSize, maxFields: limits.maxFields });
        } catch (err) {
          if (!(err instanceof FieldSectionTooLarge)) throw err;
          if (state === 'head') return refuse(431, '431 request header fields too large', H3.EXCESSIVE_LOAD);
          throw new Http3Error(H3.EXCESSIVE_LOAD, 'trailers too large', 'stream');
        }
        if (state === 'body') {
          // Trailers: pseudo-headers are not allowed in them (§4.3).
          if (fields.some(([n]) => n.charCodeAt(0) === 58)) throw new Http3Error(H3.MESSAGE_ERROR, 'pseudo-header in trailers', 'stream');
          state = 'trailers';
          return;
        }
        const head = requestHead(fields);
        if ('malformed' in head) throw new Http3Error(H3.MESSAGE_ERROR, head.malformed, 'stream');
        state = 'body';
        clearTimeout(headTimer);
        if (stream.earlyData) {
          if (!EARLY_SAFE_METHODS.has(head.headers[':method'] as string)) return refuse(425, '425 too early: send this request again after the handshake', H3.NO_ERROR);
          markEarly(head.headers, head.rawHeaders);
        }
        const length = head.headers['content-length'];
        declared = length === undefined ? -1 : Number(length);
        req = new H3Request(head.headers, head.rawHeaders, asSocket(peer), () => stream.resume(), options.bodyHighWaterMark);
        res = new H3Response(stream, req, options.dateNow);
        const request = req;
        const response = res;
        // Dispatched after this turn, so that a FIN that came with the HEADERS is known
        // (endAfterHeaders: the proxy then forwards no body).
        setImmediate(() => {
          if (over && !response.headersSent) return;
          request.endAfterHeaders = readEnded && received === 0;
          dispatch(request, response);
        });
      },
      data(chunk) {
        if (state !== 'body') throw new Http3Error(H3.FRAME_UNEXPECTED, state === 'head' ? 'DATA before HEADERS' : 'DATA after the trailers');
        received += chunk.length;
        if (declared >= 0 && received > declared) throw new Http3Error(H3.MESSAGE_ERROR, 'more body than Content-Length says', 'stream');
        if (req && !req.bodyChunk(chunk)) stream.pause();
      },
      oversized(type) {
        if (type === FRAME.HEADERS && state === 'head') return refuse(431, '431 request header fields too large', H3.EXCESSIVE_LOAD);
        throw new Http3Error(H3.EXCESSIVE_LOAD, `frame 0x${type.toString(16)} too large`, 'stream');
      },
    },
    limits.maxFieldSectionSize,
  );

  const markEarly = (headers: H3Request['headers'], rawHeaders: string[]) => {
    headers['early-data'] = '1';
    for (let i = rawHeaders.length - 2; i >= 0; i -= 2) if (rawHeaders[i] === 'early-data') rawHeaders.splice(i, 2);
    rawHeaders.push('early-data', '1');
  };

  const dispatch = (request: H3Request, response: H3Response) => {
    const method = request.method;
    if (method === 'CONNECT') {
      response.writeHead(405, { allow: 'GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS' });
      response.end();
      return;
    }
    const expect = request.headers.expect;
    if (expect !== undefined && expect !== '100-continue') {
      response.statusCode = 417;
      response.end();
      return;
    }
    options.onRequest(request, response, expect !== undefined);
  };

  // What went out on the stream, added to the connection's stand-in socket's count.
  let accounted = 0;
  const account = () => {
    peer.bytesWritten += stream.bytesWritten - accounted;
    accounted = stream.bytesWritten;
  };
  stream.on('data', (chunk: Buffer) => {
    peer.bytesRead += chunk.length;
    if (over) return;
    session.guard(() => reader.push(chunk), streamError);
  });
  stream.once('end', () => {
    readEnded = true;
    if (over) return;
    session.guard(() => {
      if (!reader.atBoundary) throw new Http3Error(H3.FRAME_ERROR, 'request stream ended inside a frame');
      if (state === 'head') throw new Http3Error(H3.REQUEST_INCOMPLETE, 'request stream ended without HEADERS', 'stream');
      if (declared >= 0 && received !== declared) throw new Http3Error(H3.MESSAGE_ERROR, `body of ${received} bytes, Content-Length ${declared}`, 'stream');
      req?.bodyEnd();
    }, streamError);
  });
  // Our sending side is done: the response is complete. A request body still coming is not
  // wanted any more (§4.1.2: STOP_SENDING with H3_NO_ERROR).
  stream.once('finish', () => {
    account();
    res?.streamFinished();
    if (!readEnded) {
      // What is left of the request is not read: its end (ours, below) is no protocol error.
      over = true;
      stream.stopSending(H3.NO_ERROR);
    }
  });
  stream.once('close', () => {
    clearTimeout(headTimer);
    clearInterval(idleTimer);
    account();
    // As node's requests: 'close' once the exchange is over; cut off first, 'aborted' and an error.
    if (req && !req.complete) req.cut();
    else if (req && !req.destroyed) req.emit('close');
    res?.streamGone();
  });
  // Stream errors (reset by the client, connection gone) end in 'close'.
  stream.on('error', () => {});
}

import { connectQuic, type QuicClientConnection } from '../quic/client.ts';
import { QuicStreamError } from '../quic/errors.ts';
import type { QuicStream } from '../quic/stream.ts';
import { H3, Http3Error, errorName } from './errors.ts';
import { encodeFrame, FRAME, FrameReader } from './frames.ts';
import { decodeFieldSection, encodeFieldSection, FieldSectionTooLarge, type FieldLine } from './qpack.ts';
import { Http3Session } from './session.ts';

// An HTTP/3 client over one QUIC connection (src/quic): requests as HEADERS and DATA frames on a
// bidirectional stream each, the response read back whole (bounded by maxBody). For tests and
// `switchyard connect https://... --http3`; not a general user agent (no redirects, no cookies).

export interface Http3ClientOptions {
  host: string;
  port: number;
  /** Name checked against the certificate and sent as SNI; default: `host` when it is a name. */
  serverName?: string;
  /** PEM CA certificate(s) to trust (the local CA's root). */
  ca?: string;
  /** Skip certificate checks (development only). */
  insecure?: boolean;
  /** Largest response head we accept (advertised as SETTINGS_MAX_FIELD_SECTION_SIZE). */
  maxFieldSectionSize?: number;
  /** Largest response body read, in bytes; more fails the request. */
  maxBody?: number;
  /** Give up on a request after this long (ms). */
  timeout?: number;
  /** A session from an earlier client's sessionTicket(): resume it (a shorter handshake, and 0-RTT with earlyData). */
  session?: Uint8Array;
  /**
   * With a session: connect() resolves as soon as requests can go in 0-RTT (early data), before
   * the handshake completes, when the server accepts it. Such requests can be replayed: servers
   * serve only safe methods from them (others get 425 Too Early).
   */
  earlyData?: boolean;
}

export interface Http3RequestInit {
  method?: string;
  path?: string;
  /** :authority; default host:port. */
  authority?: string;
  headers?: Record<string, string | string[]>;
  /** The body: bytes, or a stream of them (a file) sent as it is read, one DATA frame per chunk. */
  body?: string | Uint8Array | AsyncIterable<Uint8Array>;
  /** Field lines sent as they are after the pseudo-headers (tests of limits). */
  rawFields?: FieldLine[];
}

export interface Http3ClientResponse {
  status: number;
  /** Lower-case names; repeated fields as arrays. */
  headers: Record<string, string | string[]>;
  body: Buffer;
  trailers: Record<string, string | string[]>;
  /** Interim (1xx) responses' statuses, in order. */
  interim: number[];
}

/** A request ended by the peer or by this client: `code` is the HTTP/3 error code when there is one. */
export class Http3RequestError extends Error {
  constructor(
    message: string,
    readonly code?: number,
  ) {
    super(code === undefined ? message : `${message} (${errorName(code)})`);
  }
}

function headerObject(fields: readonly FieldLine[]): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const [name, value] of fields) {
    if (name.charCodeAt(0) === 58) continue;
    const had = out[name];
    if (had === undefined) out[name] = value;
    else if (Array.isArray(had)) had.push(value);
    else out[name] = [had, value];
  }
  return out;
}

/**
 * Streams a body as DATA frames, waiting for 'drain' whenever QUIC holds enough; then the FIN.
 * The server may stop it early (STOP_SENDING, with its answer already sent: RFC 9114 §4.1): the
 * rest is not read. A failed read resets the stream.
 */
async function sendBody(stream: QuicStream, body: AsyncIterable<Uint8Array>): Promise<void> {
  try {
    for await (const chunk of body) {
      if (stream.destroyed || stream.stopSendingCode !== undefined) return;
      if (chunk.byteLength === 0) continue;
      if (!stream.write(encodeFrame(FRAME.DATA, chunk))) await new Promise<void>((resolve) => {
        const done = () => {
          stream.removeListener('drain', done);
          stream.removeListener('close', done);
          stream.removeListener('stopped', done);
          resolve();
        };
        stream.once('drain', done);
        stream.once('close', done);
        stream.once('stopped', done);
      });
    }
    stream.end();
  } catch {
    stream.reset(H3.REQUEST_CANCELLED);
  }
}

export class Http3Client {
  /** Requests sent and not yet answered (or failed). */
  private pending = 0;
  /** The server sent GOAWAY: no new requests; the connection is closed once the pending ones are done. */
  private goneAway = false;

  private constructor(
    readonly quic: QuicClientConnection,
    readonly session: Http3Session,
    private readonly options: Http3ClientOptions,
  ) {
    session.on('goaway', () => {
      this.goneAway = true;
      if (this.pending === 0) void this.close();
    });
  }

  static async connect(options: Http3ClientOptions): Promise<Http3Client> {
    const quic = await connectQuic({
      host: options.host,
      port: options.port,
      alpn: ['h3'],
      serverName: options.serverName,
      ca: options.ca,
      insecure: options.insecure,
      localHost: options.host.includes(':') ? '::' : options.host === '127.0.0.1' ? '127.0.0.1' : undefined,
      streamErrorCode: H3.REQUEST_CANCELLED,
      session: options.session,
      earlyData: options.earlyData ?? false,
    });
    const session = new Http3Session(quic, 'client', { maxFieldSectionSize: options.maxFieldSectionSize ?? 64 * 1024, maxFields: 1000 });
    session.on('error', () => {});
    session.start();
    return new Http3Client(quic, session, options);
  }

  /** Sends one request and reads its whole response. */
  request(init: Http3RequestInit = {}): Promise<Http3ClientResponse> {
    const o = this.options;
    const authority = init.authority ?? `${o.host.includes(':') ? `[${o.host}]` : o.host}:${o.port}`;
    const fields: FieldLine[] = [
      [':method', init.method ?? 'GET'],
      [':scheme', 'https'],
      [':authority', authority],
      [':path', init.path ?? '/'],
    ];
    for (const [name, value] of Object.entries(init.headers ?? {})) {
      for (const v of Array.isArray(value) ? value : [value]) fields.push([name.toLowerCase(), v]);
    }
    if (init.rawFields) fields.push(...init.rawFields);
    const body = init.body === undefined ? undefined : typeof init.body === 'string' ? Buffer.from(init.body) : init.body;
    if (this.goneAway) return Promise.reject(new Http3RequestError('the server is going away (GOAWAY): open a new connection', H3.REQUEST_REJECTED));
    let stream: QuicStream;
    try {
      stream = this.quic.openBidi();
    } catch (err) {
      return Promise.reject(new Http3RequestError(`cannot open a request stream: ${(err as Error).message}`));
    }
    stream.write(encodeFrame(FRAME.HEADERS, encodeFieldSection(fields)));
    if (body === undefined || body instanceof Uint8Array) {
      if (body && body.length > 0) stream.write(encodeFrame(FRAME.DATA, body));
      stream.end();
    } else void sendBody(stream, body);
    this.pending++;
    const done = () => {
      this.pending--;
      if (this.goneAway && this.pending === 0) void this.close();
    };
    const response = this.readResponse(stream, init.method === 'HEAD');
    response.then(done, done);
    return response;
  }

  private readResponse(stream: QuicStream, _head: boolean): Promise<Http3ClientResponse> {
    const maxBody = this.options.maxBody ?? 64 * 1024 * 1024;
    const limits = { maxSectionSize: this.session.limits.maxFieldSectionSize, maxFields: this.session.limits.maxFields };
    return new Promise((resolve, reject) => {
      let status = 0;
      let headers: Record<string, string | string[]> = {};
      let trailers: Record<string, string | string[]> = {};
      const interim: number[] = [];
      const chunks: Buffer[] = [];
      let size = 0;
      let settled = false;
      const fail = (err: Error) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        stream.destroy();
        reject(err);
      };
      const timer = setTimeout(() => fail(new Http3RequestError(`no complete response within ${this.options.timeout ?? 30_000} ms`)), this.options.timeout ?? 30_000);
      timer.unref();
      const reader = new FrameReader(
        {
          frame: (type, payload) => {
            if (type !== FRAME.HEADERS) throw new Http3Error(H3.FRAME_UNEXPECTED, `frame 0x${type.toString(16)} on a request stream`);
            let fields: FieldLine[];
            try {
              fields = decodeFieldSection(payload, limits);
            } catch (err) {
              if (err instanceof FieldSectionTooLarge) throw new Http3Error(H3.EXCESSIVE_LOAD, 'response head too large', 'stream');
              throw err;
            }
            if (status !== 0) {
              trailers = headerObject(fields);
              return;
            }
            const s = Number(fields.find(([n]) => n === ':status')?.[1]);
            if (!Number.isInteger(s) || s < 100 || s > 599) throw new Http3Error(H3.MESSAGE_ERROR, 'response without a valid :status', 'stream');
            if (s < 200) {
              interim.push(s);
              return;
            }
            status = s;
            headers = headerObject(fields);
          },
          data: (chunk) => {
            if (status === 0) throw new Http3Error(H3.FRAME_UNEXPECTED, 'DATA before HEADERS');
            size += chunk.length;
            if (size > maxBody) throw new Http3Error(H3.EXCESSIVE_LOAD, `response body over ${maxBody} bytes`, 'stream');
            chunks.push(chunk);
          },
          oversized: () => {
            throw new Http3Error(H3.EXCESSIVE_LOAD, 'response head too large', 'stream');
          },
        },
        this.session.limits.maxFieldSectionSize,
      );
      stream.on('data', (chunk: Buffer) => {
        if (settled) return;
        try {
          reader.push(chunk);
        } catch (err) {
          if (err instanceof Http3Error && err.scope === 'connection') this.session.fail(err);
          fail(err as Error);
        }
      });
      stream.once('end', () => {
        if (settled) return;
        if (!reader.atBoundary || status === 0) return fail(new Http3RequestError('the response ended early', H3.REQUEST_INCOMPLETE));
        settled = true;
        clearTimeout(timer);
        resolve({ status, headers, body: Buffer.concat(chunks, size), trailers, interim });
      });
      stream.on('error', (err: Error) => {
        const code = err instanceof QuicStreamError ? err.streamCode : undefined;
        fail(new Http3RequestError(`the request failed: ${err.message}`, code));
      });
      stream.once('close', () => fail(new Http3RequestError('the stream closed before the response ended')));
    });
  }

  /**
   * The TLS session to resume with on a later connect() (options.session); undefined until the
   * server has sent its ticket, which comes after the handshake.
   */
  sessionTicket(): Uint8Array | undefined {
    return this.quic.session();
  }

  /** Closes the connection (H3_NO_ERROR). */
  async close(): Promise<void> {
    await this.quic.close(H3.NO_ERROR, '');
  }
}

import { gunzipSync, inflateSync } from 'node:zlib';
import type { IncomingHttpHeaders } from 'node:http';
import type { Logger } from 'pino';
import { encodeGrpcFrame, GrpcError, GrpcStatus, type GrpcFrame } from '../../protocol/grpc/index.ts';
import type { HttpResponse } from '../types.ts';
import type { MethodDescriptor } from './protos.ts';
import type { FrameReader } from './reader.ts';
import type { Message, MethodImpl, ServerCall } from './service.ts';
import type { CallTransport } from './transport.ts';

// One call from start to status: the request message(s) read and decoded, the method run, its
// replies encoded and written at the pace the client reads them, and exactly one status at the
// end, whichever comes first: the method's return or error, the deadline (DEADLINE_EXCEEDED,
// sent at once, not when the method notices), the client going away (nothing left to send to),
// or the server closing (UNAVAILABLE).

/** What the call reports when it ends: the status sent (CANCELLED when the client left). */
export interface CallStats {
  received(): void;
  sent(): void;
  ended(status: number): void;
}

export interface CallOptions {
  readonly method: MethodDescriptor;
  readonly impl: MethodImpl;
  readonly transport: CallTransport;
  readonly reader: FrameReader;
  readonly metadata: IncomingHttpHeaders;
  /** The request's grpc-encoding (lower case; undefined or `identity` for none). */
  readonly encoding: string | undefined;
  /** Milliseconds until the deadline, or undefined for none. */
  readonly timeout: number | undefined;
  readonly maxReceiveMessageSize: number;
  readonly maxSendMessageSize: number;
  readonly stats: CallStats;
  readonly log: Logger;
}

/** The longest timer node can set; a later deadline is as good as none. */
const MAX_TIMER_MS = 2_147_483_647;

const TO_OBJECT = { defaults: true, enums: String, longs: String, bytes: String } as const;

export class Call implements ServerCall {
  private readonly controller = new AbortController();
  readonly signal = this.controller.signal;
  readonly metadata: IncomingHttpHeaders;
  request: Message = {};
  private finished = false;
  private sentCount = 0;

  constructor(private readonly o: CallOptions) {
    this.metadata = o.metadata;
  }

  /** Whether the call has its status (sent, or the client gone). */
  get done(): boolean {
    return this.finished;
  }

  /** Runs the call to its end; never throws. */
  async run(): Promise<void> {
    const { method, transport } = this.o;
    const res: HttpResponse = transport.res;
    let timer: NodeJS.Timeout | undefined;
    if (this.o.timeout !== undefined && this.o.timeout < MAX_TIMER_MS) {
      timer = setTimeout(() => this.end(GrpcStatus.DEADLINE_EXCEEDED, 'deadline exceeded'), Math.max(0, Math.ceil(this.o.timeout)));
    }
    const gone = () => {
      if (this.finished) return;
      this.finished = true;
      this.controller.abort(new GrpcError(GrpcStatus.CANCELLED, 'the client cancelled the call'));
      this.o.reader.discard();
      this.o.stats.ended(GrpcStatus.CANCELLED);
    };
    res.once('close', gone);
    try {
      if (!method.requestStream) this.request = await this.readOnly();
      const result = await this.o.impl(this);
      if (!method.responseStream) {
        if (!result) throw new GrpcError(GrpcStatus.INTERNAL, 'the method returned no reply');
        await this.send(result);
      }
      this.end(GrpcStatus.OK, '');
    } catch (err) {
      if (this.finished) return;
      if (err instanceof GrpcError) this.end(err.status, err.details);
      else {
        this.o.log.error({ err, method: method.path }, 'grpc method failed');
        this.end(GrpcStatus.UNKNOWN, 'internal error');
      }
    } finally {
      clearTimeout(timer);
    }
  }

  /** Ends the call with a status (once; later calls do nothing). */
  end(status: number, message: string): void {
    if (this.finished) return;
    this.finished = true;
    this.controller.abort(new GrpcError(status as GrpcStatus, message));
    try {
      this.o.transport.finish(status, message);
    } catch (err) {
      // The stream went away between our check and the write.
      this.o.log.debug({ err, method: this.o.method.path }, 'grpc: status not sent');
    }
    this.o.reader.discard();
    this.o.stats.ended(status);
  }

  async *requests(): AsyncIterable<Message> {
    for (;;) {
      const m = await this.readMessage();
      if (m === undefined) return;
      yield m;
    }
  }

  async send(reply: Message): Promise<void> {
    if (this.signal.aborted) throw this.signal.reason;
    const { method, transport } = this.o;
    if (!method.responseStream && this.sentCount > 0) throw new GrpcError(GrpcStatus.INTERNAL, 'a second reply to a call that has one');
    let bytes: Uint8Array;
    try {
      bytes = method.responseType.encode(method.responseType.fromObject(reply)).finish();
    } catch (err) {
      this.o.log.error({ err, method: method.path }, 'grpc: a reply could not be encoded');
      throw new GrpcError(GrpcStatus.INTERNAL, 'the reply could not be encoded');
    }
    if (bytes.byteLength > this.o.maxSendMessageSize) {
      throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `reply of ${bytes.byteLength} bytes is larger than the limit of ${this.o.maxSendMessageSize}`);
    }
    this.sentCount++;
    const ok = transport.write(encodeGrpcFrame(bytes));
    this.o.stats.sent();
    if (!ok) await this.drained();
    if (this.signal.aborted) throw this.signal.reason;
  }

  /** Resolves when the response can take more, or the call is over. */
  private drained(): Promise<void> {
    const res = this.o.transport.res;
    return new Promise((resolve) => {
      const done = () => {
        res.off('drain', done);
        res.off('close', done);
        this.signal.removeEventListener('abort', done);
        resolve();
      };
      res.on('drain', done);
      res.on('close', done);
      this.signal.addEventListener('abort', done);
    });
  }

  /** The one request of a unary or server-streaming call: exactly one message, then the end. */
  private async readOnly(): Promise<Message> {
    const first = await this.readMessage();
    if (first === undefined) throw new GrpcError(GrpcStatus.INTERNAL, 'no request message');
    if ((await this.readMessage()) !== undefined) throw new GrpcError(GrpcStatus.INTERNAL, `more than one request message for ${this.o.method.path}, which takes one`);
    return first;
  }

  private async readMessage(): Promise<Message | undefined> {
    const frame = await this.o.reader.next();
    if (!frame) return undefined;
    const payload = this.payloadOf(frame);
    this.o.stats.received();
    const type = this.o.method.requestType;
    try {
      return type.toObject(type.decode(payload), TO_OBJECT) as Message;
    } catch (err) {
      throw new GrpcError(GrpcStatus.INTERNAL, `the request is not a valid ${type.fullName.replace(/^\./, '')}: ${(err as Error).message}`);
    }
  }

  /** The frame's message, decompressed when flagged; never larger than maxReceiveMessageSize. */
  private payloadOf(frame: GrpcFrame): Buffer {
    if (!frame.compressed) return frame.payload;
    const encoding = this.o.encoding;
    if (encoding === undefined || encoding === 'identity') throw new GrpcError(GrpcStatus.INTERNAL, 'a compressed message in a call without grpc-encoding');
    const limit = this.o.maxReceiveMessageSize;
    try {
      // maxOutputLength stops a small bomb from inflating past the limit.
      const options = { maxOutputLength: limit + 1 };
      const out = encoding === 'gzip' ? gunzipSync(frame.payload, options) : inflateSync(frame.payload, options);
      if (out.length > limit) throw new RangeError('too large');
      return out;
    } catch (err) {
      if (err instanceof RangeError || (err as NodeJS.ErrnoException).code === 'ERR_BUFFER_TOO_LARGE') {
        throw new GrpcError(GrpcStatus.RESOURCE_EXHAUSTED, `message larger than the limit of ${limit} bytes once decompressed`);
      }
      throw new GrpcError(GrpcStatus.INTERNAL, `the message could not be decompressed (${encoding})`);
    }
  }
}

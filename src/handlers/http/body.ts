import type { HttpRequest } from '../types.ts';

/** The request body was larger than the listener allows: answer 413. */
export class BodyTooLargeError extends Error {
  readonly code = 'SWITCHYARD_BODY_TOO_LARGE';
  readonly status = 413;
  constructor(readonly limit: number) {
    super(`request body larger than ${limit} bytes`);
    this.name = 'BodyTooLargeError';
  }
}

/** The client went away or the stream broke before the body was complete. */
export class BodyAbortedError extends Error {
  readonly code = 'SWITCHYARD_BODY_ABORTED';
  readonly status = 400;
  constructor(cause?: unknown) {
    super('request body aborted', { cause });
    this.name = 'BodyAbortedError';
  }
}

/**
 * Reads a whole request body, refusing more than `limit` bytes. Content-Length is checked before
 * reading anything, and a chunked body is cut off as soon as it passes the limit, so memory never
 * exceeds the limit.
 */
export function readBody(req: HttpRequest, limit: number): Promise<Buffer> {
  const declared = req.headers['content-length'];
  if (declared !== undefined && Number(declared) > limit) return Promise.reject(new BodyTooLargeError(limit));
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    let total = 0;
    const cleanup = () => {
      req.off('data', onData);
      req.off('end', onEnd);
      req.off('error', onError);
      req.off('aborted', onAborted);
    };
    const onData = (chunk: Buffer) => {
      total += chunk.length;
      if (total > limit) {
        cleanup();
        req.pause();
        reject(new BodyTooLargeError(limit));
        return;
      }
      chunks.push(chunk);
    };
    const onEnd = () => {
      cleanup();
      resolve(chunks.length === 1 ? chunks[0] : Buffer.concat(chunks, total));
    };
    const onError = (err: Error) => {
      cleanup();
      reject(new BodyAbortedError(err));
    };
    const onAborted = () => {
      cleanup();
      reject(new BodyAbortedError());
    };
    req.on('data', onData);
    req.on('end', onEnd);
    req.on('error', onError);
    req.on('aborted', onAborted);
  });
}

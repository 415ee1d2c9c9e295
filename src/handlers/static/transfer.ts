import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';

// The portable way to move file bytes: read one chunk, write it, and read the next only once
// the destination has drained. Used when sendfile is off or impossible (TLS, HTTP/2, no koffi),
// for multipart bodies, and for responses queued behind a pipelined one.
//
// Not fs.createReadStream + pipeline: a read stream reads ahead up to its highWaterMark while
// the previous chunk still sits in the socket, and every chunk is a new buffer that lives until
// the next GC; 64 stalled clients of a 256 MiB file took +94 MB RSS that way with 512 KiB chunks.
// This loop owns ONE buffer per transfer and refills it only after the socket has taken the
// previous contents (the write callback), so a slow client pins exactly one chunk.

/** The destination closed (client gone) before the range was written. */
export class DestinationClosedError extends Error {
  override readonly name = 'DestinationClosedError';
}

/**
 * Writes bytes [start, start + length) of `handle` into `dest`, one `chunk`-sized read at a time.
 * Ends `dest` afterwards when `end` is true. Never closes `handle`. Rejects when `dest` closes
 * first, or when the file turns out shorter than `start + length`. `observe` sees every chunk
 * before it is written (the objects handler hashes what it sends); the buffer is reused after.
 */
export async function streamRange(
  handle: FileHandle,
  start: number,
  length: number,
  dest: Writable,
  chunk: number,
  end: boolean,
  observe?: (bytes: Buffer) => void,
): Promise<void> {
  let pos = start;
  const stop = start + length;
  const buf = Buffer.allocUnsafe(Math.min(chunk, length));
  while (pos < stop) {
    if (dest.destroyed || dest.writableEnded) throw new DestinationClosedError('destination closed');
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, stop - pos), pos);
    if (bytesRead === 0) throw new Error('file ended before the announced length (truncated while sending?)');
    pos += bytesRead;
    const data = bytesRead === buf.length ? buf : buf.subarray(0, bytesRead);
    observe?.(data);
    await written(dest, data);
  }
  if (end) dest.end();
}

/** Writes `data` and resolves once the destination no longer references it (handed to the kernel). */
function written(dest: Writable, data: Buffer): Promise<void> {
  return new Promise((resolve, reject) => {
    const onClose = () => reject(new DestinationClosedError('destination closed'));
    dest.once('close', onClose);
    dest.write(data, (err) => {
      dest.off('close', onClose);
      if (err) reject(err);
      else resolve();
    });
  });
}

/** Resolves on 'drain', rejects if `dest` closes (or errors) first. */
export function drained(dest: Writable): Promise<void> {
  if (dest.destroyed) return Promise.reject(new DestinationClosedError('destination closed'));
  return new Promise((resolve, reject) => {
    const done = (err?: Error) => {
      dest.off('drain', onDrain);
      dest.off('close', onClose);
      dest.off('error', onError);
      if (err) reject(err);
      else resolve();
    };
    const onDrain = () => done();
    const onClose = () => done(new DestinationClosedError('destination closed'));
    const onError = (err: Error) => done(err);
    dest.once('drain', onDrain);
    dest.once('close', onClose);
    dest.once('error', onError);
  });
}

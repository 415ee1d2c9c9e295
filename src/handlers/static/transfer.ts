import type { FileHandle } from 'node:fs/promises';
import type { Writable } from 'node:stream';
import { pipeline } from 'node:stream/promises';

// The portable way to move file bytes: a read stream with a large highWaterMark piped with
// backpressure, so a slow reader holds at most about one chunk in this process. Used when
// sendfile is off or impossible (TLS, HTTP/2, no koffi), for multipart bodies, and for mid-size
// files where it measured as fast (see static/index.ts).

/**
 * Writes bytes [start, start + length) of `handle` into `dest`. Leaves `dest` open when `end` is
 * false. Never closes `handle`. Rejects when `dest` is destroyed first (client gone).
 */
export async function streamRange(handle: FileHandle, start: number, length: number, dest: Writable, highWaterMark: number, end: boolean): Promise<void> {
  if (length <= 0) {
    if (end) dest.end();
    return;
  }
  const source = handle.createReadStream({ start, end: start + length - 1, highWaterMark, autoClose: false, emitClose: true });
  await pipeline(source, dest, { end });
}

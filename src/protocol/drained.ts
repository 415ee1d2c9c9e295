import type { Writable } from 'node:stream';

/**
 * Resolves when `stream` can take more writes ('drain') or never will ('close'), so that a
 * writer waiting on a peer that went away is released instead of left hanging.
 */
export function drained(stream: Writable): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      stream.off('drain', done);
      stream.off('close', done);
      resolve();
    };
    stream.on('drain', done);
    stream.on('close', done);
  });
}

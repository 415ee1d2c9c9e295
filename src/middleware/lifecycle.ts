import type { Logger } from 'pino';
import type { Middleware } from './types.ts';

// Middleware that holds something beyond a request (forwardAuth's connection pool to its
// service) says how to let it go with `close`, as handlers do. A listener builds its middleware
// once per config generation (at start and on each reload, buildMiddleware with `owner`), and
// closes that generation's middleware once the generation has retired and the requests it took
// have finished, or when the listener stops: closeMiddleware(owner).

/** The middleware with a `close` built for each owner (a listener's generation), not yet closed. */
const owned = new WeakMap<object, Set<Middleware>>();

/** How long one middleware's close may take before the listener stops waiting for it. */
export const MIDDLEWARE_CLOSE_TIMEOUT_MS = 5_000;

/** Records the middleware of `chain` that hold resources as `owner`'s, each once however many routes share it. */
export function ownMiddleware(owner: object, chain: readonly Middleware[]): void {
  for (const m of chain) {
    if (!m.close) continue;
    let set = owned.get(owner);
    if (!set) owned.set(owner, (set = new Set()));
    set.add(m);
  }
}

/**
 * Closes the middleware built for `owner`, one after another, each bounded by
 * MIDDLEWARE_CLOSE_TIMEOUT_MS; a failure is logged, never thrown. Calling it again (or for an
 * owner that has none) does nothing.
 */
export async function closeMiddleware(owner: object, log: Logger): Promise<void> {
  const set = owned.get(owner);
  if (!set) return;
  owned.delete(owner);
  for (const m of set) {
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        m.close!(),
        new Promise<void>((_, reject) => {
          timer = setTimeout(() => reject(new Error(`did not close within ${MIDDLEWARE_CLOSE_TIMEOUT_MS} ms`)), MIDDLEWARE_CLOSE_TIMEOUT_MS);
        }),
      ]);
    } catch (err) {
      log.error({ err }, 'middleware cleanup failed');
    } finally {
      clearTimeout(timer);
    }
  }
}

import type { HttpResponse } from '../types.ts';

// A response whose body is rewritten on its way out (the compress middleware) must receive that
// body through res.write()/res.end(). The handlers' fast paths that hand bytes to the socket or to
// nghttp2 behind the response's back (static's sendfile and respondWithFD) ask here first, and
// take their streamed path for such a response. A response nobody registered costs one WeakMap
// miss, and only on those fast paths.

/** Something that rewrites response bodies, asked before the head is written. */
export interface BodyFilter {
  /**
   * Whether a body sent with this status and these head fields (merged over the fields already
   * set on the response) would be rewritten.
   */
  rewrites(status: number, headers: Readonly<Record<string, string | number>>): boolean;
}

const filters = new WeakMap<HttpResponse, BodyFilter>();

/** Registers the filter that will rewrite this response's body. */
export function setBodyFilter(res: HttpResponse, filter: BodyFilter): void {
  filters.set(res, filter);
}

/** Whether the body of this response, sent with this head, must go through res.write()/res.end(). */
export function bodyRewritten(res: HttpResponse, status: number, headers: Readonly<Record<string, string | number>>): boolean {
  const filter = filters.get(res);
  return filter !== undefined && filter.rewrites(status, headers);
}

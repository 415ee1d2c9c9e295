import type { RespService } from './service.ts';

// The cache each resp listener of a running yard serves, so that a reload which keeps the
// listener (and provisions a new handler for it) hands the new handler the same keyspace,
// pub/sub subscribers and clients instead of starting empty. Keyed by the yard (the object
// provisioning hands us, one per daemon or test) and the listener's name. A cache leaves when
// the last handler holding it closes: the listener was removed, or its handler changed type.

const byYard = new WeakMap<object, Map<string, RespService>>();

export function keptCache(yard: object, listener: string): RespService | undefined {
  return byYard.get(yard)?.get(listener);
}

export function keepCache(yard: object, listener: string, service: RespService): void {
  let caches = byYard.get(yard);
  if (!caches) byYard.set(yard, (caches = new Map()));
  caches.set(listener, service);
}

/** Forgets the cache, if it is still the one kept for that listener. */
export function forgetCache(yard: object, listener: string, service: RespService): void {
  const caches = byYard.get(yard);
  if (caches?.get(listener) === service) caches.delete(listener);
}

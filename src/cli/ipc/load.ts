import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Loads an src/ipc module by name at run time, so a transport that has not been written (or
// fails to load) is reported as "not available: <reason>" instead of breaking the CLI. Works from
// the TypeScript sources (under tsx) and from dist/ (compiled .js).

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

export type Loaded = { ok: true; mod: Record<string, unknown> } | { ok: false; reason: string };

const cache = new Map<string, Promise<Loaded>>();

export function loadIpcModule(rel: string): Promise<Loaded> {
  let p = cache.get(rel);
  if (!p) {
    p = (async (): Promise<Loaded> => {
      const url = new URL(`../../ipc/${rel}${ext}`, import.meta.url);
      if (!existsSync(fileURLToPath(url))) return { ok: false, reason: `src/ipc/${rel}.ts is not there yet` };
      try {
        return { ok: true, mod: (await import(url.href)) as Record<string, unknown> };
      } catch (err) {
        return { ok: false, reason: `src/ipc/${rel}.ts does not load: ${(err as Error).message.split('\n')[0]}` };
      }
    })();
    cache.set(rel, p);
  }
  return p;
}

/** The first of `names` that `mod` exports as a function. */
// eslint-disable-next-line @typescript-eslint/no-explicit-any
export function pick<F = (...args: any[]) => any>(loaded: Loaded, names: string[]): { fn: F } | { reason: string } {
  if (!loaded.ok) return { reason: loaded.reason };
  for (const n of names) if (typeof loaded.mod[n] === 'function') return { fn: loaded.mod[n] as F };
  return { reason: `it exports none of ${names.join(', ')}` };
}

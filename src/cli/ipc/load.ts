import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

// Loads an src/ipc module by name at run time, so a transport that cannot load here (shm needs
// koffi's native library; a partial install may lack a file) is reported as "not available:
// <reason>" instead of breaking the whole CLI. Works from the TypeScript sources (under tsx) and
// from dist/ (compiled .js).

const ext = import.meta.url.endsWith('.ts') ? '.ts' : '.js';

export type Loaded = { ok: true; mod: Record<string, unknown> } | { ok: false; reason: string };

const cache = new Map<string, Promise<Loaded>>();

export function loadIpcModule(rel: string): Promise<Loaded> {
  let p = cache.get(rel);
  if (!p) {
    p = (async (): Promise<Loaded> => {
      const url = new URL(`../../ipc/${rel}${ext}`, import.meta.url);
      const file = fileURLToPath(url);
      if (!existsSync(file)) return { ok: false, reason: `${file} is missing from this installation` };
      try {
        return { ok: true, mod: (await import(url.href)) as Record<string, unknown> };
      } catch (err) {
        return { ok: false, reason: `${file} does not load: ${(err as Error).message.split('\n')[0]}` };
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

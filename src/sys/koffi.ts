import { createRequire } from 'node:module';
import type * as KoffiModule from 'koffi';

// The one place koffi and libc are loaded. Each native module in sys/ (sendfile, shared memory,
// futex, SCM_RIGHTS, peer credentials, pipes, message queues) binds its own functions from this
// handle on first use. A machine without koffi's prebuilt binary or glibc gets null here and a
// reason to print; callers either have a portable path or report the feature unavailable.

export type Koffi = typeof KoffiModule;
export type KoffiLib = ReturnType<Koffi['load']>;

let loaded: { koffi: Koffi; lib: KoffiLib } | null | undefined;
let failure: string | undefined;

export function nativeLibc(): { koffi: Koffi; lib: KoffiLib } | null {
  if (loaded !== undefined) return loaded;
  if (process.platform !== 'linux') {
    failure = `native calls are only wired for Linux (this is ${process.platform})`;
    return (loaded = null);
  }
  try {
    const require = createRequire(import.meta.url);
    const koffi = require('koffi') as Koffi;
    loaded = { koffi, lib: koffi.load('libc.so.6') };
  } catch (err) {
    failure = `koffi or libc.so.6 is not usable: ${(err as Error).message}`;
    loaded = null;
  }
  return loaded;
}

/** Why nativeLibc() returned null. */
export function nativeUnavailableReason(): string | undefined {
  nativeLibc();
  return failure;
}

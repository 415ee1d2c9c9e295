import { IpcError } from '../ipc/errors.ts';
import { nativeLibc } from './koffi.ts';

// mkfifo(3) through koffi (Node has no binding for it). Linux/glibc only.

let mkfifoCall: ((path: string, mode: number) => number) | null | undefined;
let errnoCall: (() => number) | undefined;

export const EEXIST = 17;

/** Creates a FIFO at `path` with `mode` (default 0600; the umask can only remove bits). */
export function mkfifo(path: string, mode = 0o600): void {
  if (mkfifoCall === undefined) {
    const native = nativeLibc();
    if (!native) mkfifoCall = null;
    else {
      const fn = native.lib.func('int mkfifo(const char *pathname, uint32_t mode)');
      mkfifoCall = (p, m) => fn(p, m) as number;
      errnoCall = () => native.koffi.errno();
    }
  }
  if (!mkfifoCall) throw new IpcError('SWITCHYARD_IPC_UNSUPPORTED', 'mkfifo needs koffi and glibc on Linux');
  if (mkfifoCall(path, mode) !== 0) {
    const e = errnoCall!();
    const code = e === EEXIST ? 'EEXIST' : e === 13 ? 'EACCES' : e === 2 ? 'ENOENT' : `errno ${e}`;
    throw Object.assign(new Error(`mkfifo ${path} failed: ${code}`), { code, errno: e, path });
  }
}

import { accessSync, constants, statSync } from 'node:fs';
import { isAbsolute, resolve } from 'node:path';
import type { HandlerProblem } from './types.ts';

/**
 * The `validate` check of a handler with a `root` folder (static, file-tcp): what FsRoot.open
 * would refuse at start, said at validation. The folder must exist, be a directory, and be
 * readable and searchable by this process.
 */
export function rootDirProblems(root: string, baseDir: string, field = 'root'): HandlerProblem[] {
  const dir = isAbsolute(root) ? root : resolve(baseDir, root);
  const where = dir === root ? JSON.stringify(root) : `${JSON.stringify(root)} (${dir})`;
  try {
    if (!statSync(dir).isDirectory()) return [{ path: [field], message: `${where} is not a directory` }];
    accessSync(dir, constants.R_OK | constants.X_OK);
    return [];
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    const why = code === 'ENOENT' ? 'does not exist' : code === 'EACCES' ? 'cannot be read by this process (permission denied)' : `cannot be used (${code ?? (err as Error).message})`;
    return [{ path: [field], message: `folder ${where} ${why}` }];
  }
}

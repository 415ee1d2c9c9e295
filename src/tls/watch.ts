import { watch, type FSWatcher } from 'node:fs';
import { basename, dirname, resolve } from 'node:path';

// Watches files by their folders, not by the files themselves: an editor or a deploy tool (and
// certbot, and Kubernetes' secret volumes with their `..data` symlink swap) replaces a file by
// renaming another over it, and a watch on the old file's inode would never fire again.

export interface FileWatch {
  close(): void;
}

export function watchFiles(
  files: string[],
  debounceMs: number,
  onChange: () => void,
  onError: (err: Error, dir: string) => void,
): FileWatch {
  const byDir = new Map<string, Set<string>>();
  for (const f of files) {
    const abs = resolve(f);
    const dir = dirname(abs);
    if (!byDir.has(dir)) byDir.set(dir, new Set());
    byDir.get(dir)!.add(basename(abs));
  }
  let timer: NodeJS.Timeout | undefined;
  let closed = false;
  const fire = () => {
    if (closed) return;
    if (timer) clearTimeout(timer);
    // Writing a pair is two writes (or more); one reload after the last of them.
    timer = setTimeout(() => {
      timer = undefined;
      if (!closed) onChange();
    }, debounceMs);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  for (const [dir, names] of byDir) {
    try {
      // persistent: false, so a watch never keeps a process alive that is otherwise done.
      const w = watch(dir, { persistent: false }, (_event, filename) => {
        const name = filename?.toString();
        if (!name || names.has(name) || name.startsWith('..')) fire();
      });
      w.on('error', (err) => onError(err, dir));
      watchers.push(w);
    } catch (err) {
      onError(err as Error, dir);
    }
  }
  return {
    close() {
      closed = true;
      if (timer) clearTimeout(timer);
      for (const w of watchers) w.close();
    },
  };
}

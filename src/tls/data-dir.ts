import { homedir } from 'node:os';
import { isAbsolute, join } from 'node:path';

/**
 * Where Switchyard keeps state of its own (the local CA): $SWITCHYARD_DATA_DIR, else
 * $XDG_DATA_HOME/switchyard, else ~/.local/share/switchyard (the XDG base directory default).
 * A relative XDG_DATA_HOME is ignored, as the XDG spec says.
 */
export function defaultDataDir(env: NodeJS.ProcessEnv = process.env): string {
  if (env.SWITCHYARD_DATA_DIR) return env.SWITCHYARD_DATA_DIR;
  const xdg = env.XDG_DATA_HOME;
  if (xdg && isAbsolute(xdg)) return join(xdg, 'switchyard');
  return join(homedir(), '.local', 'share', 'switchyard');
}

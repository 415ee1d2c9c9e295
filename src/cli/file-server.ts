import { resolve } from 'node:path';
import { statSync } from 'node:fs';
import type { ConfigInput } from '../config/schema.ts';
import { ConfigError } from '../config/errors.ts';
import type { BuiltConfig } from './serve.ts';

/** Where `switchyard file-server` listens without --listen: loopback only, like the embedded default. */
export const FILE_SERVER_ADDRESS = '127.0.0.1:8080';

export interface FileServerOptions {
  /** Folder to serve; default: the current one. */
  root: string;
  /** Listener address, already checked (parseListenAddress). */
  address: string;
  /** A listing of a folder without an index file. */
  browse: boolean;
  /** Serve dotfiles (`.env`, `.git/`) instead of answering 404 for them. */
  dotfiles: boolean;
}

/**
 * The config `switchyard file-server [DIR]` runs: one http listener named `files` whose one
 * route serves DIR through the static handler (docs/cli.md). It goes through the same schema,
 * checks and daemon as a config file does.
 */
export function fileServerConfig(o: FileServerOptions): BuiltConfig {
  const root = resolve(o.root);
  // Said here in the command's own terms rather than as a config path the user never wrote.
  let isDir = false;
  try {
    isDir = statSync(root).isDirectory();
  } catch (err) {
    throw new ConfigError(`file-server ${o.root}`, [{ path: 'DIR', message: `cannot serve ${root}: ${(err as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such folder' : ((err as NodeJS.ErrnoException).code ?? String(err))}` }]);
  }
  if (!isDir) throw new ConfigError(`file-server ${o.root}`, [{ path: 'DIR', message: `${root} is a file; file-server serves a folder (its parent, say)` }]);
  const config: ConfigInput = {
    listeners: [
      {
        name: 'files',
        protocol: 'http',
        address: o.address,
        routes: [{ name: 'files', match: { path: '/*' }, handler: { type: 'static', root, listing: o.browse, dotfiles: o.dotfiles ? 'allow' : 'deny' } }],
      },
    ],
  };
  return { config, source: `file-server ${root}` };
}

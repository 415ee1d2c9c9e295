import type { Config } from '../config/schema.ts';
import { applyListenOverrides, loadConfigFile, parseConfig, type ListenOverride } from '../config/load.ts';
import { defaultConfig } from '../config/default.ts';
import { Yard } from '../yard/yard.ts';
import { banner } from '../yard/banner.ts';
import { exitOnSignals } from '../yard/signals.ts';
import { VERSION } from '../version.ts';

export interface ServeFlags {
  listen: ListenOverride[];
  logLevel?: Config['logging']['level'];
  grace?: number;
}

/** `switchyard serve [config]`: runs until a signal. Errors propagate to main's reporter. */
export async function serveCommand(file: string | undefined, flags: ServeFlags): Promise<void> {
  let config: Config;
  let baseDir = process.cwd();
  let source: string;
  if (file) {
    const loaded = await loadConfigFile(file, flags.listen);
    config = loaded.config;
    baseDir = loaded.baseDir;
    source = loaded.source;
  } else {
    source = 'embedded default config';
    config = parseConfig(applyListenOverrides(defaultConfig(), flags.listen, source), source);
  }
  if (flags.grace !== undefined) config.shutdown.grace = flags.grace;
  const yard = await Yard.start(config, { baseDir, logLevel: flags.logLevel });
  process.stdout.write(banner(VERSION, source, yard.listeners(), config.shutdown.grace));
  exitOnSignals(yard);
}

import { stringify } from 'yaml';
import { defaultConfig } from '../config/default.ts';
import { loadConfigFile } from '../config/load.ts';
import { redact } from '../handlers/admin/redact.ts';

// `switchyard config default` and `switchyard config adapt FILE`: configs to read and start from.

/** Long values stay on one line, and a value used twice (the default config's routes) is written out twice: anchors and aliases puzzle readers. */
const YAML_OPTIONS = { lineWidth: 0, aliasDuplicateObjects: false } as const;

/** `switchyard config default`: the embedded default config as YAML, to copy and edit. */
export function configDefaultCommand(): void {
  const header = [
    '# Switchyard: the embedded default config (what `switchyard serve` runs without a file).',
    '# Save it, edit it, check it with `switchyard check FILE`, run it with `switchyard serve FILE`.',
    '# Each field and its default: `switchyard config adapt FILE` prints them all.',
  ].join('\n');
  process.stdout.write(`${header}\n${stringify(defaultConfig(), YAML_OPTIONS)}`);
}

/**
 * `switchyard config adapt FILE [--json]`: the config as the daemon runs it, every default filled
 * in (durations in milliseconds, sizes in bytes), secrets redacted as GET /config shows them.
 * An invalid file is refused like `check` refuses it.
 */
export async function configAdaptCommand(file: string, opts: { json?: boolean }): Promise<void> {
  const { config, source } = await loadConfigFile(file);
  const shown = redact(config);
  if (opts.json) {
    process.stdout.write(`${JSON.stringify(shown, null, 2)}\n`);
    return;
  }
  process.stdout.write(`# ${source}, every default filled in (durations in milliseconds, sizes in bytes; secrets redacted)\n${stringify(shown, YAML_OPTIONS)}`);
}

import { readFile } from 'node:fs/promises';
import { dirname, extname, resolve } from 'node:path';
import { parse as parseYaml, YAMLParseError } from 'yaml';
import { configSchema, type Config } from './schema.ts';
import { ConfigError, explainIssue, humanError, sortedIssues, type PathIssue } from './errors.ts';
import { crossFieldIssues } from './cross-checks.ts';
import { preflightIssues } from './preflight.ts';
import { registerBuiltinHandlers } from '../handlers/index.ts';
import { parseListenOverride, type ListenOverride } from './listen-override.ts';

/** A validated config and the directory its relative paths are resolved against. */
export interface LoadedConfig {
  config: Config;
  baseDir: string;
  source: string;
}

export interface ParseOptions {
  /**
   * The folder relative paths resolve against (the config file's). Given, the files and folders
   * the config names are checked too, with each handler module's `validate` (preflight.ts): what
   * `serve` would refuse at start is then refused at load.
   */
  baseDir?: string;
}

/**
 * Validates a config object (already parsed from YAML/JSON, or built by a program). Every problem
 * comes in one ConfigError, sorted by path: the fields' own, and the checks across fields
 * (cross-checks.ts) even when some fields fail, run on the config as written.
 */
export function parseConfig(input: unknown, source = 'config', options: ParseOptions = {}): Config {
  registerBuiltinHandlers();
  const result = configSchema().safeParse(input, { error: humanError });
  const issues: PathIssue[] = result.success ? [] : [...result.error.issues.flatMap(explainIssue), ...crossFieldIssues(input)];
  if (options.baseDir !== undefined) issues.push(...preflightIssues(input, options.baseDir));
  if (issues.length > 0 || !result.success) throw new ConfigError(source, sortedIssues(issues));
  return result.data;
}

/** Reads YAML or JSON text into a plain object, with the line of a syntax error in the message. */
export function parseConfigText(text: string, source: string): unknown {
  const isJson = extname(source).toLowerCase() === '.json';
  try {
    return isJson ? JSON.parse(text) : parseYaml(text, { prettyErrors: true });
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? `line ${err.linePos[0].line}, column ${err.linePos[0].col}` : '';
    const message = err instanceof Error ? err.message.split('\n')[0] : String(err);
    throw new ConfigError(source, [{ path: where, message: `not valid ${isJson ? 'JSON' : 'YAML'}: ${message}` }]);
  }
}

/** Reads, parses and validates a config file. */
export async function loadConfigFile(file: string, overrides: ListenOverride[] = []): Promise<LoadedConfig> {
  const path = resolve(file);
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new ConfigError(file, [{ path: '', message: code === 'ENOENT' ? 'file not found' : code === 'EISDIR' ? isDirectoryMessage(file) : `cannot read file (${code ?? String(err)})` }]);
  }
  const raw = parseConfigText(text, file);
  const baseDir = dirname(path);
  return { config: parseConfig(applyListenOverrides(raw, overrides, file), file, { baseDir }), baseDir, source: path };
}

/** A folder where a config file was expected: most likely meant to be served as it is. */
function isDirectoryMessage(file: string): string {
  // Quoted for a shell only when it needs to be.
  const arg = /^[\w./@:+-]+$/.test(file) ? file : `'${file.replaceAll("'", "'\\''")}'`;
  return `is a folder, not a config file (YAML or JSON); to serve the files in it, run: switchyard file-server ${arg}`;
}

// Read in listen-override.ts, which the command line loads without the config schema.
export { parseListenOverride, type ListenOverride };

export function applyListenOverrides(raw: unknown, overrides: ListenOverride[], source: string): unknown {
  if (overrides.length === 0) return raw;
  const listeners = (raw as { listeners?: unknown })?.listeners;
  if (!Array.isArray(listeners)) return raw;
  for (const o of overrides) {
    const l = listeners.find((x: { name?: unknown }) => x && x.name === o.listener) as Record<string, unknown> | undefined;
    if (!l) {
      const names = listeners.map((x: { name?: unknown }) => x?.name).join(', ');
      throw new ConfigError(source, [{ path: '--listen', message: `no listener named "${o.listener}" (listeners: ${names})` }]);
    }
    if (l.protocol === 'unix') l.path = o.address;
    else if (/^\d{1,5}$/.test(o.address)) l.address = `${String(l.address ?? '127.0.0.1:0').replace(/:\d+$/, '')}:${o.address}`;
    else l.address = o.address;
  }
  return raw;
}

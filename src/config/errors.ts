import type { z } from 'zod';

/** One problem in a config: where (a path like `listeners[1].routes[0].handler.root`) and what was expected. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A config that cannot be used. `code` is stable; `issues` names each bad field. */
export class ConfigError extends Error {
  readonly code = 'SWITCHYARD_CONFIG_INVALID';
  constructor(
    readonly source: string,
    readonly issues: ConfigIssue[],
  ) {
    super(`${source}: ${issues.length === 1 ? 'invalid config' : `${issues.length} problems`}\n${issues.map((i) => `  ${i.path || '(top level)'}: ${i.message}`).join('\n')}`);
    this.name = 'ConfigError';
  }
}

export function formatPath(path: ReadonlyArray<PropertyKey>): string {
  let out = '';
  for (const part of path) {
    if (typeof part === 'number') out += `[${part}]`;
    else out += out === '' ? String(part) : `.${String(part)}`;
  }
  return out;
}

/** Turns zod's issues into ones a person reads: the field's path and what was expected there. */
export function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  const out: ConfigIssue[] = [];
  for (const issue of error.issues) {
    if (issue.code === 'unrecognized_keys') {
      for (const key of issue.keys) out.push({ path: formatPath([...issue.path, key]), message: 'unknown field (check its spelling)' });
      continue;
    }
    let message = issue.message;
    if (issue.code === 'invalid_type' && /received undefined/.test(message)) {
      message = `required field is missing (expected ${issue.expected})`;
    } else if (issue.code === 'invalid_type') {
      message = message.replace(/^Invalid input: /, '');
    }
    out.push({ path: formatPath(issue.path), message });
  }
  return out;
}

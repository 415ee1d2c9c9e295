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

/**
 * One zod issue as a person reads it: the field's path (an unknown key's own name included) and
 * what was expected there. A zod issue about unknown keys becomes one entry per key.
 */
export function explainIssue(issue: z.core.$ZodIssue): { path: PropertyKey[]; message: string }[] {
  if (issue.code === 'unrecognized_keys') {
    return issue.keys.map((key) => ({ path: [...issue.path, key], message: 'unknown field (check its spelling)' }));
  }
  let message = issue.message;
  if (issue.code === 'invalid_type' && /received undefined/.test(message)) message = `required field is missing (expected ${issue.expected})`;
  else message = message.replace(/^Invalid input: /, '');
  return [{ path: issue.path, message }];
}

export function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  return error.issues.flatMap(explainIssue).map((i) => ({ path: formatPath(i.path), message: i.message }));
}

import type { z } from 'zod';

/** One problem in a config: where (a path like `listeners[1].routes[0].handler.root`) and what was expected. */
export interface ConfigIssue {
  path: string;
  message: string;
}

/** A problem found while walking a config, before its path is formatted. */
export interface PathIssue {
  path: PropertyKey[];
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

/** Document order: `listeners[2]` before `listeners[10]`, a field's own problem before its children's. */
export function comparePaths(a: ReadonlyArray<PropertyKey>, b: ReadonlyArray<PropertyKey>): number {
  for (let i = 0; i < Math.min(a.length, b.length); i++) {
    const [x, y] = [a[i], b[i]];
    if (x === y) continue;
    if (typeof x === 'number' && typeof y === 'number') return x - y;
    return String(x) < String(y) ? -1 : 1;
  }
  return a.length - b.length;
}

/** Sorted by path, each (path, message) once: two passes over one config may both see a problem. */
export function sortedIssues(issues: readonly PathIssue[]): ConfigIssue[] {
  const seen = new Set<string>();
  const out: PathIssue[] = [];
  for (const issue of issues) {
    const key = `${formatPath(issue.path)}\n${issue.message}`;
    if (seen.has(key)) continue;
    seen.add(key);
    out.push(issue);
  }
  // Array.prototype.sort is stable: problems at one path keep the order they were found in.
  return out.sort((a, b) => comparePaths(a.path, b.path)).map((i) => ({ path: formatPath(i.path), message: i.message }));
}

// ---- Human messages for zod's issues ------------------------------------------------------------
//
// zod's own texts ("Invalid input", `Invalid option: expected one of "a"|"b"`) name its types,
// not what a person should write. `humanError` is passed to every safeParse of config objects
// (`{ error: humanError }`): zod calls it with the raw issue, which still carries the value
// that failed and the schema that raised it, so it can say what was found and, for an unknown
// field, which fields the object has (kept on the issue as `knownKeys` for the did-you-mean).

/** The raw issue zod hands an error map: the finalized one plus what failed and where. */
type RawIssue = z.core.$ZodRawIssue & { input?: unknown; inst?: unknown; knownKeys?: string[] };

const ARTICLE: Record<string, string> = {
  string: 'a string',
  number: 'a number',
  int: 'a whole number',
  boolean: 'true or false',
  object: 'an object (fields: values)',
  array: 'a list',
  bigint: 'a whole number',
  null: 'null',
  undefined: 'nothing',
  date: 'a date',
  map: 'a map',
  set: 'a set',
  symbol: 'a symbol',
  function: 'a function',
  record: 'an object (names: values)',
  tuple: 'a list',
  literal: 'a fixed value',
  nan: 'NaN',
};

function expectedText(expected: string): string {
  return ARTICLE[expected] ?? expected;
}

/** What a value is, as a person says it: `a number (8080)`, `a list`, `"abc"`. */
export function describeValue(value: unknown): string {
  if (value === null) return 'null';
  if (value === undefined) return 'nothing';
  if (Array.isArray(value)) return 'a list';
  if (typeof value === 'string') return value.length > 40 ? `a string ("${value.slice(0, 37)}...")` : `"${value}"`;
  if (typeof value === 'number') return `a number (${value})`;
  if (typeof value === 'boolean') return String(value);
  if (typeof value === 'object') return 'an object';
  return typeof value;
}

function shapeKeys(inst: unknown): string[] | undefined {
  const def = (inst as { _zod?: { def?: { shape?: Record<string, unknown> } } } | undefined)?._zod?.def;
  return def?.shape ? Object.keys(def.shape) : undefined;
}

function plural(n: number, one: string, many = `${one}s`): string {
  return `${n} ${n === 1 ? one : many}`;
}

function sizeMessage(iss: RawIssue & { code: 'too_small' | 'too_big' }): string {
  const small = iss.code === 'too_small';
  const bound = Number(iss.code === 'too_small' ? iss.minimum : iss.maximum);
  const inclusive = iss.inclusive !== false;
  switch (iss.origin) {
    case 'string':
      if (small && bound === 1) return 'must not be empty';
      return small ? `must be at least ${plural(bound, 'character')} long` : `must be at most ${plural(bound, 'character')} long`;
    case 'array':
    case 'set':
      if (small && bound === 1) return 'needs at least one entry';
      return small ? `needs at least ${plural(bound, 'entry', 'entries')}` : `takes at most ${plural(bound, 'entry', 'entries')}`;
    default: {
      const got = typeof iss.input === 'number' ? `, got ${iss.input}` : '';
      if (small) return `${inclusive ? `must be at least ${bound}` : `must be more than ${bound}`}${got}`;
      return `${inclusive ? `must be at most ${bound}` : `must be less than ${bound}`}${got}`;
    }
  }
}

/**
 * The zod error map for config objects: a message for each kind of issue zod raises itself.
 * Messages a schema sets (refine, custom) are kept: zod only asks the map when there is none.
 */
export function humanError(issue: z.core.$ZodRawIssue): string | undefined {
  const iss = issue as RawIssue;
  switch (iss.code) {
    case 'invalid_type':
      if (iss.input === undefined) return `required field is missing (expected ${expectedText(iss.expected)})`;
      return `expected ${expectedText(iss.expected)}, got ${describeValue(iss.input)}`;
    case 'invalid_value': {
      const values = iss.values.map((v) => (typeof v === 'string' ? v : JSON.stringify(v)));
      const got = iss.input === undefined ? '' : `, got ${describeValue(iss.input)}`;
      return values.length === 1 ? `expected ${JSON.stringify(iss.values[0])}${got}` : `expected one of: ${values.join(', ')}${got}`;
    }
    case 'unrecognized_keys': {
      // Kept on the issue (zod copies the raw issue's own fields into the final one).
      const known = shapeKeys(iss.inst);
      if (known) iss.knownKeys = known;
      return 'unknown field';
    }
    case 'too_small':
    case 'too_big':
      return sizeMessage(iss);
    case 'invalid_format':
      if (iss.format === 'regex') return `does not have the expected form (${String(iss.pattern ?? '')})`;
      if (iss.format === 'starts_with') return `must start with ${JSON.stringify(iss.prefix ?? '')}`;
      return `expected ${iss.format === 'url' ? 'a URL' : `a valid ${iss.format}`}`;
    case 'not_multiple_of':
      return `must be a multiple of ${String(iss.divisor)}`;
    case 'invalid_key':
      return 'not a valid name here';
    default:
      return undefined;
  }
}

/**
 * Edit distance with two letters swapped counting as one edit (optimal string alignment), case
 * folded: a wrong case and a transposition are the commonest typos in a field name.
 */
export function editDistance(a: string, b: string): number {
  const [s, t] = [a.toLowerCase(), b.toLowerCase()];
  if (s === t) return a === b ? 0 : 1;
  let before: number[] = [];
  let prev = Array.from({ length: t.length + 1 }, (_, j) => j);
  for (let i = 1; i <= s.length; i++) {
    const cur = [i];
    for (let j = 1; j <= t.length; j++) {
      cur[j] = Math.min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (s[i - 1] === t[j - 1] ? 0 : 1));
      if (i > 1 && j > 1 && s[i - 1] === t[j - 2] && s[i - 2] === t[j - 1]) cur[j] = Math.min(cur[j], before[j - 2] + 1);
    }
    [before, prev] = [prev, cur];
  }
  return prev[t.length];
}

/** The known name closest to `name`, when it is close enough to be the one meant. */
export function closestName(name: string, known: readonly string[]): string | undefined {
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const d = editDistance(name, k);
    if (d < bestDistance) [best, bestDistance] = [k, d];
  }
  // Up to a third of the name may differ (at least 1, at most 3 edits): "stripprefix" finds
  // "stripPrefix", "adress" finds "address", "foo" finds nothing in particular.
  return best !== undefined && bestDistance <= Math.min(3, Math.max(1, Math.floor(name.length / 3))) ? best : undefined;
}

function unknownField(key: string, known: readonly string[] | undefined): string {
  const near = known ? closestName(key, known) : undefined;
  if (near) return `unknown field "${key}" (did you mean "${near}"?)`;
  return known?.length ? `unknown field "${key}" (fields here: ${known.join(', ')})` : `unknown field "${key}"`;
}

type Issue = z.core.$ZodIssue & { knownKeys?: string[] };

/** True when a branch of a union failed on the value's own kind (a list where a string goes), not inside it. */
function failsAtRoot(issues: readonly Issue[]): boolean {
  return issues.some((i) => i.path.length === 0 && (i.code === 'invalid_type' || i.code === 'invalid_value' || i.code === 'invalid_union'));
}

/** What each branch of a union takes, for when the value fits none of them. */
function branchExpectations(branches: readonly (readonly Issue[])[]): string[] {
  const out: string[] = [];
  for (const issues of branches) {
    for (const i of issues) {
      if (i.path.length !== 0) continue;
      if (i.code === 'invalid_type') out.push(expectedText(i.expected));
      else if (i.code === 'invalid_value') out.push(...i.values.map((v) => JSON.stringify(v)));
      else if (i.code === 'invalid_union') out.push(...branchExpectations(i.errors as Issue[][]));
    }
  }
  return [...new Set(out)];
}

/**
 * One zod issue as a person reads it: the field's path (an unknown key's own name included) and
 * what was expected there. Unknown keys become one entry each, with the nearest known field; a
 * union's failure is told by the branch the value fits best (the one it failed deepest in), or
 * as the list of what each branch takes when it fits none.
 */
export function explainIssue(issue: z.core.$ZodIssue): PathIssue[] {
  const iss = issue as Issue;
  if (iss.code === 'unrecognized_keys') {
    return iss.keys.map((key) => ({ path: [...iss.path, key], message: unknownField(key, iss.knownKeys) }));
  }
  if (iss.code === 'invalid_union' && iss.errors.length > 0) {
    const branches = iss.errors as Issue[][];
    const fitting = branches.filter((b) => b.length > 0 && !failsAtRoot(b));
    if (fitting.length > 0) {
      // The fewest problems wins; on a tie, the first branch (the schema's own order).
      const best = fitting.reduce((a, b) => (b.length < a.length ? b : a));
      return best.flatMap(explainIssue).map((i) => ({ path: [...iss.path, ...i.path], message: i.message }));
    }
    // A union that says in its own words what it takes (its `error`) is best told that way.
    if (iss.message !== '' && iss.message !== 'Invalid input') return [{ path: iss.path, message: iss.message }];
    const expected = branchExpectations(branches);
    if (expected.length > 0) {
      const list = expected.length === 1 ? expected[0] : `${expected.slice(0, -1).join(', ')} or ${expected[expected.length - 1]}`;
      return [{ path: iss.path, message: `expected ${list}` }];
    }
  }
  let message = iss.message;
  // Issues from a parse without humanError (a schema parsed elsewhere) still read well.
  if (iss.code === 'invalid_type' && /received undefined/.test(message)) message = `required field is missing (expected ${expectedText(iss.expected)})`;
  else message = message.replace(/^Invalid input: /, '');
  return [{ path: iss.path, message }];
}

export function issuesFromZod(error: z.ZodError): ConfigIssue[] {
  return sortedIssues(error.issues.flatMap(explainIssue));
}

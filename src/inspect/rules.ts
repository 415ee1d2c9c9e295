import { z } from 'zod';
import { AhoCorasick, AUTOMATON_LIMITS, type MatchSink } from './aho-corasick.ts';

// Inspection rules: their schema (shared by the HTTP middleware and the tcp-proxy stream filter)
// and their compilation into one automaton per field and case mode. A rule matches when any of
// its patterns occurs in any of its fields (OR); patterns are literal byte strings, never
// regular expressions, so a rule's cost is independent of what the input looks like.

/** The fields a rule can look at; docs/inspect.md says which forms of each are matched. */
export const HTTP_FIELDS = ['requestLine', 'path', 'query', 'header', 'userAgent', 'body'] as const;

const patternSchema = z
  .string()
  .min(1, 'expected a non-empty pattern')
  .refine((p) => Buffer.byteLength(p) <= AUTOMATON_LIMITS.maxPatternBytes, `expected a pattern of at most ${AUTOMATON_LIMITS.maxPatternBytes} bytes`);

const patternsSchema = z.array(patternSchema).min(1, 'expected at least one pattern').max(256);

const headerMatchSchema = z.strictObject({
  /** The header whose value(s) are matched, any case; `*` matches the value of every header. */
  name: z.string().regex(/^(\*|[!#$%&'*+.^_`|~0-9A-Za-z-]+)$/, 'expected a header name or *'),
  /** Literal patterns looked for in the value. */
  patterns: patternsSchema,
});

const matchSchema = z
  .strictObject({
    /** The request line as sent: `METHOD target HTTP/x.y` (HTTP/2: `:method :path HTTP/2.0`). */
    requestLine: patternsSchema.optional(),
    /** The path (target before `?`): as sent, percent-decoded once and twice, `\` read as `/`. */
    path: patternsSchema.optional(),
    /** The query (after `?`): as sent, percent-decoded once and twice, `+` read as a space. */
    query: patternsSchema.optional(),
    /** Named request headers' values as sent; one entry or a list. */
    header: z.union([headerMatchSchema, z.array(headerMatchSchema).min(1).max(32)]).optional(),
    /** Shorthand for `header: { name: user-agent, patterns }`. */
    userAgent: patternsSchema.optional(),
    /**
     * The first `bodyLimit` bytes of the request body, as sent; for
     * `application/x-www-form-urlencoded` bodies also percent-decoded once with `+` as a space.
     */
    body: patternsSchema.optional(),
    /** tcp-proxy streams only: the bytes of the connection, in the directions inspected. */
    raw: patternsSchema.optional(),
  })
  .refine((m) => Object.values(m).some((v) => v !== undefined), 'expected at least one field to match (requestLine, path, query, header, userAgent, body, raw)');

export const ruleSchema = z.strictObject({
  /** Names the rule in logs, metrics, the tag header and `disable`. */
  id: z.string().regex(/^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/, 'expected an id of letters, digits, . _ - (at most 64)'),
  /** What the rule is for (docs and the admin view; not used in matching). */
  description: z.string().max(500).optional(),
  /** Match patterns byte for byte; by default ASCII letters match in any case. */
  caseSensitive: z.boolean().default(false),
  match: matchSchema,
  /**
   * `block`: refuse (HTTP: `status`; streams: close both sides). `log`: a warn line, the request
   * goes on. `tag` (HTTP only): the request goes on with the ids of its matched rules in
   * `tagHeader` for the upstream.
   */
  action: z.enum(['log', 'block', 'tag']).default('block'),
  /** The status of a block (HTTP). */
  status: z.number().int().min(400).max(599).default(403),
});

export type RuleInput = z.input<typeof ruleSchema>;
export type Rule = z.output<typeof ruleSchema>;
export type Action = Rule['action'];

/** A rule as the matchers refer to it: its position in CompiledRules.rules. */
export interface CompiledRule {
  readonly id: string;
  readonly action: Action;
  readonly status: number;
}

/** The automata of one field: one per case mode in use, each pattern knowing its rule. */
export interface FieldMatcher {
  readonly ac: AhoCorasick;
  /** Pattern index -> rule index. */
  readonly ruleOf: Int32Array;
}

export type Field = readonly FieldMatcher[];

/** The rules of one inspect block, compiled. Fields no rule looks at are undefined. */
export interface CompiledRules {
  readonly rules: readonly CompiledRule[];
  readonly requestLine?: Field;
  readonly path?: Field;
  readonly query?: Field;
  /** By lower-case header name. */
  readonly headers: ReadonlyMap<string, Field>;
  /** `header: { name: '*' }`: every header's value. */
  readonly anyHeader?: Field;
  readonly body?: Field;
  readonly raw?: Field;
}

type Patterns = { rule: number; pattern: string; caseSensitive: boolean }[];

function field(entries: Patterns | undefined): Field | undefined {
  if (!entries || entries.length === 0) return undefined;
  const out: FieldMatcher[] = [];
  for (const caseSensitive of [false, true]) {
    const mine = entries.filter((e) => e.caseSensitive === caseSensitive);
    if (mine.length === 0) continue;
    const ac = new AhoCorasick(
      mine.map((e) => new Uint8Array(Buffer.from(e.pattern))),
      { caseInsensitive: !caseSensitive },
    );
    out.push({ ac, ruleOf: Int32Array.from(mine.map((e) => e.rule)) });
  }
  return out;
}

/** Compiles rules (already validated) into automata. Throws a RangeError past AUTOMATON_LIMITS. */
export function compileRules(rules: readonly Rule[]): CompiledRules {
  const by = new Map<string, Patterns>();
  const add = (key: string, rule: number, patterns: readonly string[] | undefined, caseSensitive: boolean) => {
    if (!patterns) return;
    let list = by.get(key);
    if (!list) by.set(key, (list = []));
    for (const pattern of patterns) list.push({ rule, pattern, caseSensitive });
  };
  rules.forEach((r, i) => {
    const m = r.match;
    add('requestLine', i, m.requestLine, r.caseSensitive);
    add('path', i, m.path, r.caseSensitive);
    add('query', i, m.query, r.caseSensitive);
    add('body', i, m.body, r.caseSensitive);
    add('raw', i, m.raw, r.caseSensitive);
    add('h:user-agent', i, m.userAgent, r.caseSensitive);
    const headers = m.header === undefined ? [] : Array.isArray(m.header) ? m.header : [m.header];
    for (const h of headers) add(h.name === '*' ? '*' : `h:${h.name.toLowerCase()}`, i, h.patterns, r.caseSensitive);
  });
  const headers = new Map<string, Field>();
  for (const [key, entries] of by) {
    if (key.startsWith('h:')) headers.set(key.slice(2), field(entries) as Field);
  }
  return {
    rules: rules.map((r) => ({ id: r.id, action: r.action, status: r.status })),
    requestLine: field(by.get('requestLine')),
    path: field(by.get('path')),
    query: field(by.get('query')),
    headers,
    anyHeader: field(by.get('*')),
    body: field(by.get('body')),
    raw: field(by.get('raw')),
  };
}

/**
 * The rules matched so far by one request or connection, each once, in the order found. One
 * object serves many scans: `reset` between requests when it is reused.
 */
export class Hits {
  private readonly seen: Uint8Array;
  readonly list: number[] = [];
  private ruleOf: Int32Array = new Int32Array(0);
  /** The sink the automata report to; maps a pattern to its rule through the field being scanned. */
  readonly sink: MatchSink = (pattern) => this.add(this.ruleOf[pattern]);

  constructor(ruleCount: number) {
    this.seen = new Uint8Array(ruleCount);
  }

  get size(): number {
    return this.list.length;
  }

  /** Records rule `rule` as matched (once). */
  add(rule: number): void {
    if (this.seen[rule] === 1) return;
    this.seen[rule] = 1;
    this.list.push(rule);
  }

  reset(): void {
    for (const r of this.list) this.seen[r] = 0;
    this.list.length = 0;
  }

  /** Runs each automaton of `field` over `text` from its start. */
  scanString(field: Field, text: string): void {
    for (let i = 0; i < field.length; i++) {
      const m = field[i];
      this.ruleOf = m.ruleOf;
      m.ac.scanString(m.ac.start, text, this.sink);
    }
  }

  /** Runs `field`'s automata over `bytes` from `states` (one per automaton), updating them in place. */
  scanBytes(field: Field, states: Int32Array, bytes: Uint8Array): void {
    for (let i = 0; i < field.length; i++) {
      const m = field[i];
      this.ruleOf = m.ruleOf;
      states[i] = m.ac.scanBytes(states[i], bytes, this.sink);
    }
  }
}

/** The ids of `rules` that are not unique, with the index of their second use. */
export function duplicateIds(rules: readonly { id: string }[]): { id: string; index: number }[] {
  const seen = new Set<string>();
  const dup: { id: string; index: number }[] = [];
  rules.forEach((r, index) => {
    if (seen.has(r.id)) dup.push({ id: r.id, index });
    seen.add(r.id);
  });
  return dup;
}

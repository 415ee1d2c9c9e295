import { ruleSchema, type Rule, type RuleInput } from './rules.ts';

// The built-in rule set (`defaultRules: true`). Chosen for few false positives: each pattern is
// a form that ordinary traffic does not carry in the fields it is looked for in (a word like
// `select` alone is never a pattern; `union select` is). What each rule catches, and what it
// does not, is in docs/inspect.md, "The default rules". Case-insensitive; the path and query are
// matched decoded as well (so `%2e%2e%2f`, `..%2f` and `%252e%252e%252f` are `../`).

const HTTP_DEFAULTS: RuleInput[] = [
  {
    id: 'path-traversal',
    description: 'Climbing out of the web root (../, encoded or not) and the files such probes go for',
    match: {
      path: ['../', '/..', '/etc/passwd', '/etc/shadow', 'win.ini', '/proc/self/environ', '..%2f', '%2e%2e'],
      query: ['../', '..\\', '/etc/passwd', '/etc/shadow', 'win.ini', '/proc/self/environ', '..%2f', '%2e%2e'],
    },
  },
  {
    id: 'sql-injection',
    description: 'SQL injection probes: UNION SELECT, tautologies, time-based probes, schema enumeration',
    match: {
      path: ['union select', 'union all select', 'union/**/select', 'information_schema'],
      query: [
        'union select',
        'union all select',
        'union/**/select',
        "' or '1'='1",
        "' or 1=1",
        '" or "1"="1',
        "' or ''='",
        'or 1=1--',
        'sleep(',
        'benchmark(',
        'pg_sleep(',
        'waitfor delay',
        'information_schema',
      ],
      body: ['union select', 'union all select', "' or '1'='1", "' or 1=1", 'information_schema'],
    },
  },
  {
    id: 'shell-injection',
    description: 'Shell command injection: chained commands, substitutions, reverse shells',
    match: {
      path: [';cat ', '|cat ', '$(', '`id`', '`whoami`', '`cat ', '`uname', '|nc ', ';nc ', '/bin/sh', '/bin/bash'],
      query: [';cat ', '|cat ', '&&cat ', '$(', '`id`', '`whoami`', '`cat ', '`uname', '|nc ', ';nc ', '/bin/sh', '/bin/bash', ';wget ', ';curl '],
    },
  },
  {
    id: 'scanner-user-agent',
    description: 'User agents of well-known attack tools and scanners',
    match: {
      userAgent: ['sqlmap', 'nikto', 'nmap scripting engine', 'masscan', 'zgrab', 'nuclei', 'dirbuster', 'gobuster'],
    },
  },
  {
    id: 'log4shell',
    description: 'Log4j JNDI lookups (CVE-2021-44228) and their common obfuscations',
    match: {
      header: { name: '*', patterns: ['${jndi:', '${${', '${::-', '${lower:', '${upper:'] },
      path: ['${jndi:', '${${', '${::-'],
      query: ['${jndi:', '${${', '${::-', '${lower:', '${upper:'],
      body: ['${jndi:'],
    },
  },
];

/** Byte-stream rules for tcp-proxy's `defaultRules` (the protocols inside are unknown: only sure signs). */
const STREAM_DEFAULTS: RuleInput[] = [
  {
    id: 'log4shell',
    description: 'Log4j JNDI lookups (CVE-2021-44228) in any protocol',
    match: { raw: ['${jndi:'] },
  },
];

/** The default rules for HTTP (validated here once, so a bad edit fails at load, not per config). */
export const DEFAULT_HTTP_RULES: readonly Rule[] = HTTP_DEFAULTS.map((r) => ruleSchema.parse(r));

/** The default rules for tcp-proxy streams. */
export const DEFAULT_STREAM_RULES: readonly Rule[] = STREAM_DEFAULTS.map((r) => ruleSchema.parse(r));

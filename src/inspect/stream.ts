import type { Socket } from 'node:net';
import type { Logger } from 'pino';
import { z } from 'zod';
import { size } from '../config/units.ts';
import type { Metrics } from '../observe/metrics.ts';
import { DEFAULT_STREAM_RULES } from './default-rules.ts';
import { MatchCounter, MatchLog } from './metrics.ts';
import { compileRules, duplicateIds, Hits, ruleSchema, type CompiledRules, type Field, type Rule } from './rules.ts';

// The stream filter of tcp-proxy (`inspect:` in its handler config): the bytes of each proxied
// connection, in the directions asked for, pass an automaton of the rules' `raw` patterns. The
// automaton's state carries from one chunk to the next, so a pattern split across TCP segments
// is found, with 4 bytes of state per direction and no buffering. It listens to each socket's
// 'data' ahead of the pipe that forwards it: a `block` match closes both sides (with a reset)
// before the chunk that completed the pattern is written on. `log` writes one warn line per rule
// per connection. (There is no `tag` for streams: there is no header to put it in.)

const streamRuleSchema = ruleSchema.superRefine((r, ctx) => {
  const other = Object.entries(r.match).find(([k, v]) => k !== 'raw' && v !== undefined);
  if (other) ctx.addIssue({ code: 'custom', path: ['match', other[0]], message: 'a tcp-proxy rule matches raw bytes only (match.raw); HTTP fields are for the inspect middleware' });
  if (!r.match.raw) ctx.addIssue({ code: 'custom', path: ['match', 'raw'], message: 'expected raw patterns' });
  if (r.action === 'tag') ctx.addIssue({ code: 'custom', path: ['action'], message: 'tag is for HTTP (a request header); a stream rule can log or block' });
});

export const streamInspectSchema = z
  .strictObject({
    /** Use the built-in stream rules (docs/inspect.md); off unless set. */
    defaultRules: z.boolean().default(false),
    /** Rule ids switched off; each must name a rule. */
    disable: z.array(z.string().min(1)).max(256).default([]),
    /** Own rules: `match.raw` patterns, action log or block. */
    rules: z.array(streamRuleSchema).max(256).default([]),
    /** `client`: bytes from the client to the upstream; `upstream`: the answers; `both`. */
    directions: z.enum(['both', 'client', 'upstream']).default('both'),
    /** Bytes inspected per direction from a connection's start; 0: all of them. */
    maxBytes: size().default(0),
    /** Warn lines about matches at most this many per second (the rest are counted in the next); 0: none. */
    logPerSecond: z.number().int().min(0).max(10_000).default(10),
  })
  .superRefine((c, ctx) => {
    for (const d of duplicateIds(c.rules)) ctx.addIssue({ code: 'custom', path: ['rules', d.index, 'id'], message: `"${d.id}" is the id of an earlier rule` });
    const known = new Set([...(c.defaultRules ? DEFAULT_STREAM_RULES.map((r) => r.id) : []), ...c.rules.map((r) => r.id)]);
    c.disable.forEach((id, i) => {
      if (!known.has(id)) ctx.addIssue({ code: 'custom', path: ['disable', i], message: `no rule "${id}" here (rules: ${[...known].join(', ') || 'none'})` });
    });
    if (streamRules(c).length === 0) ctx.addIssue({ code: 'custom', path: ['rules'], message: 'no rules to inspect with: add rules or set defaultRules: true' });
    try {
      compileRules(streamRules(c));
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['rules'], message: err instanceof Error ? err.message : String(err) });
    }
  });

export type StreamInspectInput = z.input<typeof streamInspectSchema>;
export type StreamInspectConfig = z.output<typeof streamInspectSchema>;

function streamRules(c: Pick<StreamInspectConfig, 'defaultRules' | 'rules' | 'disable'>): Rule[] {
  const own = new Set(c.rules.map((r) => r.id));
  const off = new Set(c.disable);
  return [...(c.defaultRules ? DEFAULT_STREAM_RULES.filter((r) => !own.has(r.id)) : []), ...c.rules].filter((r) => !off.has(r.id));
}

/** Closes a socket with a reset (TCP), so the peer sees an abort rather than an end. */
function abort(s: Socket | undefined): void {
  if (!s || s.destroyed) return;
  try {
    s.resetAndDestroy();
  } catch {
    s.destroy();
  }
}

/** What a stream's inspection needs of its connection. */
export interface StreamInspectContext {
  readonly listener: string;
  readonly log: Logger;
}

/** One connection's inspection: attached to the client at once, to the upstream when connected. */
export interface StreamInspection {
  /** The upstream socket is connected: its bytes are inspected too (directions allowing), and a block closes it. */
  connected(upstream: Socket): void;
}

/** The compiled rules of one tcp-proxy handler, watching each of its connections. */
export class StreamInspector {
  private readonly rules: CompiledRules;
  private readonly field: Field;
  private readonly counter: MatchCounter;
  private readonly matchLog: MatchLog;
  private readonly config: StreamInspectConfig;

  constructor(input: StreamInspectInput | StreamInspectConfig, metrics?: Metrics) {
    this.config = streamInspectSchema.parse(input);
    this.rules = compileRules(streamRules(this.config));
    // The schema refuses an inspect block without raw patterns.
    this.field = this.rules.raw as Field;
    this.counter = new MatchCounter(metrics);
    this.matchLog = new MatchLog(this.config.logPerSecond);
  }

  /** Starts inspecting `client`'s connection; call before anything else listens to its 'data'. */
  watch(client: Socket, ctx: StreamInspectContext): StreamInspection {
    const { directions, maxBytes } = this.config;
    const rules = this.rules.rules;
    const field = this.field;
    const hits = new Hits(rules.length);
    let upstream: Socket | undefined;
    let blocked = false;
    const clientIp = client.remoteAddress;

    const matched = (found: readonly number[], direction: 'client' | 'upstream') => {
      let block: string | undefined;
      for (const i of found) {
        const rule = rules[i];
        this.counter.count(ctx.listener, rule);
        this.matchLog.warn(ctx.log, { rule: rule.id, action: rule.action, direction, listener: ctx.listener, clientIp }, 'inspect: a stream rule matched');
        if (rule.action === 'block') block ??= rule.id;
      }
      if (block === undefined) return;
      blocked = true;
      // Both sides go at once: the chunk that completed the pattern is never written on.
      abort(client);
      abort(upstream);
    };

    const inspectFrom = (from: Socket, direction: 'client' | 'upstream') => {
      const states = new Int32Array(field.length);
      let seen = 0;
      const onData = (chunk: Buffer) => {
        if (blocked) return;
        let part = chunk;
        if (maxBytes > 0) {
          part = chunk.subarray(0, Math.max(0, maxBytes - seen));
          seen += part.length;
          if (seen >= maxBytes) from.off('data', onData);
        }
        const before = hits.size;
        hits.scanBytes(field, states, part);
        if (hits.size !== before) matched(hits.list.slice(before), direction);
      };
      from.on('data', onData);
    };

    if (directions !== 'upstream') inspectFrom(client, 'client');
    return {
      connected: (socket) => {
        upstream = socket;
        if (blocked) abort(socket);
        else if (directions !== 'client') inspectFrom(socket, 'upstream');
      },
    };
  }
}

import { createRequire } from 'node:module';

// Which Content-Types are worth compressing. The default is mime-db's `compressible` flag (the
// MIME table mime-types is built on, read through mime-types' own dependency so that both agree),
// plus every text/*, +json and +xml type: about 700 types, where a hand list would miss half.
// text/event-stream is left out: a compressor holds bytes back until it has a block's worth, and
// an event stream lives on getting each event out at once.

interface MimeEntry {
  readonly compressible?: boolean;
}

const NEVER = new Set(['text/event-stream']);
const MEMO_MAX = 512;

function mimeDbCompressible(): Set<string> {
  const fromMimeTypes = createRequire(createRequire(import.meta.url).resolve('mime-types'));
  const db = fromMimeTypes('mime-db') as Readonly<Record<string, MimeEntry>>;
  const out = new Set<string>();
  for (const [type, entry] of Object.entries(db)) if (entry.compressible === true && !NEVER.has(type)) out.add(type);
  return out;
}

let defaultTypes: Set<string> | undefined;

/** A media type pattern as `types:` takes it: `type/subtype` or `type/*`, lower case. */
export const MEDIA_RANGE = /^[a-z0-9][a-z0-9!#$&^_.+-]*\/(?:\*|[a-z0-9][a-z0-9!#$&^_.+-]*)$/;

export class CompressibleTypes {
  private readonly exact: Set<string>;
  private readonly prefixes: readonly string[];
  /** The defaults also take text/*, *+json and *+xml. */
  private readonly suffixRules: boolean;
  private readonly memo = new Map<string, boolean>();

  /** `patterns`: `type/subtype` or `type/*`; undefined for the defaults (see the top of the file). */
  constructor(patterns?: readonly string[]) {
    if (patterns === undefined) {
      this.exact = (defaultTypes ??= mimeDbCompressible());
      this.prefixes = ['text/'];
      this.suffixRules = true;
      return;
    }
    this.exact = new Set(patterns.filter((p) => !p.endsWith('/*')).map((p) => p.toLowerCase()));
    this.prefixes = patterns.filter((p) => p.endsWith('/*')).map((p) => p.slice(0, -1).toLowerCase());
    this.suffixRules = false;
  }

  /** Whether a response with this Content-Type field value may be compressed. */
  has(contentType: string): boolean {
    const hit = this.memo.get(contentType);
    if (hit !== undefined) return hit;
    const semi = contentType.indexOf(';');
    const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
    const yes = this.matches(type);
    if (this.memo.size >= MEMO_MAX) this.memo.clear();
    this.memo.set(contentType, yes);
    return yes;
  }

  private matches(type: string): boolean {
    if (this.exact.has(type)) return true;
    // Named exactly, an event stream is the user's call; a wildcard does not take it.
    if (type === '' || NEVER.has(type)) return false;
    for (const p of this.prefixes) if (type.startsWith(p)) return true;
    return this.suffixRules && (type.endsWith('+json') || type.endsWith('+xml'));
  }
}

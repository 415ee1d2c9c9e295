import { z } from 'zod';
import { duration, size } from '../../config/units.ts';

// The `static` handler's config. Every field says what it does; defaults are the ones measured
// and argued for in static/index.ts.

const cacheSchema = z.strictObject({
  /** Files up to this size are kept in memory once read (the hot-file cache). */
  maxFileSize: size().default(1024 * 1024),
  /** Total bytes of file bodies kept in memory; 0 turns the body cache off. */
  maxBytes: size().default(64 * 1024 * 1024),
  /**
   * How long a resolved path (realpath, stat, precompressed siblings) is trusted before the
   * next request looks at the disk again. 0 looks on every request.
   */
  revalidate: duration().default(1000),
  /** Paths remembered at once by the resolver cache. */
  maxEntries: z.number().int().positive().max(1_000_000).default(10_000),
});

export const staticSchema = z.strictObject({
  type: z.literal('static'),
  /** Directory to serve. Relative paths are taken from the config file's folder. */
  root: z.string().min(1),
  /** File(s) served for a directory request ending in `/`, tried in order; `false` for none. */
  index: z.union([z.string().min(1), z.array(z.string().min(1)), z.literal(false)]).default(['index.html']),
  /** Directory listings (HTML, or JSON by `Accept: application/json` or `?format=json`) when there is no index file. */
  listing: z.boolean().default(false),
  /** Names starting with `.` anywhere in the path: `deny` answers 404, `allow` serves them. */
  dotfiles: z.enum(['deny', 'allow']).default('deny'),
  /**
   * Symlinks: `within-root` follows them while the target stays under the root (anything else
   * answers 404), `follow` follows them anywhere, `deny` refuses every path that crosses one.
   */
  symlinks: z.enum(['within-root', 'follow', 'deny']).default('within-root'),
  /** Cache-Control sent with every file (e.g. "public, max-age=3600"); none when unset. */
  cacheControl: z.string().min(1).optional(),
  /** Serve `NAME.br` / `NAME.gz` next to NAME when the client accepts br / gzip. */
  precompressed: z.boolean().default(true),
  /** Extra or overriding Content-Types by extension, e.g. `{ "avif": "image/avif" }`. */
  mimeTypes: z.record(z.string().regex(/^\.?[A-Za-z0-9_+-]+$/, 'expected a file extension'), z.string().min(1)).default({}),
  /** Ranges in one request served as multipart/byteranges; more answers 200 with the whole file. */
  maxRanges: z.number().int().min(1).max(256).default(16),
  cache: cacheSchema.prefault({}),
  /** Use sendfile(2) for plain-TCP HTTP/1.x responses (falls back to streaming when unavailable). */
  sendfile: z.boolean().default(true),
  /** Uncached bodies at least this large go through sendfile, smaller ones are streamed (sendfile measured faster at every size, so 0). */
  sendfileThreshold: size().default(0),
  /** Read size when streaming a file (and so the most a slow client makes us hold). */
  streamChunk: size().pipe(z.number().int().min(4096).max(8 * 1024 * 1024)).default(512 * 1024),
});

export type StaticConfig = z.output<typeof staticSchema>;

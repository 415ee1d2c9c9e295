import { isAbsolute, resolve } from 'node:path';
import type { HandlerModule, ProvisionContext } from '../types.ts';
import type { Metrics } from '../../observe/metrics.ts';
import { FsRoot } from '../fs-root.ts';
import { rootDirProblems } from '../root-dir.ts';
import { libcUnavailableReason, sendfileAvailable } from '../../sys/index.ts';
import { BodyCache, type CacheMeters } from './body-cache.ts';
import { Catalog } from './catalog.ts';
import { staticSchema, type StaticConfig } from './config.ts';
import { StaticHandler } from './handler.ts';
import { contentTypes } from './mime.ts';

// The `static` handler: files under a root over HTTP.
//
// The fast path: what was measured, and what it decided. `wrk -t1 -c32 -d3s`, loopback, 2-core
// VM shared with other work (so ranges are repeat runs), Linux 6.18, Node 20.20, one static
// route per body source. req/s, then the server process's own CPU per request (/proc/PID/stat):
//
//   body source                  4 KiB         64 KiB        256 KiB       1 MiB              16 MiB
//   hot cache (res.end(buf))     32.7k .032ms  30.5k .035ms  12-15k .07ms  2.5-3.3k .31ms     68-274 3.4ms
//   sendfile (koffi)             8.8k  .14ms   9.1k  .14ms   6.5-7k .19ms  2.6-4.4k .16ms     70-128 2.6ms
//   stream, 1 buffer/transfer    8.3k  .14ms   7.5k  .18ms   3.8-4.1k      1.4-1.9k .67ms     64-159 8.3ms
//   (createReadStream+pipeline   5.3k          5.0k          3.8k          1.6k               85, replaced)
//
// - Memory wins for small files by 3-4x (a hot request makes no syscall before the write: the
//   catalog skips realpath/stat, the body cache skips open/read/close) and matches or beats
//   sendfile in req/s up to 1 MiB. So files up to `cache.maxFileSize` = 1 MiB are cached, within
//   `cache.maxBytes` = 64 MiB in total, and a path is re-stat'ed at most once per
//   `cache.revalidate` = 1 s, so edits show within a second.
// - Above that, sendfile: it never copies through JS, pins no memory per slow client (64 stalled
//   clients of 256 MiB: +0 MB RSS, vs +36 MB streaming), and costs the least server CPU per
//   request at 1 MiB and 16 MiB. On loopback streaming sometimes got more req/s at 16 MiB, at
//   3x the server CPU: sendfile's splice path pushes TCP frames per 64 KiB and the loopback
//   receive runs in softirq (perf: 45% in _raw_spin_unlock_irqrestore under tcp_write_xmit), so
//   the client's side of the copy lands on whoever is on the CPU. Over a real NIC that cost goes
//   away; the per-request CPU is what scales, so sendfile stays. Threshold 0: it beat streaming
//   at every size.
// - Streaming remains for what sendfile cannot do: TLS, HTTP/2, multipart ranges, a response
//   queued behind a pipelined one, no koffi. It reuses one 512 KiB buffer per transfer (512 KiB
//   beat 256 and 64 KiB from 256 KiB files up).

export { staticSchema, type StaticConfig } from './config.ts';

export const staticHandler: HandlerModule<StaticConfig> = {
  type: 'static',
  summary: 'serves files under a root (GET/HEAD, ranges, conditional requests, precompressed siblings, sendfile)',
  schema: staticSchema,
  validate: (config, ctx) => rootDirProblems(config.root, ctx.baseDir),
  http: async (config, ctx) => {
    const rootDir = isAbsolute(config.root) ? config.root : resolve(ctx.baseDir, config.root);
    const root = await FsRoot.open(rootDir, { dotfiles: config.dotfiles, symlinks: config.symlinks });
    const index = config.index === false ? [] : typeof config.index === 'string' ? [config.index] : config.index;
    for (const name of index) {
      const parsed = root.parsePlainName(name);
      if (parsed.kind !== 'parsed' || parsed.segments.length !== 1) throw new Error(`static: index name ${JSON.stringify(name)} must be a plain file name`);
    }
    const catalog = new Catalog(root, {
      index,
      listing: config.listing,
      precompressed: config.precompressed,
      revalidate: config.cache.revalidate,
      maxEntries: config.cache.maxEntries,
      contentType: contentTypes(config.mimeTypes),
      cacheControl: config.cacheControl,
    });
    const cache = new BodyCache(config.cache.maxBytes, config.cache.maxFileSize, cacheMeters(ctx.metrics, ctx.listener));
    if (config.sendfile && !sendfileAvailable()) {
      ctx.log.info({ listener: ctx.listener, reason: libcUnavailableReason() }, 'static: sendfile unavailable, streaming instead');
    }
    return new StaticHandler(root, catalog, cache, {
      maxRanges: config.maxRanges,
      sendfile: config.sendfile,
      sendfileThreshold: config.sendfileThreshold,
      streamChunk: config.streamChunk,
    });
  },
};

/** Cache metrics, shared by every static handler provisioned on one yard. */
function cacheMeters(metrics: Metrics, listener: string): CacheMeters {
  const hits = metrics.counter('switchyard_file_cache_hits_total', 'Static file bodies served from the in-memory cache, by listener.', ['listener']);
  const misses = metrics.counter('switchyard_file_cache_misses_total', 'Cacheable static file bodies that had to be read from disk, by listener.', ['listener']);
  const bytes = metrics.gauge('switchyard_file_cache_bytes', 'Bytes of file bodies held by the in-memory cache, by listener.', ['listener']);
  return { hits: hits.labels(listener), misses: misses.labels(listener), bytes: bytes.labels(listener) };
}

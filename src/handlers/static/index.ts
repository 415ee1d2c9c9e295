import { isAbsolute, resolve } from 'node:path';
import { Counter, Gauge, type Registry } from 'prom-client';
import type { HandlerModule, ProvisionContext } from '../types.ts';
import { FsRoot } from '../fs-root.ts';
import { libcUnavailableReason, sendfileAvailable } from '../../sys/index.ts';
import { BodyCache, type CacheMeters } from './body-cache.ts';
import { Catalog } from './catalog.ts';
import { staticSchema, type StaticConfig } from './config.ts';
import { StaticHandler } from './handler.ts';
import { contentTypes } from './mime.ts';

// The `static` handler: files under a root over HTTP.
//
// The fast path: what was measured, and what it decided. `wrk -t1 -c32 -d3s`, req/s, one
// static route per body source, loopback, 2-core VM, Linux 6.18, Node 20.20 (ranges are repeat
// runs; wrk and server unpinned, so wrk's single thread caps the small-file figures):
//
//   body source              4 KiB        16 KiB  64 KiB  256 KiB  1 MiB  16 MiB
//   hot cache (res.end(buf)) 23.2k-32.7k  -       30.2k   8.2k     3.1k   231
//   sendfile (koffi)         5.0k-9.8k    9.1k    9.4k    6.1k     3.2k   101
//   stream, 512 KiB chunks   5.3k-5.9k    5.3k    5.0k    3.8k     1.6k   85
//   stream, 64 KiB chunks    5.8k-6.1k    5.6k    4.5k    2.8k     1.0k   85
//
// - Memory wins up to 1 MiB, by far for small files (no open/fstat/close per request: the
//   catalog and the body cache make a hot request syscall-free up to the write). So files up to
//   `cache.maxFileSize` = 1 MiB are cached, within `cache.maxBytes` = 64 MiB in total; stat
//   revalidation once per `cache.revalidate` = 1 s keeps edits visible within a second.
// - Memory also beat sendfile at 16 MiB (c=1: 266-304 vs 120-132 req/s). perf shows why on this
//   kernel: sendfile's splice path pushes TCP frames per 64 KiB pipe buffer and the loopback
//   receive runs in the sender's softirq (45% in _raw_spin_unlock_irqrestore under
//   tcp_write_xmit), while one big writev spends its time in the single copy. Still, caching
//   big files would let a few of them evict every small one, and it costs RAM per file; so
//   large files are not cached but sent with sendfile, which beat streaming at every size
//   (no second copy, no JS per chunk) and needs no memory per slow client at all.
// - Streaming (512 KiB chunks, best of the two tried) remains for what sendfile cannot do:
//   TLS, HTTP/2, multipart ranges, a response queued behind a pipelined one, no koffi.

export { staticSchema, type StaticConfig } from './config.ts';

export const staticHandler: HandlerModule<StaticConfig> = {
  type: 'static',
  summary: 'serves files under a root (GET/HEAD, ranges, conditional requests, precompressed siblings, sendfile)',
  schema: staticSchema,
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
    const cache = new BodyCache(config.cache.maxBytes, config.cache.maxFileSize, cacheMeters(ctx.metrics.registry, ctx.listener));
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

/** Cache metrics, shared by every static handler provisioned on one registry. */
function cacheMeters(registry: Registry, listener: string): CacheMeters {
  const hits = (registry.getSingleMetric('switchyard_file_cache_hits_total') as Counter<'listener'> | undefined) ??
    new Counter({ name: 'switchyard_file_cache_hits_total', help: 'Static file bodies served from the in-memory cache, by listener.', labelNames: ['listener'] as const, registers: [registry] });
  const misses = (registry.getSingleMetric('switchyard_file_cache_misses_total') as Counter<'listener'> | undefined) ??
    new Counter({ name: 'switchyard_file_cache_misses_total', help: 'Cacheable static file bodies that had to be read from disk, by listener.', labelNames: ['listener'] as const, registers: [registry] });
  const bytes = (registry.getSingleMetric('switchyard_file_cache_bytes') as Gauge<'listener'> | undefined) ??
    new Gauge({ name: 'switchyard_file_cache_bytes', help: 'Bytes of file bodies held by the in-memory cache, by listener.', labelNames: ['listener'] as const, registers: [registry] });
  return { hits: hits.labels(listener), misses: misses.labels(listener), bytes: bytes.labels(listener) };
}

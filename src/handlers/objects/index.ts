import { isAbsolute, resolve } from 'node:path';
import type { HandlerModule } from '../types.ts';
import { objectsSchema, type ObjectsConfig } from './config.ts';
import { ObjectsHandler } from './handler.ts';
import { Multipart } from './multipart.ts';
import { ObjectStore } from './store.ts';

// The `objects` handler: an S3-style object store (path-style `/<bucket>/<key>`) on a local
// folder. Writes are atomic and durable (temp file, fsync, rename, directory fsync), every
// object carries its SHA-256 and is checked when read; see store.ts for the layout and
// docs/objects.md for the API.

export { objectsSchema, type ObjectsConfig } from './config.ts';

export const objectsHandler: HandlerModule<ObjectsConfig> = {
  type: 'objects',
  summary: 'an S3-style object store on a folder (PUT/GET/HEAD/DELETE, list, ranges, checksums, multipart uploads)',
  schema: objectsSchema,
  http: async (config, ctx) => {
    const root = isAbsolute(config.root) ? config.root : resolve(ctx.baseDir, config.root);
    const store = await ObjectStore.open(root, config.fsync, ctx.log);
    void store.sweepOrphans().then(
      (removed) => removed > 0 && ctx.log.info({ root, removed }, 'objects: removed bodies an interrupted write left behind'),
      (err: Error) => ctx.log.warn({ root, err: err.message }, 'objects: sweeping left-behind bodies failed'),
    );
    const corrupt = ctx.metrics.counter('switchyard_objects_corrupt_total', 'Stored objects found not to match their checksum or size when read, by listener.', ['listener']);
    return new ObjectsHandler(store, new Multipart(store, config, ctx.log), config, { corrupt: corrupt.labels(ctx.listener) });
  },
};

import { createHash, randomBytes } from 'node:crypto';
import type { FileHandle } from 'node:fs/promises';
import { evaluatePreconditions, ifRangeHolds, type Validators } from '../static/conditional.ts';
import { decideRange, multipartLayout, type RangeDecision } from '../static/range.ts';
import { drained, streamRange } from '../static/transfer.ts';
import type { HttpContext } from '../types.ts';
import type { ObjectsConfig } from './config.ts';
import { refuse, reportCorrupt, type ObjectsMeters } from './reply.ts';
import type { ObjectMeta, ObjectStore } from './store.ts';

// GET and HEAD of one object: conditional requests and byte ranges exactly as the static
// handler answers them (its conditional.ts and range.ts), with the object's SHA-256 as a strong
// ETag and its stored time as Last-Modified.
//
// Checking the bytes (verifyOnRead):
//   every mode  the body file's size must be the stored size; otherwise 500 before sending.
//   full        the whole body is hashed before anything is sent: 500 when it does not match.
//   stream      a whole-body GET is hashed while it is sent; its last 64 KiB are sent only when
//               the hash matches. When it does not, the connection is cut instead, so the
//               client sees a truncated transfer rather than a wrong body.
//               Ranges and HEAD are not hashed in this mode.
//   none        no hashing.
// Either way a corrupt object is logged at error level and counted in
// switchyard_objects_corrupt_total.

/** Bytes of a streamed body kept back until its hash has been checked. */
const HELD_BACK = 64 * 1024;

const CORRUPT = 'the stored object does not match its checksum';

export async function getObject(ctx: HttpContext, store: ObjectStore, config: ObjectsConfig, meters: ObjectsMeters, bucket: string, key: string, segments: readonly string[]): Promise<void> {
  const { req, res } = ctx;
  if (!(await store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
  const opened = await store.openObject(bucket, segments);
  if (opened === undefined) return refuse(res, 404, 'NoSuchKey', 'no such key');
  const { meta, handle, stat } = opened;
  try {
    if (stat.size !== meta.size) {
      reportCorrupt(ctx.log, meters, bucket, key, `body is ${stat.size} bytes on disk, ${meta.size} stored`);
      return refuse(res, 500, 'CorruptObject', CORRUPT);
    }
    const validators: Validators = { etag: meta.etag, lastModified: new Date(meta.mtime).toUTCString(), mtimeSec: Math.floor(meta.mtime / 1000) };
    const pre = evaluatePreconditions(req.headers, validators);
    if (pre === 'not-modified') {
      res.writeHead(304, { etag: meta.etag, 'last-modified': validators.lastModified });
      res.end();
      return;
    }
    if (pre === 'failed') return refuse(res, 412, 'PreconditionFailed', 'precondition failed', { headers: { etag: meta.etag } });
    const range = req.headers.range;
    const decision: RangeDecision =
      range === undefined || !ifRangeHolds(req.headers['if-range'] as string | undefined, validators) ? { kind: 'none' } : decideRange(range, meta.size, config.maxRanges);
    if (decision.kind === 'unsatisfiable') {
      return refuse(res, 416, 'InvalidRange', 'range not satisfiable', { headers: { 'content-range': `bytes */${meta.size}`, 'accept-ranges': 'bytes' } });
    }
    if (config.verifyOnRead === 'full') {
      const actual = await hashFile(handle, meta.size, config.streamChunk);
      if (actual !== meta.sha256) {
        reportCorrupt(ctx.log, meters, bucket, key, 'sha256 of the body differs from the stored one');
        return refuse(res, 500, 'CorruptObject', CORRUPT);
      }
    }
    await send(ctx, config, meters, bucket, meta, handle, decision);
  } finally {
    await handle.close().catch(() => {});
  }
}

async function send(ctx: HttpContext, config: ObjectsConfig, meters: ObjectsMeters, bucket: string, meta: ObjectMeta, handle: FileHandle, decision: RangeDecision): Promise<void> {
  const { req, res } = ctx;
  const head = req.method === 'HEAD';
  const common = {
    'content-type': meta.contentType,
    etag: meta.etag,
    'last-modified': new Date(meta.mtime).toUTCString(),
    'accept-ranges': 'bytes',
  };
  try {
    if (decision.kind === 'single') {
      const { start, end } = decision.range;
      res.writeHead(206, { ...common, 'content-range': `bytes ${start}-${end}/${meta.size}`, 'content-length': end - start + 1 });
      if (head) return void res.end();
      await streamRange(handle, start, end - start + 1, res, config.streamChunk, true);
      return;
    }
    if (decision.kind === 'multi') {
      const layout = multipartLayout(decision.ranges, meta.size, meta.contentType, randomBytes(12).toString('hex'));
      res.writeHead(206, { ...common, 'content-type': layout.contentType, 'content-length': layout.length });
      if (head) return void res.end();
      for (const p of layout.parts) {
        if (!res.write(p.head)) await drained(res);
        await streamRange(handle, p.range.start, p.range.end - p.range.start + 1, res, config.streamChunk, false);
      }
      res.end(layout.tail);
      return;
    }
    res.writeHead(200, { ...common, 'content-length': meta.size, 'x-amz-checksum-sha256': Buffer.from(meta.sha256, 'hex').toString('base64') });
    if (head || meta.size === 0) return void res.end();
    if (config.verifyOnRead !== 'stream') {
      await streamRange(handle, 0, meta.size, res, config.streamChunk, true);
      return;
    }
    // The last bytes are held back until the hash is known: with every byte written, a client
    // reading to Content-Length would take a corrupt body for a whole one.
    const hash = createHash('sha256');
    const tailLength = Math.min(meta.size, HELD_BACK);
    await streamRange(handle, 0, meta.size - tailLength, res, config.streamChunk, false, (bytes) => hash.update(bytes));
    const tail = Buffer.allocUnsafe(tailLength);
    const { bytesRead } = await handle.read(tail, 0, tailLength, meta.size - tailLength);
    hash.update(tail.subarray(0, bytesRead));
    if (bytesRead !== tailLength || hash.digest('hex') !== meta.sha256) {
      reportCorrupt(ctx.log, meters, bucket, meta.key, 'sha256 of the body differs from the stored one; connection cut before the end');
      res.destroy();
      return;
    }
    res.end(tail);
  } catch (err) {
    ctx.log.debug({ err: (err as Error).message, bucket, key: meta.key }, 'objects: transfer ended early');
    res.destroy();
  }
}

async function hashFile(handle: FileHandle, size: number, chunk: number): Promise<string> {
  const hash = createHash('sha256');
  const buf = Buffer.allocUnsafe(Math.max(1, Math.min(chunk, size)));
  let pos = 0;
  while (pos < size) {
    const { bytesRead } = await handle.read(buf, 0, Math.min(buf.length, size - pos), pos);
    if (bytesRead === 0) break;
    hash.update(buf.subarray(0, bytesRead));
    pos += bytesRead;
  }
  return hash.digest('hex');
}

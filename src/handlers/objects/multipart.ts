import { createHash, randomBytes } from 'node:crypto';
import { mkdir, open, readdir, readFile, rename, rm, stat, unlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import { BodyAbortedError, BodyTooLargeError, readBody } from '../http/body.ts';
import { replyJson } from '../http/reply.ts';
import type { HttpContext } from '../types.ts';
import type { ObjectsConfig } from './config.ts';
import { contentTypeOf, receiveChecked } from './put.ts';
import { refuse } from './reply.ts';
import { TooLargeError, type ObjectStore } from './store.ts';

// Multipart uploads, S3's four calls with a JSON body where S3 takes XML:
//
//   POST   /<bucket>/<key>?uploads                      -> { uploadId }
//   PUT    /<bucket>/<key>?partNumber=N&uploadId=ID     -> ETag of the part (its SHA-256)
//   POST   /<bucket>/<key>?uploadId=ID  { "parts": [{ "partNumber": 1, "etag": "..." }, ...] }
//   DELETE /<bucket>/<key>?uploadId=ID                  -> 204
//
// An upload is a folder in .staging/uploads/<ID>/ holding upload.json (bucket, key, content
// type, when it began) and one file per part, `<N>.<sha256>.part`: the part's checksum is in
// its name, so a part and its checksum land together in one rename. Sending a part number
// again replaces it. Complete streams the listed parts, in order, into one temp file (each
// part's hash checked on the way), then commits it like a PUT: the object appears whole or not
// at all. Uploads older than `multipart.uploadTimeout` are removed by a sweep that runs when the
// handler starts and then every tenth of the timeout (at most every 10 minutes).

const ID = /^[0-9a-f]{32}$/;
const PART_FILE = /^(\d{1,5})\.([0-9a-f]{64})\.part$/;
/** Largest completion body (a list of 10,000 parts is about 1 MB). */
const MAX_COMPLETE_BODY = 2 * 1024 * 1024;
const MAX_SWEEP_EVERY = 10 * 60 * 1000;

interface Upload {
  readonly bucket: string;
  readonly key: string;
  readonly contentType: string;
  /** ms since the epoch */
  readonly created: number;
}

export class Multipart {
  /** Uploads being completed or aborted right now: parts for them are refused. */
  private readonly busy = new Set<string>();
  private readonly timer: NodeJS.Timeout;

  constructor(
    private readonly store: ObjectStore,
    private readonly config: ObjectsConfig,
    private readonly log: Logger,
  ) {
    const every = Math.min(MAX_SWEEP_EVERY, Math.max(1000, Math.floor(config.multipart.uploadTimeout / 10)));
    this.timer = setInterval(() => void this.sweep(), every);
    this.timer.unref();
    void this.sweep();
  }

  close(): void {
    clearInterval(this.timer);
  }

  async initiate(ctx: HttpContext, bucket: string, key: string): Promise<void> {
    const { res } = ctx;
    const contentType = contentTypeOf(ctx);
    if (contentType === undefined) return refuse(res, 400, 'InvalidArgument', 'Content-Type is too long');
    if (!(await this.store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
    const open = await readdir(this.store.uploadsDir);
    if (open.length >= this.config.multipart.maxUploads) {
      return refuse(res, 503, 'SlowDown', `${open.length} multipart uploads are open (multipart.maxUploads); complete or abort some`, { headers: { 'retry-after': '60' } });
    }
    const uploadId = randomBytes(16).toString('hex');
    const upload: Upload = { bucket, key, contentType, created: Date.now() };
    const dir = join(this.store.uploadsDir, uploadId);
    await mkdir(dir);
    await writeFile(join(dir, 'upload.json'), JSON.stringify(upload));
    replyJson(res, 200, { bucket, key, uploadId });
  }

  async uploadPart(ctx: HttpContext, bucket: string, key: string, uploadId: string, partNumberText: string): Promise<void> {
    const { res } = ctx;
    const partNumber = Number(partNumberText);
    if (!/^\d{1,5}$/.test(partNumberText) || partNumber < 1 || partNumber > this.config.multipart.maxParts) {
      return refuse(res, 400, 'InvalidArgument', `partNumber must be a whole number from 1 to ${this.config.multipart.maxParts}`, { close: true });
    }
    const upload = await this.find(uploadId, bucket, key);
    if (upload === undefined || this.busy.has(uploadId)) return refuse(res, 404, 'NoSuchUpload', 'no such upload (completed, aborted, expired, or for another key)', { close: true });
    const temp = await receiveChecked(ctx, this.store, this.config.multipart.maxPartSize);
    if (temp === undefined) return;
    const dir = join(this.store.uploadsDir, uploadId);
    const sha = temp.sha256.toString('hex');
    const name = `${partNumber}.${sha}.part`;
    try {
      await rename(temp.path, join(dir, name));
    } catch (err) {
      await this.store.discard(temp);
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return refuse(res, 404, 'NoSuchUpload', 'the upload ended while the part was sent');
      throw err;
    }
    for (const other of await readdir(dir).catch(() => [] as string[])) {
      const m = PART_FILE.exec(other);
      if (m && Number(m[1]) === partNumber && other !== name) await unlink(join(dir, other)).catch(() => {});
    }
    res.writeHead(200, { etag: `"${sha}"`, 'x-amz-checksum-sha256': temp.sha256.toString('base64'), 'content-length': 0 });
    res.end();
  }

  async complete(ctx: HttpContext, bucket: string, key: string, segments: readonly string[], uploadId: string): Promise<void> {
    const { req, res } = ctx;
    let body: Buffer;
    try {
      body = await readBody(req, MAX_COMPLETE_BODY);
    } catch (err) {
      if (err instanceof BodyTooLargeError) return refuse(res, 413, 'EntityTooLarge', `the part list is larger than ${MAX_COMPLETE_BODY} bytes`, { close: true });
      if (err instanceof BodyAbortedError) return;
      throw err;
    }
    const wanted = parsePartList(body, this.config.multipart.maxParts);
    if (typeof wanted === 'string') return refuse(res, 400, 'MalformedPartList', wanted);
    const upload = await this.find(uploadId, bucket, key);
    if (upload === undefined || this.busy.has(uploadId)) return refuse(res, 404, 'NoSuchUpload', 'no such upload (completed, aborted, expired, or for another key)');
    if (!(await this.store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
    this.busy.add(uploadId);
    try {
      const dir = join(this.store.uploadsDir, uploadId);
      const have = new Map<number, { file: string; sha256: string }>();
      for (const name of await readdir(dir)) {
        const m = PART_FILE.exec(name);
        if (m) have.set(Number(m[1]), { file: join(dir, name), sha256: m[2] });
      }
      const parts: { file: string; sha256: string; partNumber: number }[] = [];
      for (const w of wanted) {
        const p = have.get(w.partNumber);
        if (p === undefined) return refuse(res, 400, 'InvalidPart', `part ${w.partNumber} was not uploaded`);
        if (w.etag !== undefined && w.etag.replace(/"/g, '') !== p.sha256) return refuse(res, 400, 'InvalidPart', `part ${w.partNumber}'s etag is not the one stored`);
        parts.push({ ...p, partNumber: w.partNumber });
      }
      let total = 0;
      for (const p of parts) total += (await stat(p.file)).size;
      if (total > this.config.maxObjectSize) return refuse(res, 413, 'EntityTooLarge', `the parts add up to more than ${this.config.maxObjectSize} bytes`);
      let temp;
      try {
        temp = await this.store.receive(concatenate(parts, this.config.streamChunk), this.config.maxObjectSize, { md5: false, expected: total });
      } catch (err) {
        if (err instanceof CorruptPartError) {
          this.log.error({ uploadId, part: err.partNumber }, 'objects: a stored part does not match its checksum');
          return refuse(res, 500, 'CorruptObject', `part ${err.partNumber} does not match its checksum; upload it again`);
        }
        if (err instanceof TooLargeError) return refuse(res, 413, 'EntityTooLarge', `the parts add up to more than ${this.config.maxObjectSize} bytes`);
        throw err;
      }
      const meta = await this.store.commit(bucket, key, segments, temp, upload.contentType);
      await rm(dir, { recursive: true, force: true });
      replyJson(res, 200, { bucket, key, etag: meta.etag, size: meta.size, checksumSha256: temp.sha256.toString('base64') }, { etag: meta.etag });
    } finally {
      this.busy.delete(uploadId);
    }
  }

  async abort(ctx: HttpContext, bucket: string, key: string, uploadId: string): Promise<void> {
    const upload = await this.find(uploadId, bucket, key);
    if (upload === undefined || this.busy.has(uploadId)) return refuse(ctx.res, 404, 'NoSuchUpload', 'no such upload (completed, aborted, expired, or for another key)');
    await rm(join(this.store.uploadsDir, uploadId), { recursive: true, force: true });
    ctx.res.writeHead(204);
    ctx.res.end();
  }

  /** Removes uploads older than the timeout (and folders without a readable upload.json of that age). */
  async sweep(): Promise<number> {
    const now = Date.now();
    let removed = 0;
    try {
      for (const id of await readdir(this.store.uploadsDir)) {
        if (this.busy.has(id)) continue;
        const dir = join(this.store.uploadsDir, id);
        const upload = await readUpload(dir);
        const since = upload?.created ?? (await stat(dir).catch(() => undefined))?.mtimeMs ?? 0;
        if (now - since < this.config.multipart.uploadTimeout) continue;
        await rm(dir, { recursive: true, force: true });
        removed++;
      }
    } catch (err) {
      this.log.warn({ err: (err as Error).message }, 'objects: sweeping old multipart uploads failed');
    }
    if (removed > 0) this.log.info({ removed }, 'objects: removed multipart uploads past multipart.uploadTimeout');
    return removed;
  }

  private async find(uploadId: string, bucket: string, key: string): Promise<Upload | undefined> {
    if (!ID.test(uploadId)) return undefined;
    const upload = await readUpload(join(this.store.uploadsDir, uploadId));
    if (upload === undefined || upload.bucket !== bucket || upload.key !== key) return undefined;
    if (Date.now() - upload.created >= this.config.multipart.uploadTimeout) return undefined;
    return upload;
  }
}

async function readUpload(dir: string): Promise<Upload | undefined> {
  try {
    return JSON.parse(await readFile(join(dir, 'upload.json'), 'utf8')) as Upload;
  } catch {
    return undefined;
  }
}

class CorruptPartError extends Error {
  override readonly name = 'CorruptPartError';
  constructor(readonly partNumber: number) {
    super(`part ${partNumber} does not match its checksum`);
  }
}

/** The parts' bytes in order, one reused buffer; each part's SHA-256 is checked at its end. */
async function* concatenate(parts: readonly { file: string; sha256: string; partNumber: number }[], chunk: number): AsyncGenerator<Buffer> {
  const buf = Buffer.allocUnsafe(chunk);
  for (const p of parts) {
    const handle = await open(p.file, 'r');
    const hash = createHash('sha256');
    try {
      for (;;) {
        const { bytesRead } = await handle.read(buf, 0, buf.length, null);
        if (bytesRead === 0) break;
        const data = buf.subarray(0, bytesRead);
        hash.update(data);
        yield data;
      }
    } finally {
      await handle.close();
    }
    if (hash.digest('hex') !== p.sha256) throw new CorruptPartError(p.partNumber);
  }
}

/** The completion body's part list, strictly ascending part numbers; or what is wrong with it. */
function parsePartList(body: Buffer, maxParts: number): { partNumber: number; etag?: string }[] | string {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch {
    return 'the body is not JSON: expected {"parts":[{"partNumber":1,"etag":"..."}]}';
  }
  const parts = (value as { parts?: unknown })?.parts;
  if (!Array.isArray(parts) || parts.length === 0) return 'expected {"parts":[{"partNumber":1,"etag":"..."}, ...]} with at least one part';
  if (parts.length > maxParts) return `more than ${maxParts} parts`;
  const out: { partNumber: number; etag?: string }[] = [];
  let previous = 0;
  for (const p of parts as { partNumber?: unknown; etag?: unknown }[]) {
    if (typeof p?.partNumber !== 'number' || !Number.isInteger(p.partNumber) || p.partNumber <= previous) return 'part numbers must be whole numbers in ascending order, each once';
    if (p.etag !== undefined && typeof p.etag !== 'string') return 'a part etag must be a string';
    previous = p.partNumber;
    out.push({ partNumber: p.partNumber, ...(typeof p.etag === 'string' ? { etag: p.etag } : {}) });
  }
  return out;
}

import { replyJson } from '../http/reply.ts';
import type { HttpContext, HttpHandler } from '../types.ts';
import type { ObjectsConfig } from './config.ts';
import { getObject } from './get.ts';
import { bucketProblem, checkKey, decodeOnce } from './keys.ts';
import { listObjects } from './list.ts';
import type { Multipart } from './multipart.ts';
import { putObject } from './put.ts';
import { refuse, type ObjectsMeters } from './reply.ts';
import type { ObjectStore } from './store.ts';

// Which operation a request is, by method, path and query (S3's addressing, path style):
//
//   GET    /                               the bucket names (JSON)
//   PUT    /<bucket>                       create the bucket (200; 200 again when it exists)
//   HEAD   /<bucket>                       200 when it exists, 404 NoSuchBucket otherwise
//   GET    /<bucket>?list-type=2&...       list keys (list.ts)
//   DELETE /<bucket>                       204; 409 BucketNotEmpty while it holds keys
//   PUT    /<bucket>/<key>                 store (put.ts); 404 NoSuchBucket when the bucket is missing
//   GET    /<bucket>/<key>, HEAD           read (get.ts)
//   DELETE /<bucket>/<key>                 204, also when there was no such key (as S3)
//   ...?uploads, ?uploadId=, ?partNumber=  multipart uploads (multipart.ts)

export class ObjectsHandler implements HttpHandler {
  constructor(
    private readonly store: ObjectStore,
    private readonly multipart: Multipart,
    private readonly config: ObjectsConfig,
    private readonly meters: ObjectsMeters,
  ) {}

  async handle(ctx: HttpContext): Promise<void> {
    try {
      await this.route(ctx);
    } catch (err) {
      ctx.log.error({ err }, 'objects: request failed');
      if (!ctx.res.headersSent) refuse(ctx.res, 500, 'InternalError', 'the store could not complete the request', { close: true });
      else ctx.res.destroy();
    }
  }

  close(): void {
    this.multipart.close();
  }

  private async route(ctx: HttpContext): Promise<void> {
    const { req, res } = ctx;
    const method = req.method ?? 'GET';
    const q = (req.url ?? '').indexOf('?');
    const query = new URLSearchParams(q === -1 ? '' : (req.url ?? '').slice(q + 1));
    const path = ctx.pathRest;
    if (path === '/') {
      if (method !== 'GET' && method !== 'HEAD') return refuse(res, 405, 'MethodNotAllowed', 'only GET lists the buckets', { headers: { allow: 'GET, HEAD' } });
      return replyJson(res, 200, { buckets: (await this.store.listBuckets()).map((name) => ({ name })) });
    }
    const slash = path.indexOf('/', 1);
    const bucket = decodeOnce(slash === -1 ? path.slice(1) : path.slice(1, slash));
    const rawKey = slash === -1 ? '' : path.slice(slash + 1);
    if (bucket === undefined) return refuse(res, 400, 'InvalidBucketName', 'the bucket name is not valid percent-encoded UTF-8', { close: true });
    const bucketBad = bucketProblem(bucket);
    if (bucketBad !== undefined) return refuse(res, 400, 'InvalidBucketName', bucketBad, { close: true });
    if (rawKey === '') return this.bucketOperation(ctx, method, bucket, query);

    const key = decodeOnce(rawKey);
    if (key === undefined) return refuse(res, 400, 'InvalidKey', 'the key is not valid percent-encoded UTF-8', { close: true });
    const checked = checkKey(key, this.config.maxKeyLength);
    if (!checked.ok) return refuse(res, 400, 'InvalidKey', checked.reason, { close: true });
    const uploadId = query.get('uploadId');
    switch (method) {
      case 'PUT':
        if (uploadId !== null) return this.multipart.uploadPart(ctx, bucket, key, uploadId, query.get('partNumber') ?? '');
        return putObject(ctx, this.store, this.config, bucket, key, checked.segments);
      case 'POST':
        if (query.has('uploads')) return this.multipart.initiate(ctx, bucket, key);
        if (uploadId !== null) return this.multipart.complete(ctx, bucket, key, checked.segments, uploadId);
        return refuse(res, 400, 'InvalidRequest', 'POST to a key takes ?uploads or ?uploadId=', { close: true });
      case 'DELETE':
        if (uploadId !== null) return this.multipart.abort(ctx, bucket, key, uploadId);
        if (!(await this.store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
        await this.store.delete(bucket, key, checked.segments);
        res.writeHead(204);
        res.end();
        return;
      case 'GET':
      case 'HEAD':
        return getObject(ctx, this.store, this.config, this.meters, bucket, key, checked.segments);
      default:
        return refuse(res, 405, 'MethodNotAllowed', `${method} is not an object operation`, { headers: { allow: 'GET, HEAD, PUT, POST, DELETE' }, close: true });
    }
  }

  private async bucketOperation(ctx: HttpContext, method: string, bucket: string, query: URLSearchParams): Promise<void> {
    const { res } = ctx;
    switch (method) {
      case 'PUT': {
        const created = await this.store.createBucket(bucket);
        res.writeHead(200, { location: `/${bucket}`, 'content-length': 0, 'x-objects-bucket': created ? 'created' : 'exists' });
        res.end();
        return;
      }
      case 'HEAD':
        if (!(await this.store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
        res.writeHead(200);
        res.end();
        return;
      case 'GET':
        return listObjects(ctx, this.store, this.config, bucket, query);
      case 'DELETE': {
        const done = await this.store.deleteBucket(bucket);
        if (done === 'missing') return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist`);
        if (done === 'not-empty') return refuse(res, 409, 'BucketNotEmpty', 'the bucket still holds keys');
        res.writeHead(204);
        res.end();
        return;
      }
      default:
        return refuse(res, 405, 'MethodNotAllowed', `${method} is not a bucket operation`, { headers: { allow: 'GET, HEAD, PUT, DELETE' }, close: true });
    }
  }
}

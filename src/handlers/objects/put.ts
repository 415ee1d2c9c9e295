import type { HttpContext } from '../types.ts';
import type { ObjectsConfig } from './config.ts';
import { refuse } from './reply.ts';
import { ShortBodyError, TooLargeError, type ObjectStore, type TempBody } from './store.ts';

// PUT /<bucket>/<key>: the body is received into a temp file (store.receive), checked against
// the checksums the client sent, and only then committed. A client that sends more than
// `maxObjectSize` gets 413 before anything is read when Content-Length says so, and as soon
// as the limit is crossed otherwise; a body that does not match `x-amz-checksum-sha256` or
// `Content-MD5` gets 400 BadDigest; nothing is stored in either case.

/** Longest Content-Type stored with an object. */
const MAX_CONTENT_TYPE = 256;

export interface ClientDigests {
  readonly sha256?: Buffer;
  readonly md5?: Buffer;
}

/** The digests the client sent, or the reason one is malformed (answered with 400 InvalidDigest). */
export function clientDigests(headers: HttpContext['req']['headers']): ClientDigests | string {
  const out: { sha256?: Buffer; md5?: Buffer } = {};
  const sha = headers['x-amz-checksum-sha256'];
  if (typeof sha === 'string') {
    out.sha256 = decodeBase64(sha, 32);
    if (!out.sha256) return 'x-amz-checksum-sha256 is not the base64 of 32 bytes';
  }
  const md5 = headers['content-md5'];
  if (typeof md5 === 'string') {
    out.md5 = decodeBase64(md5, 16);
    if (!out.md5) return 'Content-MD5 is not the base64 of 16 bytes';
  }
  return out;
}

function decodeBase64(value: string, bytes: number): Buffer | undefined {
  const v = value.trim();
  if (!/^[A-Za-z0-9+/]+={0,2}$/.test(v)) return undefined;
  const buf = Buffer.from(v, 'base64');
  return buf.length === bytes ? buf : undefined;
}

/**
 * Receives the request body into a temp file within `limit`, checking the client's digests.
 * Answers the refusal itself and returns undefined when the body is not to be kept.
 */
export async function receiveChecked(ctx: HttpContext, store: ObjectStore, limit: number): Promise<TempBody | undefined> {
  const { req, res } = ctx;
  const digests = clientDigests(req.headers);
  if (typeof digests === 'string') {
    refuse(res, 400, 'InvalidDigest', digests, { close: true });
    return undefined;
  }
  const lengthHeader = req.headers['content-length'];
  let expected: number | undefined;
  if (lengthHeader !== undefined) {
    expected = Number(lengthHeader);
    if (!Number.isSafeInteger(expected) || expected < 0) {
      refuse(res, 400, 'InvalidRequest', 'Content-Length is not a number', { close: true });
      return undefined;
    }
    if (expected > limit) {
      refuse(res, 413, 'EntityTooLarge', `the body is larger than the limit of ${limit} bytes`, { close: true });
      return undefined;
    }
  }
  let temp: TempBody;
  try {
    temp = await store.receive(req, limit, { md5: digests.md5 !== undefined, expected });
  } catch (err) {
    if (err instanceof TooLargeError) {
      refuse(res, 413, 'EntityTooLarge', `the body is larger than the limit of ${limit} bytes`, { close: true });
      return undefined;
    }
    if (err instanceof ShortBodyError || req.destroyed || res.destroyed) {
      ctx.log.info({ err: (err as Error).message }, 'objects: upload ended before its body did; nothing stored');
      if (!res.destroyed) refuse(res, 400, 'IncompleteBody', 'the body ended before Content-Length bytes', { close: true });
      return undefined;
    }
    throw err;
  }
  const bad =
    digests.sha256 && !digests.sha256.equals(temp.sha256) ? 'x-amz-checksum-sha256' : digests.md5 && temp.md5 && !digests.md5.equals(temp.md5) ? 'Content-MD5' : undefined;
  if (bad !== undefined) {
    await store.discard(temp);
    refuse(res, 400, 'BadDigest', `the body does not match ${bad}; nothing was stored`);
    return undefined;
  }
  return temp;
}

export function contentTypeOf(ctx: HttpContext): string | undefined {
  const type = ctx.req.headers['content-type'];
  if (type === undefined) return 'application/octet-stream';
  if (type.length > MAX_CONTENT_TYPE || /[\r\n]/.test(type)) return undefined;
  return type;
}

export async function putObject(ctx: HttpContext, store: ObjectStore, config: ObjectsConfig, bucket: string, key: string, segments: readonly string[]): Promise<void> {
  const { res } = ctx;
  const contentType = contentTypeOf(ctx);
  if (contentType === undefined) return refuse(res, 400, 'InvalidArgument', `Content-Type is longer than ${MAX_CONTENT_TYPE} characters`, { close: true });
  if (!(await store.bucketExists(bucket))) return refuse(res, 404, 'NoSuchBucket', `bucket ${bucket} does not exist (create it with PUT /${bucket})`, { close: true });
  const temp = await receiveChecked(ctx, store, config.maxObjectSize);
  if (temp === undefined) return;
  const meta = await store.commit(bucket, key, segments, temp, contentType);
  res.writeHead(200, { etag: meta.etag, 'x-amz-checksum-sha256': temp.sha256.toString('base64'), 'content-length': 0 });
  res.end();
}

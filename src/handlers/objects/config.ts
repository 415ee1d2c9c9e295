import { z } from 'zod';
import { duration, size } from '../../config/units.ts';

// The `objects` handler's config: an object store under one directory. Every limit has a default
// so that a config with only `root` is safe to expose.

const multipartSchema = z.strictObject({
  /** Largest single part of a multipart upload. */
  maxPartSize: size().default(512 * 1024 * 1024),
  /** Most parts one multipart upload may have (part numbers run from 1 to this). */
  maxParts: z.number().int().min(1).max(10_000).default(10_000),
  /** An upload neither completed nor aborted within this long is removed with its parts. */
  uploadTimeout: duration().default(24 * 60 * 60 * 1000),
  /** Multipart uploads in progress at once; initiating one more answers 503. */
  maxUploads: z.number().int().min(1).max(100_000).default(1000),
});

export const objectsSchema = z.strictObject({
  type: z.literal('objects'),
  /** Directory holding the buckets (created when missing). Relative paths are taken from the config file's folder. */
  root: z.string().min(1),
  /** Largest object a PUT (or a completed multipart upload) may store; larger answers 413. */
  maxObjectSize: size().default(5 * 1024 * 1024 * 1024),
  /** Longest key accepted, in UTF-8 bytes. */
  maxKeyLength: z.number().int().min(1).max(1024).default(1024),
  /**
   * Checking stored bytes against their SHA-256 when reading:
   * `stream` hashes whole-object GETs while sending and cuts the connection when the end does
   * not match (the client sees a truncated transfer); `full` hashes the whole object before
   * sending anything, for GET, ranged GET and HEAD alike, and answers 500 when it does not match
   * (one extra read of the object per request); `none` checks only the size.
   */
  verifyOnRead: z.enum(['stream', 'full', 'none']).default('stream'),
  /** Most keys (and common prefixes) one list page returns; `max-keys` may ask for fewer. */
  maxListKeys: z.number().int().min(1).max(10_000).default(1000),
  /** Read size when sending an object (and so the most a slow client makes us hold per transfer). */
  streamChunk: size().pipe(z.number().int().min(4096).max(8 * 1024 * 1024)).default(256 * 1024),
  /** Ranges in one request served as multipart/byteranges; more answers 200 with the whole object. */
  maxRanges: z.number().int().min(1).max(256).default(16),
  /** fsync objects and their directories before answering a write (off only for throwaway data). */
  fsync: z.boolean().default(true),
  multipart: multipartSchema.prefault({}),
});

export type ObjectsConfig = z.output<typeof objectsSchema>;

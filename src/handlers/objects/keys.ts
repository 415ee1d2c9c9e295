// Bucket names and object keys: what a client may ask for, and where it lives on disk.
//
// Bucket names follow S3's rules (3-63 of a-z 0-9 . -, starting and ending with a letter or
// digit), so a bucket can never be `.staging` or contain a separator.
//
// A key is percent-decoded once (so `%2F` is a `/` of the key, as in S3) and must be valid
// UTF-8. It is split at `/` into segments; each becomes one directory level, so the store never
// holds more names in one directory than the clients put there. Refused (400): an empty key,
// empty segments (`a//b`, a leading or trailing `/`), `.` and `..` segments, control characters
// (NUL included), a key longer than `maxKeyLength` bytes or a segment longer than
// MAX_SEGMENT_BYTES (a file name is at most 255 bytes and ours carry a suffix).
//
// On disk every name carries a kind suffix, so a key `a` and a key `a/b` never collide:
//   <segment>.d          directory of the keys below `<prefix><segment>/`
//   <segment>.m          the object's metadata (JSON): the commit point of a write
//   <segment>.<id>.b     one stored body; the metadata names the current one

/** Longest key segment (the part between two `/`), in UTF-8 bytes. */
export const MAX_SEGMENT_BYTES = 200;

const BUCKET = /^[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]$/;
// eslint-disable-next-line no-control-regex
const CONTROL = /[\u0000-\u001f\u007f]/;

export const DIR_SUFFIX = '.d';
export const META_SUFFIX = '.m';
export const BODY_SUFFIX = '.b';

export type KeyCheck = { readonly ok: true; readonly segments: readonly string[] } | { readonly ok: false; readonly reason: string };

export function bucketProblem(name: string): string | undefined {
  if (!BUCKET.test(name)) return 'bucket names are 3-63 characters of a-z, 0-9, "." and "-", starting and ending with a letter or digit';
  if (name.includes('..')) return 'bucket names may not contain ".."';
  return undefined;
}

/** Checks a decoded key and splits it into its directory segments. */
export function checkKey(key: string, maxKeyLength: number): KeyCheck {
  if (key.length === 0) return { ok: false, reason: 'the key is empty' };
  if (Buffer.byteLength(key) > maxKeyLength) return { ok: false, reason: `the key is longer than ${maxKeyLength} bytes` };
  if (CONTROL.test(key)) return { ok: false, reason: 'the key contains a control character' };
  const segments = key.split('/');
  for (const s of segments) {
    if (s === '') return { ok: false, reason: 'the key has an empty segment (a leading, trailing or doubled "/")' };
    if (s === '.' || s === '..') return { ok: false, reason: 'the key has a "." or ".." segment' };
    if (Buffer.byteLength(s) > MAX_SEGMENT_BYTES) return { ok: false, reason: `a key segment is longer than ${MAX_SEGMENT_BYTES} bytes` };
  }
  return { ok: true, segments };
}

/** Percent-decodes a URL path piece once; undefined for a bad escape or invalid UTF-8. */
export function decodeOnce(raw: string): string | undefined {
  try {
    return decodeURIComponent(raw);
  } catch {
    return undefined;
  }
}

/** Where a key lives, relative to its bucket's directory: parent directories, and the last segment. */
export interface KeyPlace {
  /** Directory names below the bucket (`a.d`, `b.d`) for key `a/b/c`. */
  readonly dirs: readonly string[];
  /** Last segment (`c`). */
  readonly name: string;
}

export function keyPlace(segments: readonly string[]): KeyPlace {
  return { dirs: segments.slice(0, -1).map((s) => s + DIR_SUFFIX), name: segments[segments.length - 1] };
}

/** Byte order of UTF-8 (S3 lists keys in it), not JavaScript's UTF-16 order. */
export function compareKeys(a: string, b: string): number {
  return Buffer.compare(Buffer.from(a), Buffer.from(b));
}

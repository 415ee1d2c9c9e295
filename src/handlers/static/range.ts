// Byte ranges (RFC 9110 §14). What a Range header asks for, decided against the
// representation's size:
//   none           no header, another unit, bad syntax, or abuse -> 200 with the whole body
//   single         one satisfiable range -> 206 with Content-Range
//   multi          several satisfiable, non-overlapping ranges -> 206 multipart/byteranges
//   unsatisfiable  no range overlaps the body -> 416 with `Content-Range: bytes */size`
//
// Multi-range policy: served as multipart/byteranges in the order asked, up to `maxRanges`
// parts. More parts than that, or parts that overlap each other, or parts that add up to more
// than the body itself are the shape of a range-amplification attack (CVE-2011-3192) and get the
// whole body with 200 instead, which the RFC allows ("a server MAY ignore the Range header").

export interface ByteRange {
  /** First byte, inclusive. */
  readonly start: number;
  /** Last byte, inclusive. */
  readonly end: number;
}

export type RangeDecision =
  | { readonly kind: 'none' }
  | { readonly kind: 'single'; readonly range: ByteRange }
  | { readonly kind: 'multi'; readonly ranges: readonly ByteRange[] }
  | { readonly kind: 'unsatisfiable' };

const NONE: RangeDecision = { kind: 'none' };
const UNSATISFIABLE: RangeDecision = { kind: 'unsatisfiable' };
/** A Range header longer than this is not worth parsing: it is ignored. */
const MAX_HEADER = 1024;
const SPEC = /^(\d{0,15})-(\d{0,15})$/;

export function decideRange(header: string | undefined, size: number, maxRanges: number): RangeDecision {
  if (header === undefined || header.length > MAX_HEADER) return NONE;
  const eq = header.indexOf('=');
  if (eq === -1 || header.slice(0, eq).trim().toLowerCase() !== 'bytes') return NONE;
  const wanted: ByteRange[] = [];
  let specs = 0;
  for (const part of header.slice(eq + 1).split(',')) {
    const spec = part.trim();
    if (spec === '') continue;
    if (++specs > maxRanges) return NONE;
    const m = SPEC.exec(spec);
    if (!m || (m[1] === '' && m[2] === '')) return NONE;
    if (m[1] === '') {
      const suffix = Number(m[2]);
      if (suffix > 0 && size > 0) wanted.push({ start: Math.max(0, size - suffix), end: size - 1 });
      continue;
    }
    const start = Number(m[1]);
    const last = m[2] === '' ? Infinity : Number(m[2]);
    if (last < start) return NONE;
    if (start < size) wanted.push({ start, end: Math.min(last, size - 1) });
  }
  if (specs === 0) return NONE;
  if (wanted.length === 0) return UNSATISFIABLE;
  if (wanted.length === 1) return { kind: 'single', range: wanted[0] };
  if (overlapsOrBloats(wanted, size)) return NONE;
  return { kind: 'multi', ranges: wanted };
}

function overlapsOrBloats(ranges: readonly ByteRange[], size: number): boolean {
  const sorted = [...ranges].sort((a, b) => a.start - b.start);
  let total = 0;
  for (let i = 0; i < sorted.length; i++) {
    total += sorted[i].end - sorted[i].start + 1;
    if (i > 0 && sorted[i].start <= sorted[i - 1].end) return true;
  }
  return total > size;
}

/** Framing for a multipart/byteranges body: each part's header, and the closing delimiter. */
export interface MultipartLayout {
  readonly contentType: string;
  readonly parts: readonly { readonly head: Buffer; readonly range: ByteRange }[];
  readonly tail: Buffer;
  readonly length: number;
}

export function multipartLayout(ranges: readonly ByteRange[], size: number, partType: string, boundary: string): MultipartLayout {
  let length = 0;
  const parts = ranges.map((range) => {
    const head = Buffer.from(`\r\n--${boundary}\r\ncontent-type: ${partType}\r\ncontent-range: bytes ${range.start}-${range.end}/${size}\r\n\r\n`, 'latin1');
    length += head.length + range.end - range.start + 1;
    return { head, range };
  });
  const tail = Buffer.from(`\r\n--${boundary}--\r\n`, 'latin1');
  length += tail.length;
  return { contentType: `multipart/byteranges; boundary=${boundary}`, parts, tail, length };
}

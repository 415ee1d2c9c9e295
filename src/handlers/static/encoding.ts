// Choosing a precompressed sibling (`x.js.br`, `x.js.gz`) by Accept-Encoding (RFC 9110 §12.5.3):
// q-values are honoured (q=0 refuses a coding), `*` stands for codings not named, and on equal
// q brotli wins because it is smaller. Parsed results are memoised by header text: browsers
// send a handful of distinct values, and this runs on every request for a compressible file.

export type Coding = 'br' | 'gzip';

export interface AcceptedCodings {
  readonly br: number;
  readonly gzip: number;
}

const NOTHING: AcceptedCodings = { br: 0, gzip: 0 };
const memo = new Map<string, AcceptedCodings>();
const MEMO_MAX = 256;
const MAX_HEADER = 512;

export function acceptedCodings(header: string | undefined): AcceptedCodings {
  if (!header || header.length > MAX_HEADER) return NOTHING;
  const hit = memo.get(header);
  if (hit) return hit;
  let br: number | undefined;
  let gzip: number | undefined;
  let star: number | undefined;
  for (const item of header.split(',')) {
    const [name, ...params] = item.split(';');
    let q = 1;
    for (const p of params) {
      const m = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i.exec(p);
      if (m) q = Math.min(1, Number(m[1]));
    }
    const coding = name.trim().toLowerCase();
    if (coding === 'br') br = q;
    else if (coding === 'gzip' || coding === 'x-gzip') gzip = q;
    else if (coding === '*') star = q;
  }
  const result = { br: br ?? star ?? 0, gzip: gzip ?? star ?? 0 };
  if (memo.size >= MEMO_MAX) memo.clear();
  memo.set(header, result);
  return result;
}

/** The best coding among those available, or undefined for the identity representation. */
export function chooseCoding(accepted: AcceptedCodings, hasBr: boolean, hasGzip: boolean): Coding | undefined {
  const br = hasBr ? accepted.br : 0;
  const gz = hasGzip ? accepted.gzip : 0;
  if (br > 0 && br >= gz) return 'br';
  if (gz > 0) return 'gzip';
  return undefined;
}

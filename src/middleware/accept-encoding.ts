// Choosing a content coding from Accept-Encoding (RFC 9110 §12.5.3) among those the server
// offers: q-values are honoured (q=0 refuses a coding), `*` stands for every coding not named,
// `x-gzip` is gzip. The highest q wins; on equal q the server's order decides. Results are
// memoised per header text: browsers send a handful of distinct values.

/** The codings the compress middleware can produce. */
export type Encoding = 'zstd' | 'br' | 'gzip';

const MEMO_MAX = 256;
/** Longer headers are not parsed (no client sends one this long); the response stays identity. */
const MAX_HEADER = 1024;
const Q = /^\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*$/i;

export class EncodingNegotiator {
  private readonly memo = new Map<string, Encoding | null>();

  /** `offered`: the codings this server may use, most preferred first. */
  constructor(private readonly offered: readonly Encoding[]) {}

  /** The coding to use for a request with this Accept-Encoding, or undefined for identity. */
  choose(header: string | undefined): Encoding | undefined {
    if (!header || header.length > MAX_HEADER) return undefined;
    const hit = this.memo.get(header);
    if (hit !== undefined) return hit ?? undefined;
    const chosen = this.parse(header);
    if (this.memo.size >= MEMO_MAX) this.memo.clear();
    this.memo.set(header, chosen ?? null);
    return chosen;
  }

  private parse(header: string): Encoding | undefined {
    const named = new Map<string, number>();
    let star: number | undefined;
    for (const item of header.split(',')) {
      const [name, ...params] = item.split(';');
      let q = 1;
      for (const p of params) {
        const m = Q.exec(p);
        if (m) q = Math.min(1, Number(m[1]));
      }
      let coding = name.trim().toLowerCase();
      if (coding === 'x-gzip') coding = 'gzip';
      if (coding === '*') star = q;
      else if (coding !== '') named.set(coding, Math.max(q, named.get(coding) ?? 0));
    }
    let best: Encoding | undefined;
    let bestQ = 0;
    for (const coding of this.offered) {
      const q = named.get(coding) ?? star ?? 0;
      if (q > bestQ) {
        best = coding;
        bestQ = q;
      }
    }
    return best;
  }
}

import type { Target } from '../target.ts';
import { hash32, rehash } from './hash.ts';
import type { HashKey } from './hash-key.ts';
import { Stamps } from './stamps.ts';
import type { Balancer, PickContext } from './types.ts';
import { integerWeights } from './weights.ts';

/** Default lookup table size: a prime well above 100 x the targets of any sane group. */
export const MAGLEV_TABLE_SIZE = 65537;

const OFFSET_SEED = 0x5bd1e995;
const SKIP_SEED = 0x27d4eb2f;
/** Rehash probes for a key whose target is ineligible before scanning the list. */
const PROBES = 32;

/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016): a lookup table of prime size M filled
 * by the targets in turn, each claiming the next free slot of its own permutation
 * (offset + j * skip) mod M, with offset and skip from two hashes of its id. Weighted: per round
 * a target takes a turn weight / max-weight of the time, so its share of slots follows its
 * weight. A key is one table lookup. An ineligible target's keys are re-probed into the table
 * (so they spread over the others by weight) and the others' keys stay where they are.
 * O(1) per pick, no allocation; the table is built once.
 */
export class MaglevBalancer implements Balancer {
  private readonly targets: readonly Target[];
  /** Target index per slot. */
  private readonly table: Int32Array;
  private readonly refused: Stamps;

  constructor(
    targets: readonly Target[],
    private readonly key: HashKey,
    tableSize = MAGLEV_TABLE_SIZE,
  ) {
    this.targets = targets.slice();
    const n = this.targets.length;
    const m = nextPrime(Math.max(tableSize, 100 * n));
    this.table = new Int32Array(n === 0 ? 0 : m).fill(-1);
    this.refused = new Stamps(n);
    if (n === 0) return;

    const ws = integerWeights(this.targets);
    let maxW = 0;
    for (const w of ws) maxW = Math.max(maxW, w);
    const offset = new Float64Array(n);
    const skip = new Float64Array(n);
    const next = new Float64Array(n);
    const credit = new Float64Array(n);
    for (let i = 0; i < n; i++) {
      const id = this.targets[i].id;
      offset[i] = hash32(id, OFFSET_SEED) % m;
      skip[i] = (hash32(id, SKIP_SEED) % (m - 1)) + 1;
    }
    const table = this.table;
    let filled = 0;
    fill: for (;;) {
      for (let i = 0; i < n; i++) {
        credit[i] += ws[i];
        if (credit[i] < maxW) continue;
        credit[i] -= maxW;
        let c = (offset[i] + next[i] * skip[i]) % m;
        while (table[c] >= 0) {
          next[i]++;
          c = (offset[i] + next[i] * skip[i]) % m;
        }
        table[c] = i;
        next[i]++;
        if (++filled === m) break fill;
      }
    }
  }

  /** Slots in the lookup table. */
  get size(): number {
    return this.table.length;
  }

  pick(ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined {
    const table = this.table;
    const m = table.length;
    if (m === 0) return undefined;
    const ts = this.targets;
    const h = this.key.hash(ctx);
    const home = table[h % m];
    if (eligible(ts[home])) return ts[home];

    const n = ts.length;
    const refused = this.refused;
    refused.begin();
    refused.set(home);
    let count = 1;
    for (let k = 0; k < PROBES && count < n; k++) {
      const i = table[rehash(h, k) % m];
      if (refused.has(i)) continue;
      if (eligible(ts[i])) return ts[i];
      refused.set(i);
      count++;
    }
    for (let c = 1, i = home; c < n && count < n; c++) {
      i = i + 1 === n ? 0 : i + 1;
      if (refused.has(i)) continue;
      if (eligible(ts[i])) return ts[i];
      refused.set(i);
      count++;
    }
    return undefined;
  }
}

function nextPrime(x: number): number {
  let p = Math.max(2, Math.ceil(x));
  while (!isPrime(p)) p++;
  return p;
}

function isPrime(p: number): boolean {
  if (p < 4) return p >= 2;
  if (p % 2 === 0) return false;
  for (let d = 3; d * d <= p; d += 2) if (p % d === 0) return false;
  return true;
}

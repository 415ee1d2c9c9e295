import type { Target } from '../target.ts';
import { hash32 } from './hash.ts';
import type { HashKey } from './hash-key.ts';
import { Stamps } from './stamps.ts';
import type { Balancer, PickContext } from './types.ts';
import { weightOf } from './weights.ts';

/** Virtual nodes per target of average weight (ketama's classic 160). */
export const KETAMA_POINTS = 160;

/**
 * Consistent hashing on a ketama ring: each target owns points hashed from `id-i` (count scaled
 * by weight: 160 for a target of average weight, at least 1); a key goes to the first point
 * clockwise from its hash (binary search). An ineligible target's points are walked past, which
 * is exactly the ring without it: only its keys move, spread over the others, and everyone
 * else's keys stay. A point's place depends only on its target's id, so the ring is stable
 * across restarts and list order. O(log points) per pick, no allocation.
 */
export class KetamaBalancer implements Balancer {
  private readonly targets: readonly Target[];
  /** Sorted point hashes. */
  private readonly ring: Uint32Array;
  /** Target index of each point. */
  private readonly owner: Int32Array;
  private readonly refused: Stamps;

  constructor(
    targets: readonly Target[],
    private readonly key: HashKey,
    pointsPerTarget = KETAMA_POINTS,
  ) {
    this.targets = targets.slice();
    const n = this.targets.length;
    let totalWeight = 0;
    for (const t of this.targets) totalWeight += weightOf(t);
    const points: { h: number; i: number }[] = [];
    for (let i = 0; i < n; i++) {
      const t = this.targets[i];
      const count = Math.max(1, Math.round((pointsPerTarget * n * weightOf(t)) / totalWeight));
      for (let j = 0; j < count; j++) points.push({ h: hash32(`${t.id}-${j}`), i });
    }
    // Equal hashes (rare) are ordered by target id so the ring does not depend on list order.
    points.sort((a, b) => a.h - b.h || (this.targets[a.i].id < this.targets[b.i].id ? -1 : this.targets[a.i].id > this.targets[b.i].id ? 1 : 0));
    this.ring = Uint32Array.from(points, (p) => p.h);
    this.owner = Int32Array.from(points, (p) => p.i);
    this.refused = new Stamps(n);
  }

  /** Number of points on the ring. */
  get size(): number {
    return this.ring.length;
  }

  pick(ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined {
    const ring = this.ring;
    const len = ring.length;
    if (len === 0) return undefined;
    const h = this.key.hash(ctx);
    let lo = 0;
    let hi = len;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (ring[mid] < h) lo = mid + 1;
      else hi = mid;
    }
    let p = lo === len ? 0 : lo;
    const ts = this.targets;
    const owner = this.owner;
    const first = ts[owner[p]];
    if (eligible(first)) return first;

    // Walk clockwise past refused targets; stop once every target has refused.
    const n = ts.length;
    const refused = this.refused;
    refused.begin();
    refused.set(owner[p]);
    let count = 1;
    for (let c = 1; c < len && count < n; c++) {
      p = p + 1 === len ? 0 : p + 1;
      const i = owner[p];
      if (refused.has(i)) continue;
      if (eligible(ts[i])) return ts[i];
      refused.set(i);
      count++;
    }
    return undefined;
  }
}

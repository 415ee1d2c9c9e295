import type { Target } from '../target.ts';
import type { Balancer, PickContext, Random } from './types.ts';
import { weightOf } from './weights.ts';

/**
 * Random power of two choices: two distinct eligible targets drawn uniformly at random, the one
 * with the lower inFlight / weight wins (a tie goes to the first drawn, itself random).
 * O(1) when both draws are eligible; otherwise one exact fallback over the group (count the
 * eligible, draw two ranks, find them), which keeps the pair uniform over the eligible ones.
 */
export class P2CBalancer implements Balancer {
  private readonly targets: readonly Target[];
  private readonly weights: Float64Array;

  constructor(
    targets: readonly Target[],
    private readonly random: Random = Math.random,
  ) {
    this.targets = targets.slice();
    this.weights = Float64Array.from(this.targets, weightOf);
  }

  pick(_ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined {
    const ts = this.targets;
    const n = ts.length;
    if (n <= 1) return n === 1 && eligible(ts[0]) ? ts[0] : undefined;
    const r = this.random;
    let a = draw(r, n);
    let b = draw(r, n - 1);
    if (b >= a) b++;
    if (eligible(ts[a]) && eligible(ts[b])) return this.better(a, b);

    let k = 0;
    let only = -1;
    for (let i = 0; i < n; i++) {
      if (eligible(ts[i])) {
        k++;
        only = i;
      }
    }
    if (k <= 1) return k === 1 ? ts[only] : undefined;
    let ra = draw(r, k);
    let rb = draw(r, k - 1);
    if (rb >= ra) rb++;
    a = -1;
    b = -1;
    for (let i = 0, rank = 0; i < n && (a < 0 || b < 0); i++) {
      if (!eligible(ts[i])) continue;
      if (rank === ra) a = i;
      else if (rank === rb) b = i;
      rank++;
    }
    return this.better(a, b);
  }

  private better(a: number, b: number): Target {
    const ta = this.targets[a];
    const tb = this.targets[b];
    return ta.inFlight * this.weights[b] <= tb.inFlight * this.weights[a] ? ta : tb;
  }
}

/** Uniform integer in [0, n). */
function draw(r: Random, n: number): number {
  const i = Math.floor(r() * n);
  return i < n ? i : n - 1;
}

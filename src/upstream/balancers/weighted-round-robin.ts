import type { Target } from '../target.ts';
import type { Balancer, PickContext } from './types.ts';
import { weightOf } from './weights.ts';

/**
 * Smooth weighted round-robin, nginx's algorithm: every eligible target's current weight grows
 * by its weight, the largest is picked and loses the total. Shares are exactly proportional
 * (the sequence repeats every sum-of-weights picks) and interleaved: weights 5,1,1 give
 * a a b a c a a. Ineligible targets are left out of the pick: their current weight is untouched.
 * O(n) per pick (n is the group's size), no allocation.
 */
export class WeightedRoundRobinBalancer implements Balancer {
  private readonly targets: readonly Target[];
  private readonly weights: Float64Array;
  private readonly current: Float64Array;

  constructor(targets: readonly Target[]) {
    this.targets = targets.slice();
    this.weights = Float64Array.from(this.targets, weightOf);
    this.current = new Float64Array(this.targets.length);
  }

  pick(_ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined {
    const ts = this.targets;
    const w = this.weights;
    const cur = this.current;
    let total = 0;
    let best = -1;
    for (let i = 0; i < ts.length; i++) {
      if (!eligible(ts[i])) continue;
      cur[i] += w[i];
      total += w[i];
      if (best < 0 || cur[i] > cur[best]) best = i;
    }
    if (best < 0) return undefined;
    cur[best] -= total;
    return ts[best];
  }
}

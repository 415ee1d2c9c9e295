import type { Target } from '../target.ts';
import type { Balancer, PickContext } from './types.ts';
import { weightOf } from './weights.ts';

/**
 * Weighted least connections: the eligible target with the lowest inFlight / weight (compared by
 * cross-multiplying, no division). Ties are shared by smooth weighted round-robin among the tied
 * targets, like nginx's least_conn, so an idle group is not all sent to the first target.
 * Two passes over the group, no allocation.
 */
export class LeastConnectionsBalancer implements Balancer {
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
    const n = ts.length;
    let best = -1;
    let ties = 0;
    for (let i = 0; i < n; i++) {
      const t = ts[i];
      if (!eligible(t)) continue;
      if (best < 0) {
        best = i;
        ties = 1;
        continue;
      }
      const a = t.inFlight * w[best];
      const b = ts[best].inFlight * w[i];
      if (a < b) {
        best = i;
        ties = 1;
      } else if (a === b) ties++;
    }
    if (ties <= 1) return best < 0 ? undefined : ts[best];

    // Smooth weighted round-robin among the tied (best is the first of them in list order).
    const cur = this.current;
    const load = ts[best].inFlight;
    const wb = w[best];
    let total = 0;
    let pick = -1;
    for (let i = best; i < n; i++) {
      const t = ts[i];
      if (t.inFlight * wb !== load * w[i] || !eligible(t)) continue;
      cur[i] += w[i];
      total += w[i];
      if (pick < 0 || cur[i] > cur[pick]) pick = i;
    }
    cur[pick] -= total;
    return ts[pick];
  }
}

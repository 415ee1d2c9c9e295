import type { Target } from '../target.ts';
import type { Balancer, PickContext } from './types.ts';

/** Plain round-robin: each eligible target in turn, weights ignored. O(1) when all are eligible. */
export class RoundRobinBalancer implements Balancer {
  private readonly targets: readonly Target[];
  private next = 0;

  constructor(targets: readonly Target[]) {
    this.targets = targets.slice();
  }

  pick(_ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined {
    const ts = this.targets;
    const n = ts.length;
    let i = this.next;
    for (let c = 0; c < n; c++) {
      const t = ts[i];
      i = i + 1 === n ? 0 : i + 1;
      if (eligible(t)) {
        this.next = i;
        return t;
      }
    }
    return undefined;
  }
}

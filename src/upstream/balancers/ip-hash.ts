import type { Target } from '../target.ts';
import { hashIp, rehash } from './hash.ts';
import { Stamps } from './stamps.ts';
import type { Balancer, PickContext } from './types.ts';
import { integerWeights } from './weights.ts';

/** Rehash probes tried before the deterministic scan (nginx's ip_hash tries 20). */
const PROBES = 20;

/**
 * IP hash: the client's address (IPv4-mapped IPv6 folded onto IPv4) hashed onto a weighted slot
 * table, so a client keeps its target and shares follow weights. When that target is
 * ineligible the hash is re-probed (spreading its clients over the others, whose own clients do
 * not move), then the targets after it are scanned in order. Deterministic for a given set of
 * eligible targets. O(1) per pick in the common case, no allocation.
 */
export class IpHashBalancer implements Balancer {
  private readonly targets: readonly Target[];
  /** Target index per slot; target i owns weight(i) slots (weights reduced by their gcd). */
  private readonly slots: Int32Array;
  private readonly refused: Stamps;

  constructor(targets: readonly Target[]) {
    this.targets = targets.slice();
    const ws = integerWeights(this.targets);
    let total = 0;
    for (const w of ws) total += w;
    this.slots = new Int32Array(total);
    this.refused = new Stamps(this.targets.length);
    for (let i = 0, s = 0; i < ws.length; i++) for (let j = 0; j < ws[i]; j++) this.slots[s++] = i;
  }

  pick(ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined {
    const ts = this.targets;
    const n = ts.length;
    if (n === 0) return undefined;
    const slots = this.slots;
    const h = hashIp(ctx.clientIp);
    const home = slots[h % slots.length];
    if (eligible(ts[home])) return ts[home];
    const refused = this.refused;
    refused.begin();
    refused.set(home);
    let count = 1;
    for (let k = 0; k < PROBES && count < n; k++) {
      const i = slots[rehash(h, k) % slots.length];
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

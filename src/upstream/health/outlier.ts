import type { OutlierConfig } from '../config.ts';
import type { Target } from '../target.ts';

// Passive outlier detection (Envoy's consecutive-5xx): a target that fails `consecutiveFailures`
// times in a row is ejected for baseEjectionTime x times ejected, capped at maxEjectionTime.
// At most floor(maxEjectPercent% of the group) targets are ejected at once; a target that
// reaches the threshold while the cap is full is ejected on its next failure after room frees.
// The multiplier decays (Envoy's ejection multiplier does too): for every baseEjectionTime a
// target spends back in service, one past ejection is forgotten, so a target that failed once
// long ago is not punished with the maximum ejection time for its next, unrelated bad minute.

export class OutlierDetector {
  /** Consecutive failures per target, by `Target.index`. */
  private readonly consecutive: Uint32Array;
  /** Per target (by index): the time up to which its ejection count has been decayed. */
  private readonly decayedTo: Float64Array;
  private readonly maxEjected: number;

  constructor(
    private readonly config: OutlierConfig,
    private readonly targets: readonly Target[],
    private readonly now: () => number = Date.now,
    private readonly onEject?: (t: Target, untilMs: number) => void,
  ) {
    let size = targets.length;
    for (const t of targets) size = Math.max(size, t.index + 1);
    this.consecutive = new Uint32Array(size);
    this.decayedTo = new Float64Array(size);
    this.maxEjected = Math.floor((targets.length * config.maxEjectPercent) / 100);
  }

  /** A good answer: the run of failures is over. */
  onSuccess(t: Target): void {
    if (t.index < this.consecutive.length) this.consecutive[t.index] = 0;
  }

  /** A 5xx answer or a connect failure. */
  onFailure(t: Target): void {
    if (t.index >= this.consecutive.length) return;
    const now = this.now();
    // Answers still arriving from requests sent before the ejection do not extend it.
    if (t.ejectedUntil > now) return;
    this.decay(t, now);
    const n = this.consecutive[t.index] < 0xffffffff ? ++this.consecutive[t.index] : this.consecutive[t.index];
    if (n < this.config.consecutiveFailures) return;
    if (this.ejectedCount(now) >= this.maxEjected) return;
    this.consecutive[t.index] = 0;
    t.ejections++;
    const until = now + Math.min(this.config.baseEjectionTime * t.ejections, this.config.maxEjectionTime);
    t.ejectedUntil = until;
    this.onEject?.(t, until);
  }

  /** Forgets one past ejection of `t` per baseEjectionTime it has been back in service. */
  decay(t: Target, now: number = this.now()): void {
    if (t.ejections === 0 || t.index >= this.decayedTo.length || this.config.baseEjectionTime <= 0) return;
    const since = Math.max(t.ejectedUntil, this.decayedTo[t.index]);
    if (now <= since) return;
    const steps = Math.floor((now - since) / this.config.baseEjectionTime);
    if (steps === 0) return;
    t.ejections = Math.max(0, t.ejections - steps);
    this.decayedTo[t.index] = since + steps * this.config.baseEjectionTime;
  }

  private ejectedCount(now: number): number {
    let n = 0;
    for (const t of this.targets) if (t.ejectedUntil > now) n++;
    return n;
  }
}

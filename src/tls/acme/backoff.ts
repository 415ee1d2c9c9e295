// Waits after failed orders: doubling from min, at most max, with jitter so that daemons that
// failed together (a CA outage) do not all come back in the same second.

export interface BackoffPolicy {
  minMs: number;
  maxMs: number;
}

/**
 * The wait after the `failures`-th failure in a row (1 for the first): min * 2^(failures-1),
 * capped at max, then a random point in its upper half, never below min.
 */
export function backoffDelay(policy: BackoffPolicy, failures: number, random: () => number = Math.random): number {
  const exp = Math.min(Math.max(0, failures - 1), 40);
  const ceiling = Math.min(policy.maxMs, policy.minMs * 2 ** exp);
  const jittered = ceiling / 2 + (random() * ceiling) / 2;
  return Math.round(Math.min(policy.maxMs, Math.max(policy.minMs, jittered)));
}

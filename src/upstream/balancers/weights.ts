import type { Target } from '../target.ts';

/** A target's weight as balancers use it: a positive finite number (anything else counts as 1). */
export function weightOf(t: Target): number {
  const w = t.weight;
  return Number.isFinite(w) && w > 0 ? w : 1;
}

/** Weights as positive integers (rounded, at least 1) divided by their greatest common divisor. */
export function integerWeights(targets: readonly Target[]): number[] {
  const ws = targets.map((t) => Math.max(1, Math.round(weightOf(t))));
  let g = 0;
  for (const w of ws) g = gcd(g, w);
  return g > 1 ? ws.map((w) => w / g) : ws;
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

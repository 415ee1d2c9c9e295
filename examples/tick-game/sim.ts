// The movement rule, the one thing server and clients must compute identically: the page's
// prediction (public/game.js, `step`) is this function written again in plain JavaScript, so a
// change here is a change there.

export interface Vec {
  x: number;
  y: number;
}

export interface Rules {
  /** Units a player moves per second at full input. */
  readonly speed: number;
  readonly tickRate: number;
  readonly width: number;
  readonly height: number;
}

/** Positions are kept to two decimals so that both sides round the same way and deltas compare exactly. */
function round2(v: number): number {
  return Math.round(v * 100) / 100;
}

/**
 * One input applied for one tick. The input is clamped to a unit vector first: a client sending
 * dx: 50 moves no faster than one holding a key.
 */
export function step(pos: Vec, dx: number, dy: number, rules: Rules): Vec {
  const len = Math.hypot(dx, dy);
  if (len > 1) {
    dx /= len;
    dy /= len;
  }
  const d = rules.speed / rules.tickRate;
  return {
    x: round2(Math.min(rules.width, Math.max(0, pos.x + dx * d))),
    y: round2(Math.min(rules.height, Math.max(0, pos.y + dy * d))),
  };
}

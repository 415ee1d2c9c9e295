import type { Target } from '../target.ts';

/** What a balancer may key on for one request or connection. */
export interface PickContext {
  /** The client's address (IP-hash, consistent hash on client-ip). */
  readonly clientIp: string;
  /** Request path (consistent hash on path); '' for L4. */
  readonly path: string;
  /** A request header, lower-case name; undefined for L4 or when absent. */
  header(name: string): string | undefined;
  /** A cookie's value; undefined for L4 or when absent. */
  cookie(name: string): string | undefined;
}

/**
 * Chooses a target. `eligible` says which targets may be chosen now (healthy, not ejected, not
 * already tried for this request); a balancer never returns one it refuses, and returns
 * undefined only when none is eligible.
 */
export interface Balancer {
  pick(ctx: PickContext, eligible: (t: Target) => boolean): Target | undefined;
}

/** A seedable source of uniform numbers in [0, 1), so tests of distributions are repeatable. */
export type Random = () => number;

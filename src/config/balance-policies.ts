// The names of the upstream balance policies, without the upstream schema (zod) around them: the
// command line offers them as the choices of `reverse-proxy --lb` before anything else loads.
// upstream/config.ts builds the schema from this list.

/** How an upstream group spreads requests over its targets (`upstreams.NAME.balance` in a config). */
export const balancePolicies = ['round-robin', 'weighted-round-robin', 'least-connections', 'ip-hash', 'consistent-hash', 'p2c'] as const;

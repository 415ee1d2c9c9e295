// Balancers: pure modules choosing a target per request or connection. See types.ts for the
// contract; each policy lives in its own file.

import type { BalancePolicy, HashConfig } from '../config.ts';
import type { Target } from '../target.ts';
import { HashKey } from './hash-key.ts';
import { IpHashBalancer } from './ip-hash.ts';
import { KetamaBalancer } from './ketama.ts';
import { LeastConnectionsBalancer } from './least-connections.ts';
import { MaglevBalancer } from './maglev.ts';
import { P2CBalancer } from './p2c.ts';
import { RoundRobinBalancer } from './round-robin.ts';
import type { Balancer, Random } from './types.ts';
import { WeightedRoundRobinBalancer } from './weighted-round-robin.ts';

export type { Balancer, PickContext, Random } from './types.ts';
export { RoundRobinBalancer } from './round-robin.ts';
export { WeightedRoundRobinBalancer } from './weighted-round-robin.ts';
export { LeastConnectionsBalancer } from './least-connections.ts';
export { IpHashBalancer } from './ip-hash.ts';
export { HashKey } from './hash-key.ts';
export { KetamaBalancer, KETAMA_POINTS } from './ketama.ts';
export { MaglevBalancer, MAGLEV_TABLE_SIZE } from './maglev.ts';
export { P2CBalancer } from './p2c.ts';
export { mulberry32 } from './random.ts';
export { hash32 } from './hash.ts';

/** The balancer for a group's policy. Tables (ring, Maglev, slots) are built here, once. */
export function createBalancer(policy: BalancePolicy, hash: HashConfig, targets: readonly Target[], random: Random = Math.random): Balancer {
  switch (policy) {
    case 'round-robin':
      return new RoundRobinBalancer(targets);
    case 'weighted-round-robin':
      return new WeightedRoundRobinBalancer(targets);
    case 'least-connections':
      return new LeastConnectionsBalancer(targets);
    case 'ip-hash':
      return new IpHashBalancer(targets);
    case 'consistent-hash':
      return hash.algorithm === 'maglev' ? new MaglevBalancer(targets, new HashKey(hash)) : new KetamaBalancer(targets, new HashKey(hash));
    case 'p2c':
      return new P2CBalancer(targets, random);
  }
}

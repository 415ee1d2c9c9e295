import type { YardView } from '../types.ts';
import { primaryLink } from '../../yard/workers.ts';
import { mergeUpstreams } from './cluster.ts';

/**
 * GET /upstreams: every group's live state (UpstreamGroup.state()) as `{ upstreams }`; in a worker
 * of a primary, with what every worker reports added (cluster.ts mergeUpstreams). Shared by the
 * admin handler and the `upstreams` handler, so that both answer for the whole daemon.
 */
export async function upstreamsView(yard: YardView): Promise<object> {
  const own = yard.upstreams().map((g) => g.state());
  const link = primaryLink();
  if (!link) return { upstreams: own };
  return mergeUpstreams(own, await link.collect<object[]>('upstreams'));
}

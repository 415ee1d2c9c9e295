// The one place that reaches into @matrixai/quic: its napi binding of Cloudflare quiche. The
// package's own JS layer (QUICServer, QUICStream over web streams, an event per packet) is not
// used: it moved about 1-17 MB/s here, while quiche itself is not the limit. This module drives
// quiche directly (see endpoint.ts, connection.ts).

import { createRequire } from 'node:module';
import { native } from '@matrixai/quic';
import type {
  Config as QuicheConfig,
  Connection as QuicheConnection,
  ConnectionError as QuicheConnectionError,
  Header as QuicheHeader,
  Host as HostPort,
  Stats as QuicheStats,
} from '@matrixai/quic/native/types.js';

export type { QuicheConfig, QuicheConnection, QuicheConnectionError, QuicheHeader, HostPort, QuicheStats };

export const quiche = native.quiche;

checkBindingVersion();

/**
 * @matrixai/quic 2.0.9 was published with a prebuilt binding for linux-x64 only; the project's
 * npm overrides pin the other platforms' optional packages to their last published version
 * (1.2.12) so that `npm ci` works everywhere. An older binding under the new JavaScript would
 * fail in odd ways at first use, so it is refused here, and loadQuic (load.ts) reports QUIC as
 * unavailable on that platform.
 */
function checkBindingVersion(): void {
  const require = createRequire(import.meta.url);
  const wanted = (require('@matrixai/quic/package.json') as { version: string }).version;
  for (const target of [`${process.platform}-${process.arch}`, `${process.platform}-universal`]) {
    let version: string;
    try {
      version = (require(`@matrixai/quic-${target}/package.json`) as { version: string }).version;
    } catch {
      continue;
    }
    if (version !== wanted) throw new Error(`quiche's native binding for ${target} is version ${version}; @matrixai/quic ${wanted} needs its own (none is published for this platform)`);
    return;
  }
}

/** Connection ids this endpoint hands out: the longest QUIC allows, so short headers parse with one length. */
export const CID_LENGTH = quiche.MAX_CONN_ID_LEN;

export const SHUTDOWN_READ = quiche.Shutdown.Read;
export const SHUTDOWN_WRITE = quiche.Shutdown.Write;

export const PACKET_INITIAL = quiche.Type.Initial;
export const PACKET_ZERO_RTT = quiche.Type.ZeroRTT;

/** The code quiche put in an error's message (`StreamReset(12)`, `StreamStopped(0)`), or undefined. */
export function streamErrorCode(err: unknown, kind: 'StreamReset' | 'StreamStopped'): number | undefined {
  const message = err instanceof Error ? err.message : '';
  const m = new RegExp(`${kind}\\((\\d{1,16})\\)`).exec(message);
  return m ? Number(m[1]) : undefined;
}

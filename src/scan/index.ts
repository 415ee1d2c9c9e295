// A TCP connect and UDP port scanner: `switchyard scan` and the library's `scan()` (docs/scan.md).

import { runScan, type HostReport, type ScanOptions, type ScanSummary } from './run.ts';

export { runScan, type HostReport, type PortReport, type ScanOptions, type ScanProgress, type ScanStart, type ScanSummary } from './run.ts';
export { parsePorts, topPorts, MAX_PORT } from './ports.ts';
export { parseTargets, resolveTargets, hostCount, ScanUsageError, DEFAULT_MAX_HOSTS, type TargetSpec, type ScanHost } from './targets.ts';
export { scanFormatter, progressLine, type OutputFormat, type ScanFormatter, type ScanHeader } from './output.ts';
export { serviceName, COMMON_TCP_PORTS, COMMON_UDP_PORTS } from './services.ts';
export { grabBanner, bannerSummary, TLS_PORTS, HTTP_PORTS, type Banner, type TlsFacts, type HttpFacts } from './banner.ts';
export { probeTcp, LocalShortageError, type TcpProbe } from './tcp-connect.ts';
export { probeUdp, udpPayload, UDP_PROTOCOLS, type UdpProbeResult } from './udp-probes.ts';
export { sanitizeRemoteText } from './sanitize.ts';
export type { PortState, StateReason } from './states.ts';

/**
 * Scans the targets and resolves with every host's report, in target order, and the summary.
 * Scan only hosts you own or are allowed to test.
 */
export async function scan(options: Omit<ScanOptions, 'onHost'>): Promise<{ hosts: HostReport[]; summary: ScanSummary }> {
  const hosts: HostReport[] = [];
  const summary = await runScan({ ...options, onHost: (h) => hosts.push(h) });
  return { hosts, summary };
}

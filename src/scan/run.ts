import { setTimeout as sleep } from 'node:timers/promises';
import { grabBanner, type Banner } from './banner.ts';
import { RatePacer, UNPACED, type Pacer } from './pacer.ts';
import { topPorts } from './ports.ts';
import { serviceName } from './services.ts';
import type { PortState, StateReason } from './states.ts';
import { DEFAULT_MAX_HOSTS, parseTargets, resolveTargets, ScanUsageError, type ScanHost } from './targets.ts';
import { LocalShortageError, probeTcp, type TcpProbe } from './tcp-connect.ts';
import { probeUdp } from './udp-probes.ts';

// The scan itself: (host, port) pairs made one at a time as slots free up (a /16 times every port
// is never a list), at most `concurrency` probes in flight, each attempt paced by the rate limit,
// a host reported once its last port is done, hosts in the order they were written.

export interface ScanOptions {
  /** Hosts as written: addresses, names, CIDR blocks (`HOST[,HOST|CIDR]` items). */
  targets: readonly string[];
  /** Ports to probe; default: the common ports of the protocol. */
  ports?: readonly number[];
  /** `tcp`: connect scan. `udp`: UDP probes. */
  protocol?: 'tcp' | 'udp';
  /** Probes in flight at once (default 256). */
  concurrency?: number;
  /** How long one attempt waits for an answer, ms (default 1000). */
  timeoutMs?: number;
  /** Further attempts after one that got no answer (default 1). */
  retries?: number;
  /** Attempts (connections, datagrams) per second at most; default: no limit but concurrency. */
  rate?: number;
  /** Refuse targets covering more addresses than this (default 65536). */
  maxHosts?: number;
  /** Read what open TCP ports say about themselves (first bytes, HTTP Server header, TLS certificate). */
  banner?: boolean;
  /** The banner grab's time limit per port, ms (default 2000). */
  bannerTimeoutMs?: number;
  /** The most bytes of a banner kept (default 256). */
  bannerBytes?: number;
  /** With `banner`, handshake TLS on every open port, not only the usual TLS ports. */
  tls?: boolean;
  /**
   * Stops the scan: no new probes start, banner grabs are cut short, probes in flight end within
   * their timeouts; hosts not finished are not reported.
   */
  signal?: AbortSignal;
  /** Called once the targets are resolved and counted, before the first probe. */
  onStart?: (start: ScanStart) => void;
  /** Called with each finished host, in target order. */
  onHost?: (host: HostReport) => void;
  /** Called at most every `progressIntervalMs` while the scan runs. */
  onProgress?: (progress: ScanProgress) => void;
  /** Default 1000. */
  progressIntervalMs?: number;
}

export interface PortReport {
  port: number;
  protocol: 'tcp' | 'udp';
  state: PortState;
  reason: StateReason;
  /** The service usually on this port (a label from the port number, not a detection). */
  service: string;
  /** With --banner: what an open TCP port said. */
  banner?: Banner;
  /** UDP: what the reply said. */
  reply?: string;
}

export interface HostReport {
  address: string;
  /** The name the address was resolved from, when the target was a name. */
  name?: string;
  /** Ports in a state of 25 ports or fewer on this host, and every open one, by port number. */
  ports: PortReport[];
  /** States left out of `ports` because so many ports share them: how many, and why. */
  notShown: { state: PortState; count: number; reasons: Partial<Record<StateReason, number>> }[];
  /** Ports per state, all of them. */
  counts: Partial<Record<PortState, number>>;
}

export interface ScanProgress {
  probesDone: number;
  probesTotal: number;
  hostsDone: number;
  hostsTotal: number;
  open: number;
  elapsedMs: number;
}

export interface ScanStart {
  protocol: 'tcp' | 'udp';
  hostsTotal: number;
  ports: readonly number[];
  startedAt: Date;
}

export interface ScanSummary {
  protocol: 'tcp' | 'udp';
  hostsTotal: number;
  hostsDone: number;
  ports: readonly number[];
  startedAt: Date;
  elapsedMs: number;
  /** The scan was stopped before every probe ran. */
  interrupted: boolean;
}

/** A state shared by more ports than this on one host is summarised, as nmap does. */
const SHOW_LIMIT = 25;
/** Out of sockets: wait this long between tries, and give up after this many. */
const SHORTAGE_WAIT_MS = 100;
const SHORTAGE_TRIES = 50;

interface HostProgress {
  host: ScanHost;
  results: (PortReport | undefined)[];
  remaining: number;
}

function summarise(progress: HostProgress): HostReport {
  const counts: Partial<Record<PortState, number>> = {};
  for (const r of progress.results) if (r) counts[r.state] = (counts[r.state] ?? 0) + 1;
  const hidden = new Set((Object.keys(counts) as PortState[]).filter((s) => s !== 'open' && (counts[s] ?? 0) > SHOW_LIMIT));
  const notShown: HostReport['notShown'] = [];
  for (const state of hidden) {
    const reasons: Partial<Record<StateReason, number>> = {};
    for (const r of progress.results) if (r?.state === state) reasons[r.reason] = (reasons[r.reason] ?? 0) + 1;
    notShown.push({ state, count: counts[state] ?? 0, reasons });
  }
  const ports = progress.results.filter((r): r is PortReport => r !== undefined && !hidden.has(r.state));
  const report: HostReport = { address: progress.host.address, ports, notShown, counts };
  if (progress.host.name !== undefined) report.name = progress.host.name;
  return report;
}

function positiveInt(value: number | undefined, fallback: number, name: string, max: number): number {
  if (value === undefined) return fallback;
  if (!Number.isInteger(value) || value < 0 || value > max || (value === 0 && name !== 'retries')) {
    throw new ScanUsageError(`${name}: expected a whole number from ${name === 'retries' ? 0 : 1} to ${max}, got ${value}`);
  }
  return value;
}

/**
 * Runs a scan, handing each finished host to `onHost`. Resolves with the summary once every
 * probe has ended (or the signal stopped it). Throws ScanUsageError for bad options or targets,
 * before anything is sent.
 */
export async function runScan(options: ScanOptions): Promise<ScanSummary> {
  const protocol = options.protocol ?? 'tcp';
  const ports = options.ports ?? topPorts(protocol);
  if (ports.length === 0) throw new ScanUsageError('no ports to scan');
  const concurrency = positiveInt(options.concurrency, 256, 'concurrency', 16384);
  const timeoutMs = positiveInt(options.timeoutMs, 1000, 'timeout', 600_000);
  const retries = positiveInt(options.retries, 1, 'retries', 10);
  const bannerTimeoutMs = positiveInt(options.bannerTimeoutMs, 2000, 'banner timeout', 600_000);
  const bannerBytes = positiveInt(options.bannerBytes, 256, 'banner bytes', 65536);
  const maxHosts = positiveInt(options.maxHosts, DEFAULT_MAX_HOSTS, 'max hosts', 2 ** 32);
  if (options.rate !== undefined && !(options.rate > 0 && Number.isFinite(options.rate))) throw new ScanUsageError(`rate: expected a positive number of attempts per second, got ${options.rate}`);
  const targets = await resolveTargets(parseTargets(options.targets), maxHosts);
  const pacer: Pacer = options.rate !== undefined ? new RatePacer(options.rate) : UNPACED;
  const pace = (): Promise<void> => pacer.wait();
  const startedAt = new Date();
  const started = performance.now();
  const signal = options.signal;
  options.onStart?.({ protocol, hostsTotal: targets.count, ports, startedAt });

  const probesTotal = targets.count * ports.length;
  let probesDone = 0;
  let hostsDone = 0;
  let open = 0;
  const finished = new Map<number, HostReport>();
  let nextToReport = 0;

  function* jobs(): Generator<{ progress: HostProgress; slot: number; port: number }> {
    for (const host of targets.hosts()) {
      const progress: HostProgress = { host, results: new Array<PortReport | undefined>(ports.length), remaining: ports.length };
      for (let slot = 0; slot < ports.length; slot++) yield { progress, slot, port: ports[slot] as number };
    }
  }

  const probeOne = async (address: string, port: number): Promise<PortReport> => {
    for (let shortage = 0; ; shortage++) {
      try {
        return await probeOnce(address, port);
      } catch (err) {
        if (!(err instanceof LocalShortageError) || shortage >= SHORTAGE_TRIES) throw err;
        await sleep(SHORTAGE_WAIT_MS);
      }
    }
  };

  const probeOnce = async (address: string, port: number): Promise<PortReport> => {
    const service = serviceName(protocol, port);
    if (protocol === 'udp') {
      const r = await probeUdp(address, port, { timeoutMs, tries: retries + 1, pace });
      return r.reply !== undefined ? { port, protocol, state: r.state, reason: r.reason, service, reply: r.reply } : { port, protocol, state: r.state, reason: r.reason, service };
    }
    let outcome: TcpProbe = { state: 'filtered', reason: 'no-response' };
    for (let attempt = 0; attempt <= retries; attempt++) {
      await pace();
      outcome = await probeTcp(address, port, { timeoutMs, keepOpen: options.banner === true });
      if (outcome.reason !== 'no-response') break;
    }
    const report: PortReport = { port, protocol, state: outcome.state, reason: outcome.reason, service };
    if (outcome.socket) {
      report.banner = await grabBanner(outcome.socket, { host: address, port, timeoutMs: bannerTimeoutMs, maxBytes: bannerBytes, forceTls: options.tls === true, ...(signal ? { signal } : {}) });
    }
    return report;
  };

  const reportReady = (): void => {
    for (let ready = finished.get(nextToReport); ready; ready = finished.get(nextToReport)) {
      finished.delete(nextToReport);
      nextToReport++;
      options.onHost?.(ready);
    }
  };

  const queue = jobs();
  let failure: unknown;
  const worker = async (): Promise<void> => {
    while (failure === undefined && !signal?.aborted) {
      const next = queue.next();
      if (next.done) return;
      const { progress, slot, port } = next.value;
      let result: PortReport;
      try {
        result = await probeOne(progress.host.address, port);
      } catch (err) {
        failure ??= err;
        return;
      }
      progress.results[slot] = result;
      probesDone++;
      if (result.state === 'open') open++;
      if (--progress.remaining === 0) {
        finished.set(progress.host.index, summarise(progress));
        hostsDone++;
        reportReady();
      }
    }
  };

  const progressOf = (): ScanProgress => ({ probesDone, probesTotal, hostsDone, hostsTotal: targets.count, open, elapsedMs: performance.now() - started });
  const ticker = options.onProgress ? setInterval(() => options.onProgress?.(progressOf()), options.progressIntervalMs ?? 1000) : undefined;
  ticker?.unref();
  try {
    const workers = Array.from({ length: Math.min(concurrency, probesTotal) }, worker);
    await Promise.all(workers);
  } finally {
    if (ticker) clearInterval(ticker);
  }
  if (failure !== undefined) throw failure;
  return {
    protocol,
    hostsTotal: targets.count,
    hostsDone,
    ports,
    startedAt,
    elapsedMs: performance.now() - started,
    interrupted: probesDone < probesTotal,
  };
}

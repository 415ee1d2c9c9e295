import { monitorEventLoopDelay, type IntervalHistogram } from 'node:perf_hooks';
import { readdir, readFile } from 'node:fs/promises';

// How this process is doing, sampled now and then (the dashboard asks once a second): CPU over
// the time since the previous sample, memory, event-loop delay (perf_hooks.monitorEventLoopDelay,
// reset at each sample so its percentiles describe the last interval), open file descriptors
// (the entries of /proc/self/fd; null where there is no /proc) and uptime. Nothing runs between
// samples but the event-loop delay timer, and only between start() and stop().

export interface SystemSample {
  readonly pid: number;
  /** Seconds since the process started. */
  readonly uptimeSeconds: number;
  /**
   * CPU time (user + system) over wall time since the previous sample, in percent of one core
   * (more than 100 when threads of the process run at once); null on the first sample.
   */
  readonly cpuPercent: number | null;
  readonly rssBytes: number;
  readonly heapUsedBytes: number;
  readonly heapTotalBytes: number;
  /**
   * Event-loop delay over the interval, in milliseconds beyond the monitor's timer resolution
   * (0: the loop was never held up); null before the monitor recorded anything.
   */
  readonly eventLoopDelayMs: { readonly p50: number; readonly p99: number; readonly max: number } | null;
  /** Open file descriptors (sockets, files, pipes); null where /proc/self/fd cannot be read. */
  readonly openFds: number | null;
  /** The soft limit on open files (RLIMIT_NOFILE from /proc/self/limits); null when unknown. */
  readonly maxFds: number | null;
}

export interface SystemSamplerOptions {
  /** Timer resolution of the event-loop delay monitor, in ms (its own timer fires this often). */
  eventLoopResolutionMs?: number;
}

export class SystemSampler {
  private histogram: IntervalHistogram | undefined;
  private lastCpu: NodeJS.CpuUsage | undefined;
  private lastAt: bigint | undefined;
  private maxFds: Promise<number | null> | undefined;
  private readonly resolution: number;

  constructor(options: SystemSamplerOptions = {}) {
    this.resolution = options.eventLoopResolutionMs ?? 20;
  }

  /** Starts the event-loop delay monitor (idempotent). */
  start(): void {
    if (this.histogram) return;
    this.histogram = monitorEventLoopDelay({ resolution: this.resolution });
    this.histogram.enable();
  }

  /** Stops the monitor; the next sample starts CPU accounting afresh. */
  stop(): void {
    this.histogram?.disable();
    this.histogram = undefined;
    this.lastCpu = undefined;
    this.lastAt = undefined;
  }

  async sample(): Promise<SystemSample> {
    const now = process.hrtime.bigint();
    const cpu = process.cpuUsage();
    let cpuPercent: number | null = null;
    if (this.lastCpu && this.lastAt !== undefined && now > this.lastAt) {
      const usedMicros = cpu.user - this.lastCpu.user + (cpu.system - this.lastCpu.system);
      const wallMicros = Number(now - this.lastAt) / 1e3;
      cpuPercent = round((usedMicros / wallMicros) * 100, 1);
    }
    this.lastCpu = cpu;
    this.lastAt = now;

    let eventLoopDelayMs: SystemSample['eventLoopDelayMs'] = null;
    const h = this.histogram;
    if (h && h.count > 0) {
      // The monitor records the time between its timer's runs, which is the resolution itself
      // when nothing holds the loop up: the delay is what comes on top of it.
      const delay = (ns: number) => round(Math.max(0, ns / 1e6 - this.resolution), 2);
      eventLoopDelayMs = { p50: delay(h.percentile(50)), p99: delay(h.percentile(99)), max: delay(h.max) };
      h.reset();
    }

    const mem = process.memoryUsage();
    this.maxFds ??= readMaxFds();
    const [openFds, maxFds] = await Promise.all([countOpenFds(), this.maxFds]);
    return {
      pid: process.pid,
      uptimeSeconds: Math.round(process.uptime()),
      cpuPercent,
      rssBytes: mem.rss,
      heapUsedBytes: mem.heapUsed,
      heapTotalBytes: mem.heapTotal,
      eventLoopDelayMs,
      openFds,
      maxFds,
    };
  }
}

/** Entries of /proc/self/fd, less the one readdir itself holds open while it reads. */
export async function countOpenFds(): Promise<number | null> {
  try {
    const entries = await readdir('/proc/self/fd');
    return Math.max(0, entries.length - 1);
  } catch {
    return null;
  }
}

async function readMaxFds(): Promise<number | null> {
  try {
    const text = await readFile('/proc/self/limits', 'utf8');
    const m = /^Max open files\s+(\d+|unlimited)/m.exec(text);
    return m && m[1] !== 'unlimited' ? Number(m[1]) : null;
  } catch {
    return null;
  }
}

function round(x: number, digits: number): number {
  const f = 10 ** digits;
  return Math.round(x * f) / f;
}

import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

// CPU time per core from /proc/stat. A `cpuN` line holds cumulative jiffies (USER_HZ ticks):
// user nice system idle iowait irq softirq steal guest guest_nice. "Busy" here is
// user+nice+system+irq+softirq: the time the core spent running anything, including the kernel's
// network work (loopback TCP is processed largely in softirq on the core that sends).

export interface CoreTicks {
  /** user+nice+system+irq+softirq, in jiffies. */
  readonly busy: number;
  /** All fields summed (busy + idle + iowait + steal), in jiffies. */
  readonly total: number;
}

export type CpuSnapshot = ReadonlyMap<number, CoreTicks>;

export interface CoreUsage {
  /** Busy CPU seconds on this core between two snapshots. */
  readonly busySeconds: number;
  /** Fraction of the elapsed core time that was busy, 0..1. */
  readonly busyFraction: number;
}

let cachedHz: number | undefined;

/** USER_HZ (`getconf CLK_TCK`); 100 on practically every Linux, used if getconf is missing. */
export function clockTicksPerSecond(): number {
  if (cachedHz !== undefined) return cachedHz;
  let hz = 100;
  try {
    const out = execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8', timeout: 5_000 }).trim();
    const n = Number(out);
    if (Number.isInteger(n) && n > 0) hz = n;
  } catch {
    // keep 100
  }
  cachedHz = hz;
  return hz;
}

/** Parses the per-core lines of /proc/stat (the aggregate `cpu` line is skipped). */
export function parseProcStat(text: string): Map<number, CoreTicks> {
  const cores = new Map<number, CoreTicks>();
  for (const line of text.split('\n')) {
    const m = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!m) continue;
    const f = m[2].trim().split(/\s+/).map(Number);
    if (f.length < 7 || f.some((x) => !Number.isFinite(x))) continue;
    const [user, nice, system, idle, iowait, irq, softirq] = f;
    const steal = f[7] ?? 0;
    const busy = user + nice + system + irq + softirq;
    // guest/guest_nice are already included in user/nice, so they are not added again.
    cores.set(Number(m[1]), { busy, total: busy + idle + iowait + steal });
  }
  return cores;
}

export function sampleCpu(): CpuSnapshot {
  return parseProcStat(readFileSync('/proc/stat', 'utf8'));
}

/** Usage of one core between two snapshots. */
export function coreUsage(before: CpuSnapshot, after: CpuSnapshot, core: number): CoreUsage {
  const a = before.get(core);
  const b = after.get(core);
  if (!a || !b) throw new Error(`/proc/stat has no cpu${core} line`);
  const busy = b.busy - a.busy;
  const total = b.total - a.total;
  return {
    busySeconds: busy / clockTicksPerSecond(),
    busyFraction: total > 0 ? busy / total : 0,
  };
}

/** Number of cores /proc/stat reports. */
export function coreCount(): number {
  return sampleCpu().size;
}

/** utime+stime (and, with `withChildren`, cutime+cstime) in jiffies from a /proc/<pid>/stat line. */
export function parsePidStat(line: string, withChildren = false): { readonly pgrp: number; readonly ticks: number } | undefined {
  // The command name (field 2) may hold spaces and parentheses; fields restart after the last ')'.
  const close = line.lastIndexOf(')');
  if (close < 0) return undefined;
  const f = line.slice(close + 2).trim().split(/\s+/); // f[0] = state (field 3)
  const field = (n: number) => Number(f[n - 3]);
  const ticks = field(14) + field(15) + (withChildren ? field(16) + field(17) : 0);
  const pgrp = field(5);
  return Number.isFinite(ticks) && Number.isFinite(pgrp) ? { pgrp, ticks } : undefined;
}

/** CPU seconds used so far by the live processes of process group `pgid` (all their threads). */
export function processGroupCpuSeconds(pgid: number): number {
  let ticks = 0;
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    let line: string;
    try {
      line = readFileSync(`/proc/${name}/stat`, 'utf8');
    } catch {
      continue; // exited meanwhile
    }
    const st = parsePidStat(line);
    if (st && st.pgrp === pgid) ticks += st.ticks;
  }
  return ticks / clockTicksPerSecond();
}

/** Busy CPU seconds of all cores together between two snapshots. */
export function totalBusySeconds(before: CpuSnapshot, after: CpuSnapshot): number {
  let busy = 0;
  for (const [core, b] of after) {
    const a = before.get(core);
    if (a) busy += b.busy - a.busy;
  }
  return busy / clockTicksPerSecond();
}
